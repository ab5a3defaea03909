"""haguard(8), haguard.yaml(5) and bash completion, generated from the argument spec and
the config model, so none of them can say what the code does not (written out by
haguard.cli.packagefiles when the Debian package is built)."""

from __future__ import annotations

import argparse
import datetime
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass

from haguard import __version__
from haguard.cli.parser import build_parser
from haguard.core.configdoc import SECTIONS, Section

SEE_ALSO = r"""\fBhaguard.yaml\fR(5), \fBkeepalived\fR(8), \fBkeepalived.conf\fR(5), \fBipvsadm\fR(8)"""


@dataclass(frozen=True)
class Command:
    """One command of the tree: its words (``ipvs apply``) and its parser."""

    words: tuple[str, ...]
    summary: str
    parser: argparse.ArgumentParser
    children: tuple[str, ...]


def commands(parser: argparse.ArgumentParser, words: tuple[str, ...] = (),
             summary: str = "") -> Iterator[Command]:
    """Every command and subcommand of ``parser``, depth first, in the order of --help."""
    sub = _subparsers(parser)
    helps = {a.dest: a.help or "" for a in sub._choices_actions} if sub else {}
    children = tuple(sub.choices) if sub else ()
    yield Command(words, summary, parser, children)
    if sub is not None:
        for name, child in sub.choices.items():
            yield from commands(child, words + (name,), helps.get(name, ""))


def _subparsers(parser: argparse.ArgumentParser
                ) -> argparse._SubParsersAction[argparse.ArgumentParser] | None:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return action
    return None


def _options(parser: argparse.ArgumentParser) -> list[argparse.Action]:
    return [a for a in parser._actions
            if not isinstance(a, (argparse._HelpAction, argparse._SubParsersAction))]


def _help(parser: argparse.ArgumentParser, action: argparse.Action) -> str:
    formatter = parser._get_formatter()
    return formatter._expand_help(action) if action.help else ""


# ------------------------------------------------------------------------- roff
def esc(text: str) -> str:
    """Text safe in roff: backslashes, and a leading dot or quote that would be a request."""
    text = text.replace("\\", "\\e").replace("-", "\\-")
    return "\n".join("\\&" + line if line[:1] in (".", "'") else line
                     for line in text.split("\n"))


def _paragraphs(text: str) -> list[str]:
    """Description text as roff: runs of indented lines verbatim, the rest filled."""
    out: list[str] = []
    for block in re.split(r"\n\s*\n", text.strip("\n")):
        out.append(".PP")
        run: list[str] = []
        verbatim = False
        for line in block.split("\n") + [""]:
            indented = line.startswith(" ")
            if line and indented == verbatim and run:
                run.append(line)
                continue
            if run:
                out += [".nf", esc("\n".join(run)), ".fi"] if verbatim else \
                    [esc(" ".join(part.strip() for part in run))]
            run, verbatim = ([line], indented) if line else ([], False)
    return out


def _usage(parser: argparse.ArgumentParser) -> str:
    return " ".join(parser.format_usage().removeprefix("usage:").split())


def _th(name: str, section: int, title: str) -> str:
    epoch = os.environ.get("SOURCE_DATE_EPOCH")
    when = datetime.datetime.fromtimestamp(int(epoch), datetime.UTC) if epoch \
        else datetime.datetime.now(datetime.UTC)
    return f'.TH {name} {section} "{when:%Y-%m-%d}" "haguard {__version__}" "{title}"'


def haguard_8(parser: argparse.ArgumentParser | None = None) -> str:
    """The haguard(8) page: every command, its synopsis, what it does, its options."""
    parser = parser or build_parser()
    tree = list(commands(parser))
    top = tree[0]
    lines = [_th("HAGUARD", 8, "System Administration"),
             ".SH NAME", "haguard \\- keepalived\\-driven high availability for Linux LVS "
                         "(IPVS) directors",
             ".SH SYNOPSIS", f".B haguard\n{esc(_usage(parser).removeprefix('haguard '))}",
             ".SH DESCRIPTION", *_paragraphs(top.parser.description or ""),
             ".SH COMMANDS"]
    for cmd in tree[1:]:
        lines += [f".SS {esc(' '.join(('haguard',) + cmd.words))}",
                  f".B {esc(_usage(cmd.parser))}"]
        if cmd.parser.description:
            lines += _paragraphs(cmd.parser.description)
        elif cmd.summary:
            lines += [".PP", esc(cmd.summary[:1].upper() + cmd.summary[1:] + ".")]
        if cmd.children:
            lines += [".PP", esc("Actions: " + ", ".join(cmd.children) + ".")]
        for action in _options(cmd.parser):
            lines += [".TP", _option_head(action), esc(_help(cmd.parser, action))]
    lines += [".SH ENVIRONMENT", ".TP", ".B HAGUARD_CONFIG",
              "The config file when \\fB\\-c\\fR is not given (default "
              "\\fI/etc/haguard/haguard.yaml\\fR).",
              ".SH FILES", ".TP", ".I /etc/haguard/haguard.yaml",
              "The node's config; see \\fBhaguard.yaml\\fR(5).",
              ".TP", ".I /var/lib/haguard",
              "The levers (demote, promote, real servers) and their audit log.",
              ".TP", ".I /run/haguard", "Locks, the recorded state, health.json, the notify FIFO.",
              ".SH SEE ALSO", SEE_ALSO]
    return "\n".join(lines) + "\n"


