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
  (dump + plan + a single SetDest), against the full apply; ``ipvsadm -e`` for reference.

The tables use the benchmarking range 198.18.0.0/15 (RFC 2544); no packet is sent.
Under qemu TCG absolute times are meaningless: the ratios are what count.

Run as root, from the checkout:  sudo .venv/bin/python bench/ipvs.py
"""

from __future__ import annotations

import argparse
import cProfile
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
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Callable, TextIO

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # `python bench/ipvs.py` puts bench/, not the checkout, first

from haguard.core.ipvsadm import format_save  # noqa: E402
from haguard.core.ipvsconfig import RealServer, ServiceKey, VirtualService  # noqa: E402

TOOLS = ("haguard", "ipvsadm-restore")
# Targets from the issue: a full apply no slower than ipvsadm-restore, and a one-weight
# change costing at most 5 % of a full apply of the same (10,000-service) table.
TARGET_FULL_RATIO = 1.0
TARGET_DELTA_PCT = 5.0
VIP_BASE = int(ipaddress.IPv4Address("198.18.0.0"))
RS_BASE = int(ipaddress.IPv4Address("198.19.0.0"))
PORT = 80
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


def clear() -> None:
    """Empty the table (benchmark only: this is the guest's throwaway kernel)."""
    ipvsadm("-C")
    if kernel_table():
        raise SystemExit("ipvsadm -C left services behind")


def haguard_apply(services: tuple[VirtualService, ...]) -> dict[str, Any]:
    """What `haguard ipvs apply` does with the kernel: open, dump, plan, apply; timed."""
    from haguard.adapters.ipvs import Ipvs
    from haguard.core.ipvsplan import plan_reconcile

    t0 = time.perf_counter()
    with Ipvs() as ipvs:
        observed = ipvs.dump()
        t1 = time.perf_counter()
        plan = plan_reconcile(services, observed)
        t2 = time.perf_counter()
        ipvs.apply(plan)
        t3 = time.perf_counter()
    return {"total_s": t3 - t0, "dump_s": t1 - t0, "plan_s": t2 - t1, "apply_s": t3 - t2,
            "actions": len(plan), "kinds": sorted({type(a).__name__ for a in plan})}


def restore_apply(save_file: str) -> dict[str, Any]:
    """`ipvsadm -R < save_file`, the whole process (that is what ipvsadm-restore is)."""
    with open(save_file, encoding="ascii") as fh:
        t0 = time.perf_counter()
        ipvsadm("-R", stdin=fh)
        t1 = time.perf_counter()
    return {"total_s": t1 - t0}


class Guest:
    """The measurements, in the guest; progress lines go to a file the host tails."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.progress: TextIO = open(args.progress, "a", encoding="utf-8") if args.progress \
            else sys.stderr
        self.sizes: list[int] = sorted(args.sizes)
        self.tables = {n: make_services(n, args.servers) for n in self.sizes}
        self.save_files: dict[int, str] = {}
        self.samples: list[dict[str, Any]] = []

    def say(self, text: str) -> None:
        self.progress.write(f"[guest {time.strftime('%H:%M:%S')}] {text}\n")
        self.progress.flush()

    def setup(self) -> None:
        # Load the modules and warm the imports up front so the first timed run does
        # not pay for them (ipvsadm would autoload the scheduler inside its timing).
        for module in ("ip_vs", "ip_vs_wrr"):
            subprocess.run(["modprobe", module], check=True)
        from haguard.adapters.ipvs import Ipvs

        with Ipvs() as ipvs:
            ipvs.dump()
        os.makedirs("/tmp/haguard-bench-ipvs", exist_ok=True)
        for n, services in self.tables.items():
            path = f"/tmp/haguard-bench-ipvs/{n}.save"
            with open(path, "w", encoding="ascii") as fh:
                fh.write(format_save(services))
            self.save_files[n] = path
        small = make_services(10, self.args.servers)  # one small round trip of each tool
        for run in (lambda: haguard_apply(small),
                    lambda: restore_apply(self._write_small(small))):
            clear()
            run()
            verify(small, "warm-up")
        clear()

    def _write_small(self, services: tuple[VirtualService, ...]) -> str:
        path = "/tmp/haguard-bench-ipvs/warmup.save"
        with open(path, "w", encoding="ascii") as fh:
            fh.write(format_save(services))
        return path

    def measure(self, size: int, tool: str, rep: int) -> dict[str, Any]:
        clear()
        services = self.tables[size]
        result = haguard_apply(services) if tool == "haguard" \
            else restore_apply(self.save_files[size])
        started = time.perf_counter()
        counts = verify(services, f"{tool} {size}")
        sample = {"size": size, "tool": tool, "rep": rep, **result, **counts,
                  "verify_s": time.perf_counter() - started}
        self.samples.append(sample)
        self.say(f"rep {rep} {tool:<15} {size:>6} services: {result['total_s']:8.2f} s "
                 f"(verified {counts['services']} services, {counts['dests']} dests)")
        return sample

    def one_rep(self, rep: int) -> float:
        """Every size with both tools; the tools swap order every repetition."""
        started = time.perf_counter()
        order = TOOLS if rep % 2 == 0 else TOOLS[::-1]
        for size in self.sizes:
            for tool in order:
                self.measure(size, tool, rep)
        return time.perf_counter() - started

    def repetitions(self, first_rep_s: float, started: float) -> int:
        """How many repetitions fit the time budget (at least --min-reps)."""
        if self.args.reps:
            return int(self.args.reps)
        # The delta and the profile cost about one 10k haguard apply each, plus margin.
        biggest = max(s["total_s"] for s in self.samples if s["tool"] == "haguard")
        reserve = biggest * (2 + (1 if self.args.profile else 0)) + 30
        left = self.args.budget_s - (time.perf_counter() - started) - reserve
        fit = 1 + int(max(left, 0) // first_rep_s)
        reps = max(self.args.min_reps, min(fit, self.args.max_reps))
        self.say(f"one repetition took {first_rep_s:.0f} s; {reps} repetitions "
                 f"({fit} fit the {self.args.budget_s:.0f} s budget)")
        return reps

    def delta(self, size: int) -> dict[str, Any]:
        """One weight changed on the ``size`` table applied by haguard."""
        services = list(self.tables[size])
        clear()
        haguard_apply(tuple(services))
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
                     f"apply {result['apply_s']:.3f})")
            # ipvsadm -e for reference: the same server back to the weight it just had
            # in the desired table, then forward again, so the table stays as desired.
            edits.append(self._ipvsadm_edit(svc.key, changed, changed.weight + 1))
            ipvsadm("-e", "-t", f"{svc.key.address}:{svc.key.port}", "-r",
                    f"{changed.address}:{changed.port}", "-g", "-w", str(changed.weight))
        verify(tuple(services), "after the weight changes")
        return {"size": size, "haguard": samples, "ipvsadm_edit_s": edits}

    @staticmethod
    def _ipvsadm_edit(key: ServiceKey, rs: RealServer, weight: int) -> float:
        t0 = time.perf_counter()
        ipvsadm("-e", "-t", f"{key.address}:{key.port}", "-r", f"{rs.address}:{rs.port}",
                "-g", "-w", str(weight))
        return time.perf_counter() - t0

    def profile(self, size: int) -> str:
        """cProfile of one haguard full apply of ``size`` (not counted in the figures)."""
        clear()
        profiler = cProfile.Profile()
        profiler.enable()
        haguard_apply(self.tables[size])
        profiler.disable()
        verify(self.tables[size], "profiled apply")
        out = io.StringIO()
        stats = pstats.Stats(profiler, stream=out)
        stats.sort_stats("tottime").print_stats(15)
        stats.sort_stats("cumulative").print_stats(15)
        return out.getvalue()

    def run(self) -> dict[str, Any]:
        started = time.perf_counter()
        self.say(f"kernel {os.uname().release}; tables {self.sizes} x {self.args.servers}")
        self.setup()
        first = self.one_rep(0)
        reps = self.repetitions(first, started)
        for rep in range(1, reps):
            self.one_rep(rep)
        delta = self.delta(max(self.sizes))
        prof = self.profile(max(self.sizes)) if self.args.profile else ""
        clear()
        return {"kernel": os.uname().release, "python": platform.python_version(),
                "cpus": os.cpu_count(), "reps": reps, "samples": self.samples,
                "delta": delta, "profile": prof,
                "guest_wall_s": time.perf_counter() - started}


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
                for part in ("dump_s", "plan_s", "apply_s"):
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
                 "pct_of_full_haguard": 100 * _median(d_total) / full,
                 "pct_of_full_restore": 100 * _median(d_total)
                 / medians[(delta["size"], "ipvsadm-restore")],
                 "ipvsadm_edit_median_s": _median(delta["ipvsadm_edit_s"])}
    worst = max(r["haguard_over_restore"] for r in ratios)
    targets = {"full_ratio": {"target": TARGET_FULL_RATIO, "worst": worst,
                              "met": worst <= TARGET_FULL_RATIO},
               "delta_pct": {"target": TARGET_DELTA_PCT,
                             "value": delta_row["pct_of_full_haguard"],
                             "met": delta_row["pct_of_full_haguard"] <= TARGET_DELTA_PCT}}
    return {"rows": rows, "ratios": ratios, "delta": delta_row, "targets": targets}


def format_report(summary: dict[str, Any], meta: dict[str, Any]) -> str:
    out = [f"IPVS apply benchmark: guest kernel {meta['kernel']} under qemu TCG "
           f"({meta['vm_cpus']} vCPU, {meta['vm_memory_mb']} MiB), guest Python "
           f"{meta['python']}, {meta['servers']} real servers per service, "
           f"{meta['reps']} repetitions, tools alternating",
           "absolute times under TCG are meaningless; compare the ratios", "",
           f"{'size':>6}  {'tool':<16}{'n':>3}  {'median s':>9}  {'min s':>9}  "
           f"{'services/s':>10}   haguard parts (median s)"]
    for r in summary["rows"]:
        parts = (f"   dump {r['median_dump_s']:.3f} + plan {r['median_plan_s']:.3f} + "
                 f"apply {r['median_apply_s']:.2f}" if r["tool"] == "haguard" else "")
        out.append(f"{r['size']:>6}  {r['tool']:<16}{r['n']:>3}  {r['median_s']:>9.2f}  "
                   f"{r['min_s']:>9.2f}  {r['services_per_s']:>10.0f}{parts}")
    out.append("")
    for r in summary["ratios"]:
        out.append(f"ratio haguard / ipvsadm-restore at {r['size']:>6}: "
                   f"{r['haguard_over_restore']:.2f}  (apply only: "
                   f"{r['apply_only_over_restore']:.2f})")
    d = summary["delta"]
    out += ["",
            f"one weight change on {d['size']} services, haguard dump + plan + apply "
            f"(n={d['n']}): median {d['median_s']:.2f} s, min {d['min_s']:.2f} s "
            f"(dump {d['median_dump_s']:.2f}, plan {d['median_plan_s']:.3f}, apply "
            f"{d['median_apply_s']:.3f})",
            f"  = {d['pct_of_full_haguard']:.1f} % of haguard's full apply, "
            f"{d['pct_of_full_restore']:.1f} % of ipvsadm-restore's; "
            f"`ipvsadm -e` for the same change: {d['ipvsadm_edit_median_s']:.3f} s", ""]
    t = summary["targets"]
    out.append(f"target full apply <= {t['full_ratio']['target']:.1f} x ipvsadm-restore: "
               f"worst {t['full_ratio']['worst']:.2f} x -> "
               f"{'MET' if t['full_ratio']['met'] else 'MISSED'}")
    out.append(f"target one-change delta <= {t['delta_pct']['target']:.0f} % of a full apply: "
               f"{t['delta_pct']['value']:.1f} % -> "
               f"{'MET' if t['delta_pct']['met'] else 'MISSED'}")
    out.append(f"wall time {meta['wall_s']:.0f} s (boot {meta['boot_s']:.0f} s, guest "
               f"{meta['guest_wall_s']:.0f} s)")
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
        argv.append("--profile")
    return argv


def host_main(args: argparse.Namespace) -> int:
    from haguard.lab.vm import VM, prepare_kernel

    why = prerequisites()
    if why:
        print(f"bench/ipvs.py: {why}", file=sys.stderr)
        return 1
    started = time.monotonic()
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
            "host_kernel": platform.release(), "host_cpus": os.cpu_count(),
            "load_avg": os.getloadavg(), "boot_s": boot_s, "guest_wall_s": guest["guest_wall_s"],
            "wall_s": time.monotonic() - started}
    summary = summarize(guest)
    report = format_report(summary, meta)
    to_stdout = args.json != "-"
    print(report, file=sys.stdout if to_stdout else sys.stderr)
    if guest["profile"]:
        print(f"\ncProfile of one haguard full apply of {max(args.sizes)} services "
              f"(in the guest, not counted above):\n{guest['profile']}",
              file=sys.stdout if to_stdout else sys.stderr)
    if args.json:
        doc = {"meta": meta, "summary": summary, "samples": guest["samples"],
               "delta": guest["delta"], "profile": guest["profile"]}
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
    p.add_argument("--profile", action="store_true",
                   help="also cProfile one haguard full apply of the largest table")
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
