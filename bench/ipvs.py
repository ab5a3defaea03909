#!/usr/bin/env python3
"""IPVS apply benchmark: haguard's netlink reconcile against ``ipvsadm-restore``.

The host kernel has no IPVS, so the host part boots the Debian kernel under qemu
(``haguard.lab.vm``) and runs the guest part of this same script inside it; every
figure is taken inside the guest, in one run, for both tools:

- full apply from an empty table of N services x 4 real servers (1,000 and 10,000):
  ``haguard``: ``Ipvs()`` + ``dump()`` + ``plan_reconcile()`` + ``apply()``, what
  ``haguard ipvs apply`` does with the kernel (apply-only is reported too);
  ``ipvsadm-restore``: ``ipvsadm -R`` reading ``format_save()`` of the same services.
- one weight changed on the 10,000-service table: haguard's whole reconcile path
  (dump + plan + a single SetDest), ``apply --incremental`` (finds the change through the
  records) and ``apply --only`` (the change named), each against the full apply;
  ``ipvsadm -e`` for reference.
- loading the YAML config that declares each table (in none of the figures above).

The tables use the benchmarking range 198.18.0.0/15 (RFC 2544); no packet is sent.
Under qemu TCG absolute times are meaningless: the ratios are what count.

Run as root, from the checkout:  sudo .venv/bin/python bench/ipvs.py
"""

from __future__ import annotations

import argparse
import cProfile
import ctypes
import io
import ipaddress
import json
import os
import platform
import pstats
import shutil
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any, TextIO

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # `python bench/ipvs.py` puts bench/, not the checkout, first

from haguard.core.ipvsadm import format_save  # noqa: E402
from haguard.core.ipvsconfig import RealServer, ServiceKey, VirtualService  # noqa: E402

TOOLS = ("haguard", "ipvsadm-restore")
# Targets from the issue: a full apply no slower than ipvsadm-restore, and a one-weight
# change costing at most 5 % of a full apply of the same (10,000-service) table.
TARGET_FULL_RATIO = 1.0
TARGET_DELTA_PCT = 5.0
# The ways of applying the one change that read back less than the whole table: the key
# of their samples, how the report names them, what they read, their name in the targets.
ONE_CHANGE_WAYS = (
    ("incremental", "`apply --incremental`", "reads back only the changed service",
     "`apply --incremental`"),
    ("named", "`apply --only SERVICE`", "the changed service named", "`apply --only`"),
)
REPORTABLE_REPS = 3  # a median of fewer runs is flagged in the table
VIP_BASE = int(ipaddress.IPv4Address("198.18.0.0"))
RS_BASE = int(ipaddress.IPv4Address("198.19.0.0"))
PORT = 80
SCRATCH = "/tmp/haguard-bench-ipvs"  # in the guest: its tmpfs overlay
STATE_DIR = f"{SCRATCH}/state"        # haguard's records (owned, applied) for the bench
CLONE_NEWNET = 0x40000000
SETTLE_S = 1.0
FORWARD_NAMES = {"Route": "dr", "Masq": "nat", "Tunnel": "tun"}  # /proc/net/ip_vs wording


# =========================================================================== guest side
def make_services(count: int, servers: int) -> tuple[VirtualService, ...]:
    """A deterministic table: VIP 198.18.x.y:80 with real servers 198.19.x.y:80 (dr, wrr).

    Every service has its own real servers (4 x 10,000 = 40,000 fit in 198.19.0.0/16)
    and weights 1..servers, so the dump must bring back distinct data for each.
    """
    if count * servers > 1 << 16:
        raise SystemExit(f"{count} x {servers} real servers do not fit in 198.19.0.0/16")
    return tuple(
        VirtualService(
            key=ServiceKey(4, "tcp", str(ipaddress.IPv4Address(VIP_BASE + i)), PORT),
            scheduler="wrr",
            real_servers=tuple(
                RealServer(address=ipaddress.IPv4Address(RS_BASE + i * servers + j), port=PORT,
                           forwarding="dr", weight=j + 1)
                for j in range(servers)))
        for i in range(count))


Table = dict[tuple[str, str, int], tuple[str, frozenset[tuple[str, int, str, int]]]]


def expected_table(services: tuple[VirtualService, ...]) -> Table:
    """What /proc/net/ip_vs must show for ``services`` (order of destinations ignored)."""
    return {(s.key.protocol, s.key.address, s.key.port):
            (s.scheduler, frozenset((str(rs.address), rs.port, rs.forwarding, rs.weight)
                                    for rs in s.real_servers))
            for s in services}


def _hex_endpoint(text: str) -> tuple[str, int]:
    addr, port = text.split(":")
    return str(ipaddress.IPv4Address(int(addr, 16))), int(port, 16)