def _option_head(action: argparse.Action) -> str:
    if not action.option_strings:
        return f"\\fI{esc(str(action.metavar or action.dest))}\\fR"
    names = ", ".join(f"\\fB{esc(s)}\\fR" for s in action.option_strings)
    if action.nargs == 0:
        return names
    metavar = action.metavar or action.dest.upper()
    if isinstance(metavar, tuple):
        metavar = " ".join(metavar)
    return f"{names} \\fI{esc(str(metavar))}\\fR"


def haguard_yaml_5(sections: tuple[Section, ...] = SECTIONS) -> str:
    """The haguard.yaml(5) page: every section and key the validator takes."""
    lines = [_th("HAGUARD.YAML", 5, "File Formats"),
             ".SH NAME", "haguard.yaml \\- the node config of haguard",
             ".SH DESCRIPTION",
             ".PP", "One YAML file per node (director or real server), by default "
                    "\\fI/etc/haguard/haguard.yaml\\fR. Unknown keys are errors; everything "
                    "is validated before anything is applied (\\fBhaguard check\\fR). "
                    "Durations are in seconds unless the key says otherwise (_ms); a "
                    "command is an argument list whose program is an absolute path, run "
                    "without a shell.",
             ".SH KEYS"]
    for section in sections:
        where = " and ".join(f"{p or 'the top level'}" for p in (section.path, *section.also))
        lines += [f".SS {esc(where)}", ".PP", esc(section.text)]
        for key in section.keys:
            lines += [".TP", f"\\fB{esc(key.name)}\\fR: \\fI{esc(key.value)}\\fR",
                      esc(key.text)]
    lines += [".SH EXAMPLE", ".nf", esc(EXAMPLE.strip("\n")), ".fi",
              ".SH SEE ALSO", "\\fBhaguard\\fR(8), \\fBkeepalived.conf\\fR(5), "
                              "\\fBipvsadm\\fR(8)"]
    return "\n".join(lines) + "\n"


EXAMPLE = """
node: {name: lb1}
instances:
  - name: VI_1
    interface: eth0
    virtual_router_id: 51
    priority: 150
    vips: [192.0.2.100]
ipvs:
  services:
    - vip: 192.0.2.100
      port: 80
      health: {check: http, http: {path: /healthz}}
      real_servers: [{address: 192.0.2.21}, {address: 192.0.2.22}]
agent: {}
"""


# ------------------------------------------------------------------------- bash completion
_FILE_METAVARS = ("FILE", "PATH", "OUT", "DIR")


def bash_completion(parser: argparse.ArgumentParser | None = None) -> str:
    """A bash completion script: commands, their actions and options, file names where an
    option takes a file."""
    parser = parser or build_parser()
    cases: list[str] = []
    for cmd in commands(parser):
        key = " ".join(cmd.words)
        options = [s for a in _options(cmd.parser) for s in a.option_strings]
        files = [s for a in _options(cmd.parser) if a.option_strings and a.nargs != 0
                 and str(a.metavar or "").upper() in _FILE_METAVARS for s in a.option_strings]
        takes_file = any(str(a.metavar or "") in _FILE_METAVARS for a in _options(cmd.parser)
                         if not a.option_strings)
        cases.append(f'        "{key}") children="{" ".join(cmd.children)}"; '
                     f'options="{" ".join(["--help", *options])}"; '
                     f'files="{" ".join(files)}"; positional_file={int(takes_file)} ;;')
    return _COMPLETION.replace("@CASES@", "\n".join(cases))


_COMPLETION = """\
# bash completion for haguard (generated from its argument spec)
_haguard() {
    local cur prev path="" word i children options files positional_file
    cur="${COMP_WORDS[COMP_CWORD]}"
    prev="${COMP_WORDS[COMP_CWORD-1]}"
    # Walk the words typed so far down the command tree.
    for (( i = 1; i < COMP_CWORD; i++ )); do
        word="${COMP_WORDS[i]}"
        _haguard_level "$path"
        case " $children " in
            *" $word "*) path="${path:+$path }$word" ;;
        esac
    done
    _haguard_level "$path"
    case " $files " in
        *" $prev "*) COMPREPLY=( $(compgen -f -- "$cur") ); return ;;
    esac
    if [[ "$cur" == -* ]]; then
        COMPREPLY=( $(compgen -W "$options" -- "$cur") )
    elif [[ -n "$children" ]]; then
        COMPREPLY=( $(compgen -W "$children" -- "$cur") )
    elif (( positional_file )); then
        COMPREPLY=( $(compgen -f -- "$cur") )
    fi
}
_haguard_level() {
    children=""; options=""; files=""; positional_file=0
    case "$1" in
@CASES@
    esac
}
complete -F _haguard haguard
"""
