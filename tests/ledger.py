"""What a test run started, written down before it starts it, so that nothing outlives it.

Each test process keeps a ledger, ``/run/haguard-tests/<pid>.jsonl``: its own pid and
start time first, then one line per thing about to be made: a lab tag (every lab,
namespace and work directory a test makes is named ``t<hex>`` or ``hg-t<hex>-...``
after one), or the Vagrant topology. A session that ends normally removes what is still
there and its ledger. One that was killed leaves its ledger behind, and
``python -m tests.ledger`` (the first step of ``scripts/test``) removes exactly what such
a ledger names, once the process that wrote it is gone. The VM tier's guests are found
through haguard's own registry of running VMs (``haguard.lab.vm.remove_orphans``).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from typing import Any

from haguard.adapters import process
from haguard.adapters.files import read_jsonl

# HAGUARD_TEST_LEDGER_DIR: the interruption tests give their child runs a ledger of their
# own, which no other run on the machine cleans in their stead.
LEDGER_DIR = os.environ.get("HAGUARD_TEST_LEDGER_DIR", "/run/haguard-tests")
LAB_ROOT = "/run/haguard-lab"
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _path(directory: str = LEDGER_DIR) -> str:
    return os.path.join(directory, f"{os.getpid()}.jsonl")


def _append(path: str, entry: dict[str, Any]) -> None:
    with open(path, "a", encoding="utf-8") as fh:
        fh.write(json.dumps(entry, sort_keys=True) + "\n")
        fh.flush()
        os.fsync(fh.fileno())


def open_ledger(directory: str = LEDGER_DIR) -> str:
    """Start this process's ledger (a new one: its pid and start time, nothing made yet)."""
    os.makedirs(directory, mode=0o755, exist_ok=True)
    path = _path(directory)
    with open(path, "w", encoding="utf-8"):
        pass
    me = os.getpid()
    _append(path, {"kind": "session", "pid": me, "start_ticks": process.start_ticks(me),
                   "argv": sys.argv})
    return path


def note(kind: str, directory: str = LEDGER_DIR, **fields: Any) -> None:
    """Record something this process is about to make; call it before making it."""
    path = _path(directory)
    if not os.path.exists(path):
        open_ledger(directory)
    _append(path, {"kind": kind, **fields})


def close_ledger(directory: str = LEDGER_DIR) -> list[str]:
    """At a normal end: remove whatever is still there, then the ledger; what was removed.

    VMs whose owner is gone go too: a `haguard lab run --kernel vm` child killed by a
    test's timeout leaves its guest running.
    """
    from haguard.lab.vm import remove_orphans

    path = _path(directory)
    done = clean(read_jsonl(path)) + remove_orphans()
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
    return done


def writer_alive(entries: list[dict[str, Any]]) -> bool:
    """Whether the process that wrote these entries still runs (same pid, same start)."""
    head = entries[0] if entries and entries[0].get("kind") == "session" else None
    return head is not None and process.same_process(int(head["pid"]), head.get("start_ticks"))


def clean(entries: list[dict[str, Any]]) -> list[str]:
    """Remove what the entries name, newest first; what was done, a line each."""
    from haguard.lab.runner import teardown

    done: list[str] = []
    for entry in reversed(entries):
        kind = entry.get("kind")
        if kind == "tag":
            tag = str(entry["name"])
            # A lab named after the tag, and the namespaces hg-<tag>-* (teardown ends
            # the processes left in each), then the tests' own work directories.
            done += [f"{tag}: {line}" for line in teardown(tag)]
            if os.path.isdir(LAB_ROOT):
                for name in sorted(os.listdir(LAB_ROOT)):
                    if name.startswith(f"hg-{tag}-"):
                        shutil.rmtree(os.path.join(LAB_ROOT, name), ignore_errors=True)
                        done.append(f"{tag}: removed {LAB_ROOT}/{name}")
        elif kind == "vagrant" and os.path.exists("/run/haguard-vagrant"):
            # vagrant/run refuses while another live process owns the topology.
            proc = subprocess.run([os.path.join(REPO, "vagrant", "run"), "down"],
                                  capture_output=True, text=True, timeout=600,
                                  stdin=subprocess.DEVNULL)
            done.append(f"vagrant topology: down (exit {proc.returncode})"
                        + (f": {proc.stderr.strip()[-300:]}" if proc.returncode else ""))
    return done


def _claimed_by_a_live_cleaner(name: str) -> bool:
    _, _, cleaner = name.partition(".removing-")
    return cleaner.isdigit() and process.alive(int(cleaner))


def clean_dead(directory: str = LEDGER_DIR) -> list[str]:
    """Everything that killed test processes left, and haguard VMs whose owner is gone.

    Two runs may start at once: a ledger is taken by renaming it (one rename wins), and
    one taken by a cleaner that died meanwhile is taken again.
    """
    from haguard.lab.vm import remove_orphans

    done: list[str] = []
    if os.path.isdir(directory):
        for name in sorted(os.listdir(directory)):
            path = os.path.join(directory, name)
            if not name.partition(".removing-")[0].endswith(".jsonl") \
                    or _claimed_by_a_live_cleaner(name):
                continue
            entries = read_jsonl(path)
            if writer_alive(entries):
                continue
            mine = f"{path.partition('.removing-')[0]}.removing-{os.getpid()}"
            try:
                os.rename(path, mine)
            except FileNotFoundError:
                continue  # another cleaner took it first
            head = entries[0] if entries else {}
            done.append(f"pid {head.get('pid', '?')} ({' '.join(head.get('argv', [])[-2:])}) "
                        "is gone and left:")
            done += [f"  {line}" for line in clean(entries)]
            os.unlink(mine)
    done += remove_orphans()
    return done


def main() -> int:
    if os.geteuid() != 0:
        return 0  # a run without root made nothing of this kind
    lines = clean_dead()
    for line in lines:
        print(f"leftovers of an earlier run: {line}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
