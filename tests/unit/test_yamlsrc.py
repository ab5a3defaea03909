"""The YAML front end: libyaml's parser and PyYAML's own give the same values, the same
lines and the same error messages."""

from __future__ import annotations

import glob
import os

import pytest
import yaml

from haguard.core import yamlsrc
from haguard.errors import ConfigError

CONF = os.path.join(os.path.dirname(__file__), "..", "..", "conf")
BROKEN = {
    "bad-indentation": "a:\n  - 1\n  b: 2\n",
    "tab": "a:\n\tb: 1\n",
    "unknown-tag": "a: !foo 1\n",
    "second-document": "a: 1\n---\nb: 2\n",
    "unclosed-flow": "a: [1, 2\nb: 3\n",
    "duplicate-key": "a: 1\na: 2\n",
}


def _with_pure_parser(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(yamlsrc, "Loader", yaml.SafeLoader)


def test_this_installation_parses_with_libyaml() -> None:
    # Otherwise the two-parser tests below compare PyYAML with itself.
    assert yamlsrc.Loader is yaml.CSafeLoader


def _paths(data: object, path: tuple = ()) -> list[tuple]:
    out = [path]
    if isinstance(data, dict):
        for k, v in data.items():
            out += _paths(v, path + (k,))
    elif isinstance(data, list):
        for i, v in enumerate(data):
            out += _paths(v, path + (i,))
    return out


@pytest.mark.parametrize("path", sorted(glob.glob(os.path.join(CONF, "*.yaml"))),
                         ids=os.path.basename)
def test_both_parsers_give_the_same_values_and_lines(path: str,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    text = open(path, encoding="utf-8").read()
    fast = yamlsrc.parse(text, path)
    _with_pure_parser(monkeypatch)
    pure = yamlsrc.parse(text, path)
    assert fast.data == pure.data
    paths = _paths(fast.data)
    assert len(paths) > 5
    lines = text.splitlines()
    for p in paths:
        assert fast.line(p) == pure.line(p)
        assert fast.line(p, key=True) == pure.line(p, key=True)
        if p and isinstance(p[-1], str):    # the key's own line names it
            assert p[-1] in lines[fast.line(p, key=True) - 1], p


def test_a_line_is_found_for_a_path_that_is_not_in_the_document() -> None:
    source = yamlsrc.parse("a:\n  b:\n    - 1\n    - 2\n  c: 3\n", "f.yaml")
    assert source.line(("a", "b", 1)) == 4
    assert source.line(("a", "b", 7)) == 3          # the list itself
    assert source.line(("a", "c", "x"), key=True) == 5
    assert source.line(("a", "zz"), key=True) == 1 and source.line(("zz",)) == 1


def test_merge_keys_give_the_line_of_the_value_that_won() -> None:
    text = "base: &b {port: 80, weight: 1}\nsvc:\n  <<: *b\n  weight: 2\n"
    source = yamlsrc.parse(text, "f.yaml")
    assert source.data["svc"] == {"port": 80, "weight": 2}
    assert source.line(("svc", "weight")) == 4 and source.line(("svc", "port")) == 1


@pytest.mark.parametrize("text", BROKEN.values(), ids=BROKEN.keys())
def test_both_parsers_word_a_broken_file_the_same(text: str,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ConfigError) as fast:
        yamlsrc.parse(text, "f.yaml")
    _with_pure_parser(monkeypatch)
    with pytest.raises(ConfigError) as pure:
        yamlsrc.parse(text, "f.yaml")
    assert fast.value.problems == pure.value.problems
    assert fast.value.problems[0].startswith("f.yaml:")


def test_loading_leaves_the_cycle_collector_as_it_found_it() -> None:
    import gc

    from haguard.core.config import loads

    good = open(os.path.join(CONF, "lab.yaml"), encoding="utf-8").read()
    assert gc.isenabled()
    loads(good)
    assert gc.isenabled()
    with pytest.raises(ConfigError):
        loads("node: [\n")
    assert gc.isenabled()
    gc.disable()
    try:
        loads(good)
        assert not gc.isenabled()
    finally:
        gc.enable()
