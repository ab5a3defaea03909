"""Facts about processes, by pid: our own start time, whether a pid is alive and whose;
and ending the children we started."""

from __future__ import annotations

import os
import pwd
import resource
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from types import FrameType

from haguard.adapters.waiting import wait_until
from haguard.core.events import OrderKey

_CLK_TCK = os.sysconf("SC_CLK_TCK")


def _stat_fields(pid: int | str) -> list[str]:
    with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as fh:
        raw = fh.read()
    # The command name is in parentheses and may itself contain spaces or ')'.
    return raw[raw.rindex(")") + 2:].split()


@contextmanager
def switch_interval(seconds: float) -> Iterator[None]:
    """The interpreter hands over between threads every ``seconds`` within the block."""
    before = sys.getswitchinterval()
    sys.setswitchinterval(seconds)
    try:
        yield
    finally:
        sys.setswitchinterval(before)


def invoking_user() -> str:
    """Who runs this command: the sudo caller, else the login user, else the uid's name."""
    return os.environ.get("SUDO_USER") or os.environ.get("USER") or \
        pwd.getpwuid(os.getuid()).pw_name


def own_pid() -> int:
    return os.getpid()


def own_order_key() -> OrderKey:
    """This process's fork order: start time in clock ticks since boot, then pid."""
    fields = _stat_fields("self")
    return OrderKey(start_ticks=int(fields[19]), pid=os.getpid())


def now_key() -> OrderKey:
    """An order key for an event read now: later than every hook forked before it."""
    ticks = int(time.clock_gettime(time.CLOCK_BOOTTIME) * _CLK_TCK)
    return OrderKey(ticks, os.getpid())


def start_ticks(pid: int) -> int | None:
    """When ``pid`` started, in clock ticks since boot; None when it is gone.

    With the pid it names one process for good: a reused pid has a later start.
    """
    try:
        return int(_stat_fields(pid)[19])
    except (OSError, ValueError, IndexError):
        return None


def same_process(pid: int, ticks: int | None) -> bool:
    """Whether ``pid`` is still the process that started at ``ticks`` (and not a zombie)."""
    return ticks is not None and alive(pid) and start_ticks(pid) == ticks


def fork_wall_time(key: OrderKey) -> float:
    """Wall-clock time at which the process behind ``key`` was forked (tick resolution)."""
    age = time.clock_gettime(time.CLOCK_BOOTTIME) - key.start_ticks / _CLK_TCK
    return time.time() - age


def cmdline(pid: int) -> list[str]:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as fh:
            return [p.decode(errors="replace") for p in fh.read().split(b"\0") if p]
    except OSError:
        return []


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie has exited; it only waits for its parent.
    try:
        return _stat_fields(pid)[0] != "Z"
    except OSError:
        return False


def pid_from_file(path: str) -> int | None:
    try:
        with open(path, encoding="ascii") as fh:
            return int(fh.read().strip())
    except (OSError, ValueError):
        return None


def terminate_if(pid: int, *markers: str) -> bool:
    """SIGTERM ``pid`` only if its command line holds every marker (pids get reused)."""
    args = cmdline(pid)
    if not args or not all(any(m in a for a in args) for m in markers):
        return False
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return False
    return True


def in_finalizer(frame: FrameType | None) -> bool:
    """Whether ``frame`` runs inside a ``__del__``, where Python prints an exception and
    drops it: a KeyboardInterrupt raised there would be lost."""
    while frame is not None:
        if frame.f_code.co_name == "__del__":
            return True
        frame = frame.f_back
    return False


def signal_again_soon(signum: int, delay_s: float = 0.05) -> None:
    """Send ``signum`` to this process again in a moment (from a helper thread)."""
    timer = threading.Timer(delay_s, os.kill, (os.getpid(), signum))
    timer.daemon = True     # a process that is exiting anyway does not wait for it
    timer.start()


class _Termination:
    """Whether SIGTERM or SIGINT arrived under ``interrupt_on_termination``."""

    seen = False


def termination_seen() -> bool:
    """Whether this process was told to stop (even if its KeyboardInterrupt got lost)."""
    return _Termination.seen


def _interrupt(signum: int, frame: FrameType | None) -> None:
    _Termination.seen = True
    if in_finalizer(frame):
        # Raised here it would be lost (a Popen's __del__ once ate one, and an interrupted
        # `haguard lab run` went on to the end and exited 0): ask again once it is over.
        signal_again_soon(signum)
        return
    raise KeyboardInterrupt