def kernel_table() -> Table:
    """The kernel's IPv4 table read from /proc/net/ip_vs.

    A third reader, neither haguard's netlink dump nor ipvsadm, so both tools are checked
    by the same independent judge.
    """
    table: Table = {}
    dests: set[tuple[str, int, str, int]] = set()
    with open("/proc/net/ip_vs", encoding="ascii") as fh:
        lines = fh.read().splitlines()[3:]  # version line and the two header lines
    for line in lines:
        words = line.split()
        if words[0] == "->":
            addr, port = _hex_endpoint(words[1])
            dests.add((addr, port, FORWARD_NAMES.get(words[2], words[2]), int(words[3])))
        else:
            addr, port = _hex_endpoint(words[1])
            dests = set()
            table[(words[0].lower(), addr, port)] = (words[2], dests)  # type: ignore[assignment]
    return {k: (sched, frozenset(d)) for k, (sched, d) in table.items()}


def verify(services: tuple[VirtualService, ...], what: str) -> dict[str, int]:
    """Raise unless the kernel holds exactly ``services``; the counts seen."""
    have, want = kernel_table(), expected_table(services)
    counts = {"services": len(have), "dests": sum(len(d) for _, d in have.values())}
    if have != want:
        missing = len(want.keys() - have.keys())
        extra = len(have.keys() - want.keys())
        differ = sum(1 for k in want.keys() & have.keys() if want[k] != have[k])
        raise SystemExit(f"{what}: the kernel does not hold the desired table: {missing} "
                         f"services missing, {extra} extra, {differ} different; seen {counts}")
    return counts


def ipvsadm(*args: str, stdin: TextIO | None = None) -> None:
    subprocess.run(["ipvsadm", *args], check=True, stdin=stdin or subprocess.DEVNULL,
                   stdout=subprocess.DEVNULL)


class Netns:
    """A new network namespace for one measurement: an IPVS table that is really empty.

    Emptying the table with `ipvsadm -C` is not enough: the kernel keeps every deleted
    real server in its per-namespace dest trash until a timer frees it, one to three
    minutes later (IP_VS_DEST_TRASH_PERIOD), and every real server added meanwhile
    scans that list (ip_vs_trash_get_dest). Re-adding 40,000 real servers right after
    flushing them took ipvsadm-restore about twice as long. A new namespace has
    its own empty trash. The guest process moves itself (unshare, setns: Python 3.11's
    os module has neither); ipvsadm and /proc/net/ip_vs follow it.
    """

    _libc = ctypes.CDLL(None, use_errno=True)

    def __init__(self) -> None:
        self._home = os.open("/proc/self/ns/net", os.O_RDONLY)
        self._check(self._libc.unshare(CLONE_NEWNET), "unshare(CLONE_NEWNET)")
        # With lo down the namespace has no local routing table, every address then
        # counts as broadcast and the kernel refuses real servers ("address not unicast").
        subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
        if kernel_table():
            raise SystemExit("a new network namespace already has IPVS services")

    def leave(self) -> None:
        # Flush here, synchronously: the namespace's own teardown runs in a kernel
        # worker and would otherwise overlap the next measurement.
        ipvsadm("-C")
        self._check(self._libc.setns(self._home, CLONE_NEWNET), "setns")
        os.close(self._home)
        time.sleep(SETTLE_S)  # what is left (freeing the flushed entries) is quick

    @staticmethod
    def _check(rc: int, what: str) -> None:
        if rc != 0:
            err = ctypes.get_errno()
            raise OSError(err, f"{what}: {os.strerror(err)}")


def haguard_apply(services: tuple[VirtualService, ...]) -> dict[str, Any]:
    """What `haguard ipvs apply` does with the kernel: open, dump, plan, apply, and keep
    the records `ipvsops.reconcile` keeps (owned services, their fingerprints); timed."""
    from haguard.adapters.ipvs import Ipvs
    from haguard.adapters.ipvsrecords import digest, record_key, write_applied, write_owned
    from haguard.core.ipvsplan import plan_reconcile

    t0 = time.perf_counter()
    with Ipvs() as ipvs:
        observed = ipvs.dump()
        t1 = time.perf_counter()
        plan = plan_reconcile(services, observed)
        t2 = time.perf_counter()
        ipvs.apply(plan)
        t3 = time.perf_counter()
    write_owned(STATE_DIR, {record_key(s.key) for s in services})
    write_applied(STATE_DIR, {record_key(s.key): digest(s) for s in services})
    t4 = time.perf_counter()
    return {"total_s": t4 - t0, "dump_s": t1 - t0, "plan_s": t2 - t1, "apply_s": t3 - t2,
            "record_s": t4 - t3, "actions": len(plan),
            "kinds": sorted({type(a).__name__ for a in plan})}


