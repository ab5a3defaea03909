#!/usr/bin/env python3
"""Health-check benchmark: `haguard agent`'s checker against keepalived's, side by side.

The host kernel has no IPVS, so the host part boots the Debian kernel under qemu
(``haguard.lab.vm``) and runs the guest part of this same script inside it. In the guest,
three network namespaces: ``hb-farm`` holds the real servers (bench/farm.c, compiled on
the host: one socket answers for every address of 198.18.0.0/16), ``hb-agent`` runs
`haguard agent` and ``hb-keepalived`` runs keepalived's checker (``keepalived -C``), each
with its own IPVS table and a link to the farm. Both are configured identically: the
same services and real servers, the same check kind, interval, timeout, retries and
retry interval (keepalived's delay_loop, connect_timeout, retry, delay_before_retry).

- detection: a real server's listener killed (SIGKILL: its port refuses at once) ->
  the real server gone from each checker's IPVS table, polled every few milliseconds;
  p50 / p99 over ``--trials`` kills per check kind, both checkers timed on the same kill.
  The kill comes at a random point of the check interval. The bound is what the config
  allows: a probe at most an interval after the kill, then ``retries`` re-probes
  ``retry_interval`` apart. Target: haguard's p99 <= the bound + 50 ms, and <= keepalived's.
- scale: 1,000 and 10,000 real servers (100 and 1,000 services of 10), tcp and http
  checks at interval 1 s: CPU seconds of the agent process and of keepalived's checker
  process over a measured window, divided by the checks the farm saw each of them make.
  Target: haguard <= 1.5 x keepalived. A checker that cannot keep up shows it in its
  checks per second against the configured rate.

- takeover size: bench/takeover.py (``--modes agent``: the VRRP pair in namespaces, the
  real keepalived, the backup's first advert -> its first gratuitous ARP on the wire) run
  in the guest on conf/lab.yaml with a 1-service and with a 10,000-service table
  (fwmark services, `on_backup: keep`). Target: p99 within 5 ms of each other.

- interference: the same takeover with 10,000 real servers in the table (fwmark services
  of ten, reached through a farm routed from both directors, ``bench/takeover.py
  --farm``), once unchecked and once checked by TCP every second on MASTER and BACKUP
  alike. Target: p99 within 5 ms of each other. The checks per second that reached the
  farm are printed: under emulation the checkers may not keep the configured rate.
  ``--interference-interval-s N`` checks every N seconds instead: at 1 s both emulated
  directors (one VM, two vCPUs) are saturated, and the figure is then the CPU starvation
  of the emulation, not the loop's; at a rate they sustain, it is the loop's.

Parts can be skipped: ``--detect-kinds ''``, ``--scale-kinds ''``, ``--takeover-sizes ''``,
``--interference-servers 0``.

Under qemu TCG absolute times are slow: the ratios and the bound are what count.

Run as root, from the checkout:  sudo .venv/bin/python bench/health.py
"""

from __future__ import annotations

import argparse
import ctypes
import json
import os
import platform
import random
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # `python bench/health.py` puts bench/, not the checkout, first

FARM, AGENT, KEEPALIVED = "hb-farm", "hb-agent", "hb-keepalived"
# Each checker's link to the farm: (its namespace, its address, the farm's address).
LINKS = {AGENT: ("hbf-a", "192.0.2.1", "192.0.2.2"),
         KEEPALIVED: ("hbf-k", "192.0.2.5", "192.0.2.6")}
SERVERS = "198.18.0.0/16"
VIPS_FIRST = "198.19.0.1"
DETECT_VIP = "203.0.113.1"
VICTIM, BUDDY = ("198.18.255.254", 81), ("198.18.255.253", 80)
CHECKERS = ("haguard", "keepalived")
GUEST_LOCAL = "/run/haguard-bench"   # the guest's own tmpfs: FIFOs work there
# Targets from the issue.
TARGET_DETECT_SLACK_MS = 50.0
TARGET_CPU_RATIO = 1.5
TARGET_TAKEOVER_DELTA_MS = 5.0
POLL_S = 0.003
CLONE_NEWNET = 0x40000000


@dataclass(frozen=True)
class CheckSpec:
    """One check, as both checkers are told to run it."""

    kind: str               # tcp | http
    interval_s: float
    timeout_s: float
    retries: int
    retry_interval_s: float

    @property
    def bound_s(self) -> float:
        """Kill to removal at the latest: the next probe, then every re-probe."""
        return self.interval_s + self.retries * self.retry_interval_s


# ------------------------------------------------------------------ configs (pure)
def addresses(count: int) -> list[str]:
    """``count`` real-server addresses in 198.18.0.0/16, skipping .0 and .255."""
    out = []
    n = 0
    while len(out) < count:
        n += 1
        third, fourth = divmod(n, 254)
        out.append(f"198.18.{third}.{fourth + 1}")
    return out


def vip(index: int) -> str:
    third, fourth = divmod(index, 254)
    return f"198.19.{third}.{fourth + 1}"


