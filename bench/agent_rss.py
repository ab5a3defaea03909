#!/usr/bin/env python3
"""The agent's memory over many transitions: RSS sampled every 100 of them.

One namespace lab (conf/lab.yaml, both directors running `haguard agent`). keepalived is
stopped on lb2 so that only the events written here reach lb2's agent; each one is a
real transition (VIPs added or removed, frames sent, state recorded) and the next is
written only when the previous one is recorded, so none is coalesced away.

Run as root, from the checkout:  sudo .venv/bin/python bench/agent_rss.py --transitions 1000
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from haguard.lab.runner import LabRunner, load_lab  # noqa: E402

TARGET_RSS_MB = 60.0
CYCLE = ("MASTER", "BACKUP", "FAULT", "BACKUP")


def rss_kb(pid: int) -> int:
    with open(f"/proc/{pid}/status", encoding="ascii") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for {pid}")


def recorded(state_dir: str) -> dict:
    try:
        with open(f"{state_dir}/VI_1.json", encoding="utf-8") as fh:
            return json.load(fh)
    except (OSError, ValueError):
        return {}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--transitions", type=int, default=1000)
    parser.add_argument("--config", default=str(REPO / "conf" / "lab.yaml"))
    args = parser.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("bench/agent_rss.py needs root (network namespaces, keepalived)")
    name = "rs" + secrets.token_hex(4)
    lab, _ = load_lab(name, [args.config], agent=True)
    runner = LabRunner(lab, [args.config], say=lambda s: print(s, file=sys.stderr))
    samples: list[tuple[int, int]] = []
    try:
        runner.up()
        runner.wait_for_master()
        runner.stop_keepalived("lb2")
        info = runner.record["directors"]["lb2"]
        pid = runner.record["pids"]["lb2:agent"]
        fifo = os.path.join(os.path.dirname(info["config"]), "notify.fifo")
        time.sleep(1.0)
        samples.append((0, rss_kb(pid)))
        started = time.monotonic()
        fd = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
        try:
            for i in range(1, args.transitions + 1):
                before = recorded(info["state_dir"]).get("updated")
                state = CYCLE[i % len(CYCLE)]
                os.write(fd, f'INSTANCE "VI_1" {state} 100\n'.encode())
                deadline = time.monotonic() + 20
                while True:
                    rec = recorded(info["state_dir"])
                    if rec.get("updated") != before and rec.get("state") == state:
                        break
                    if time.monotonic() > deadline:
                        raise SystemExit(f"transition {i} ({state}) was not recorded in 20 s")
                    time.sleep(0.002)
                if i % 100 == 0:
                    samples.append((i, rss_kb(pid)))
        finally:
            os.close(fd)
        elapsed = time.monotonic() - started
    finally:
        runner.down()
    print(f"agent RSS over {args.transitions} transitions (lab {name}, {elapsed:.0f} s):")
    print(f"{'transitions':>12} {'RSS MB':>8}")
    for count, kb in samples:
        print(f"{count:>12} {kb / 1024:8.1f}")
    first_after_warmup = samples[1][1] if len(samples) > 1 else samples[0][1]
    growth = (samples[-1][1] - first_after_warmup) / 1024
    peak = max(kb for _, kb in samples) / 1024
    verdict = "MET" if peak <= TARGET_RSS_MB and growth <= 1.0 else "NOT MET"
    print(f"peak {peak:.1f} MB (target <= {TARGET_RSS_MB:.0f} MB); growth after the first 100: "
          f"{growth:+.1f} MB (target: not growing, <= 1 MB) -> {verdict}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
