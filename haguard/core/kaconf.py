"""keepalived.conf as keepalived reads it: logical lines, then a tree of statements.

Pure: the text comes in, statements go out. The reading follows keepalived's parser
(lib/parser.c): ``!`` and ``#`` start a comment outside double quotes (``\\!`` and ``\\#``
are the characters themselves), a trailing ``\\`` continues the line, a quoted string is
one word without its quotes, and ``{`` / ``}`` outside quotes stand alone wherever they
are written, so ``real_server 192.0.2.21 80 { weight 1 }`` on one line is a block.
``include`` lines are left for the caller to expand (it can read files; this cannot).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from haguard.errors import BadInput

OPEN, CLOSE = "{", "}"


class KeepalivedConfError(BadInput):
    """The text is not a keepalived.conf keepalived would read the same way."""


@dataclass(frozen=True)
class Line:
    """One logical line: its words (a brace is a word of its own) and where it began."""

    words: tuple[str, ...]
    file: str
    number: int

    @property
    def where(self) -> str:
        return f"{self.file}:{self.number}"


@dataclass(frozen=True)
class Stmt:
    """A keyword, its arguments, and the statements of its block (None: no block)."""

    keyword: str
    args: tuple[str, ...]
    file: str
    line: int
    block: tuple[Stmt, ...] | None = None

    @property
    def where(self) -> str:
        return f"{self.file}:{self.line}"

    def children(self, keyword: str) -> list[Stmt]:
        return [s for s in self.block or () if s.keyword == keyword]

    def words(self) -> list[str]:
        """Every word of the block, line by line: what keepalived reads as a list
        (``group { VI_1 VI_2 }``, ``track_script { a b }``)."""
        return [w for s in self.block or () for w in (s.keyword, *s.args)]


def lines(text: str, file: str) -> list[Line]:
    """The logical lines of one file; include lines among them, unexpanded."""
    out: list[Line] = []
    pending: list[str] = []
    start = 0
    for number, raw in enumerate(text.splitlines(), start=1):
        code, continued = _decomment(raw, file, number)
        if not pending:
            start = number
        pending.append(code)
        if continued:
            continue
        joined = " ".join(part for part in pending if part)
        pending = []
        for words in _split_braces(joined, file, start):
            out.append(Line(words, file, start))
    if pending:
        joined = " ".join(part for part in pending if part)
        out.extend(Line(words, file, start) for words in _split_braces(joined, file, start))
    return out


def _decomment(raw: str, file: str, number: int) -> tuple[str, bool]:
    """The line without its comment; True when a trailing backslash continues it."""
    out: list[str] = []
    quote = False
    i = 0
    while i < len(raw):
        ch = raw[i]
        if ch == '"':
            quote = not quote
        elif ch == "\\":
            if i + 1 == len(raw):
                return "".join(out).strip(), True
            if not quote and raw[i + 1] in "#!":
                out.append(raw[i + 1])
                i += 2
                continue
            out.append(raw[i:i + 2])
            i += 2
            continue
        elif ch in "#!" and not quote:
            break
        out.append(ch)
        i += 1
    if quote:
        raise KeepalivedConfError(f"{file}:{number}: a double quote is not closed on this line")
    return "".join(out).strip(), False


def _split_braces(text: str, file: str, number: int) -> Iterator[tuple[str, ...]]:
    """The words of a line, a new line at each brace outside quotes."""
    words: list[str] = []
    i = 0
    while i < len(text):
        ch = text[i]
        if ch.isspace():
            i += 1
        elif ch in (OPEN, CLOSE):
            if words:
                yield tuple(words)
                words = []
            yield (ch,)
            i += 1
        elif ch == '"':
            end = text.find('"', i + 1)
            if end < 0:
                raise KeepalivedConfError(f"{file}:{number}: a double quote is not closed")
            words.append(text[i + 1:end])
            i = end + 1
        else:
            j = i
            while j < len(text) and not text[j].isspace() and text[j] not in '"{}':
                j += 1
            words.append(text[i:j])
            i = j
    if words:
        yield tuple(words)


def parse(all_lines: Iterable[Line]) -> tuple[Stmt, ...]:
    """The statement tree of lines whose includes are expanded.

    A block may open on the keyword's line or the next one, as keepalived allows.
    """
    stack: list[_Open] = [_Open(None)]
    last: _Open | None = None      # the statement a following "{" would open
    for line in all_lines:
        if line.words == (OPEN,):
            if last is None:
                raise KeepalivedConfError(f"{line.where}: '{{' without a keyword before it")
            stack.append(last)
            last = None
            continue
        if line.words == (CLOSE,):
            if last is not None:
                stack[-1].items.append(last.close(block=False))
            if len(stack) == 1:
                raise KeepalivedConfError(f"{line.where}: '}}' closes no block")
            done = stack.pop()
            stack[-1].items.append(done.close())
            last = None
            continue
        if last is not None:
            stack[-1].items.append(last.close(block=False))
        last = _Open(line)
    if last is not None:
        stack[-1].items.append(last.close(block=False))
    if len(stack) > 1:
        opened = stack[-1].line
        assert opened is not None
        raise KeepalivedConfError(f"{opened.where}: the block of {opened.words[0]!r} opened "
                                  "here is not closed before the end of the file")
    return tuple(stack[0].items)


@dataclass
class _Open:
    line: Line | None
    items: list[Stmt] = field(default_factory=list)

    def close(self, block: bool = True) -> Stmt:
        assert self.line is not None
        words = self.line.words
        return Stmt(keyword=words[0], args=words[1:], file=self.line.file,
                    line=self.line.number, block=tuple(self.items) if block else None)
