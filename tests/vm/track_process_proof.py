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

from tests.vm.migrate_proof import ROOT, Proof, prove, sh, wait

DEVICE, PEER, ADDRESS = "hgtp0", "hgtp1", "203.0.113.1/24"
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

    def observe(self, stopper: str = "haguard's agent") -> dict[str, Any]:
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

    def director(self, *argv: str) -> list[str]:
        return list(argv)           # the VM's own namespace

    def haguard(self, conf: str) -> dict[str, Any]:
        self.start_haguard(conf)
        try:
            return self.observe()
        finally:
            self.stop("keepalived")
            self.stop("agent")


def main() -> int:
    return prove(TrackProof(sys.argv[1]), sys.argv[2])


if __name__ == "__main__":
    sys.exit(main())