def haguard_incremental(services: tuple[VirtualService, ...]) -> dict[str, Any]:
    """`haguard ipvs apply --incremental`: only what changed since the last apply is read."""
    from haguard.adapters.ipvs import Ipvs
    from haguard.app.ipvsops import reconcile

    t0 = time.perf_counter()
    with Ipvs() as ipvs:
        plan = reconcile(ipvs, services, None, STATE_DIR, incremental=True)
    t1 = time.perf_counter()
    return {"total_s": t1 - t0, "actions": len(plan),
            "kinds": sorted({type(a).__name__ for a in plan})}


def haguard_named(services: tuple[VirtualService, ...], key: ServiceKey) -> dict[str, Any]:
    """`haguard ipvs apply --only SERVICE`: the changed service named, only it is read."""
    from haguard.adapters.ipvs import Ipvs
    from haguard.app.ipvsops import reconcile_named

    t0 = time.perf_counter()
    with Ipvs() as ipvs:
        plan = reconcile_named(ipvs, services, (key,), STATE_DIR)
    t1 = time.perf_counter()
    return {"total_s": t1 - t0, "actions": len(plan),
            "kinds": sorted({type(a).__name__ for a in plan})}


def config_load(services: tuple[VirtualService, ...], path: str) -> dict[str, Any]:
    """Loading a node config that declares ``services`` (YAML, as `haguard ipvs apply -c`
    reads it), timed; the loaded services must be exactly ``services``."""
    from haguard.adapters.files import load_config
    from haguard.core.ipvsadm import dump_yaml

    with open(path, "w", encoding="utf-8") as fh:
        fh.write(f"node: {{name: bench, state_dir: {STATE_DIR}}}\n")
        fh.write(dump_yaml(services))
    t0 = time.perf_counter()
    config = load_config(path)
    t1 = time.perf_counter()
    if config.ipvs is None or config.ipvs.services != services:
        raise SystemExit(f"{path}: the loaded config does not declare the benchmark's services")
    return {"size": len(services), "total_s": t1 - t0, "bytes": os.path.getsize(path)}


def restore_apply(save_file: str) -> dict[str, Any]:
    """`ipvsadm -R < save_file`, the whole process (that is what ipvsadm-restore is)."""
    with open(save_file, encoding="ascii") as fh:
        t0 = time.perf_counter()
        ipvsadm("-R", stdin=fh)
        t1 = time.perf_counter()
    return {"total_s": t1 - t0}


