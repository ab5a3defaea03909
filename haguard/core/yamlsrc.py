"""YAML -> plain Python values, remembering the line of every value.

Validation messages must name the file, the line and the path inside the document
(``conf/lb1.yaml:14: instances[0].vips[1]: ...``), so the document is composed into
nodes first and converted by hand; only the safe loader is ever used.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import yaml

from haguard.errors import ConfigError

Path = tuple[str | int, ...]

# libyaml's parser, where PyYAML was built with it: it composes the same nodes with the
# same marks, and a config of 10,000 IPVS services loads in seconds instead of tens.
# The constructor stays PyYAML's safe one either way.
Loader: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def format_path(path: Path) -> str:
    """Render ``("instances", 0, "vips", 1)`` as ``instances[0].vips[1]``."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else part
    return out or "(top level)"


@dataclass
class Source:
    """A parsed document and where each of its values and keys came from."""

    filename: str
    data: Any
    lines: dict[Path, int] = field(default_factory=dict)
    key_lines: dict[Path, int] = field(default_factory=dict)

    def line(self, path: Path, key: bool = False) -> int:
        """Best known line for a path: the value's, else the nearest parent's."""
        table = self.key_lines if key else self.lines
        probe = path
        while probe:
            if probe in table:
                return table[probe]
            if probe in self.lines:
                return self.lines[probe]
            probe = probe[:-1]
        return self.lines.get((), 1)

    def where(self, path: Path, key: bool = False) -> str:
        """``file:line: path`` prefix for a message about ``path``."""
        return f"{self.filename}:{self.line(path, key)}: {format_path(path)}"


def _yaml_problem(exc: yaml.MarkedYAMLError) -> str:
    parts = [p for p in (exc.context, exc.problem) if p]
    return ", ".join(parts) if parts else str(exc)


def parse(text: str, filename: str) -> Source:
    """Parse one YAML document; syntax errors become a ConfigError with the line."""
    try:
        return _parse(Loader, text, filename)
    except _SyntaxProblem:
        if Loader is yaml.SafeLoader:
            raise
    # libyaml words its syntax errors differently; the pure parser's words are the
    # documented ones, and a broken file is small enough to parse twice.
    return _parse(yaml.SafeLoader, text, filename)


class _SyntaxProblem(ConfigError):
    pass


def _marked(filename: str, exc: yaml.MarkedYAMLError) -> _SyntaxProblem:
    mark = exc.problem_mark or exc.context_mark
    line = mark.line + 1 if mark else 1
    return _SyntaxProblem([f"{filename}:{line}: invalid YAML: {_yaml_problem(exc)}"])


def _parse(loader_type: type[yaml.SafeLoader], text: str, filename: str) -> Source:
    loader = loader_type(text)
    try:
        try:
            node = loader.get_single_node()
        except yaml.MarkedYAMLError as exc:
            raise _marked(filename, exc) from None
        except yaml.YAMLError as exc:
            raise _SyntaxProblem([f"{filename}:1: invalid YAML: {exc}"]) from None
        source = Source(filename=filename, data=None)
        try:
            if node is not None:
                source.data = _convert(loader, node, (), source)
        except yaml.MarkedYAMLError as exc:
            raise _marked(filename, exc) from None
        return source
    finally:
        loader.dispose()


def _convert(loader: yaml.SafeLoader, node: yaml.Node, path: Path, source: Source) -> Any:
    source.lines[path] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        explicit = sum(1 for k, _ in node.value if k.tag != "tag:yaml.org,2002:merge")
        loader.flatten_mapping(node)  # resolves YAML merge keys (<<) into the front
        merged_count = len(node.value) - explicit
        result: dict[Any, Any] = {}
        merged_keys: set[str] = set()
        for position, (key_node, value_node) in enumerate(node.value):
            merged = position < merged_count
            key = loader.construct_object(key_node, deep=True)
            if not isinstance(key, str):
                raise ConfigError(
                    [f"{source.filename}:{key_node.start_mark.line + 1}: {format_path(path)}: "
                     f"key {key!r} is not a string"]
                )
            if key in result and not merged and key not in merged_keys:
                raise ConfigError(
                    [f"{source.filename}:{key_node.start_mark.line + 1}: "
                     f"{format_path(path + (key,))}: duplicate key"]
                )
            if merged:
                merged_keys.add(key)
            else:
                merged_keys.discard(key)  # an explicit key overrides a merged one, once
            source.key_lines[path + (key,)] = key_node.start_mark.line + 1
            result[key] = _convert(loader, value_node, path + (key,), source)
        return result
    if isinstance(node, yaml.SequenceNode):
        return [_convert(loader, item, path + (i,), source) for i, item in enumerate(node.value)]
    return loader.construct_object(node, deep=True)
