#!/usr/bin/env python3
"""Takeover benchmark: haguard's notify hook against keepalived's own VIP handling.

Two namespace labs run side by side, each with two directors (the real keepalived) and
a client whose probe stamps every frame in the kernel on arrival:

- ``haguard``: the normal lab. keepalived.conf as haguard renders it (no VIPs, a notify
  hook); haguard adds the VIPs and sends gratuitous ARP / unsolicited NA.
- ``native``: the same keepalived.conf with the hook removed and keepalived's own
  ``virtual_ipaddress`` blocks put in, keepalived's GARP settings at their defaults.

Each failover SIGTERMs the primary's keepalived, waits for the backup to hold every VIP,
restarts the primary and waits for it to preempt. The failovers of the two labs are
interleaved so that whatever else loads the machine weighs on both modes alike.

Primary figure, on the wire at the client, identical for both modes: from the backup's
first VRRP advert after the trigger (keepalived sends one as it becomes MASTER) to its
first gratuitous ARP for the IPv4 VIP. Secondary, haguard only, from haguard's log on
the backup: keepalived's fork of the MASTER notify to the first announcement sent.

Run as root, from the checkout:  sudo .venv/bin/python bench/takeover.py --failovers 20
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import math
import os
import platform
import re
import secrets
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from haguard.adapters import keepalived as keepalived_adapter
from haguard.adapters import process
from haguard.core.config import Config, Instance, Vip
from haguard.core.render import render
from haguard.errors import HaguardError
from haguard.lab import netns
from haguard.lab.runner import LabRunner, load_lab, read_jsonl

REPO = Path(__file__).resolve().parents[1]
DEFAULT_CONFIG = REPO / "conf" / "lab.yaml"
MODES = ("agent", "haguard", "native")
HAGUARD_MODES = ("agent", "haguard")   # haguard does the VIPs: agent (FIFO) or cold hook
# The agent's goals: p99 within 20 ms and within native + 15 ms on the wire.
AGENT_TARGET_P99_MS = 20.0
AGENT_TARGET_OVER_NATIVE_MS = 15.0
# The goal set for haguard: a cold hook reaches its first announcement within this
# many ms of keepalived forking the MASTER notify, at the 99th percentile.
TARGET_P99_MS = 250.0
# --farm: the real servers a config's health checks reach (bench/health.py's addresses),
# and each director's link to them (director i: .4i+1, the farm .4i+2).
FARM_SERVERS = "198.18.0.0/16"
FARM_LINKS = "198.19.255.{host}"
POLL_S = 0.1          # how often the driver looks; it only decides when to move on,
                      # every figure comes from kernel or haguard timestamps


class Timeout(Exception):
    """A wait of the benchmark ran out; the failover is recorded with the reason."""


# --------------------------------------------------------------------------- native mode
def native_render(config: Config) -> str:
    """haguard's keepalived.conf turned classic: keepalived owns the VIPs and the GARPs."""
    return nativize(render(config), config)


_INSTANCE_LINE = re.compile(r"^\s*vrrp_instance\s+(\S+)\s*\{")


def nativize(text: str, config: Config) -> str:
    """Swap each instance's notify line for VIP blocks; keep everything else as rendered.

    Without the notify hook haguard never runs, so every address and announcement is
    keepalived's. Timers, priorities and authentication stay exactly as in haguard mode.
    """
    out: list[str] = []
    inst: Instance | None = None
    replaced: set[str] = set()
    for line in text.splitlines():
        stripped = line.strip()
        match = _INSTANCE_LINE.match(line)
        if match:
            inst = config.instance(match.group(1))
        if stripped.startswith('notify "') and inst is not None:
            out += vip_blocks(inst)
            replaced.add(inst.name)
            continue
        if stripped == "no_virtual_ipaddress" or stripped.startswith("# VIPs owned by haguard"):
            continue  # the instance has VIPs of its own now
        out.append(line)
    missing = sorted({i.name for i in config.instances} - replaced)
    if missing:
        raise RuntimeError(f"native render: no notify line in instance(s) {missing}; "
                           "has haguard's render changed shape?")
    return "\n".join(out) + "\n"


def vip_blocks(inst: Instance) -> list[str]:
    """virtual_ipaddress for the advert family, virtual_ipaddress_excluded for the rest.

    keepalived 2.2 drops a VIP whose family differs from the instance's ("address family
    must match VRRP instance ... - ignoring"); its man page names the excluded block as
    the way to hold both families in one instance. With IPv4 adverts (no IPv6 unicast
    peer, as in conf/lab.yaml) the IPv6 VIPs therefore go to the excluded block.
    """
    family = 6 if any(p.version == 6 for p in inst.unicast_peers) else 4

    def entry(vip: Vip) -> str:
        label = f" label {vip.label}" if vip.label and vip.family == 4 else ""
        return f"        {vip} dev {inst.interface}{label}"

    own = [entry(v) for v in inst.vips if v.family == family]
    other = [entry(v) for v in inst.vips if v.family != family]
    lines: list[str] = []
    if own:
        lines += ["    virtual_ipaddress {", *own, "    }"]
    if other:
        lines += ["    virtual_ipaddress_excluded {", *other, "    }"]
    return lines


