"""haguard(8), haguard.yaml(5) and the bash completion, generated from the argument spec
and the config model: complete, valid roff, and a completion that completes."""

from __future__ import annotations

import argparse
import shutil
import subprocess
from pathlib import Path

import pytest

from haguard.cli.manpage import bash_completion, commands, esc, haguard_8, haguard_yaml_5
from haguard.cli.parser import build_parser
from haguard.core.configdoc import SECTIONS


def test_haguard_8_has_every_command_with_each_of_its_options() -> None:
    page = haguard_8()
    for cmd in list(commands(build_parser()))[1:]:
        assert f".SS {esc(' '.join(('haguard',) + cmd.words))}\n" in page, cmd.words
        for action in cmd.parser._actions:
            if isinstance(action, argparse._HelpAction):
                continue        # -h, --help: said once, not on every command
            for option in action.option_strings:
                assert f"\\fB{esc(option)}\\fR" in page, (cmd.words, option)


def test_haguard_yaml_5_has_every_section_and_key_of_the_model() -> None:
    page = haguard_yaml_5()
    for section in SECTIONS:
        assert esc(section.text) in page
        for key in section.keys:
            assert f".TP\n\\fB{esc(key.name)}\\fR: \\fI{esc(key.value)}\\fR\n{esc(key.text)}" \
                in page


def test_text_that_would_read_as_a_roff_request_is_escaped() -> None:
    assert esc(".hidden\n'quoted\nplain -x \\n") == "\\&.hidden\n\\&'quoted\nplain \\-x \\en"


@pytest.mark.parametrize("render", [haguard_8, haguard_yaml_5])
def test_the_pages_format_without_a_groff_warning(render, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    groff = shutil.which("groff")
    assert groff, "groff (Debian's groff-base) formats man pages; scripts/setup installs it"
    page = tmp_path / "page"
    page.write_text(render(), encoding="utf-8")
    result = subprocess.run([groff, "-man", "-Tutf8", "-ww", "-z", str(page)],
                            capture_output=True, text=True, check=False)
    assert result.returncode == 0 and result.stderr == "", result.stderr


def _complete(script: Path, *words: str) -> list[str]:
    probe = (f"source {script}\n"
             "COMP_WORDS=(\"$@\"); COMP_CWORD=$(( ${#COMP_WORDS[@]} - 1 )); COMPREPLY=()\n"
             "_haguard\nprintf '%s\\n' \"${COMPREPLY[@]}\"\n")
    result = subprocess.run(["bash", "-c", probe, "complete", *words], capture_output=True,
                            text=True, check=True)
    return [line for line in result.stdout.splitlines() if line]


def test_bash_completion_completes_commands_actions_options_and_files(tmp_path: Path) -> None:
    script = tmp_path / "haguard"
    script.write_text(bash_completion(), encoding="utf-8")
    assert "ipvs" in _complete(script, "haguard", "")
    assert _complete(script, "haguard", "mig") == ["migrate"]
    ipvs = next(c for c in commands(build_parser()) if c.words == ("ipvs",))
    assert _complete(script, "haguard", "ipvs", "") == list(ipvs.children)
    assert set(_complete(script, "haguard", "ipvs", "apply", "--")) == {
        "--help", "--config", "--json", "--incremental", "--only"}
    (tmp_path / "lb1.yaml").write_text("", encoding="utf-8")
    assert _complete(script, "haguard", "check", "-c", str(tmp_path / "lb")) == \
        [str(tmp_path / "lb1.yaml")]
