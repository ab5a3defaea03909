"""The command line: exit codes, messages and output forms, run in-process."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from haguard.cli import main
from haguard.core.config import loads
from haguard.core.render import render

REPO = Path(__file__).resolve().parents[2]
LAB = REPO / "conf" / "lab.yaml"


def test_render_to_stdout_is_the_rendered_config(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["render", "-c", str(LAB)]) == 0
    expected = render(loads(LAB.read_text(), str(LAB), str(LAB)))
    assert capsys.readouterr().out == expected


def test_render_output_file_is_written_whole(tmp_path: Path) -> None:
    out = tmp_path / "keepalived.conf"
    assert main(["render", "-c", str(LAB), "-o", str(out)]) == 0
    assert out.read_text() == render(loads(LAB.read_text(), str(LAB), str(LAB)))
    assert [p.name for p in tmp_path.iterdir()] == ["keepalived.conf"]  # no temp file left


def test_bad_config_exits_2_with_file_line_and_path(tmp_path: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "lb1.yaml"
    bad.write_text(LAB.read_text().replace("virtual_router_id: 51", "virtual_router_id: 300"))
    for command in (["check"], ["render"], ["status"]):
        assert main([*command, "-c", str(bad)]) == 2
        err = capsys.readouterr().err
        assert f"{bad}:16: instances[0].virtual_router_id: 300 is out of range (1-255)" in err


def test_missing_config_file_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check", "-c", "/nonexistent/haguard.yaml"]) == 2
    assert "no such config file" in capsys.readouterr().err


@pytest.mark.skipif(shutil.which("keepalived") is None and not Path("/usr/sbin/keepalived").exists(),
                    reason="keepalived is not installed; `check` then validates the YAML only")
def test_check_runs_keepalived_and_accepts_only_the_expected_complaint(
        capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check", "-c", str(LAB), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["yaml"] == "ok" and data["keepalived"] == "ok"
    assert data["complaints"] == []
    assert all("No VIP specified; at least one is sensible" in c
               for c in data["expected_complaints"])


def test_unknown_state_exits_2_before_reading_anything(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["notify", "-c", "/nonexistent.yaml", "INSTANCE", "VI_1", "LEADER"]) == 2
    assert ("state 'LEADER' is not one of MASTER, BACKUP, FAULT, STOP, DELETED, "
            "MASTER_RX_LOWER_PRI") in capsys.readouterr().err


def test_usage_errors_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["notify"])
    assert exc.value.code == 2
    assert main(["hooks", "install"]) == 2
    assert "give --dir DIR or -c CONFIG" in capsys.readouterr().err


@pytest.mark.parametrize("command", [[], ["check"], ["render"], ["notify"], ["status"],
                                     ["hooks", "install"], ["lab"], ["lab", "run"]])
def test_help_teaches_each_command(command: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main([*command, "--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    assert "usage: haguard" in out and len(out.splitlines()) > 5
    assert "announce-loop" not in out


def test_ipvs_import_of_a_save_file_with_garbage_exits_2_naming_the_lines(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rules = tmp_path / "rules.txt"
    rules.write_text("-A -t 192.0.2.100:80 -s rr\n"
                     "-a -t 192.0.2.100:80 -r 192.0.2.21:80 -g -w 1\n"
                     "this is not a rule\n"
                     "-a -t 192.0.2.100:80 -r 192.0.2.300:80 -g\n")
    assert main(["ipvs", "import", str(rules)]) == 2
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 2
    assert err[0].startswith(f"error: {rules}:3: ")
    assert err[1].startswith(f"error: {rules}:4: ")


def test_ipvs_import_then_export_gives_back_the_rules(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rules = tmp_path / "rules.txt"
    rules.write_text("-A -t 192.0.2.100:80 -s wrr -p 300\n"
                     "-a -t 192.0.2.100:80 -r 192.0.2.21:80 -g -w 1\n"
                     "-a -t 192.0.2.100:80 -r 192.0.2.22:80 -g -w 2\n")
    assert main(["ipvs", "import", str(rules)]) == 0
    section = capsys.readouterr().out
    config = tmp_path / "lb1.yaml"
    config.write_text(LAB.read_text() + section)
    assert main(["ipvs", "export", "-c", str(config)]) == 0
    assert capsys.readouterr().out == rules.read_text()


def test_hooks_install_gives_keepalived_killmode_process_once(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    hooks, units = tmp_path / "hooks", tmp_path / "units"
    argv = ["hooks", "install", "--dir", str(hooks), "--unit-dir", str(units)]
    assert main(argv) == 0
    dropin = units / "keepalived.service.d" / "haguard.conf"
    assert "[Service]\nKillMode=process\n" in dropin.read_text()
    assert f"wrote {dropin}" in capsys.readouterr().out
    assert main(argv) == 0
    assert f"{dropin} is in place" in capsys.readouterr().out


def test_hooks_install_no_systemd_writes_no_dropin(tmp_path: Path) -> None:
    units = tmp_path / "units"
    assert main(["hooks", "install", "--dir", str(tmp_path / "hooks"), "--unit-dir", str(units),
                 "--no-systemd"]) == 0
    assert not units.exists()


def test_ipvs_apply_only_with_something_that_is_not_a_service_name_exits_2(
        capsys: pytest.CaptureFixture[str]) -> None:
    config = REPO / "conf" / "lab-dr.yaml"
    for command in ("apply", "diff"):
        assert main(["ipvs", command, "-c", str(config), "--only", "192.0.2.100:80"]) == 2
        err = capsys.readouterr().err
        assert "--only '192.0.2.100:80': not a service name" in err
        assert "'tcp 192.0.2.100:80'" in err


def test_ipvs_apply_only_and_incremental_do_not_go_together(
        capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["ipvs", "apply", "--incremental", "--only", "tcp 192.0.2.100:80"])
    assert exit_.value.code == 2
    assert "not allowed with argument" in capsys.readouterr().err


def test_lab_run_on_the_vm_kernel_hands_every_option_to_the_guest() -> None:
    from haguard.cli import build_parser
    from haguard.cli.lab import guest_run_argv

    args = build_parser().parse_args(
        ["lab", "run", "--kernel", "vm", "--agent", "--json", "--method", "link",
         "--ping-interval-ms", "20", "--name", "x1", "-c", str(REPO / "conf" / "lab-dr.yaml"),
         "-c", "/etc/haguard/b.yaml"])
    argv = guest_run_argv(args, "/usr/bin/python3")
    assert argv[:5] == ["/usr/bin/python3", "-m", "haguard", "lab", "run"]
    rest = argv[5:]
    for option in (["--name", "x1"], ["--method", "link"], ["--ping-interval-ms", "20"],
                   ["-c", str(REPO / "conf" / "lab-dr.yaml")], ["--json"], ["--agent"]):
        assert any(rest[i:i + len(option)] == option for i in range(len(rest))), option
    assert rest.count("-c") == 2 and "--kernel" not in rest


def test_check_refuses_a_script_check_the_agent_would_refuse_to_run(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    shared = tmp_path / "shared"     # a directory everyone may write (no sticky bit)
    shared.mkdir()
    os.chmod(shared, 0o777)
    script = shared / "check"
    script.write_text("#!/bin/sh\nexit 0\n")
    config = tmp_path / "lb1.yaml"
    config.write_text(LAB.read_text() + f"""\
agent: {{}}
ipvs:
  services:
    - vip: 192.0.2.100
      port: 80
      health: {{check: script, script: {{command: [{script}]}}}}
      real_servers: [{{address: 192.0.2.21}}]
""")
    assert main(["check", "-c", str(config), "--json"]) == 2
    data = json.loads(capsys.readouterr().out)
    assert any(line.startswith("tcp 192.0.2.100:80 192.0.2.21:80: script check: ")
               and "writable by group or others" in line for line in data["script_security"])
    safe = config.read_text().replace(str(script), "/bin/true")
    config.write_text(safe)
    code = main(["check", "-c", str(config), "--json"])
    assert json.loads(capsys.readouterr().out)["script_security"] == []
    assert code == 0