# --------------------------------------------------------------------------- reading
class JsonLines:
    """Tail a JSON-lines file: each poll parses only what was appended since the last.

    Re-reading the whole probe file on every poll would put the benchmark's own CPU use
    right on top of the takeover it measures.
    """

    def __init__(self, path: str) -> None:
        self.path = path
        self.events: list[dict[str, Any]] = []
        self._offset = 0
        self._partial = b""

    def poll(self) -> list[dict[str, Any]]:
        try:
            with open(self.path, "rb") as fh:
                fh.seek(self._offset)
                data = fh.read()
        except FileNotFoundError:
            return self.events
        self._offset += len(data)
        lines = (self._partial + data).split(b"\n")
        self._partial = lines.pop()  # a line still being written
        for line in lines:
            try:
                self.events.append(json.loads(line))
            except ValueError:
                continue
        return self.events


def vips_on(namespace: str) -> set[str]:
    """Every address on every link of a namespace (works without haguard's state files)."""
    out = netns.run(["ip", "-n", namespace, "-j", "addr", "show"]).stdout
    return {a["local"] for link in json.loads(out or "[]") for a in link.get("addr_info", [])}


def wait_until(predicate: Callable[[], Any], timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise Timeout(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(POLL_S)


# --------------------------------------------------------------------------- one failover
@dataclass
class Failover:
    mode: str
    index: int
    trigger_at: float
    restart_at: float | None = None       # the primary's keepalived started again
    window_end: float | None = None       # the primary's first advert after its restart
    advert_at: float | None = None        # backup's first VRRP advert at the client
    garp_at: float | None = None          # backup's first GARP for the IPv4 VIP
    na_at: float | None = None            # backup's first unsolicited NA for the IPv6 VIP
    garp_frames: int = 0                  # backup's GARPs for the IPv4 VIP in the window
    na_frames: int = 0
    stray_garps: int = 0                  # backup GARPs after the trigger, before its advert
    forked_at: float | None = None        # haguard log: keepalived forked the MASTER notify
    hook_started_at: float | None = None  # haguard log: `haguard notify` began
    first_sent_at: float | None = None    # haguard log: first announcement frame sent
    outage_ms: float | None = None
    outage_start_at: float | None = None  # the last echo reply before the longest silence
    error: str | None = None

    @staticmethod
    def _ms(start: float | None, end: float | None) -> float | None:
        return None if start is None or end is None else round((end - start) * 1000, 3)

    @property
    def wire_ms(self) -> float | None:
        return self._ms(self.advert_at, self.garp_at)

    @property
    def fork_ms(self) -> float | None:
        return self._ms(self.forked_at, self.first_sent_at)

    @property
    def hook_ms(self) -> float | None:
        return self._ms(self.hook_started_at, self.first_sent_at)

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out.update(wire_advert_to_garp_ms=self.wire_ms, fork_to_first_announcement_ms=self.fork_ms,
                   hook_start_to_first_announcement_ms=self.hook_ms,
                   trigger_to_advert_ms=self._ms(self.trigger_at, self.advert_at),
                   trigger_to_outage_start_ms=self._ms(self.trigger_at, self.outage_start_at),
                   advert_to_fork_ms=self._ms(self.advert_at, self.forked_at))
        return out


@dataclass(frozen=True)
class Watch:
    """What identifies the backup's takeover in the client's recording."""

    mac: str                # the backup's, which takes over
    primary_mac: str        # its preemption ends the window a takeover is read in
    vip4: str
    vip6: str | None
    vrid: int
    ping_interval_ms: int


def analyse(fo: Failover, events: list[dict[str, Any]], log: list[dict[str, Any]],
            watch: Watch, last_pong: float | None) -> None:
    """Fill the failover's figures from the client's frames and the backup's haguard log.

    The window runs from the trigger to the restarted primary's first advert: from then
    on preemption moves the VIPs back, which is not the takeover being measured.
    """
    restart = fo.restart_at or math.inf
    fo.window_end = min((e["t"] for e in events if e.get("kind") == "vrrp"
                         and e["eth_src"] == watch.primary_mac and e["t"] >= restart),
                        default=None)
    end = fo.window_end or restart
    seen = [e for e in events if fo.trigger_at <= e.get("t", 0) <= end and e.get("dir", "in") == "in"]
    adverts = [e["t"] for e in seen if e.get("kind") == "vrrp" and e["eth_src"] == watch.mac
               and e["vrid"] == watch.vrid]
    garps = [e["t"] for e in seen if e.get("kind") == "arp" and e["sha"] == watch.mac
             and e["spa"] == e["tpa"] == watch.vip4]
    nas = [e["t"] for e in seen if e.get("kind") == "na" and e.get("tll") == watch.mac
           and e["target"] == watch.vip6]
    fo.advert_at = min(adverts, default=None)
    fo.garp_at = min(garps, default=None)
    fo.na_at = min(nas, default=None)
    fo.garp_frames, fo.na_frames = len(garps), len(nas)
    if fo.advert_at is not None:
        fo.stray_garps = sum(1 for t in garps if t < fo.advert_at)
    if watch.ping_interval_ms:
        found = outage(events, fo.trigger_at, end, last_pong, watch.ping_interval_ms)
        if found is not None:
            fo.outage_start_at, fo.outage_ms = found
    for e in log:
        if e.get("ts", 0) < fo.trigger_at:
            continue
        if e.get("event") == "notify_received" and e.get("state") == "MASTER" \
                and fo.hook_started_at is None:
            fo.hook_started_at = e["ts"]
            fo.forked_at = e.get("forked_at")
        elif e.get("event") == "announced" and e.get("outcome") == "ok" \
                and fo.first_sent_at is None:
            fo.first_sent_at = e.get("first_sent_at")


def outage(events: list[dict[str, Any]], start: float, end: float, last_pong: float | None,
           interval_ms: int) -> tuple[float, float] | None:
    """(start, ms) of the longest silence between echo replies, less one interval."""
    pongs = sorted(e["t"] for e in events if e.get("kind") == "pong" and start <= e["t"] <= end)
    if last_pong is None or not pongs:
        return None
    times = [last_pong, *pongs]
    gap, began = max((b - a, a) for a, b in zip(times, times[1:]))
    return began, round(max(0.0, gap * 1000 - interval_ms), 1)


# --------------------------------------------------------------------------- one lab
@dataclass
class Farm:
    """bench/farm.c in a namespace of its own, routed from each director."""

    namespace: str
    stats: str
    peers: dict[str, str]                        # director node -> its address on the link
    proc: subprocess.Popen[bytes] | None = None
    counted: tuple[float, dict[str, int]] | None = None   # (when, checks per peer) at start

    def counts(self) -> dict[str, int]:
        """Connections each director has made to the farm: its checks."""
        try:
            text = Path(self.stats).read_text(encoding="ascii")
        except FileNotFoundError:
            return {}
        seen = dict(line.split(" ", 1) for line in text.splitlines() if " " in line)
        return {node: int(seen.get(address, 0)) for node, address in self.peers.items()}

    def rates(self) -> dict[str, float] | None:
        """Checks per second per director since ``counted``."""
        if self.counted is None:
            return None
        t0, c0 = self.counted
        elapsed, now = time.monotonic() - t0, self.counts()
        return {node: round((now.get(node, 0) - c0.get(node, 0)) / elapsed, 1)
                for node in self.peers} if elapsed > 0 else None


def start_farm(bench: Bench, binary: str) -> Farm:
    """The farm answering for FARM_SERVERS on port 80, a veth to each director, a route."""
    ns = f"{bench.runner.lab.name}-farm"
    netns.run(["ip", "netns", "add", ns])
    farm = Farm(namespace=ns, stats=f"{bench.runner.lab.workdir}/farm.stats", peers={})
    bench.farm = farm   # from here on tear_down removes it
    netns.run(["ip", "-n", ns, "link", "set", "lo", "up"])
    netns.run(["ip", "-n", ns, "route", "add", "local", FARM_SERVERS, "dev", "lo"])
    for i, node in enumerate((bench.primary, bench.backup)):
        director = bench.namespace(node)
        mine, theirs = FARM_LINKS.format(host=4 * i + 1), FARM_LINKS.format(host=4 * i + 2)
        netns.run(["ip", "link", "add", f"fm{i}", "netns", director, "type", "veth",
                   "peer", "name", f"fm{i}f", "netns", ns])
        netns.run(["ip", "-n", director, "addr", "add", f"{mine}/30", "dev", f"fm{i}"])
        netns.run(["ip", "-n", director, "link", "set", f"fm{i}", "up"])
        netns.run(["ip", "-n", ns, "addr", "add", f"{theirs}/30", "dev", f"fm{i}f"])
        netns.run(["ip", "-n", ns, "link", "set", f"fm{i}f", "up"])
        netns.run(["ip", "-n", director, "route", "add", FARM_SERVERS, "via", theirs])
        farm.peers[node] = mine
    farm.proc = subprocess.Popen(netns.ns_exec(ns, binary, "80", farm.stats),
                                 stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                 start_new_session=True)
    return farm


def stop_farm(farm: Farm) -> None:
    """By pid (`ip netns exec` became the farm), then its namespace; the directors' ends
    of its links go with theirs."""
    if farm.proc is not None:
        process.stop_child(farm.proc, grace_s=20)
    netns.run(["ip", "netns", "del", farm.namespace], check=False)


@dataclass
class Bench:
    """One mode's lab and what the benchmark needs to drive and read it."""

    mode: str
    runner: LabRunner
    primary: str
    backup: str
    vips: tuple[str, ...]
    watch: Watch
    probe_file: str
    probe: JsonLines
    backup_log: str
    results: list[Failover] = field(default_factory=list)
    aborted: str | None = None
    ready_at: float = 0.0
    probe_proc: subprocess.Popen[bytes] | None = None
    farm: Farm | None = None
    farm_rates: dict[str, float] | None = None   # checks/s per director over the failovers

    def namespace(self, node: str) -> str:
        return str(self.runner.record["directors"][node]["namespace"])

    def holder(self) -> str | None:
        """The director holding every VIP while the other holds none, else None."""
        wanted = set(self.vips)
        held = {n: vips_on(self.namespace(n)) & wanted for n in (self.primary, self.backup)}
        for node, other in ((self.primary, self.backup), (self.backup, self.primary)):
            if held[node] == wanted and not held[other]:
                return node
        return None

    def settled_on(self, node: str) -> bool:
        """``node`` holds the VIPs; in haguard mode its hook has also finished."""
        if self.holder() != node:
            return False
        return self.mode not in HAGUARD_MODES or self.runner.master() == node


def make_bench(mode: str, config_path: str, args: argparse.Namespace, say: Callable[[str], None]
               ) -> Bench:
    name = "bh" + secrets.token_hex(5)  # 12 chars: unique beside labs others run now
    # The farm answers for its real servers from a namespace of its own: no lab host each.
    outside = (ipaddress.ip_network(FARM_SERVERS),) if args.farm else ()
    lab, configs = load_lab(name, [config_path], agent=mode == "agent", outside=outside)
    runner = LabRunner(lab, [config_path], say=say,
                       render_fn=native_render if mode == "native" else render)
    primary, backup = lab.directors[0].node, lab.directors[1].node
    if not configs[0].instances:
        raise SystemExit(f"{config_path}: no vrrp instance; nothing fails over")
    inst = configs[0].instances[0]
    if any(i.nopreempt for i in configs[0].instances):
        # Each failover ends with the primary taking the VIPs back by preemption.
        raise SystemExit(f"{config_path}: the benchmark needs preemption; drop nopreempt")
    vip4 = next((v for v in lab.vips if ":" not in v), None)
    if vip4 is None:
        raise SystemExit(f"{config_path}: the benchmark times the GARP for an IPv4 VIP; "
                         "the config has none")
    vip6 = next((v for v in lab.vips if ":" in v), None)
    workdir = lab.workdir
    return Bench(mode=mode, runner=runner, primary=primary, backup=backup, vips=lab.vips,
                 watch=Watch(mac="", primary_mac="", vip4=vip4, vip6=vip6, vrid=inst.virtual_router_id,
                             ping_interval_ms=args.ping_ms),
                 probe_file=f"{workdir}/bench-probe.jsonl",
                 probe=JsonLines(f"{workdir}/bench-probe.jsonl"),
                 backup_log=f"{workdir}/{backup}/haguard.log")


def bring_up(bench: Bench, args: argparse.Namespace) -> None:
    runner = bench.runner
    runner.up()
    if args.farm:
        # Right after the agents start: their first checks may fail, and the settle
        # time below lets the real servers come up before anything is measured.
        start_farm(bench, args.farm)
    info = runner.record["directors"][bench.backup]
    iface = runner.lab.interfaces[0]
    primary_mac = runner.record["directors"][bench.primary]["mac"][iface]
    bench.watch = Watch(**{**asdict(bench.watch), "mac": info["mac"][iface],
                           "primary_mac": primary_mac})
    bench.backup_log = info["log_file"]
    wait_until(lambda: bench.settled_on(bench.primary), args.timeout,
               f"{bench.mode}: {bench.primary} to hold every VIP at start")
    ping = bench.watch.vip4 if args.ping_ms else None
    # Once per mode: the probe runs through every failover of this lab.
    bench.probe_proc = runner.start_probe(bench.probe_file, ping, args.ping_ms or 10)
    bench.ready_at = time.monotonic() + args.settle
    if bench.farm is not None:
        bench.farm.counted = (time.monotonic(), bench.farm.counts())


def last_pong_before(events: list[dict[str, Any]]) -> float | None:
    return next((e["t"] for e in reversed(events) if e.get("kind") == "pong"), None)


def run_failover(bench: Bench, index: int, args: argparse.Namespace) -> Failover:
    runner = bench.runner
    time.sleep(max(0.0, bench.ready_at - time.monotonic()))
    last_pong = last_pong_before(bench.probe.poll())
    old_pid = runner.record["pids"].get(bench.primary)
    fo = Failover(mode=bench.mode, index=index, trigger_at=time.time())
    runner.stop_keepalived(bench.primary, signal.SIGTERM, wait=False)
    try:
        wait_until(lambda: bench.holder() == bench.backup, args.timeout,
                   f"{bench.backup} to hold every VIP")
        wait_until(lambda: any(e.get("kind") == "arp" and e["sha"] == bench.watch.mac
                               and e["spa"] == e["tpa"] == bench.watch.vip4
                               and e["t"] >= fo.trigger_at for e in bench.probe.poll()),
                   args.timeout, f"{bench.backup}'s first GARP at the client")
        if bench.mode in HAGUARD_MODES:
            wait_until(lambda: any(e.get("event") == "announced" and e.get("ts", 0) >= fo.trigger_at
                                   for e in read_jsonl(bench.backup_log)),
                       args.timeout, f"haguard's 'announced' record on {bench.backup}")
    except Timeout as exc:
        fo.error = str(exc)
    # keepalived removes its VIPs and sends priority 0 before exiting; a new one started
    # earlier would race the old one's pid file.
    try:
        wait_until(lambda: not (old_pid and process.alive(old_pid)), 10,
                   f"{bench.primary}'s keepalived to exit")
    except Timeout:
        if old_pid:
            os.kill(old_pid, signal.SIGKILL)
    fo.restart_at = time.time()
    runner.start_keepalived(bench.primary)
    try:
        wait_until(lambda: bench.settled_on(bench.primary), args.timeout,
                   f"{bench.primary} to preempt and hold every VIP again")
    except Timeout as exc:
        bench.aborted = f"failover {index}: {exc}; holder now {bench.holder()!r}"
    analyse(fo, bench.probe.poll(), read_jsonl(bench.backup_log), bench.watch, last_pong)
    if fo.error is None:
        fo.error = missing_figures(fo)
    bench.ready_at = time.monotonic() + args.settle
    return fo


def missing_figures(fo: Failover) -> str | None:
    needed = {"advert": fo.advert_at, "GARP": fo.garp_at}
    if fo.mode in HAGUARD_MODES:
        needed.update({"forked_at": fo.forked_at, "first_sent_at": fo.first_sent_at})
    gone = [k for k, v in needed.items() if v is None]
    return f"not recorded: {', '.join(gone)}" if gone else None


def save_raw(bench: Bench, target: str) -> None:
    """Copy the client recording and every log of a lab before teardown deletes them."""
    dest = Path(target) / bench.mode
    dest.mkdir(parents=True, exist_ok=True)
    shutil.copy(bench.probe_file, dest / "probe.jsonl")
    for node, info in bench.runner.record["directors"].items():
        workdir = os.path.dirname(info["config"])
        for name in ("haguard.log", "keepalived.log", "keepalived.conf"):
            if os.path.exists(os.path.join(workdir, name)):
                shutil.copy(os.path.join(workdir, name), dest / f"{node}-{name}")


# --------------------------------------------------------------------------- figures
def percentile(values: list[float], q: float) -> float:
    """Linear interpolation between closest ranks (numpy's default); q in [0, 1]."""
    ordered = sorted(values)
    k = (len(ordered) - 1) * q
    lo, hi = math.floor(k), math.ceil(k)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


def summary(values: list[float | None]) -> dict[str, float | int | None]:
    got = [v for v in values if v is not None]
    if not got:
        return {"count": 0, "min": None, "p50": None, "p90": None, "p99": None, "max": None}
    return {"count": len(got), "min": round(min(got), 3),
            "p50": round(percentile(got, 0.50), 3), "p90": round(percentile(got, 0.90), 3),
            "p99": round(percentile(got, 0.99), 3), "max": round(max(got), 3)}


def ok_results(bench: Bench) -> list[Failover]:
    return [f for f in bench.results if f.error is None]


def figures(benches: dict[str, Bench]) -> dict[str, Any]:
    out: dict[str, Any] = {"rows": []}

    def row(key: str, label: str, mode: str, values: list[float | None]) -> None:
        out["rows"].append({"key": key, "figure": label, "mode": mode, **summary(values)})

    for mode, bench in benches.items():
        good = ok_results(bench)
        row("wire", "wire: backup's first advert -> first GARP", mode, [f.wire_ms for f in good])
    if "haguard" in benches:
        good = ok_results(benches["haguard"])
        row("fork", "haguard log: notify fork -> first announcement", "haguard",
            [f.fork_ms for f in good])
        row("hook", "haguard log: hook start -> first announcement", "haguard",
            [f.hook_ms for f in good])
        row("advert_to_fork", "advert (wire) -> notify fork (log, 10 ms ticks)", "haguard",
            [Failover._ms(f.advert_at, f.forked_at) for f in good])
    for mode, bench in benches.items():
        good = ok_results(bench)
        row("trigger_to_advert", "SIGTERM -> backup's first advert", mode,
            [Failover._ms(f.trigger_at, f.advert_at) for f in good])
    for mode, bench in benches.items():
        if bench.watch.ping_interval_ms:
            row("outage", f"client outage (ping every {bench.watch.ping_interval_ms} ms)", mode,
                [f.outage_ms for f in ok_results(bench)])
            row("outage_start", "SIGTERM -> outage begins", mode,
                [Failover._ms(f.trigger_at, f.outage_start_at) for f in ok_results(bench)])
    wire = {r["mode"]: r for r in out["rows"] if r["key"] == "wire"}
    out["ratio"] = {f"{a}/{b}": {q: ratio(wire[a][q], wire[b][q]) for q in ("p50", "p99")}
                    for a, b in (("agent", "native"), ("haguard", "native"),
                                 ("agent", "haguard")) if a in wire and b in wire}
    if "agent" in wire:
        p99 = wire["agent"]["p99"]
        native_p99 = wire.get("native", {}).get("p99")
        out["agent_target"] = {
            "p99_ms": p99, "target_p99_ms": AGENT_TARGET_P99_MS,
            "native_p99_ms": native_p99, "target_over_native_ms": AGENT_TARGET_OVER_NATIVE_MS,
            "met": p99 is not None and p99 <= AGENT_TARGET_P99_MS and (
                native_p99 is None or p99 <= native_p99 + AGENT_TARGET_OVER_NATIVE_MS)}
    fork = next((r for r in out["rows"] if r["key"] == "fork"), None)
    if fork is not None:
        out["target"] = {"p99_ms": TARGET_P99_MS, "fork_p99_ms": fork["p99"],
                         "met": fork["p99"] is not None and fork["p99"] <= TARGET_P99_MS,
                         "wire_p99_ms": wire.get("haguard", {}).get("p99")}
    out["frames"] = {mode: {"garp_median": median_of([f.garp_frames for f in ok_results(b)]),
                            "na_median": median_of([f.na_frames for f in ok_results(b)]),
                            "stray_garps": sum(f.stray_garps for f in b.results)}
                     for mode, b in benches.items()}
    return out


def median_of(values: list[int]) -> float | None:
    return percentile([float(v) for v in values], 0.5) if values else None


def ratio(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None or b <= 0 else round(a / b, 1)


def fmt(v: Any) -> str:
    return "-" if v is None else f"{v:.1f}" if isinstance(v, float) else str(v)


def print_report(benches: dict[str, Bench], figs: dict[str, Any], meta: dict[str, Any],
                 out: Any) -> None:
    def p(line: str = "") -> None:
        print(line, file=out)

    p(f"takeover benchmark: {meta['failovers']} failovers per mode, interleaved; "
      f"keepalived {meta['keepalived']}, kernel {meta['kernel']}, {meta['cpus']} CPUs")
    p("labs: " + ", ".join(f"{m}={b.runner.lab.name}" for m, b in benches.items())
      + f"; config {meta['config']}")
    p()
    p(f"{'figure':48} {'mode':8} {'n':>3} {'p50':>8} {'p90':>8} {'p99':>8} {'max':>8}  (ms)")
    for r in figs["rows"]:
        p(f"{r['figure']:48} {r['mode']:8} {r['count']:>3} {fmt(r['p50']):>8} {fmt(r['p90']):>8} "
          f"{fmt(r['p99']):>8} {fmt(r['max']):>8}")
    p()
    for pair, r in figs.get("ratio", {}).items():
        p(f"ratio {pair}, wire advert -> GARP: p50 {fmt(r['p50'])}x, p99 {fmt(r['p99'])}x")
    if "agent_target" in figs:
        t = figs["agent_target"]
        verdict = "MET" if t["met"] else "NOT MET" if t["p99_ms"] is not None else "NOT MEASURED"
        p(f"target: agent p99 <= {AGENT_TARGET_P99_MS:.0f} ms and <= native p99 + "
          f"{AGENT_TARGET_OVER_NATIVE_MS:.0f} ms (wire advert -> GARP): agent p99 "
          f"{fmt(t['p99_ms'])} ms, native p99 {fmt(t['native_p99_ms'])} ms -> {verdict}")
    for mode, fr in figs["frames"].items():
        p(f"{mode}: backup's frames per takeover (median, until the primary preempts): "
          f"{fmt(fr['garp_median'])} GARP for the IPv4 VIP, {fmt(fr['na_median'])} unsolicited NA "
          f"for the IPv6 VIP; GARPs before its first advert: {fr['stray_garps']}")
    if "target" in figs:
        t = figs["target"]
        verdict = "MET" if t["met"] else "NOT MET" if t["fork_p99_ms"] is not None else "NOT MEASURED"
        p(f"target: cold hook p99 <= {TARGET_P99_MS:.0f} ms from keepalived's fork of the MASTER "
          f"notify to the first announcement: p99 {fmt(t['fork_p99_ms'])} ms -> {verdict}")
        if t["wire_p99_ms"] is not None:
            within = "within" if t["wire_p99_ms"] <= TARGET_P99_MS else "over"
            p(f"  cross-check on the wire (advert -> GARP, no haguard timestamp involved): "
              f"p99 {fmt(t['wire_p99_ms'])} ms, {within} {TARGET_P99_MS:.0f} ms")
        p("  'cold' here: a fresh Python process per notify, with the page cache warm "
          "(caches are not dropped; that would touch the whole host)")
    for mode, bench in benches.items():
        if bench.farm_rates is not None:
            p(f"{mode}: health checks reaching the farm during the failovers, per second: "
              + ", ".join(f"{node} {rate:g}" for node, rate in bench.farm_rates.items()))
    if meta["fatal"]:
        p(f"FAILED: {meta['fatal']}")
    if meta["interrupted"]:
        p("INTERRUPTED: the figures cover only the failovers finished before the signal")
    if meta["failovers"] < 20:
        p(f"NOTE: {meta['failovers']} failovers per mode; p99 needs >= 20 to mean anything - "
          "not a reportable run")
    for mode, bench in benches.items():
        for f in bench.results:
            if f.error:
                p(f"{mode} failover {f.index}: excluded: {f.error}")
        if bench.aborted:
            p(f"{mode}: ABORTED after {len(bench.results)} failover(s): {bench.aborted}")
    p(f"load average (1/5/15 min) before {meta['load_before']}, after {meta['load_after']}")
    p(f"wall time: {meta['wall_s']:.1f} s (labs up {meta['up_s']:.1f} s, failovers "
      f"{meta['failovers_s']:.1f} s, teardown {meta['down_s']:.1f} s)")


# --------------------------------------------------------------------------- main
def preflight(args: argparse.Namespace) -> None:
    if os.geteuid() != 0:
        raise SystemExit("bench/takeover.py needs root: it creates network namespaces and "
                         "runs keepalived. Run: sudo .venv/bin/python bench/takeover.py")
    for tool in ("ip", "sysctl") + (("ping",) if args.ping_ms else ()):
        if shutil.which(tool) is None:
            raise SystemExit(f"bench/takeover.py: {tool} is not installed")
    if keepalived_adapter.binary() is None:
        raise SystemExit("bench/takeover.py: keepalived is not installed")
    if args.failovers < 1:
        raise SystemExit("--failovers must be at least 1 (20 or more for a reportable run)")


def keepalived_version() -> str:
    exe = keepalived_adapter.binary() or "keepalived"
    proc = subprocess.run([exe, "--version"], capture_output=True, text=True, check=False)
    first = (proc.stdout + proc.stderr).strip().splitlines()
    return first[0].replace("Keepalived ", "") if first else "unknown"


def tear_down(bench: Bench, keep_raw: str | None, say: Callable[[str], None]) -> None:
    """Stop the probe, keep the raw data if asked, remove the lab: whatever fails first."""
    try:
        if bench.probe_proc is not None:
            bench.runner.stop_probe(bench.probe_proc)
        if keep_raw and os.path.exists(bench.probe_file):
            save_raw(bench, keep_raw)
    except (OSError, HaguardError) as exc:
        say(f"{bench.mode}: before teardown: {exc}")
    finally:
        try:
            if bench.farm is not None:
                bench.farm_rates = bench.farm.rates()
                stop_farm(bench.farm)
        finally:
            bench.runner.down()


def interleaved(benches: dict[str, Bench], n: int) -> Iterator[tuple[int, Bench]]:
    """Strict turns (haguard, native, haguard, ...): every failover follows one of the
    other lab, so both modes see the same history, and a lab's settle time passes
    while the other one is measured."""
    for i in range(n):
        for bench in benches.values():
            if bench.aborted is None:
                yield i, bench


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="bench/takeover.py", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--failovers", type=int, default=20, help="per mode (default 20)")
    parser.add_argument("--config", default=str(DEFAULT_CONFIG),
                        help="the primary director's haguard config (default conf/lab.yaml)")
    parser.add_argument("--modes", default=",".join(MODES),
                        help="comma-separated subset of agent,haguard,native")
    parser.add_argument("--ping-ms", type=int, default=10,
                        help="client pings the IPv4 VIP this often for an outage figure; 0: off")
    parser.add_argument("--settle", type=float, default=6.0,
                        help="seconds between a lab's restore and its next trigger (default 6: "
                             "past keepalived's 5 s second GARP set and haguard's 5 s repeat)")
    parser.add_argument("--gap", type=float, default=1.0,
                        help="seconds of quiet after any failover before the next trigger "
                             "(default 1: past the rest of a haguard burst, 4 x 200 ms)")
    parser.add_argument("--timeout", type=float, default=20.0, help="seconds per wait")
    parser.add_argument("--json", metavar="PATH", help="write every figure as JSON ('-': stdout)")
    parser.add_argument("--farm", metavar="BINARY",
                        help="run bench/farm.c (compiled) in a namespace routed from both "
                             f"directors: real servers at every address of {FARM_SERVERS}, "
                             "port 80, for a config's health checks; the checks each "
                             "director made per second are reported")
    parser.add_argument("--keep-raw", metavar="DIR",
                        help="copy the client recordings and logs here before teardown")
    args = parser.parse_args(argv)
    args.modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    if not args.modes or any(m not in MODES for m in args.modes):
        parser.error(f"--modes: choose from {', '.join(MODES)}")
    return args


def _interrupt(signum: int, frame: Any) -> None:
    """SIGINT and SIGTERM end the run through the teardown in main()."""
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    preflight(args)
    text_out = sys.stderr if args.json == "-" else sys.stdout

    def say(line: str) -> None:  # progress goes to stderr, the report to stdout
        print(line, file=sys.stderr, flush=True)

    # Installed explicitly: a shell starting this in the background would have SIGINT ignored.
    signal.signal(signal.SIGINT, _interrupt)
    signal.signal(signal.SIGTERM, _interrupt)
    started, wall0 = time.time(), time.monotonic()
    benches: dict[str, Bench] = {}
    timing = {"up_s": 0.0, "failovers_s": 0.0, "down_s": 0.0}
    interrupted = False
    fatal: str | None = None
    load_before = os.getloadavg()
    try:
        for mode in args.modes:
            benches[mode] = make_bench(mode, args.config, args, say)
        for bench in benches.values():
            say(f"{bench.mode}: bringing up lab {bench.runner.lab.name}")
            bring_up(bench, args)
        timing["up_s"] = time.monotonic() - wall0
        t0 = time.monotonic()
        for i, bench in interleaved(benches, args.failovers):
            timing["failovers_s"] = time.monotonic() - t0
            fo = run_failover(bench, i + 1, args)
            bench.results.append(fo)
            timing["failovers_s"] = time.monotonic() - t0
            # The other lab waits too: this one's hooks and bursts must not share the CPU
            # with the next takeover being measured.
            for other in benches.values():
                other.ready_at = max(other.ready_at, time.monotonic() + args.gap)
            say(f"{bench.mode:7} {i + 1:>3}/{args.failovers}: advert->GARP {fmt(fo.wire_ms)} ms"
                + (f", fork->first {fmt(fo.fork_ms)} ms" if bench.mode == "haguard" else "")
                + (f", outage {fmt(fo.outage_ms)} ms" if args.ping_ms else "")
                + (f"  [{fo.error}]" if fo.error else ""))
    except KeyboardInterrupt:
        interrupted = True
        say("interrupted: tearing the labs down")
    except (HaguardError, Timeout) as exc:  # a lab that cannot come up, say why and clean up
        fatal = f"{type(exc).__name__}: {exc}"
        say(f"error: {fatal}")
    finally:
        # A second Ctrl-C must not leave namespaces and keepalived processes behind.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        t_down = time.monotonic()
        for bench in benches.values():
            tear_down(bench, args.keep_raw, say)
        timing["down_s"] = time.monotonic() - t_down
    meta = {"load_before": [round(x, 2) for x in load_before],
            "load_after": [round(x, 2) for x in os.getloadavg()], "fatal": fatal, "started_at": started, "failovers": args.failovers, "config": args.config,
            "keepalived": keepalived_version(), "kernel": platform.release(),
            "cpus": os.cpu_count(), "wall_s": time.monotonic() - wall0, **timing,
            "settle_s": args.settle, "gap_s": args.gap, "ping_ms": args.ping_ms, "interrupted": interrupted}
    figs = figures(benches)
    print_report(benches, figs, meta, text_out)
    if args.json:
        doc = {"meta": meta, "figures": figs,
               "modes": {m: {"lab": b.runner.lab.name, "aborted": b.aborted,
                             "farm_checks_per_s": b.farm_rates,
                             "failovers": [f.as_dict() for f in b.results]}
                         for m, b in benches.items()}}
        if args.json == "-":
            json.dump(doc, sys.stdout, indent=1)
            print()
        else:
            Path(args.json).write_text(json.dumps(doc, indent=1) + "\n")
    failed = interrupted or fatal is not None or any(b.aborted or not ok_results(b) for b in benches.values())
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
