"""YAML -> plain Python values, and the line of any of them.

Validation messages must name the file, the line and the path inside the document
(``conf/lb1.yaml:14: instances[0].vips[1]: ...``), so the document is composed into
nodes first, converted by hand, and the nodes are kept to find a path's line when a
message needs it; only the safe loader is ever used.
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
    """A parsed document and where each of its values and keys came from.

    A YAML document keeps its composed node tree and finds a line when a message needs
    one (a large valid config never asks); other sources fill ``lines`` directly, with
    the line of each value they know."""

    filename: str
    data: Any
    lines: dict[Path, int] = field(default_factory=dict)
    node: yaml.Node | None = None

    def line(self, path: Path, key: bool = False) -> int:
        """Best known line for a path (its key's, with ``key``, where the node tree says):
        the value's, else the nearest parent's."""
        if self.node is not None:
            return _node_line(self.node, path, key)
        probe = path
        while probe:
            if probe in self.lines:
                return self.lines[probe]
            probe = probe[:-1]
        return self.lines.get((), 1)

    def where(self, path: Path, key: bool = False) -> str:
        """``file:line: path`` prefix for a message about ``path``."""
        return f"{self.filename}:{self.line(path, key)}: {format_path(path)}"


def _node_line(node: yaml.Node, path: Path, key: bool) -> int:
    """The line of ``path``'s value (of its key, with ``key``) in the node tree; for a
    path that is not there, the line of the deepest part that is."""
    value_line = node.start_mark.line + 1
    key_line: int | None = None
    for part in path:
        if isinstance(node, yaml.MappingNode) and isinstance(part, str):
            # The last pair wins, as in the converted mapping (merged keys come first).
            pairs = [(k, v) for k, v in node.value
                     if isinstance(k, yaml.ScalarNode) and k.value == part]
            if not pairs:
                break
            key_node, node = pairs[-1]
            key_line = key_node.start_mark.line + 1
        elif (isinstance(node, yaml.SequenceNode) and isinstance(part, int)
              and 0 <= part < len(node.value)):
            node, key_line = node.value[part], None
        else:
            break
        value_line = node.start_mark.line + 1
    return key_line if key and key_line is not None else value_line


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
        source = Source(filename=filename, data=None, node=node)
        try:
            if node is not None:
                source.data = _convert(loader, node, (), filename)
        except yaml.MarkedYAMLError as exc:
            raise _marked(filename, exc) from None
        return source
    finally:
        loader.dispose()


STR_TAG = "tag:yaml.org,2002:str"


def _convert(loader: yaml.SafeLoader, node: yaml.Node, path: Path, filename: str) -> Any:
    if isinstance(node, yaml.ScalarNode):
        # Most values are strings, and PyYAML's str constructor returns the node's value;
        # the generic route's bookkeeping costs more than the rest of the load.
        if node.tag == STR_TAG:
            return node.value
        return loader.construct_object(node, deep=True)
    if isinstance(node, yaml.MappingNode):
        explicit = sum(1 for k, _ in node.value if k.tag != "tag:yaml.org,2002:merge")
        loader.flatten_mapping(node)  # resolves YAML merge keys (<<) into the front
        merged_count = len(node.value) - explicit
        result: dict[Any, Any] = {}
        merged_keys: set[str] = set()
        for position, (key_node, value_node) in enumerate(node.value):
            merged = position < merged_count
            key = _convert(loader, key_node, path, filename) \
                if isinstance(key_node, yaml.ScalarNode) else None
            if not isinstance(key, str):
                key = loader.construct_object(key_node, deep=True)
                raise ConfigError(
                    [f"{filename}:{key_node.start_mark.line + 1}: {format_path(path)}: "
                     f"key {key!r} is not a string"]
                )
            if key in result and not merged and key not in merged_keys:
                raise ConfigError(
                    [f"{filename}:{key_node.start_mark.line + 1}: "
                     f"{format_path(path + (key,))}: duplicate key"]
                )
            if merged:
                merged_keys.add(key)
            else:
                merged_keys.discard(key)  # an explicit key overrides a merged one, once
            result[key] = _convert(loader, value_node, path + (key,), filename)
        return result
    if isinstance(node, yaml.SequenceNode):
        return [_convert(loader, item, path + (i,), filename) for i, item in enumerate(node.value)]
    return loader.construct_object(node, deep=True)
