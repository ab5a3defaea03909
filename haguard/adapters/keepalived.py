"""keepalived as a program: config test, whether it runs, and the hook install."""

from __future__ import annotations

import dataclasses
import os
import re
import shutil
import signal
import stat
import subprocess
import tempfile
from dataclasses import dataclass

from haguard.adapters import process
from haguard.errors import KeepalivedError

# keepalived -t exits 5 with this line for an instance without virtual_ipaddress, which
# is haguard's design (the VIPs are ours); it still runs such an instance.
EXPECTED_COMPLAINTS = ("No VIP specified; at least one is sensible",)


# What keepalived older than 2.2.8 says about the keyword that lets VRRPv3 and IPv6
# instances run without virtual_ipaddress, and what it means for the operator.
_NO_VIP_KEYWORD_UNKNOWN = "Unknown keyword 'no_virtual_ipaddress'"
_TRACK_DIR_MISSING = "Track file directory for haguard_"
TRACK_DIR_HINT = (
    "the directory of haguard's levers (node.lever_dir/track) does not exist, so keepalived "
    "drops the demote/promote track files; `haguard hooks install -c FILE` creates it")
NO_VIP_KEYWORD_HINT = (
    "this keepalived is older than 2.2.8 and refuses a VRRP version 3 instance (or one "
    "with IPv6 unicast peers) without virtual_ipaddress; haguard owns the VIPs, so such an "
    "instance needs keepalived >= 2.2.8 (keyword no_virtual_ipaddress). On this keepalived "
    "use keepalived.version: 2 with IPv4 unicast peers (IPv6 VIPs work either way)")


# keepalived 2.2.7's -t stops itself with SIGTERM on a vrrp_script that runs as a user
# other than root (a running keepalived takes the same file); the rest is checked
# without those lines.
_SCRIPT_USER_RE = re.compile(r"^[ \t]+user [^\n]*\n", re.M)
SCRIPT_USER_HINT = (
    "this keepalived's -t stops itself on a vrrp_script with a user other than root; the "
    "config was checked without the scripts' user lines (keepalived itself runs them)")


@dataclass(frozen=True)
class CheckResult:
    ok: bool
    returncode: int
    complaints: tuple[str, ...]
    expected: tuple[str, ...]
    output: str
    hints: tuple[str, ...] = ()


def binary() -> str | None:
    return shutil.which("keepalived") or next(
        (p for p in ("/usr/sbin/keepalived", "/sbin/keepalived") if os.path.exists(p)), None)


def check_text(text: str, netns: str | None = None) -> CheckResult | None:
    """Run ``keepalived -t`` on rendered text; None when keepalived is not installed.

    keepalived checks that the interfaces exist, so a config for a network namespace
    is checked inside it (``netns``).
    """
    exe = binary()
    if exe is None:
        return None
    with tempfile.NamedTemporaryFile("w", suffix=".conf", prefix="haguard-check-") as fh:
        fh.write(text)
        fh.flush()
        try:
            prefix = ["ip", "netns", "exec", netns] if netns else []
            proc = subprocess.run([*prefix, exe, "-t", "-f", fh.name, "-l", "-n"],
                                  capture_output=True, text=True, timeout=60,
                                  stdin=subprocess.DEVNULL)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise KeepalivedError(f"running {exe} -t failed: {exc}") from exc
    output = (proc.stdout + proc.stderr).replace(fh.name, "<rendered>")
    if proc.returncode == -signal.SIGTERM and _SCRIPT_USER_RE.search(text):
        again = check_text(_SCRIPT_USER_RE.sub("", text), netns)
        assert again is not None
        return dataclasses.replace(again, hints=again.hints + (SCRIPT_USER_HINT,))
    complaints, expected, levers_missing = [], [], []
    for line in output.splitlines():
        text_line = line.strip()
        if not text_line:
            continue
        if any(e in text_line for e in EXPECTED_COMPLAINTS):
            expected.append(text_line)
        elif _is_lever_dir_line(text_line):
            # The levers' directory is made by `hooks install`; until then keepalived runs
            # without the demote/promote track files. Not a config error: a hint.
            levers_missing.append(text_line)
        elif _is_complaint(text_line):
            complaints.append(text_line)
    ok = proc.returncode == 0 or (not complaints and proc.returncode == 5
                                  and bool(expected or levers_missing))
    hints = tuple(hint for marker, hint in ((_NO_VIP_KEYWORD_UNKNOWN, NO_VIP_KEYWORD_HINT),)
                  if any(marker in c for c in complaints))
    if levers_missing:
        hints += (TRACK_DIR_HINT,)
    return CheckResult(ok=ok, returncode=proc.returncode, complaints=tuple(complaints),
                       expected=tuple(expected), output=output, hints=hints)


def _is_lever_dir_line(line: str) -> bool:
    return (_TRACK_DIR_MISSING in line
            or ("track file haguard_" in line and "Unable to initialise" in line)
            or ("Unable to open" in line and ("/track/" in line)
                and (line.rstrip(")").endswith("directory") or "errno 2" in line)))


def _is_complaint(line: str) -> bool:
    # keepalived -t prints its own banner and start-up chatter; complaints are the rest.
    chatter = ("Starting Keepalived", "Running on", "Command line", "Configuration file",
               "Opening file", "Starting VRRP", "Script user", "Stopping", "Stopped",
               "Registering", "Keepalived v", "Unable to load ipset library")
    return not any(c in line for c in chatter)


def running(pid_file: str) -> int | None:
    """keepalived's pid from its pid file when that process is alive, else None."""
    pid = process.pid_from_file(pid_file)
    if pid is None or not process.alive(pid):
        return None
    args = process.cmdline(pid)
    return pid if args and "keepalived" in os.path.basename(args[0]) else None


def insecure_path_components(path: str) -> list[str]:
    """Components of ``path`` that enable_script_security would reject, with why.

    keepalived's rule (check_script_secure): every component root's; a file, or a
    directory without the sticky bit, writable by others, or by a group other than root's,
    is unsafe. A sticky directory (/tmp, a 1777 /run) lets nobody replace root's files."""
    problems = []
    current = os.path.abspath(path)
    while True:
        try:
            st = os.stat(current)
        except FileNotFoundError:
            problems.append(f"{current}: does not exist")
        else:
            sticky_dir = stat.S_ISDIR(st.st_mode) and st.st_mode & stat.S_ISVTX
            if st.st_uid != 0:
                problems.append(f"{current}: owned by uid {st.st_uid}, not root")
            if not sticky_dir and (st.st_mode & stat.S_IWOTH or
                                   st.st_gid != 0 and st.st_mode & stat.S_IWGRP):
                problems.append(f"{current}: writable by group or others "
                                f"(mode {stat.S_IMODE(st.st_mode):o})")
        parent = os.path.dirname(current)
        if parent == current:
            return problems
        current = parent
