"""The guest part of the track_process migration proof (not a test module itself).

keepalived tracks processes through the kernel's process-events connector, which exists
only in the first network namespace: this proof runs in the VM's own namespace, on a
veth pair of its own. The same director is run twice: by the real keepalived from an
operator's keepalived.conf with a vrrp_track_process, then by haguard (agent and
rendered keepalived.conf) from what `haguard migrate` made of it. Each time: the
priority of its adverts while the tracked process runs, once it is gone, and once it
runs again. Prints one JSON object; everything it made is gone when it exits.

    python tests/vm/track_process_proof.py WORKDIR KEEPALIVED_CONF
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from typing import Any

import yaml

from tests.vm.migrate_proof import Proof, sh, wait

DEVICE, PEER, ADDRESS = "hgtp0", "hgtp1", "203.0.113.1/24"
ROOT = "/run/haguard-track-proof"
SLEEPER = f"{ROOT}/tpsleeper"      # its own name: /proc/PID/comm is what is tracked


class TrackProof(Proof):
    def build(self) -> None:
        sh("ip", "link", "add", DEVICE, "type", "veth", "peer", "name", PEER)
        sh("ip", "addr", "add", ADDRESS, "dev", DEVICE)
        sh("ip", "link", "set", PEER, "up")
        sh("ip", "link", "set", DEVICE, "up")
        shutil.rmtree(ROOT, ignore_errors=True)
        os.makedirs(ROOT, mode=0o755)
        shutil.copy("/bin/sleep", SLEEPER)

    def teardown(self) -> None:
        for name in list(self.procs):
            self.stop(name)
        sh("ip", "link", "del", DEVICE, check=False)
        shutil.rmtree(ROOT, ignore_errors=True)

    def priority(self) -> int:
        """The priority of the director's last advert in 3 s."""
        code = ("import json; from haguard.adapters.wire import listen; "
                f"print(json.dumps([a.priority for a in listen(['{DEVICE}'], 3.0) "
                "if a.outgoing]))")
        heard = json.loads(sh(sys.executable, "-c", code).stdout)
        if not heard:
            raise RuntimeError(f"no VRRP advert on {DEVICE} in 3 s")
        return int(heard[-1])

    def has_vip(self) -> bool:
        return "203.0.113.100/" in sh("ip", "-o", "addr", "show", "dev", DEVICE).stdout

    def observe(self) -> dict[str, Any]:
        self.start("sleeper", [SLEEPER, "3600"])
        wait(self.has_vip, 120, "the VIP on the MASTER")
        running = self.priority()
        self.stop("sleeper")
        gone = wait(lambda: (p := self.priority()) != running and p, 60,
                    "the advert priority to change once the process is gone")
        self.start("sleeper", [SLEEPER, "3600"])
        again = wait(lambda: (p := self.priority()) == running and p, 60,
                     "the advert priority to come back with the process")
        self.stop("sleeper")
        return {"running": running, "gone": gone, "again": again}

    def keepalived(self, conf: str) -> dict[str, Any]:
        self.start("keepalived", ["keepalived", "--dont-fork", "--log-console", "--vrrp",
                                  "--use-file", conf, "--pid", f"{self.work}/k.pid",
                                  "--vrrp_pid", f"{self.work}/kv.pid"])
        try:
            return self.observe()
        finally:
            self.stop("keepalived")
            wait(lambda: not self.has_vip(), 60, "keepalived to leave the VIP")

    def haguard(self, conf: str) -> dict[str, Any]:
        migrated = f"{self.work}/migrated.yaml"
        proc = sh(sys.executable, "-m", "haguard", "migrate", conf, "-o", migrated,
                  check=False)
        if proc.returncode != 0:
            raise RuntimeError(f"haguard migrate: exit {proc.returncode}: {proc.stderr}")
        with open(migrated, encoding="utf-8") as fh:
            doc = yaml.safe_load(fh)
        doc["node"].update(state_dir=f"{ROOT}/state", log_file=f"{self.work}/haguard.jsonl",
                           lever_dir=f"{ROOT}/levers")
        doc["keepalived"] = {"config": f"{ROOT}/keepalived.conf", "hooks_dir": f"{ROOT}/hooks",
                             "pid_file": f"{self.work}/h.pid",
                             "vrrp_pid_file": f"{self.work}/hv.pid"}
        doc["agent"] = {"fifo": f"{ROOT}/state/notify.fifo"}
        config = f"{ROOT}/lb1.yaml"
        with open(config, "w", encoding="utf-8") as fh:
            yaml.safe_dump(doc, fh, sort_keys=False)
        haguard = [sys.executable, "-m", "haguard"]
        sh(*haguard, "hooks", "install", "-c", config, "--no-systemd")
        sh(*haguard, "render", "-c", config, "-o", f"{ROOT}/keepalived.conf")
        self.start("agent", [*haguard, "agent", "-c", config])
        wait(lambda: os.path.exists(f"{ROOT}/state/notify.fifo"), 120,
             "the agent's notify FIFO")
        self.start("keepalived", ["keepalived", "--dont-fork", "--log-console", "--vrrp",
                                  "--use-file", f"{ROOT}/keepalived.conf",
                                  "--pid", f"{self.work}/h.pid",
                                  "--vrrp_pid", f"{self.work}/hv.pid"])
        try:
            return self.observe()
        finally:
            self.stop("keepalived")
            self.stop("agent")


def main() -> int:
    work, conf = sys.argv[1], sys.argv[2]
    proof = TrackProof(work)
    try:
        proof.build()
        result = {"keepalived": proof.keepalived(conf), "haguard": proof.haguard(conf)}
    finally:
        proof.teardown()
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