def table(servers: int, per_service: int = 10) -> list[tuple[str, list[tuple[str, int]]]]:
    """Services of ``per_service`` real servers each, ``servers`` real servers in all."""
    rs = addresses(servers)
    return [(vip(i), [(a, 80) for a in rs[i * per_service:(i + 1) * per_service]])
            for i in range((servers + per_service - 1) // per_service)]


def health_doc(spec: CheckSpec) -> dict[str, Any]:
    """A service's ``health`` section for ``spec``."""
    health: dict[str, Any] = {"check": spec.kind, "interval_s": spec.interval_s,
                              "timeout_s": spec.timeout_s, "retries": spec.retries,
                              "retry_interval_s": spec.retry_interval_s}
    if spec.kind == "http":
        health["http"] = {"path": "/", "status": [200]}
    return health


def haguard_config(work: str, services: list[tuple[str, list[tuple[str, int]]]],
                   spec: CheckSpec, local: str) -> dict[str, Any]:
    """The agent's YAML as a document; ``local``: the guest's own directory for its state
    and FIFO (the shared work directory is 9p, which has no FIFOs)."""
    health = health_doc(spec)
    return {
        "node": {"name": "hb1", "state_dir": f"{local}/state", "lever_dir": f"{local}/levers"},
        "keepalived": {"config": f"{work}/keepalived.conf", "pid_file": f"{work}/k.pid",
                       "vrrp_pid_file": f"{work}/k-vrrp.pid"},
        "agent": {"fifo": f"{local}/state/notify.fifo"},
        # The agent needs an instance; each service's VIP is one of its VIPs. No VRRP
        # runs here, so they are never added: with `on_backup: keep` the agent writes
        # the table all the same.
        "instances": [{"name": "VI_1", "interface": LINKS[AGENT][0], "virtual_router_id": 51,
                       "priority": 100, "advert_int": 1,
                       "vips": [f"{v}/32" for v, _ in services]}],
        "ipvs": {"on_backup": "keep", "services": [
            {"vip": v, "port": 80, "protocol": "tcp", "scheduler": "rr", "health": health,
             "real_servers": [{"address": a, "port": p, "forwarding": "nat", "weight": 1}
                              for a, p in rs]}
            for v, rs in services]},
    }


def keepalived_config(services: list[tuple[str, list[tuple[str, int]]]], spec: CheckSpec) -> str:
    """keepalived.conf for its checker alone, the same checks as ``haguard_config``."""
    lines = ["global_defs {", "    router_id hb_keepalived", "}"]
    for v, rs in services:
        lines += [f"virtual_server {v} 80 {{", f"    delay_loop {spec.interval_s:g}",
                  "    lb_algo rr", "    lb_kind NAT", "    protocol TCP"]
        for address, port in rs:
            lines += [f"    real_server {address} {port} {{", "        weight 1"]
            if spec.kind == "http":
                lines += ["        HTTP_GET {", "            url {", "                path /",
                          "                status_code 200", "            }"]
            else:
                lines += ["        TCP_CHECK {"]
            lines += [f"            connect_timeout {spec.timeout_s:g}",
                      f"            retry {spec.retries}",
                      f"            delay_before_retry {spec.retry_interval_s:g}",
                      "        }", "    }"]
        lines.append("}")
    return "\n".join(lines) + "\n"


def takeover_config(base: dict[str, Any], services: int) -> dict[str, Any]:
    """``base`` (a lab director's config) with ``services`` services of two DR real
    servers each, kept on the BACKUP too: what the takeover is timed against. The first
    is on the lab's VIP (the lab's real servers need one); the rest are fwmark services,
    which need no address of their own."""
    servers = [{"address": address, "port": 80, "forwarding": "dr", "weight": 1}
               for address in ("192.0.2.21", "192.0.2.22")]
    first = str(base["instances"][0]["vips"][0]).split("/")[0]
    doc = dict(base)
    doc["ipvs"] = {"on_backup": "keep", "services": [
        {"vip": first, "port": 80, "protocol": "tcp", "scheduler": "rr",
         "real_servers": servers},
        *({"fwmark": mark, "scheduler": "rr", "real_servers": servers}
          for mark in range(1, services))]}
    return doc


def interference_config(base: dict[str, Any], servers: int, spec: CheckSpec | None
                        ) -> dict[str, Any]:
    """``base`` with ``servers`` real servers in 198.18.0.0/16 (fwmark services of ten,
    kept on the BACKUP too) beside the lab VIP's service, checked as ``spec`` says, or not
    at all (None: the idle reference, the same table)."""
    doc = takeover_config(base, 1)
    doc["agent"] = {}
    health = {"health": health_doc(spec)} if spec is not None else {}
    doc["ipvs"]["services"] += [
        {"fwmark": mark, "scheduler": "rr", **health,
         "real_servers": [{"address": a, "port": port, "forwarding": "dr", "weight": 1}
                          for a, port in rs]}
        for mark, (_, rs) in enumerate(table(servers), start=1)]
    return doc


def percentile(values: list[float], pct: float) -> float:
    """Nearest-rank percentile (no interpolation: p99 of 50 samples is the largest)."""
    ordered = sorted(values)
    rank = max(1, -(-len(ordered) * pct // 100))
    return ordered[int(rank) - 1]


def verdict(met: bool) -> str:
    return "MET" if met else "MISSED"


# ------------------------------------------------------------------ the guest
def sh(*argv: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(list(argv), capture_output=True, text=True, stdin=subprocess.DEVNULL)
    if check and proc.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)}: exit {proc.returncode}: {proc.stderr.strip()}")
    return proc


_libc = ctypes.CDLL(None, use_errno=True)


@contextmanager
def inside(namespace: str) -> Iterator[None]:
    """This thread in ``namespace`` for the block: a socket opened there stays there."""
    home = os.open("/proc/self/ns/net", os.O_RDONLY)
    target = os.open(f"/run/netns/{namespace}", os.O_RDONLY)
    try:
        if _libc.setns(target, CLONE_NEWNET) != 0:
            raise OSError(ctypes.get_errno(), f"setns {namespace}")
        yield
    finally:
        _libc.setns(home, CLONE_NEWNET)
        os.close(home)
        os.close(target)


def has(ipvs: Any, key: Any, server: str) -> bool:
    """Whether ``server`` is in the service ``key`` of that IPVS table (False while the
    service itself is not there yet: keepalived adds it once its config is read)."""
    from haguard.errors import HaguardError

    try:
        return server in ipvs.connections(key)
    except HaguardError:
        return False


def agent_checked(state_dir: str, times: int) -> bool:
    """Whether the agent has published every real server checked ``times`` times."""
    try:
        with open(f"{state_dir}/health.json", encoding="utf-8") as fh:
            services = json.load(fh).get("services", [])
    except (OSError, ValueError):
        return False
    checks = [c.get("checks", 0) for s in services for r in s.get("realservers", [])
              for c in r.get("checks", [])]
    return bool(checks) and min(checks) >= times


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process (all its threads), in seconds."""
    with open(f"/proc/{pid}/stat", encoding="ascii") as fh:
        fields = fh.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class Guest:
    """The three namespaces, the farm, and the two checkers, torn down by pid."""

    def __init__(self, work: str, farm_binary: str, python: str,
                 progress: Callable[[str], None]) -> None:
        self.work, self.farm_binary, self.python, self.say = work, farm_binary, python, progress
        self.procs: dict[str, subprocess.Popen[bytes]] = {}

    # -------------------------------------------------------------- plumbing
    def build(self) -> None:
        for ns in (FARM, AGENT, KEEPALIVED):
            sh("ip", "netns", "add", ns)
            sh("ip", "-n", ns, "link", "set", "lo", "up")
        for ns, (ifname, mine, farm) in LINKS.items():
            sh("ip", "link", "add", ifname, "netns", ns, "type", "veth", "peer", "name",
               ifname + "f", "netns", FARM)
            sh("ip", "-n", ns, "addr", "add", f"{mine}/30", "dev", ifname)
            sh("ip", "-n", ns, "link", "set", ifname, "up")
            sh("ip", "-n", FARM, "addr", "add", f"{farm}/30", "dev", ifname + "f")
            sh("ip", "-n", FARM, "link", "set", ifname + "f", "up")
            sh("ip", "-n", ns, "route", "add", SERVERS, "via", farm)
        sh("ip", "-n", FARM, "route", "add", "local", SERVERS, "dev", "lo")
        self.start("farm", ["ip", "netns", "exec", FARM, self.farm_binary, "80",
                            f"{self.work}/farm80.stats"])

    def start(self, name: str, argv: list[str]) -> None:
        out = open(f"{self.work}/{name}.out", "ab")
        self.procs[name] = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT,
                                            stdin=subprocess.DEVNULL, start_new_session=True)
        out.close()

    def stop(self, name: str, sig: int = signal.SIGTERM) -> None:
        proc = self.procs.pop(name, None)
        if proc is None or proc.poll() is not None:
            return
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)

    def teardown(self) -> None:
        for name in list(self.procs):
            self.stop(name)
        for ns in (FARM, AGENT, KEEPALIVED):
            sh("ip", "netns", "del", ns, check=False)

    def farm_counts(self) -> dict[str, int]:
        """Connections the farm has seen per checker (by its link address)."""
        counts = {name: 0 for name in CHECKERS}
        try:
            text = Path(f"{self.work}/farm80.stats").read_text(encoding="ascii")
        except FileNotFoundError:
            return counts
        for line in text.splitlines():
            peer, _, n = line.partition(" ")
            for name, ns in zip(CHECKERS, (AGENT, KEEPALIVED)):
                if peer == LINKS[ns][1]:
                    counts[name] = int(n)
        return counts

    # -------------------------------------------------------------- checkers
    def start_checkers(self, services: list[tuple[str, list[tuple[str, int]]]],
                       spec: CheckSpec, tag: str) -> dict[str, int]:
        """Both checkers on the same table; the pid of each process doing the checks."""
        import yaml

        work = f"{self.work}/{tag}"
        os.makedirs(f"{work}/state", exist_ok=True)
        os.makedirs(f"{GUEST_LOCAL}/{tag}/state", exist_ok=True)
        config = f"{work}/haguard.yaml"
        with open(config, "w", encoding="utf-8") as fh:
            yaml.safe_dump(haguard_config(work, services, spec, f"{GUEST_LOCAL}/{tag}"), fh,
                           sort_keys=False)
        kconf = f"{work}/keepalived-checker.conf"
        Path(kconf).write_text(keepalived_config(services, spec), encoding="utf-8")
        sh("ip", "netns", "exec", AGENT, "ipvsadm", "-C")
        sh("ip", "netns", "exec", KEEPALIVED, "ipvsadm", "-C")
        # The table first, as `haguard ipvs apply` writes it; then the agent keeps it.
        sh("ip", "netns", "exec", AGENT, self.python, "-m", "haguard", "ipvs", "apply", "-c",
           config)
        self.start("agent", ["ip", "netns", "exec", AGENT, self.python, "-m", "haguard", "agent",
                             "-c", config])
        checker_pid_file = f"{work}/keepalived-checker.pid"
        self.start("keepalived", ["ip", "netns", "exec", KEEPALIVED, "keepalived", "-C", "-n",
                                  "-l", "-f", kconf, "-p", f"{work}/keepalived.pid",
                                  "-c", checker_pid_file])
        deadline = time.monotonic() + 120
        while not os.path.exists(checker_pid_file) and time.monotonic() < deadline:
            time.sleep(0.2)
        if not os.path.exists(checker_pid_file):
            raise RuntimeError(f"keepalived's checker did not start: "
                               f"{Path(self.work, 'keepalived.out').read_text()[-2000:]}")
        return {"haguard": self.procs["agent"].pid,
                "keepalived": int(Path(checker_pid_file).read_text().split()[0])}

    def stop_checkers(self) -> None:
        self.stop("agent")
        self.stop("keepalived")

    # -------------------------------------------------------------- detection
    def detection(self, spec: CheckSpec, trials: int) -> dict[str, list[float]]:
        from haguard.adapters.ipvs import Ipvs
        from haguard.core.ipvsconfig import ServiceKey

        key = ServiceKey(4, "tcp", DETECT_VIP, 80)
        services = [(DETECT_VIP, [VICTIM, BUDDY])]
        victim = f"{VICTIM[0]}:{VICTIM[1]}"
        self.start("victim", ["ip", "netns", "exec", FARM, self.farm_binary, str(VICTIM[1]),
                              f"{self.work}/farm81.stats"])
        self.start_checkers(services, spec, f"detect-{spec.kind}")
        tables: dict[str, Ipvs] = {}
        for name, ns in zip(CHECKERS, (AGENT, KEEPALIVED)):
            with inside(ns):
                tables[name] = Ipvs()
        samples: dict[str, list[float]] = {name: [] for name in CHECKERS}
        try:
            # Steady state, not start-up: both tables hold the victim, the agent has checked
            # every real server twice (its table is the config's from before its first
            # check), then three intervals more (runs that waited on the tables alone timed
            # the agent's start-up under emulation, 4-7 s, in trial 1).
            self._wait(lambda: all(has(t, key, victim) for t in tables.values()), 120,
                       f"{victim} in both tables")
            self._wait(lambda: agent_checked(f"{GUEST_LOCAL}/detect-{spec.kind}/state", 2),
                       120, "the agent's first checks")
            time.sleep(3 * spec.interval_s)
            for trial in range(trials):
                if "victim" not in self.procs:
                    self.start("victim", ["ip", "netns", "exec", FARM, self.farm_binary,
                                          str(VICTIM[1]), f"{self.work}/farm81.stats"])
                self._wait(lambda: all(has(t, key, victim) for t in tables.values()),
                           60, f"{victim} in both tables (trial {trial + 1})")
                time.sleep(random.uniform(0, spec.interval_s))
                killed = time.monotonic()
                self.stop("victim", signal.SIGKILL)
                gone: dict[str, float] = {}
                deadline = killed + spec.bound_s + 30
                while len(gone) < len(tables) and time.monotonic() < deadline:
                    for name, t in tables.items():
                        if name not in gone and not has(t, key, victim):
                            gone[name] = time.monotonic() - killed
                    time.sleep(POLL_S)
                for name in CHECKERS:
                    if name not in gone:
                        raise RuntimeError(f"{name} never took {victim} out (trial {trial + 1})")
                    samples[name].append(gone[name] * 1000)
                self.say(f"detection {spec.kind} {trial + 1}/{trials}: " + ", ".join(
                    f"{n} {samples[n][-1]:.0f} ms" for n in CHECKERS))
        finally:
            for t in tables.values():
                t.__exit__(None, None, None)
            self.stop_checkers()
            self.stop("victim")
        return samples

    # -------------------------------------------------------------- scale
    def scale(self, servers: int, spec: CheckSpec, warmup_s: float, window_s: float
              ) -> dict[str, dict[str, float]]:
        services = table(servers)
        pids = self.start_checkers(services, spec, f"scale-{spec.kind}-{servers}")
        try:
            self._wait_checking(servers / spec.interval_s, pids)
            time.sleep(warmup_s)
            cpu0 = {name: cpu_seconds(pid) for name, pid in pids.items()}
            checks0, t0 = self.farm_counts(), time.monotonic()
            time.sleep(window_s)
            cpu1 = {name: cpu_seconds(pid) for name, pid in pids.items()}
            checks1, t1 = self.farm_counts(), time.monotonic()
            elapsed = t1 - t0
            out = {}
            for name in CHECKERS:
                checks = checks1[name] - checks0[name]
                cpu = cpu1[name] - cpu0[name]
                out[name] = {"cpu_s": cpu, "checks": checks, "window_s": elapsed,
                             "checks_per_s": checks / elapsed,
                             "configured_per_s": servers / spec.interval_s,
                             "cpu_s_per_1000": cpu / checks * 1000 if checks else float("inf")}
            self.say(f"scale {spec.kind} {servers}: " + "; ".join(
                f"{n} {out[n]['checks_per_s']:.0f} checks/s, "
                f"{out[n]['cpu_s_per_1000']:.3f} CPU s per 1,000" for n in CHECKERS))
            return out
        finally:
            self.stop_checkers()

    def _wait_checking(self, configured_per_s: float, pids: dict[str, int],
                       timeout: float = 900, unsteady_s: float = 180) -> None:
        """Until both checkers check at a steady rate: loading a 10,000-server config and
        writing its table takes minutes under emulation, and is not what is measured. A
        checker past its limit may never steady: once both check at all, ``unsteady_s``
        later the window is measured anyway (its rate says how far it kept up)."""
        step = 5.0
        history: list[dict[str, int]] = [self.farm_counts()]
        deadline = time.monotonic() + timeout
        checking_since: float | None = None
        while time.monotonic() < deadline:
            if checking_since is not None and time.monotonic() - checking_since > unsteady_s:
                self.say(f"  no steady rate after {unsteady_s:g} s of checks: measuring as is")
                return
            time.sleep(step)
            history.append(self.farm_counts())
            rates = [{n: (b[n] - a[n]) / step for n in CHECKERS}
                     for a, b in list(zip(history, history[1:]))[-3:]]
            latest = rates[-1]
            self.say(f"  checks/s so far (of {configured_per_s:.0f}): " + ", ".join(
                f"{n} {latest[n]:.0f}" for n in CHECKERS))
            if checking_since is None and all(latest[n] > 0 for n in CHECKERS):
                checking_since = time.monotonic()
            if all(latest[n] >= 0.9 * configured_per_s for n in CHECKERS):
                return
            # Below the configured rate but no longer rising: that is its steady state.
            if len(rates) >= 3 and all(
                    r[n] > 0 and abs(r[n] - latest[n]) <= 0.1 * latest[n]
                    for r in rates for n in CHECKERS):
                return
        raise RuntimeError(f"the checkers did not settle within {timeout:g} s "
                           f"(processes {pids})")

    @staticmethod
    def _wait(predicate: Callable[[], bool], timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate():
                return
            time.sleep(0.05)
        raise RuntimeError(f"timed out after {timeout:g} s waiting for {what}")


def takeover(work: str, label: str, doc: dict[str, Any], failovers: int,
             say: Callable[[str], None], farm: str | None = None) -> dict[str, Any]:
    """bench/takeover.py, agent mode, on the director config ``doc``: the wire figure
    (backup's first advert -> first GARP) as it reports it, and with ``farm`` the checks
    each director made per second meanwhile."""
    import yaml

    config = f"{work}/takeover-{label}.yaml"
    with open(config, "w", encoding="utf-8") as fh:
        yaml.safe_dump(doc, fh, sort_keys=False)
    out = f"{work}/takeover-{label}.json"
    # Emulation: every wait ten times what it is on a real machine.
    argv = [sys.executable, str(REPO / "bench" / "takeover.py"), "--modes", "agent",
            "--failovers", str(failovers), "--config", config, "--timeout", "300",
            "--settle", "30", "--gap", "5", "--json", out]
    if farm:
        argv += ["--farm", farm]
    proc = subprocess.run(argv, capture_output=True, text=True, stdin=subprocess.DEVNULL)
    for line in proc.stdout.splitlines():
        say(f"  takeover {label}: {line}")
    if proc.returncode != 0:
        raise RuntimeError(f"bench/takeover.py ({label}) exited "
                           f"{proc.returncode}: {proc.stderr[-2000:]}")
    report = json.loads(Path(out).read_text(encoding="utf-8"))
    wire = next(r for r in report["figures"]["rows"]
                if r["key"] == "wire" and r["mode"] == "agent")
    return {"label": label, "wire": wire,
            "farm_checks_per_s": report["modes"]["agent"].get("farm_checks_per_s")}


def lab_base() -> dict[str, Any]:
    import yaml

    doc: dict[str, Any] = yaml.safe_load((REPO / "conf" / "lab.yaml").read_text(encoding="utf-8"))
    return doc


def _first_line(proc: subprocess.CompletedProcess[str]) -> str:
    return (proc.stdout + proc.stderr).strip().splitlines()[0]


def guest_main(args: argparse.Namespace) -> int:
    progress = open(args.progress, "a", encoding="utf-8", buffering=1) if args.progress \
        else sys.stderr

    def say(line: str) -> None:
        print(line, file=progress, flush=True)

    started = time.monotonic()
    sh("modprobe", "ip_vs")
    guest = Guest(args.work, args.farm, sys.executable, say)
    result: dict[str, Any] = {"kernel": platform.release(), "python": platform.python_version(),
                              "keepalived": _first_line(sh("keepalived", "--version")),
                              "detection": {}, "scale": {}, "takeover": []}
    try:
        guest.build()
        for kind in args.detect_kinds:
            spec = CheckSpec(kind, args.detect_interval_s, args.detect_timeout_s,
                             args.detect_retries, args.detect_retry_interval_s)
            result["detection"][kind] = {"spec": spec.__dict__, "bound_ms": spec.bound_s * 1000,
                                         "samples_ms": guest.detection(spec, args.trials)}
        for kind in args.scale_kinds:
            spec = CheckSpec(kind, 1.0, 1.0, 1, 1.0)
            for servers in args.scale_sizes:
                result["scale"][f"{kind} {servers}"] = guest.scale(
                    servers, spec, args.warmup_s, args.window_s)
    finally:
        guest.teardown()
    base = lab_base()
    result["takeover"] = [
        {**takeover(args.work, f"{size}-services", takeover_config(base, size),
                    args.takeover_failovers, say), "services": size}
        for size in args.takeover_sizes]
    if args.interference_servers:
        spec = CheckSpec("tcp", args.interference_interval_s, 1.0, 1, 1.0)
        result["interference"] = {"servers": args.interference_servers, "spec": spec.__dict__,
                                  "rows": [
            takeover(args.work, f"{args.interference_servers}-rs-{label}",
                     interference_config(base, args.interference_servers, check),
                     args.takeover_failovers, say, farm=args.farm)
            for label, check in (("idle", None), ("checking", spec))]}
    result["guest_wall_s"] = time.monotonic() - started
    print(json.dumps(result))
    return 0


# ------------------------------------------------------------------ the report (pure)
def summarize(guest: dict[str, Any]) -> dict[str, Any]:
    summary: dict[str, Any] = {"detection": {}, "scale": {}}
    for kind, d in guest["detection"].items():
        row: dict[str, Any] = {"bound_ms": d["bound_ms"], "trials": len(d["samples_ms"]["haguard"])}
        for name in CHECKERS:
            values = d["samples_ms"][name]
            row[name] = {"p50": statistics.median(values), "p99": percentile(values, 99),
                         "max": max(values)}
        row["met_bound"] = row["haguard"]["p99"] <= d["bound_ms"] + TARGET_DETECT_SLACK_MS
        row["met_keepalived"] = row["haguard"]["p99"] <= row["keepalived"]["p99"]
        summary["detection"][kind] = row
    for label, d in guest["scale"].items():
        # No checks seen from either: nothing to compare (not a pass).
        ratio = d["haguard"]["cpu_s_per_1000"] / d["keepalived"]["cpu_s_per_1000"] \
            if d["haguard"]["checks"] and d["keepalived"]["checks"] \
            and d["keepalived"]["cpu_s_per_1000"] > 0 else None
        summary["scale"][label] = {**d, "ratio": ratio,
                                   "met": ratio is not None and ratio <= TARGET_CPU_RATIO}
    rows = guest.get("takeover") or []
    if len(rows) == 2:
        small, big = rows
        delta = None if small["wire"]["p99"] is None or big["wire"]["p99"] is None \
            else big["wire"]["p99"] - small["wire"]["p99"]
        summary["takeover"] = {"rows": rows, "delta_p99_ms": delta,
                               "met": delta is not None and delta <= TARGET_TAKEOVER_DELTA_MS}
    interference = guest.get("interference")
    if interference:
        idle, checking = interference["rows"]
        delta = None if idle["wire"]["p99"] is None or checking["wire"]["p99"] is None \
            else checking["wire"]["p99"] - idle["wire"]["p99"]
        summary["interference"] = {
            **interference, "delta_p99_ms": delta,
            "met": delta is not None and delta <= TARGET_TAKEOVER_DELTA_MS}
    return summary


def format_report(summary: dict[str, Any], meta: dict[str, Any]) -> str:
    lines = [f"bench/health.py: {meta['keepalived']}, kernel {meta['kernel']} under qemu TCG "
             f"({meta['vm_cpus']} vCPUs), Python {meta['python']}; wall {meta['wall_s']:.0f} s"]
    if summary["detection"]:
        lines += ["", "Detection: listener killed -> real server out of the IPVS table (ms)", "",
                  "| check | trials | bound | haguard p50 | haguard p99 | keepalived p50 | "
                  "keepalived p99 | p99 <= bound + 50 ms | p99 <= keepalived's |",
                  "|---|---|---|---|---|---|---|---|---|"]
    for kind, row in summary["detection"].items():
        lines.append(f"| {kind} | {row['trials']} | {row['bound_ms']:.0f} | "
                     f"{row['haguard']['p50']:.0f} | {row['haguard']['p99']:.0f} | "
                     f"{row['keepalived']['p50']:.0f} | {row['keepalived']['p99']:.0f} | "
                     f"{verdict(row['met_bound'])} | {verdict(row['met_keepalived'])} |")
    if any(row["trials"] < 50 for row in summary["detection"].values()):
        lines.append("(fewer than 50 trials: a p99 of so few samples is not reportable)")
    if summary["scale"]:
        lines += ["", "Scale: CPU seconds per 1,000 checks at interval 1 s", "",
                  "| checks | real servers | haguard checks/s | keepalived checks/s | "
                  "haguard CPU s / 1,000 | keepalived CPU s / 1,000 | ratio | <= 1.5 x |",
                  "|---|---|---|---|---|---|---|---|"]
    for label, row in summary["scale"].items():
        kind, servers = label.split()
        lines.append(f"| {kind} | {int(servers):,} | {row['haguard']['checks_per_s']:.0f} of "
                     f"{row['haguard']['configured_per_s']:.0f} | "
                     f"{row['keepalived']['checks_per_s']:.0f} of "
                     f"{row['keepalived']['configured_per_s']:.0f} | "
                     f"{row['haguard']['cpu_s_per_1000']:.3f} | "
                     f"{row['keepalived']['cpu_s_per_1000']:.3f} | "
                     f"{'-' if row['ratio'] is None else format(row['ratio'], '.2f')} | "
                     f"{verdict(row['met']) if row['ratio'] is not None else 'NOT MEASURED'} |")
    takeover_rows = summary.get("takeover")
    if takeover_rows:
        lines += ["", "Takeover (agent): backup's first advert -> first GARP on the wire (ms)", "",
                  "| IPVS table | failovers | p50 | p99 | max |", "|---|---|---|---|---|"]
        for row in takeover_rows["rows"]:
            w = row["wire"]
            lines.append(f"| {row['services']:,} services | {w['count']} | {w['p50']} | "
                         f"{w['p99']} | {w['max']} |")
        delta = takeover_rows["delta_p99_ms"]
        lines.append(f"p99 difference: {'-' if delta is None else f'{delta:.1f} ms'} "
                     f"(target <= {TARGET_TAKEOVER_DELTA_MS:g} ms): "
                     f"{verdict(takeover_rows['met']) if delta is not None else 'NOT MEASURED'}")
    inter = summary.get("interference")
    if inter:
        spec = inter["spec"]
        lines += ["", f"Takeover (agent) while it checks {inter['servers']:,} real servers "
                  f"({spec['kind']}, interval {spec['interval_s']:g} s) vs the same table "
                  "unchecked: backup's first advert -> first GARP (ms)", "",
                  "| real servers | checks/s reaching the farm (per director) | failovers "
                  "| p50 | p99 | max |", "|---|---|---|---|---|---|"]
        for row in inter["rows"]:
            w, rates = row["wire"], row.get("farm_checks_per_s") or {}
            lines.append(f"| {row['label']} | "
                         f"{', '.join(f'{n} {r:.0f}' for n, r in rates.items()) or '-'} | "
                         f"{w['count']} | {w['p50']} | {w['p99']} | {w['max']} |")
        delta = inter["delta_p99_ms"]
        lines.append(f"p99 difference: {'-' if delta is None else f'{delta:.1f} ms'} "
                     f"(target <= {TARGET_TAKEOVER_DELTA_MS:g} ms): "
                     f"{verdict(inter['met']) if delta is not None else 'NOT MEASURED'}")
    return "\n".join(lines)


# ------------------------------------------------------------------ the host
def prerequisites() -> str | None:
    if os.geteuid() != 0:
        return "needs root (it runs qemu and network namespaces in the guest)"
    for tool in ("qemu-system-x86_64", "keepalived", "ipvsadm", "gcc"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed (see scripts/setup; gcc builds bench/farm.c)"
    return None


def host_main(args: argparse.Namespace) -> int:
    from haguard.lab.vm import VM, prepare_kernel

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from ipvs import tail  # bench/ipvs.py: echoing the guest's progress file

    why = prerequisites()
    if why:
        print(f"bench/health.py: {why}", file=sys.stderr)
        return 1
    started = time.monotonic()

    def say(line: str) -> None:
        print(line, file=sys.stderr, flush=True)

    def interrupted(signum: int, _frame: object) -> None:
        raise SystemExit(128 + signum)
    # SIGTERM ends the run through the VM's teardown, not around it (a VM was left running).
    signal.signal(signal.SIGTERM, interrupted)
    kernel = prepare_kernel()
    say(f"booting {kernel.version} under qemu TCG ...")
    with VM(kernel, memory_mb=args.memory_mb, cpus=args.cpus) as vm:
        farm = os.path.join(vm.work, "farm")
        subprocess.run(["gcc", "-O2", "-o", farm, str(REPO / "bench" / "farm.c")], check=True)
        progress = os.path.join(vm.work, "progress.log")
        stop = threading.Event()
        tailer = threading.Thread(target=tail, args=(progress, stop, say), daemon=True)
        tailer.start()
        argv = [vm.python, str(Path(__file__).resolve()), "--guest", "--progress", progress,
                "--work", tempfile.mkdtemp(prefix="hb-", dir=vm.work), "--farm", farm,
                "--trials", str(args.trials),
                "--detect-kinds", ",".join(args.detect_kinds),
                "--scale-kinds", ",".join(args.scale_kinds),
                "--scale-sizes", ",".join(map(str, args.scale_sizes)),
                "--warmup-s", str(args.warmup_s), "--window-s", str(args.window_s),
                "--takeover-sizes", ",".join(map(str, args.takeover_sizes)),
                "--takeover-failovers", str(args.takeover_failovers),
                "--interference-servers", str(args.interference_servers),
                "--interference-interval-s", str(args.interference_interval_s),
                "--detect-interval-s", str(args.detect_interval_s),
                "--detect-timeout-s", str(args.detect_timeout_s),
                "--detect-retries", str(args.detect_retries),
                "--detect-retry-interval-s", str(args.detect_retry_interval_s)]
        try:
            result = vm.run(argv, timeout=args.timeout)
        finally:
            stop.set()
            tailer.join()
    if result.returncode != 0:
        say(f"the guest part failed (exit {result.returncode}):\n{result.stderr[-4000:]}")
        return 1
    guest = json.loads(result.stdout)
    meta = {"kernel": guest["kernel"], "python": guest["python"],
            "keepalived": guest["keepalived"], "vm_cpus": args.cpus,
            "wall_s": time.monotonic() - started, "guest_wall_s": guest["guest_wall_s"]}
    summary = summarize(guest)
    print(format_report(summary, meta))
    if args.json:
        with open(args.json, "w", encoding="utf-8") as fh:
            json.dump({"meta": meta, "summary": summary, "guest": guest}, fh, indent=1)
    return 0


def _list(kind: Callable[[str], Any]) -> Callable[[str], list[Any]]:
    return lambda text: [kind(x) for x in text.split(",") if x]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--trials", type=int, default=50, help="kills per detection kind (>= 50 "
                   "for a p99 worth reporting)")
    p.add_argument("--detect-kinds", type=_list(str), default=["tcp", "http"])
    p.add_argument("--detect-interval-s", type=float, default=1.0)
    p.add_argument("--detect-timeout-s", type=float, default=1.0)
    p.add_argument("--detect-retries", type=int, default=1)
    p.add_argument("--detect-retry-interval-s", type=float, default=0.5)
    p.add_argument("--scale-kinds", type=_list(str), default=["tcp", "http"])
    p.add_argument("--scale-sizes", type=_list(int), default=[1000, 10000])
    p.add_argument("--warmup-s", type=float, default=10.0,
                   help="once both check at a steady rate, before the measured window")
    p.add_argument("--window-s", type=float, default=30.0, help="the measured window")
    p.add_argument("--takeover-sizes", type=_list(int), default=[1, 10000],
                   help="services in the two tables the takeover is timed on ('' to skip)")
    p.add_argument("--takeover-failovers", type=int, default=20)
    p.add_argument("--interference-servers", type=int, default=10000,
                   help="real servers the agent checks while its takeover is timed, against "
                        "the same table unchecked (0 to skip)")
    p.add_argument("--interference-interval-s", type=float, default=1.0)
    p.add_argument("--json", metavar="PATH", help="every sample and figure as JSON")
    p.add_argument("--memory-mb", type=int, default=3072)
    p.add_argument("--cpus", type=int, default=2)
    p.add_argument("--timeout", type=float, default=5400, help="limit of the guest part (s)")
    p.add_argument("--guest", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--progress", help=argparse.SUPPRESS)
    p.add_argument("--work", help=argparse.SUPPRESS)
    p.add_argument("--farm", help=argparse.SUPPRESS)
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    return guest_main(args) if args.guest else host_main(args)


if __name__ == "__main__":
    sys.exit(main())