def interrupt_on_termination() -> None:
    """Make SIGTERM and SIGINT raise KeyboardInterrupt, so ``finally`` blocks clean up.

    SIGINT too, even where it was inherited ignored (a job started in the background of
    a script): a command that must tear down what it built has to hear it either way.
    """
    signal.signal(signal.SIGTERM, _interrupt)
    signal.signal(signal.SIGINT, _interrupt)


def on_termination(handler: Callable[[], None]) -> None:
    """Call ``handler`` (in the main thread) on SIGTERM and SIGINT instead of dying."""
    def _handle(signum: int, frame: object) -> None:
        handler()
    signal.signal(signal.SIGTERM, _handle)
    signal.signal(signal.SIGINT, _handle)


def ask_to_reload(pid: int) -> None:
    """SIGHUP to ``pid`` (the agent re-reads its config); OSError when it is gone."""
    os.kill(pid, signal.SIGHUP)


def on_reload(handler: Callable[[], None]) -> None:
    """Call ``handler`` on SIGHUP (``systemctl reload``)."""
    def _handle(signum: int, frame: object) -> None:
        handler()
    signal.signal(signal.SIGHUP, _handle)


def stop_child(proc: subprocess.Popen[bytes], grace_s: float = 5.0) -> None:
    """End a child we started: SIGTERM, then SIGKILL after ``grace_s``; always reaped."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(grace_s)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(grace_s)


def group_alive(pgid: int) -> bool:
    """Whether a live process (not a zombie) is left in process group ``pgid``.

    kill(-pgid, 0) also counts zombies, and an orphan's zombie can outlast it for good
    where pid 1 does not reap (a container's init).
    """
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                fields = _stat_fields(entry)
            except OSError:
                continue  # gone meanwhile
            if fields[2] == str(pgid) and fields[0] != "Z":
                return True
    return False


def stop_group(proc: subprocess.Popen[bytes], grace_s: float = 20.0) -> None:
    """End a child that leads a process group of its own, and everything in that group:
    SIGTERM to all of it (a shell waiting for its command would die alone), SIGKILL to
    what outlives ``grace_s``; always reaped."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            break
        if wait_until(lambda: proc.poll() is not None and not group_alive(proc.pid), grace_s):
            break
    proc.wait()


@dataclass(frozen=True)
class CommandResult:
    """How a command ended: ok (exit 0), in words, its last output, how long it took."""

    ok: bool
    detail: str
    output: str
    duration_s: float


def run_command(argv: tuple[str, ...], timeout_s: float, output_max: int = 2000
                ) -> CommandResult:
    """Run ``argv`` in a session of its own; past ``timeout_s`` its process group is
    sent SIGTERM, then SIGKILL 2 s later. Never raises for what the command does."""
    start = time.monotonic()
    try:
        proc = subprocess.Popen(list(argv), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, start_new_session=True,
                                close_fds=True)
    except OSError as exc:
        return CommandResult(False, f"cannot run {argv[0]}: {exc.strerror}", "",
                             time.monotonic() - start)
    try:
        out, _ = proc.communicate(timeout=timeout_s)
        words = f"exit {proc.returncode}" if proc.returncode >= 0 else \
            f"killed by signal {-proc.returncode}"
    except subprocess.TimeoutExpired:
        for sig, wait_s in ((signal.SIGTERM, 2.0), (signal.SIGKILL, 5.0)):
            try:
                os.killpg(proc.pid, sig)
            except ProcessLookupError:
                break
            try:
                proc.wait(wait_s)
                break
            except subprocess.TimeoutExpired:
                continue
        try:   # a child that left its own session may still hold the pipe open
            out = proc.communicate(timeout=1.0)[0]
        except subprocess.TimeoutExpired:
            out = b""
        words = f"timed out after {timeout_s:g} s"
    text = out.decode("utf-8", "replace")[-output_max:].strip()
    return CommandResult(proc.returncode == 0, f"{os.path.basename(argv[0])} {words}", text,
                         time.monotonic() - start)


def raise_open_files(wanted: int) -> tuple[int, int]:
    """Raise this process's open-files limit to ``wanted`` where its hard limit allows;
    the (soft, hard) limits after."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < wanted:
        soft = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    return soft, hard

