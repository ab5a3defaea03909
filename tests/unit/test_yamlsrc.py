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


@pytest.mark.parametrize("path", sorted(glob.glob(os.path.join(CONF, "*.yaml"))),
                         ids=os.path.basename)
def test_both_parsers_give_the_same_values_and_lines(path: str,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    text = open(path, encoding="utf-8").read()
    fast = yamlsrc.parse(text, path)
    _with_pure_parser(monkeypatch)
    pure = yamlsrc.parse(text, path)
    assert (fast.data, fast.lines, fast.key_lines) == (pure.data, pure.lines, pure.key_lines)
    assert len(fast.lines) > 5


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
