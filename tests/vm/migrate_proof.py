"""The guest part of tests/vm/test_migrate_keeps_lvs.py (not a test module itself).

In the VM (real IPVS): a director and two real servers in network namespaces. The same
director is run twice: first by the real keepalived from an operator's keepalived.conf
(its VRRP and its checkers), then by haguard (agent and rendered keepalived.conf) from
what `haguard migrate` made of that file. Each time: the IPVS table it builds
(`ipvsadm -S -n`), the VIPs it holds, and the table once rs1's HTTP server is killed.
Prints one JSON object; every process and namespace it made is gone when it exits.

    python tests/vm/migrate_proof.py WORKDIR KEEPALIVED_CONF
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

import yaml

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
NS = {"sw": "mp-sw", "d": "mp-d", "rs1": "mp-rs1", "rs2": "mp-rs2"}
ADDRESS = {"d": "192.0.2.11", "rs1": "192.0.2.21", "rs2": "192.0.2.22"}
# Root's own directory: keepalived's script security refuses hooks under /tmp.
ROOT = "/run/haguard-migrate-proof"
# The operator's notify_master command: it writes its argument down.
NOTE_SCRIPT = f"{ROOT}/note.sh"
NOTED = f"{ROOT}/noted"
# The operator's MISC_CHECK: a real server fails it while a file named for it exists.
CHECK_SCRIPT = f"{ROOT}/check.sh"
FAILING = f"{ROOT}/failing-"
# The real servers' HTTPS and DNS (DNS_CHECK's success: NOERROR).
HTTPS_SERVER = os.path.join(REPO, "tests", "https_server.py")
DNS_SERVER = os.path.join(REPO, "tests", "dns_server.py")
VIP_DEVICES = ("eth0", "eth1")


def sh(*argv: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(list(argv), capture_output=True, text=True, timeout=120,
                          stdin=subprocess.DEVNULL)
    if check and proc.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)}: exit {proc.returncode}: {proc.stderr.strip()}")
    return proc


def in_ns(node: str, *argv: str) -> list[str]:
    return ["ip", "netns", "exec", NS[node], *argv]


def wait(predicate: Callable[[], Any], timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.3)
    raise RuntimeError(f"timed out after {timeout:g} s waiting for {what}")


class Proof:
    def __init__(self, work: str) -> None:
        self.work = work
        self.procs: dict[str, subprocess.Popen[bytes]] = {}

    # ------------------------------------------------------------------ topology
    def build(self) -> None:
        for ns in NS.values():
            sh("ip", "netns", "add", ns)
            sh("ip", "-n", ns, "link", "set", "lo", "up")
        sh("ip", "-n", NS["sw"], "link", "add", "br0", "type", "bridge")
        sh("ip", "-n", NS["sw"], "link", "set", "br0", "up")
        for node, address in ADDRESS.items():
            sh("ip", "link", "add", "eth0", "netns", NS[node], "type", "veth", "peer", "name",
               f"p-{node}", "netns", NS["sw"])
            sh("ip", "-n", NS["sw"], "link", "set", f"p-{node}", "master", "br0", "up")
            sh("ip", "-n", NS[node], "addr", "add", f"{address}/24", "dev", "eth0")
            sh("ip", "-n", NS[node], "link", "set", "eth0", "up")
        # The director's second device, for the VIP the file puts on "dev eth1".
        sh("ip", "-n", NS["d"], "link", "add", "eth1", "type", "dummy")
        sh("ip", "-n", NS["d"], "link", "set", "eth1", "up")
        shutil.rmtree(ROOT, ignore_errors=True)      # nothing of an earlier run in this boot
        os.makedirs(ROOT, mode=0o755)
        for path, text in ((NOTE_SCRIPT, f'#!/bin/sh\necho "$1" >> {NOTED}\n'),
                           (CHECK_SCRIPT, f'#!/bin/sh\n[ ! -e "{FAILING}$1" ]\n')):
            with open(path, "w", encoding="utf-8") as fh:
                fh.write(text)
            os.chmod(path, 0o755)
        sh("openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
           "ec_paramgen_curve:prime256v1", "-nodes", "-days", "1", "-subj", "/CN=rs",
           "-keyout", f"{ROOT}/cert.pem", "-out", f"{ROOT}/cert.pem")
        for node in ("rs1", "rs2"):
            self.http(node)
            self.https(node)
        self.dns("rs2")

    def http(self, node: str) -> None:
        self.start(f"{node}:http", in_ns(node, sys.executable, "-m", "http.server", "80",
                                         "--bind", ADDRESS[node]))
        self.reachable(node, 80)

    def https(self, node: str) -> None:
        self.start(f"{node}:https", in_ns(node, sys.executable, HTTPS_SERVER,
                                          f"{ROOT}/cert.pem", ADDRESS[node], "443"))
        self.reachable(node, 443)

    def dns(self, node: str) -> None:
        self.start(f"{node}:dns", in_ns(node, sys.executable, DNS_SERVER, ADDRESS[node]))
        code = ("import socket; s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); "
                f"s.settimeout(1); s.sendto(b'\\0' * 12, ('{ADDRESS[node]}', 53)); s.recv(512)")
        wait(lambda: sh(*in_ns("d", sys.executable, "-c", code), check=False).returncode == 0,
             60, f"{node}'s DNS server")

    def reachable(self, node: str, port: int) -> None:
        wait(lambda: sh(*in_ns("d", sys.executable, "-c",
                               "import socket; socket.create_connection(("
                               f"'{ADDRESS[node]}', {port}), 1).close()"),
                        check=False).returncode == 0, 60, f"{node}'s server on port {port}")

    def start(self, name: str, argv: list[str]) -> None:
        out = open(os.path.join(self.work, f"{name.replace(':', '-')}.log"), "ab")
        self.procs[name] = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out,
                                            stderr=subprocess.STDOUT, start_new_session=True)
        out.close()

    def stop(self, name: str) -> None:
        proc = self.procs.pop(name, None)
        if proc is None or proc.poll() is not None:
            return
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)

    def teardown(self) -> None:
        for name in list(self.procs):
            self.stop(name)
        for ns in NS.values():
            sh("ip", "netns", "del", ns, check=False)

    # ------------------------------------------------------------------ what it holds
    def table(self) -> list[str]:
        out = sh(*in_ns("d", "ipvsadm", "-S", "-n")).stdout
        return sorted(line for line in out.splitlines() if line.strip())

    def vips(self) -> list[str]:
        found = []
        for device in VIP_DEVICES:
            out = sh("ip", "-n", NS["d"], "-j", "addr", "show", "dev", device).stdout
            found += [f"{a['local']}/{a['prefixlen']}" for link in json.loads(out)
                      for a in link.get("addr_info", []) if a.get("scope") == "global"
                      and a["local"] != ADDRESS["d"]]
        return sorted(found)

    def timeouts(self) -> str:
        return sh(*in_ns("d", "ipvsadm", "-L", "--timeout")).stdout.strip()

    def adverts(self) -> dict[str, Any]:
        """The director's own VRRP adverts for a few seconds: what a peer would hear."""
        code = ("import json; from haguard.adapters.wire import listen; "
                "print(json.dumps([vars(a) for a in listen(['eth0'], 3.5) if a.outgoing]))")
        out = sh(*in_ns("d", sys.executable, "-c", code)).stdout
        heard = json.loads(out)
        if not heard:
            raise RuntimeError("the director sent no VRRP advert in 3.5 s")
        last = heard[-1]
        return {"vrrp": {k: last[k] for k in ("vrid", "priority", "advert_int_s", "version")},
                "addresses": last["addresses"], "count": len(heard)}

    def noted(self) -> list[str]:
        try:
            with open(NOTED, encoding="utf-8") as fh:
                return fh.read().split()
        except FileNotFoundError:
            return []

    def observe(self, stopper: str) -> dict[str, Any]:
        """The table and VIPs once steady, then the table after rs1's HTTP server dies."""
        wait(lambda: self.vips() and len([r for r in self.table() if r.startswith(
             "-a -t 192.0.2.100:80 ")]) >= 2, 180, "the VIPs and the checked real servers")
        time.sleep(3)      # every checker has made its first checks
        before = {"table": self.table(), "vips": self.vips(), "timeouts": self.timeouts(),
                  "adverts": self.adverts(), "notified": self.noted()}
        self.stop("rs1:http")
        killed = time.monotonic()
        wait(lambda: self.table() != before["table"], 120, f"{stopper} to act on rs1")
        after_s = round(time.monotonic() - killed, 1)
        after = {"table": self.settled_table(), "after_s": after_s}
        after["notified"] = self.settled_notes()
        self.http("rs1")
        wait(lambda: self.table() == before["table"], 120, f"{stopper} to put rs1 back")
        back = {"notified": self.settled_notes()}
        # rs2 fails its SSL_GET, DNS_CHECK and MISC_CHECK (its TCP check on :80 stands).
        self.stop("rs2:https")
        self.stop("rs2:dns")
        open(f"{FAILING}{ADDRESS['rs2']}", "w").close()
        gone = ("-a -t 192.0.2.100:443 -r 192.0.2.22", "-a -u 192.0.2.100:53 -r 192.0.2.22",
                "-a -t 192.0.2.100:8080 -r 192.0.2.22", "-a -t 192.0.2.101:8080 -r 192.0.2.22")
        wait(lambda: not any(line.startswith(gone) for line in self.table()), 120,
             f"{stopper} to take rs2 out of the TLS, DNS and script-checked services")
        failed = {"table": self.table()}
        os.unlink(f"{FAILING}{ADDRESS['rs2']}")
        self.https("rs2")
        self.dns("rs2")
        wait(lambda: self.table() == before["table"], 120, f"{stopper} to put rs2 back")
        return {**before, "rs1_down": after, "rs1_back": back, "rs2_failed": failed}

    def settled_table(self) -> list[str]:
        """The table once it has not changed for a second: a change made in steps (a real
        server out, then quorum lost) is read whole."""
        table = self.table()
        for _ in range(30):
            time.sleep(1)
            again = self.table()
            if again == table:
                return table
            table = again
        return table

    def settled_notes(self) -> list[str]:
        """The notes once no command has added one for 2 s: a command a change ran starts
        after the change, seconds later under emulation."""
        seen, since = self.noted(), time.monotonic()
        deadline = since + 20
        while time.monotonic() < deadline and time.monotonic() - since < 2:
            time.sleep(0.2)
            now = self.noted()
            if now != seen:
                seen, since = now, time.monotonic()
        return seen

    # ------------------------------------------------------------------ the two runs
    def keepalived(self, conf: str) -> dict[str, Any]:
        if os.path.exists(NOTED):
            os.unlink(NOTED)
        self.start("keepalived", in_ns("d", "keepalived", "--dont-fork", "--log-console",
                                       "--use-file", conf, "--pid", f"{self.work}/k.pid",
                                       "--vrrp_pid", f"{self.work}/kv.pid",
                                       "--checkers_pid", f"{self.work}/kc.pid"))
        try:
            return self.observe("keepalived's checker")
        finally:
            self.stop("keepalived")
            # The kernel keeps what lvs_timeouts set: back to its defaults, so haguard's
            # run shows its own.
            sh(*in_ns("d", "ipvsadm", "--set", "900", "120", "300"))
            wait(lambda: not self.vips() and not self.table(), 60,
                 "keepalived to leave no VIP and no service behind")

    def director(self, *argv: str) -> list[str]:
        """A command as the director runs it (in its namespace)."""
        return in_ns("d", *argv)

    def start_haguard(self, conf: str) -> str:
        """haguard (agent and rendered keepalived.conf) from what `haguard migrate` made of
        ``conf``, started on the director; the lines the migration listed."""
        migrated = f"{self.work}/migrated.yaml"
        proc = sh(sys.executable, "-m", "haguard", "migrate", conf, "-o", migrated,
                  check=False)
        if proc.returncode not in (0, 3):
            raise RuntimeError(f"haguard migrate: exit {proc.returncode}: {proc.stderr}")
        with open(migrated, encoding="utf-8") as fh:
            doc = yaml.safe_load(fh)
        # Where this run keeps its files; everything else is the migration's.
        doc["node"].update(state_dir=f"{ROOT}/state", log_file=f"{self.work}/haguard.jsonl",
                           lever_dir=f"{ROOT}/levers")
        doc["keepalived"] = {**doc.get("keepalived", {}), "config": f"{ROOT}/keepalived.conf",
                             "hooks_dir": f"{ROOT}/hooks", "pid_file": f"{self.work}/h.pid",
                             "vrrp_pid_file": f"{self.work}/hv.pid"}
        doc["agent"] = {"fifo": f"{ROOT}/state/notify.fifo"}
        config = f"{ROOT}/lb1.yaml"
        with open(config, "w", encoding="utf-8") as fh:
            yaml.safe_dump(doc, fh, sort_keys=False)
        haguard = [sys.executable, "-m", "haguard"]
        sh(*self.director(*haguard, "hooks", "install", "-c", config, "--no-systemd"))
        sh(*haguard, "render", "-c", config, "-o", f"{ROOT}/keepalived.conf")
        self.start("agent", self.director(*haguard, "agent", "-c", config))
        wait(lambda: os.path.exists(f"{ROOT}/state/notify.fifo"), 120,
             "the agent's notify FIFO")
        self.start("keepalived", self.director(
            "keepalived", "--dont-fork", "--log-console", "--vrrp", "--use-file",
            f"{ROOT}/keepalived.conf", "--pid", f"{self.work}/h.pid",
            "--vrrp_pid", f"{self.work}/hv.pid"))
        return proc.stderr

    def haguard(self, conf: str) -> dict[str, Any]:
        if os.path.exists(NOTED):
            os.unlink(NOTED)
        migration = self.start_haguard(conf)
        try:
            return {**self.observe("haguard's agent"), "migration": migration}
        except RuntimeError as exc:
            raise RuntimeError(f"{exc}\n{self.agent_view()}") from exc
        finally:
            self.stop("keepalived")
            self.stop("agent")

    def agent_view(self) -> str:
        """What the agent says of each real server, the table, and its last changes: what
        a failed wait needs to be understood after the guest's files are gone."""
        try:
            lines = ["the table now:", *self.table()]
        except RuntimeError as exc:
            lines = [f"the table now: unread ({exc})"]
        lines.append("the agent's real servers:")
        try:
            with open(f"{ROOT}/state/health.json", encoding="utf-8") as fh:
                health = json.load(fh)
            lines += [f"  {svc['service']} {rs['realserver']}: {rs['state']} "
                      f"({'; '.join(str(c.get('detail')) for c in rs['checks'])})"
                      for svc in health.get("services", []) for rs in svc["realservers"]]
        except (OSError, ValueError, KeyError) as exc:
            lines.append(f"  (no health.json: {exc})")
        try:
            with open(f"{self.work}/haguard.jsonl", encoding="utf-8") as fh:
                events = [json.loads(line) for line in fh if line.strip()]
        except (OSError, ValueError) as exc:
            events, lines = [], [*lines, f"(no log: {exc})"]
        lines.append("its last changes:")
        lines += [f"  {e.get('event')} {e.get('service', '')} {e.get('realserver', '')} "
                  f"{e.get('detail', e.get('error', ''))}" for e in events
                  if e.get("event") in ("realserver_down", "realserver_up", "quorum_lost",
                                        "quorum_gained", "health_apply_failed",
                                        "check_not_made")][-30:]
        return "\n".join(lines)


def prove(proof: Proof, conf: str) -> int:
    """Run ``conf`` under keepalived, then its migration under haguard; print both."""
    try:
        proof.build()
        result = {"keepalived": proof.keepalived(conf), "haguard": proof.haguard(conf)}
    finally:
        proof.teardown()
    print(json.dumps(result))
    return 0


def main() -> int:
    sh("modprobe", "ip_vs")
    return prove(Proof(sys.argv[1]), sys.argv[2])


if __name__ == "__main__":
    sys.exit(main())
