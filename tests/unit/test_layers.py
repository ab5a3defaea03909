"""The layer rule (ARCHITECTURE.md), read from every module's imports: cli -> app ->
adapters -> core, one direction; core is pure; nothing outside cli/, bench/ and tests/
reaches lab/. Imports inside functions and under TYPE_CHECKING count too, and so does a
module named in a string (``python -m haguard.lab.x`` spawned from production code)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "haguard"

# layer -> the haguard packages it must never import
FORBIDDEN = {
    "core": ("haguard.adapters", "haguard.app", "haguard.cli", "haguard.lab"),
    "adapters": ("haguard.app", "haguard.cli", "haguard.lab"),
    "app": ("haguard.cli", "haguard.lab"),
    "top": ("haguard.adapters", "haguard.app", "haguard.cli", "haguard.lab", "haguard.core"),
    "cli": (),
    "lab": ("haguard.cli",),
}
# core may import only core and the error hierarchy
CORE_ALLOWED = ("haguard.core", "haguard.errors")


def _layer(path: Path) -> str:
    parts = path.relative_to(PACKAGE).parts
    if parts == ("__main__.py",):
        return "cli"  # `python -m haguard` is the command line
    return parts[0] if len(parts) > 1 else "top"


def _module(path: Path) -> str:
    rel = path.relative_to(ROOT).with_suffix("")
    parts = rel.parts[:-1] if rel.name == "__init__" else rel.parts
    return ".".join(parts)


def imports_of(path: Path) -> list[tuple[int, str]]:
    """(line, module) for every haguard module that ``path`` imports or names in a string."""
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    package = _module(path) if path.name == "__init__.py" else _module(path).rpartition(".")[0]
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[:len(anchor) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            # `from haguard.app import levers` imports haguard.app.levers
            found += [(node.lineno, f"{base}.{alias.name}") for alias in node.names]
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) \
                and node.value.startswith("haguard.") and " " not in node.value:
            found.append((node.lineno, node.value))
    return [(line, name) for line, name in found if name == "haguard" or
            name.startswith("haguard.")]


def violations(path: Path) -> list[str]:
    """What ``path`` imports against the layer rule, a line each."""
    layer = _layer(path)
    rel = path.relative_to(ROOT)
    out = []
    for line, name in imports_of(path):
        if any(name == p or name.startswith(p + ".") for p in FORBIDDEN.get(layer, ())):
            out.append(f"{rel}:{line}: {layer} imports {name}")
        elif layer == "core" and not any(name == p or name.startswith(p + ".")
                                         for p in CORE_ALLOWED):
            out.append(f"{rel}:{line}: core imports {name} (core imports only core and errors)")
    return out


def _modules() -> list[Path]:
    return sorted(PACKAGE.rglob("*.py"))


def test_every_module_of_the_package_belongs_to_a_known_layer() -> None:
    unknown = [str(p.relative_to(ROOT)) for p in _modules() if _layer(p) not in FORBIDDEN]
    assert unknown == []


def test_no_module_imports_against_the_layer_rule() -> None:
    found = [v for path in _modules() for v in violations(path)]
    assert found == [], "\n".join(found)


@pytest.mark.parametrize(("layer", "source", "wanted"), [
    ("core", "from haguard.adapters import sysctl\n", "core imports haguard.adapters.sysctl"),
    ("core", "import json\nfrom haguard.errors import BadInput\n", None),
    ("core", "def f():\n    from haguard.app import levers\n", "core imports haguard.app.levers"),
    ("adapters", "from haguard.app.transition import handle_event\n",
     "adapters imports haguard.app.transition.handle_event"),
    ("adapters", "from ..app import levers\n", "adapters imports haguard.app.levers"),
    ("app", "from haguard.cli.output import emit\n", "app imports haguard.cli.output.emit"),
    ("app", "ARGS = ['-m', 'haguard.lab.http', 'serve']\n", "app imports haguard.lab.http"),
    ("app", "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n"
            "    from haguard.lab.runner import LabRunner\n",
     "app imports haguard.lab.runner.LabRunner"),
    ("cli", "from haguard.lab.runner import LabRunner\n", None),
    ("lab", "from haguard.app.hooks import install\n", None),
])
def test_the_rule_catches_each_kind_of_violation(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                  layer: str, source: str,
                                                  wanted: str | None) -> None:
    fake_root = tmp_path
    module = fake_root / "haguard" / layer / "example.py"
    module.parent.mkdir(parents=True)
    module.write_text(source, encoding="utf-8")
    monkeypatch.setattr(__import__(__name__, fromlist=["ROOT"]), "ROOT", fake_root)
    monkeypatch.setattr(__import__(__name__, fromlist=["PACKAGE"]), "PACKAGE",
                        fake_root / "haguard")
    found = violations(module)
    if wanted is None:
        assert found == []
    else:
        assert [v.partition(": ")[2] for v in found] == [wanted]


# ------------------------------------------------------------------ app/ does no I/O itself
# app/ reaches the machine only through adapters/. Of the standard library it may use
# what computes, the clock and threads; `os` only to join paths and `sys` only for the
# interpreter's path (which an adapter then spawns).
APP_STDLIB = frozenset({
    "__future__", "collections", "collections.abc", "contextlib", "dataclasses", "datetime",
    "asyncio", "enum", "functools", "ipaddress", "itertools", "json", "math", "operator",
    "random", "re",
    "threading", "time", "typing", "os", "sys"})
APP_ATTRIBUTES = {"os": {"path.join", "path.basename", "path.dirname"}, "sys": {"executable"}}
IO_BUILTINS = frozenset({"open", "print", "input"})


def _dotted(node: ast.AST) -> str | None:
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if isinstance(node, ast.Name):
        return ".".join([node.id, *reversed(parts)])
    return None


def io_of(path: Path) -> list[str]:
    """What an app/ module does to the system itself rather than through an adapter."""
    tree = _with_parents(ast.parse(path.read_text(encoding="utf-8"), str(path)))
    rel = path.relative_to(ROOT)
    out = []
    for node in ast.walk(tree):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and not node.level:
            names = [node.module or ""]
            if node.module in APP_ATTRIBUTES:
                names = [f"{node.module}.{alias.name}" for alias in node.names]
        for name in names:
            top = name.split(".")[0]
            if name.startswith("haguard.") or name == "haguard":
                continue
            if top in APP_ATTRIBUTES and name != top:
                out.append(f"{rel}:{node.lineno}: imports {name} (use an adapter)")
            elif name not in APP_STDLIB:
                out.append(f"{rel}:{node.lineno}: imports {name} (use an adapter)")
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) \
                and node.func.id in IO_BUILTINS:
            out.append(f"{rel}:{node.lineno}: calls {node.func.id}() (use an adapter)")
        if isinstance(node, ast.Attribute) and not isinstance(getattr(node, "parent", None),
                                                                  ast.Attribute):
            dotted = _dotted(node)
            if dotted is None:
                continue
            top, _, rest = dotted.partition(".")
            if top in APP_ATTRIBUTES and not any(rest == a or rest.startswith(a + ".")
                                                  for a in APP_ATTRIBUTES[top]):
                out.append(f"{rel}:{node.lineno}: uses {dotted} (use an adapter)")
    return out


def _with_parents(tree: ast.AST) -> ast.AST:
    for node in ast.walk(tree):
        for child in ast.iter_child_nodes(node):
            child.parent = node  # type: ignore[attr-defined]
    return tree


def test_app_does_no_io_of_its_own() -> None:
    found = [v for path in sorted((PACKAGE / "app").glob("*.py")) for v in io_of(path)]
    assert found == [], "\n".join(found)


@pytest.mark.parametrize(("source", "wanted"), [
    ("import subprocess\n", "imports subprocess (use an adapter)"),
    ("import fcntl\n", "imports fcntl (use an adapter)"),
    ("from pathlib import Path\n", "imports pathlib (use an adapter)"),
    ("from os import getpid\n", "imports os.getpid (use an adapter)"),
    ("def f(p):\n    return open(p).read()\n", "calls open() (use an adapter)"),
    ("import os\ndef f(p):\n    return os.path.exists(p)\n",
     "uses os.path.exists (use an adapter)"),
    ("import os\nUSER = os.environ.get('USER')\n", "uses os.environ.get (use an adapter)"),
    ("import sys\ndef f():\n    sys.stdout.write('x')\n",
     "uses sys.stdout.write (use an adapter)"),
    ("import os\nimport sys\nimport time\n"
     "ARGS = [sys.executable, os.path.join('a', 'b'), time.time()]\n", None),
])
def test_the_no_io_rule_catches_each_kind_of_io(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                source: str, wanted: str | None) -> None:
    module = tmp_path / "haguard" / "app" / "example.py"
    module.parent.mkdir(parents=True)
    module.write_text(source, encoding="utf-8")
    monkeypatch.setattr(__import__(__name__, fromlist=["ROOT"]), "ROOT", tmp_path)
    found = [v.partition(": ")[2] for v in io_of(module)]
    assert found == ([] if wanted is None else [wanted])