def plan_reps(cost: dict[int, float], budget_s: float, left_s: float, min_reps: int,
              max_reps: int) -> dict[int, int]:
    """Repetitions per size from the estimated cost of one repetition (both tools).

    A size gets ``min_reps`` when that many fit the whole budget on their own, else as
    many as fit, but at least one: the figure is needed even where it is indicative
    only. What is ``left_s`` after that buys extra repetitions, cheapest size first.
    """
    reps = {size: max(1, min(min_reps, int(budget_s // c))) for size, c in cost.items()}
    left_s -= sum(cost[size] * n for size, n in reps.items())
    for size in sorted(cost, key=cost.__getitem__):
        while reps[size] < max_reps and cost[size] <= left_s:
            reps[size] += 1
            left_s -= cost[size]
    return reps


class Guest:
    """The measurements, in the guest; progress lines go to a file the host tails."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.progress: TextIO = open(args.progress, "a", encoding="utf-8") if args.progress \
            else sys.stderr
        self.sizes: list[int] = sorted(set(args.sizes))
        self.tables = {n: make_services(n, args.servers) for n in self.sizes}
        self.save_files: dict[int, str] = {}
        self.samples: list[dict[str, Any]] = []
        self.netns: Netns | None = None  # the namespace of the last run, still entered
        self.last_run: tuple[int, str] | None = None  # what that namespace holds
        self.started = time.perf_counter()

    def say(self, text: str) -> None:
        self.progress.write(f"[guest {time.strftime('%H:%M:%S')}] {text}\n")
        self.progress.flush()

    def elapsed(self) -> float:
        return time.perf_counter() - self.started

    def setup(self) -> None:
        # Load the modules and warm the imports up front so the first timed run does
        # not pay for them (ipvsadm would autoload the scheduler inside its timing).
        for module in ("ip_vs", "ip_vs_wrr"):
            subprocess.run(["modprobe", module], check=True)
        os.makedirs(SCRATCH, exist_ok=True)
        for n, services in self.tables.items():
            self.save_files[n] = write_save(services, f"{SCRATCH}/{n}.save")
        small = make_services(10, self.args.servers)  # one small round trip of each tool
        small_file = write_save(small, f"{SCRATCH}/warmup.save")
        for run in (lambda: haguard_apply(small), lambda: restore_apply(small_file)):
            self.fresh()
            run()
            verify(small, "warm-up")
        self.last_run = None

    def fresh(self) -> None:
        """Leave the namespace of the last run (flushing it) for a new, empty one."""
        if self.netns is not None:
            self.netns.leave()
        self.netns = Netns()

    def measure(self, size: int, tool: str, rep: int) -> float:
        """One full apply from empty, verified; the wall time it took, all included."""
        started = time.perf_counter()
        self.fresh()
        services = self.tables[size]
        result = haguard_apply(services) if tool == "haguard" \
            else restore_apply(self.save_files[size])
        checked = time.perf_counter()
        counts = verify(services, f"{tool} {size}")
        self.last_run = (size, tool)
        self.samples.append({"size": size, "tool": tool, "rep": rep, **result, **counts,
                             "verify_s": time.perf_counter() - checked})
        self.say(f"rep {rep} {tool:<15} {size:>6} services: {result['total_s']:8.2f} s "
                 f"(verified {counts['services']} services, {counts['dests']} dests)")
        return time.perf_counter() - started

    def repetitions(self, calibration: dict[str, float]) -> dict[int, int]:
        """Repetitions per size that fit the budget, from the smallest size's first run."""
        if self.args.reps:
            return {size: self.args.reps for size in self.sizes}
        first = self.sizes[0]
        # Both tools are linear in the table size (one netlink request per service and
        # per real server), so the smallest size's costs scale up.
        cost = {size: sum(calibration.values()) * size / first for size in self.sizes}
        # The delta costs about one dump of the largest table, ~ half its haguard apply.
        reserve = calibration["haguard"] * max(self.sizes) / first * 0.5 + 30
        left = self.args.budget_s - self.elapsed() - reserve + cost[first]  # rep 0 is done
        reps = plan_reps(cost, self.args.budget_s, left, self.args.min_reps,
                         self.args.max_reps)
        estimate = sum(cost[s] * reps[s] for s in self.sizes) - cost[first] + reserve
        self.say(f"estimated cost of one repetition: "
                 f"{', '.join(f'{s}: {c:.0f} s' for s, c in cost.items())}; repetitions "
                 f"{reps}; about {estimate:.0f} s still to go"
                 + ("" if all(r >= self.args.min_reps for r in reps.values()) else
                    f" (fewer than {self.args.min_reps} where they do not fit the "
                    f"{self.args.budget_s:.0f} s budget; raise --budget-s for more)"))
        return reps

    def run_size(self, size: int, reps: int, done: int) -> None:
        """The remaining repetitions of one size, the tools alternating in order.

        The largest size ends on haguard, so the delta starts from haguard's own table.
        """
        last = size == max(self.sizes)
        for rep in range(done, reps):
            haguard_first = (reps - 1 - rep) % 2 == 1 if last else rep % 2 == 0
            for tool in (TOOLS if haguard_first else TOOLS[::-1]):
                self.measure(size, tool, rep)

    def delta(self, size: int) -> dict[str, Any]:
        """One weight changed on the ``size`` table applied by haguard, repeatedly."""
        services = list(self.tables[size])
        if self.last_run != (size, "haguard"):
            self.fresh()
            haguard_apply(tuple(services))
            verify(tuple(services), "haguard before the delta")
        target = size // 2  # a service in the middle: no help from dump order
        samples: list[dict[str, Any]] = []
        edits: list[float] = []
        for i in range(self.args.delta_reps):
            svc = services[target]
            rs = svc.real_servers[0]
            changed = replace(rs, weight=rs.weight + 10 + i)  # a new weight every time
            services[target] = replace(svc, real_servers=(changed,) + svc.real_servers[1:])
            result = haguard_apply(tuple(services))
            if result["actions"] != 1 or result["kinds"] != ["SetDest"]:
                raise SystemExit(f"one weight change planned {result}, not one SetDest")
            samples.append(result)
            self.say(f"delta {i}: haguard one SetDest on {size}: {result['total_s']:.2f} s "
                     f"(dump {result['dump_s']:.2f}, plan {result['plan_s']:.2f}, "
                     f"apply {result['apply_s']:.3f}, record {result['record_s']:.2f})")
            # ipvsadm -e for reference: one weight up, timed, then back to the desired
            # weight so the table stays as desired for the next round.
            edits.append(ipvsadm_edit(svc.key, changed, changed.weight + 1))
            ipvsadm_edit(svc.key, changed, changed.weight)
            # As for the full applies: min-reps samples when they fit the budget on their
            # own, at least one.
            if i + 1 >= max(1, min(self.args.min_reps,
                                   int(self.args.budget_s // result["total_s"]))):
                break
        verify(tuple(services), "after the weight changes")
        reads = self.reads(tuple(services))
        # The same kind of change with `apply --incremental`: first an apply that finds no
        # record (a full read) and leaves one, then one weight change after another.
        shutil.rmtree(STATE_DIR, ignore_errors=True)
        haguard_incremental(tuple(services))
        incremental = self.one_change_series(
            services, target, "incremental", 1, 20, lambda svcs, key: haguard_incremental(svcs))
        # And named (`apply --only`): the caller says which service changed.
        named = self.one_change_series(services, target, "named", 2, 30, haguard_named)
        return {"size": size, "haguard": samples, "ipvsadm_edit_s": edits,
                "reads": reads, "incremental": incremental, "named": named}

    def one_change_series(self, services: list[VirtualService], target: int, way: str,
                          server: int, offset: int,
                          run: Callable[[tuple[VirtualService, ...], ServiceKey],
                                        dict[str, Any]]) -> list[dict[str, Any]]:
        """Weight changes of one real server of ``services[target]``, each applied by
        ``run`` and required to be exactly one SetDest; the table verified after."""
        results: list[dict[str, Any]] = []
        for i in range(max(self.args.delta_reps, REPORTABLE_REPS)):
            svc = services[target]
            rs = svc.real_servers[server % len(svc.real_servers)]
            changed = replace(rs, weight=rs.weight + offset + i)
            services[target] = replace(svc, real_servers=tuple(
                changed if r is rs else r for r in svc.real_servers))
            result = run(tuple(services), svc.key)
            if result["actions"] != 1 or result["kinds"] != ["SetDest"]:
                raise SystemExit(f"{way}: a weight change planned {result}")
            results.append(result)
            self.say(f"{way} {i}: haguard one SetDest on {len(services)}: "
                     f"{result['total_s']:.3f} s")
        verify(tuple(services), f"after the {way} weight changes")
        return results

    def reads(self, services: tuple[VirtualService, ...]) -> dict[str, float]:
        """Reading the whole table without haguard, once each: the floor for a delta that
        reads the kernel (haguard's own read is the delta's dump)."""
        t0 = time.perf_counter()
        subprocess.run(["ipvsadm", "-S", "-n"], check=True, stdin=subprocess.DEVNULL,
                       stdout=subprocess.DEVNULL)
        t1 = time.perf_counter()
        verify(services, "proc read")
        t2 = time.perf_counter()
        return {"ipvsadm_save_s": t1 - t0, "proc_parse_s": t2 - t1}

    def profile(self, size: int) -> dict[str, str]:
        """cProfile of one haguard full apply of ``size`` from empty and of the dump of
        the result (not counted in the figures; cProfile slows both down)."""
        from haguard.adapters.ipvs import Ipvs

        services = self.tables.get(size) or make_services(size, self.args.servers)
        self.fresh()
        apply_prof = cProfile.Profile()
        apply_prof.runcall(haguard_apply, services)
        verify(services, "profiled apply")
        dump_prof = cProfile.Profile()
        with Ipvs() as ipvs:
            dump_prof.runcall(ipvs.dump)
        return {"apply": _top(apply_prof, "tottime") + _top(apply_prof, "cumulative"),
                "dump": _top(dump_prof, "tottime")}

    def run(self) -> dict[str, Any]:
        self.say(f"kernel {os.uname().release}; tables {self.sizes} x {self.args.servers}")
        self.setup()
        first = self.sizes[0]
        calibration = {tool: self.measure(first, tool, 0) for tool in TOOLS}
        reps = self.repetitions(calibration)
        for size in self.sizes:
            self.run_size(size, reps[size], 1 if size == first else 0)
        delta = self.delta(max(self.sizes))
        loads = []
        for size in self.sizes:
            loads.append(config_load(self.tables[size], f"{SCRATCH}/{size}.yaml"))
            self.say(f"config load {size} services ({loads[-1]['bytes']} bytes of YAML): "
                     f"{loads[-1]['total_s']:.2f} s")
        prof = self.profile(self.args.profile) if self.args.profile else {}
        if self.netns is not None:
            self.netns.leave()
        return {"kernel": os.uname().release, "python": platform.python_version(),
                "cpus": os.cpu_count(), "reps": reps, "samples": self.samples,
                "delta": delta, "config_loads": loads, "profile": prof,
                "profile_size": self.args.profile,
                "guest_wall_s": self.elapsed()}


def _top(profiler: cProfile.Profile, key: str, count: int = 15) -> str:
    out = io.StringIO()
    pstats.Stats(profiler, stream=out).sort_stats(key).print_stats(count)
    return out.getvalue()


def write_save(services: tuple[VirtualService, ...], path: str) -> str:
    with open(path, "w", encoding="ascii") as fh:
        fh.write(format_save(services))
    return path


def ipvsadm_edit(key: ServiceKey, rs: RealServer, weight: int) -> float:
    """`ipvsadm -e` of one DR real server's weight, timed (process start included)."""
    t0 = time.perf_counter()
    ipvsadm("-e", "-t", f"{key.address}:{key.port}", "-r", f"{rs.address}:{rs.port}", "-g",
            "-w", str(weight))
    return time.perf_counter() - t0


def guest_main(args: argparse.Namespace) -> int:
    result = Guest(args).run()
    json.dump(result, sys.stdout)
    return 0


# =========================================================================== summary
def _median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def summarize(guest: dict[str, Any]) -> dict[str, Any]:
    """Rows per size and tool, ratios, the delta and the targets, from the raw samples."""
    rows = []
    medians: dict[tuple[int, str], float] = {}
    for size in sorted({s["size"] for s in guest["samples"]}):
        for tool in TOOLS:
            runs = [s for s in guest["samples"] if s["size"] == size and s["tool"] == tool]
            total = [s["total_s"] for s in runs]
            row: dict[str, Any] = {"size": size, "tool": tool, "n": len(runs),
                                   "median_s": _median(total), "min_s": min(total),
                                   "services_per_s": size / _median(total)}
            if tool == "haguard":
                for part in ("dump_s", "plan_s", "apply_s", "record_s"):
                    row[f"median_{part}"] = _median([s[part] for s in runs])
            medians[(size, tool)] = row["median_s"]
            rows.append(row)
    ratios = [{"size": size, "haguard_over_restore": medians[(size, "haguard")]
               / medians[(size, "ipvsadm-restore")],
               "apply_only_over_restore": next(r["median_apply_s"] for r in rows
                                               if r["size"] == size and r["tool"] == "haguard")
               / medians[(size, "ipvsadm-restore")]}
              for size in sorted({s for s, _ in medians})]
    delta = guest["delta"]
    full = medians[(delta["size"], "haguard")]
    d_total = [s["total_s"] for s in delta["haguard"]]
    delta_row = {"size": delta["size"], "n": len(d_total), "median_s": _median(d_total),
                 "min_s": min(d_total),
                 "median_dump_s": _median([s["dump_s"] for s in delta["haguard"]]),
                 "median_plan_s": _median([s["plan_s"] for s in delta["haguard"]]),
                 "median_apply_s": _median([s["apply_s"] for s in delta["haguard"]]),
                 "median_record_s": _median([s["record_s"] for s in delta["haguard"]]),
                 "pct_of_full_haguard": 100 * _median(d_total) / full,
                 "pct_of_full_restore": 100 * _median(d_total)
                 / medians[(delta["size"], "ipvsadm-restore")],
                 "ipvsadm_edit_median_s": _median(delta["ipvsadm_edit_s"]),
                 "reads": delta["reads"]}
    for way, *_ in ONE_CHANGE_WAYS:
        times = [s["total_s"] for s in delta.get(way, [])]
        if times:
            delta_row.update({f"{way}_n": len(times), f"{way}_median_s": _median(times),
                              f"{way}_max_s": max(times),
                              f"{way}_pct_of_full_haguard": 100 * _median(times) / full})
    loads = [{**load, "pct_of_full_haguard": 100 * load["total_s"]
              / medians[(load["size"], "haguard")],
              "over_restore": load["total_s"] / medians[(load["size"], "ipvsadm-restore")]}
             for load in guest.get("config_loads", []) if (load["size"], "haguard") in medians]
    worst = max(r["haguard_over_restore"] for r in ratios)
    targets = {"full_ratio": {"target": TARGET_FULL_RATIO, "worst": worst,
                              "met": worst <= TARGET_FULL_RATIO},
               "delta_pct": {"target": TARGET_DELTA_PCT,
                             "value": delta_row["pct_of_full_haguard"],
                             "met": delta_row["pct_of_full_haguard"] <= TARGET_DELTA_PCT}}
    for way, *_ in ONE_CHANGE_WAYS:
        if f"{way}_n" in delta_row:
            value = delta_row[f"{way}_pct_of_full_haguard"]
            targets[f"{way}_delta_pct"] = {"target": TARGET_DELTA_PCT, "value": value,
                                           "met": value <= TARGET_DELTA_PCT}
    return {"rows": rows, "ratios": ratios, "delta": delta_row, "targets": targets,
            "config_loads": loads}


def format_report(summary: dict[str, Any], meta: dict[str, Any]) -> str:
    out = [f"IPVS apply benchmark: guest kernel {meta['kernel']} under qemu TCG "
           f"({meta['vm_cpus']} vCPU, {meta['vm_memory_mb']} MiB), guest Python "
           f"{meta['python']}, {meta['servers']} real servers per service, tools "
           "alternating in order, every apply verified against /proc/net/ip_vs",
           "absolute times under TCG are meaningless; compare the ratios", "",
           f"{'size':>6}  {'tool':<16}{'n':>3}  {'median s':>9}  {'min s':>9}  "
           f"{'services/s':>10}   haguard parts (median s)"]
    for r in summary["rows"]:
        parts = (f"   dump {r['median_dump_s']:.3f} + plan {r['median_plan_s']:.3f} + "
                 f"apply {r['median_apply_s']:.2f} + record {r['median_record_s']:.2f}"
                 if r["tool"] == "haguard" else "")
        few = "*" if r["n"] < REPORTABLE_REPS else " "
        out.append(f"{r['size']:>6}  {r['tool']:<16}{r['n']:>3}{few} {r['median_s']:>9.2f}  "
                   f"{r['min_s']:>9.2f}  {r['services_per_s']:>10.1f}{parts}")
    if any(r["n"] < REPORTABLE_REPS for r in summary["rows"]):
        out.append(f"  * fewer than {REPORTABLE_REPS} runs: one run did not leave room for "
                   f"more in the time budget (--budget-s {meta['budget_s']:.0f}); indicative")
    out.append("")
    for r in summary["ratios"]:
        out.append(f"ratio haguard / ipvsadm-restore at {r['size']:>6}: "
                   f"{r['haguard_over_restore']:.2f}  (apply only: "
                   f"{r['apply_only_over_restore']:.2f})")
    d = summary["delta"]
    out += ["",
            f"one weight change on {d['size']} services, haguard dump + plan + apply + record "
            f"(n={d['n']}): median {d['median_s']:.2f} s, min {d['min_s']:.2f} s "
            f"(dump {d['median_dump_s']:.2f}, plan {d['median_plan_s']:.3f}, apply "
            f"{d['median_apply_s']:.3f}, record {d['median_record_s']:.2f})",
            f"  = {d['pct_of_full_haguard']:.1f} % of haguard's full apply, "
            f"{d['pct_of_full_restore']:.1f} % of ipvsadm-restore's; "
            f"`ipvsadm -e` for the same change: {d['ipvsadm_edit_median_s']:.3f} s",
            f"reading the whole {d['size']}-service table once (what any delta that reads "
            f"the kernel pays): haguard dump {d['median_dump_s']:.2f} s (above), "
            f"`ipvsadm -S -n` {d['reads']['ipvsadm_save_s']:.2f} s, /proc/net/ip_vs read + "
            f"parse {d['reads']['proc_parse_s']:.2f} s"]
    for way, shown, what, _ in ONE_CHANGE_WAYS:
        if f"{way}_n" in d:
            out.append(f"the same change with {shown} ({what}; n={d[f'{way}_n']}): median "
                       f"{d[f'{way}_median_s']:.3f} s, max {d[f'{way}_max_s']:.3f} s = "
                       f"{d[f'{way}_pct_of_full_haguard']:.2f} % of haguard's full apply")
    for load in summary.get("config_loads", []):
        out.append(f"loading the config that declares the {load['size']} services "
                   f"({load['bytes'] / 1e6:.1f} MB of YAML, not in any figure above): "
                   f"{load['total_s']:.2f} s = {load['pct_of_full_haguard']:.0f} % of "
                   f"haguard's full apply, {load['over_restore']:.2f} x ipvsadm-restore's")
    out.append("")
    t = summary["targets"]
    out.append(f"target full apply <= {t['full_ratio']['target']:.1f} x ipvsadm-restore: "
               f"worst {t['full_ratio']['worst']:.2f} x -> "
               f"{'MET' if t['full_ratio']['met'] else 'MISSED'}")
    out.append(f"target one-change delta <= {t['delta_pct']['target']:.0f} % of a full apply: "
               f"full reconcile (reads the whole table) {t['delta_pct']['value']:.1f} % -> "
               f"{'MET' if t['delta_pct']['met'] else 'MISSED'}")
    for way, _, _, short in ONE_CHANGE_WAYS:
        if f"{way}_delta_pct" in t:
            i = t[f"{way}_delta_pct"]
            out.append(f"{'':49}{short} {i['value']:.2f} % -> "
                       f"{'MET' if i['met'] else 'MISSED'}")
    out.append(f"host: {meta['host_cpus']} CPUs, load average {meta['load_avg_before'][0]:.2f} "
               f"before, {meta['load_avg_after'][0]:.2f} after (qemu TCG competes with "
               "whatever else runs; the alternating order spreads that over both tools)")
    over = meta["guest_wall_s"] > meta["budget_s"]
    out.append(f"wall time {meta['wall_s']:.0f} s (boot {meta['boot_s']:.0f} s, guest "
               f"{meta['guest_wall_s']:.0f} s"
               + (f", over the {meta['budget_s']:.0f} s budget: the budget only chooses "
                  "repetitions, every size is measured at least once)" if over else ")"))
    return "\n".join(out)


# =========================================================================== host side
def prerequisites() -> str | None:
    if os.geteuid() != 0:
        return "needs root (it downloads the kernel package and runs qemu)"
    for tool in ("qemu-system-x86_64", "cpio", "apt-get", "dpkg-deb", "depmod", "modprobe",
                 "ipvsadm"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed (see scripts/setup)"
    return None


def tail(path: str, stop: threading.Event, sink: Callable[[str], None]) -> None:
    """Echo the guest's progress file while the guest runs (it is in the shared dir)."""
    offset = 0
    while True:
        done = stop.is_set()  # read once more after the stop, for the last lines
        try:
            with open(path, encoding="utf-8", errors="replace") as fh:
                fh.seek(offset)
                data = fh.read()
                offset = fh.tell()
            for line in data.splitlines():
                sink(line)
        except FileNotFoundError:
            pass
        if done:
            return
        stop.wait(1.0)


def guest_argv(args: argparse.Namespace, python: str, progress: str) -> list[str]:
    argv = [python, str(Path(__file__).resolve()), "--guest", "--progress", progress,
            "--sizes", ",".join(map(str, args.sizes)), "--servers", str(args.servers),
            "--budget-s", str(args.budget_s), "--min-reps", str(args.min_reps),
            "--max-reps", str(args.max_reps), "--delta-reps", str(args.delta_reps)]
    if args.reps:
        argv += ["--reps", str(args.reps)]
    if args.profile:
        argv += ["--profile", str(args.profile)]
    return argv


def host_main(args: argparse.Namespace) -> int:
    from haguard.lab.vm import VM, prepare_kernel

    why = prerequisites()
    if why:
        print(f"bench/ipvs.py: {why}", file=sys.stderr)
        return 1
    started = time.monotonic()
    load_before = os.getloadavg()
    log = sys.stderr

    def say(line: str) -> None:
        print(line, file=log, flush=True)

    kernel = prepare_kernel()
    say(f"booting {kernel.version} under qemu TCG ...")
    with VM(kernel, memory_mb=args.memory_mb, cpus=args.cpus) as vm:
        say(f"booted in {vm.boot_seconds:.0f} s")
        progress = os.path.join(vm.work, "progress.log")
        stop = threading.Event()
        tailer = threading.Thread(target=tail, args=(progress, stop, say), daemon=True)
        tailer.start()
        try:
            result = vm.run(guest_argv(args, vm.python, progress), timeout=args.timeout)
        finally:
            stop.set()
            tailer.join()
        boot_s = vm.boot_seconds or 0.0
    if result.returncode != 0:
        say(f"the guest part failed (exit {result.returncode}):\n{result.stderr[-4000:]}")
        return 1
    guest = json.loads(result.stdout)
    meta = {"kernel": guest["kernel"], "python": guest["python"], "vm_cpus": args.cpus,
            "vm_memory_mb": args.memory_mb, "servers": args.servers, "reps": guest["reps"],
            "budget_s": args.budget_s,
            "host_kernel": platform.release(), "host_cpus": os.cpu_count(),
            "load_avg_before": load_before, "load_avg_after": os.getloadavg(),
            "boot_s": boot_s, "guest_wall_s": guest["guest_wall_s"],
            "wall_s": time.monotonic() - started}
    summary = summarize(guest)
    report = format_report(summary, meta)
    to_stdout = args.json != "-"
    print(report, file=sys.stdout if to_stdout else sys.stderr)
    size = guest["profile_size"]
    for part, what in (("apply", f"one haguard full apply of {size} services from empty"),
                       ("dump", f"haguard's dump of the {size}-service table it applied")):
        if part in guest["profile"]:
            print(f"\ncProfile of {what} (in the guest, not counted above):\n"
                  f"{guest['profile'][part]}",
                  file=sys.stdout if to_stdout else sys.stderr)
    if args.json:
        doc = {"meta": meta, "summary": summary, "samples": guest["samples"],
               "delta": guest["delta"], "config_loads": guest.get("config_loads", []),
               "profile": guest["profile"]}
        if args.json == "-":
            json.dump(doc, sys.stdout, indent=1)
            print()
        else:
            with open(args.json, "w", encoding="utf-8") as fh:
                json.dump(doc, fh, indent=1)
    return 0


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sizes", type=lambda v: [int(x) for x in v.split(",")],
                   default=[1000, 10000], help="services per table (default 1000,10000)")
    p.add_argument("--servers", type=int, default=4, help="real servers per service")
    p.add_argument("--reps", type=int, default=0,
                   help="repetitions per size and tool (default: as many as fit --budget-s, "
                        "within --min-reps..--max-reps)")
    p.add_argument("--min-reps", type=int, default=3)
    p.add_argument("--max-reps", type=int, default=7)
    p.add_argument("--budget-s", type=float, default=780,
                   help="guest time budget for choosing the repetitions (default 780 s, so "
                        "boot included the run stays under ~15 minutes)")
    p.add_argument("--delta-reps", type=int, default=5, help="one-weight changes to time")
    p.add_argument("--profile", type=int, default=0, metavar="SIZE",
                   help="also cProfile one haguard full apply of SIZE services (not counted "
                        "in the figures; under cProfile it takes about twice as long)")
    p.add_argument("--json", metavar="PATH",
                   help="every figure and sample as JSON ('-' for stdout; the table then "
                        "goes to stderr)")
    p.add_argument("--memory-mb", type=int, default=2048)
    p.add_argument("--cpus", type=int, default=2)
    p.add_argument("--timeout", type=float, default=3600, help="limit of the guest part (s)")
    p.add_argument("--guest", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--progress", help=argparse.SUPPRESS)
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    return guest_main(args) if args.guest else host_main(args)


if __name__ == "__main__":
    sys.exit(main())
