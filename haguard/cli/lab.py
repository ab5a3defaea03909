"""`haguard lab`: argument spec and the up / down / status / failover / run commands."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from typing import Any

from haguard.adapters.process import interrupt_on_termination

DEFAULT_LAB_CONFIG = "conf/lab.yaml"

LAB_HELP = """\
The lab builds the director pair in network namespaces on this machine: a switch
(a Linux bridge), a client and two directors, each running the real keepalived with
the config haguard renders and haguard's hooks. Give it your own config to rehearse
a change: with one file the peer is derived (priority 50 lower, state BACKUP); with
two, both are used as written. Unicast peers are rewritten to the lab's addresses;
only net.ipv4/net.ipv6 sysctls are applied (they are per namespace).

  haguard lab run                      up, wait for a MASTER, fail over, timeline, down
  haguard lab run --kernel vm -c conf/lab-dr.yaml
                                       the same inside a real Debian kernel with IPVS:
                                       real servers answer HTTP through the VIP
  haguard lab up -c lb1.yaml           build it and leave it running
  haguard lab status                   who is MASTER, who holds the VIPs
  haguard lab failover                 stop the MASTER's keepalived, print the timeline
  haguard lab restore                  start it again (and plug pulled links back in)
  haguard lab down                     remove everything the lab made

Needs root. Addresses: 192.0.2.0/24, 198.51.100.0/24, 203.0.113.0/24, 2001:db8::/32.
Files: /run/haguard-lab/NAME/ (configs, keepalived.conf, logs, state).
"""


def _default_config() -> str:
    """conf/lab.yaml here, else the checkout's, else the installed package's copy."""
    checkout = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(
        os.path.abspath(__file__)))), DEFAULT_LAB_CONFIG)
    installed = os.path.join(sys.prefix, "share", "haguard", DEFAULT_LAB_CONFIG)
    for candidate in (DEFAULT_LAB_CONFIG, checkout, installed):
        if os.path.exists(candidate):
            return candidate
    return DEFAULT_LAB_CONFIG       # missing: the error names the path it was given


def add_lab_parser(sub: Any) -> None:
    p = sub.add_parser("lab", help="the director pair in network namespaces, with failover",
                       description=LAB_HELP, formatter_class=argparse.RawDescriptionHelpFormatter)
    lsub = p.add_subparsers(dest="lab_command", metavar="ACTION", required=True,
                            parser_class=type(p))

    def common(q: argparse.ArgumentParser, configs: bool = True) -> None:
        q.add_argument("--name", default="haguard", help="lab name (default: haguard); "
                       "labs with different names can run side by side")
        if configs:
            q.add_argument("-c", "--config", action="append", metavar="FILE",
                           help=f"director config; give it twice for two directors "
                           f"(default: {DEFAULT_LAB_CONFIG})")
            q.add_argument("--agent", action="store_true",
                           help="run `haguard agent` on the directors (keepalived's notify "
                           "FIFO) even when the config has no `agent:` section")

    q = lsub.add_parser("up", help="build the lab and leave it running")
    common(q)
    q.set_defaults(func=cmd_up)
    q = lsub.add_parser("down", help="remove everything the lab made")
    common(q, configs=False)
    q.set_defaults(func=cmd_down)
    q = lsub.add_parser("restore", help="restart stopped keepalived, plug pulled links back in",
                        description="Undo a failover drill: start keepalived again on each "
                        "director where it is not running and bring every switch port up.")
    common(q, configs=False)
    q.set_defaults(func=cmd_restore)
    q = lsub.add_parser("status", help="each director's state and VIPs")
    common(q, configs=False)
    q.add_argument("--json", action="store_true")
    q.set_defaults(func=cmd_status)
    for action, helptext in (("failover", "fail the MASTER over and print the timeline"),
                             ("run", "up, wait for a MASTER, fail over, print the timeline, down")):
        q = lsub.add_parser(action, help=helptext, description=helptext)
        common(q, configs=(action == "run"))
        q.add_argument("--method", choices=("stop", "kill", "link"), default="stop",
                       help="stop: SIGTERM the MASTER's keepalived (default); kill: SIGKILL it; "
                       "link: pull its cable at the switch")
        q.add_argument("--ping-interval-ms", type=int, default=10, metavar="MS",
                       help="client ping interval for the outage measurement (default 10)")
        q.add_argument("--json", action="store_true", help="print the timeline as JSON")
        if action == "run":
            q.add_argument("--kernel", choices=("host", "vm"), default="host",
                           help="host: this machine's kernel (default); vm: boot the Debian "
                           "kernel under qemu and run the lab inside it, for what the host "
                           "kernel lacks (IPVS). Slow under emulation; ratios, not absolutes")
        q.set_defaults(func=cmd_failover if action == "failover" else cmd_run)


def _say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def _runner(args: argparse.Namespace) -> Any:
    from haguard.lab.runner import LabRunner, load_lab

    sources = args.config or [_default_config()]
    lab, _ = load_lab(args.name, sources, agent=getattr(args, "agent", False))
    return LabRunner(lab, sources, _say)


def cmd_up(args: argparse.Namespace) -> int:
    from haguard.lab.runner import teardown

    runner = _runner(args)
    interrupt_on_termination()
    runner.claim()
    try:
        runner.up()
        master = runner.wait_for_master()
    except BaseException:
        _say("lab up failed; removing what was made")
        for line in teardown(args.name):
            _say(f"  {line}")
        raise
    _say(f"{master} is MASTER and holds {', '.join(runner.lab.vips)}")
    return 0


def cmd_down(args: argparse.Namespace) -> int:
    from haguard.lab.runner import require_root, teardown

    require_root()
    lines = teardown(args.name)
    for line in lines:
        print(line)
    if not lines:
        print(f"lab {args.name}: nothing to remove")
    return 0


def cmd_restore(args: argparse.Namespace) -> int:
    from haguard.lab.runner import LabRunner

    lines = LabRunner.attach(args.name).restore()
    print("\n".join(lines) or "every director's keepalived is running")
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    from haguard.lab.runner import LabRunner

    runner = LabRunner.attach(args.name)
    states = runner.states()
    master = runner.master()
    if args.json:
        print(json.dumps({"lab": args.name, "master": master, "directors": states}, indent=2,
                         sort_keys=True))
    else:
        for node, s in states.items():
            pid = s["keepalived_pid"]
            print(f"{node}: keepalived {'pid ' + str(pid) if pid else 'NOT running'}")
            for name, i in s["instances"].items():
                print(f"  {name}: {i['state'] or 'no state recorded'}; VIPs present: "
                      f"{', '.join(i['vips_present']) or 'none'}")
        print(f"MASTER: {master or 'none (or more than one)'}")
    return 0 if master else 1


def _drill(runner: Any, args: argparse.Namespace) -> int:
    from haguard.lab.timeline import format_timeline

    master = runner.wait_for_master()
    for vip in runner.lab.vips:  # the client learns the current owner the normal way
        runner.client_ping(vip)
    http_before = runner.client_fetch()
    ping_target = next((v for v in runner.lab.vips if ":" not in v), runner.lab.vips[0])
    probe_file = os.path.join(runner.lab.workdir, f"probe-{int(time.time())}.jsonl")
    probe = runner.start_probe(probe_file, ping_target, args.ping_interval_ms)
    try:
        time.sleep(0.5)
        _say(f"failing over {master} ({args.method}) ...")
        timeline = runner.failover(probe_file, args.ping_interval_ms, args.method)
    finally:
        runner.stop_probe(probe)
    http_after = runner.client_fetch()
    ok = timeline.learned_from_announcement and (http_after is None or http_after["failed"] == 0)
    if args.json:
        print(json.dumps({**timeline.as_dict(), "http_before": http_before,
                          "http_after": http_after}, indent=2, sort_keys=True))
    else:
        print(format_timeline(timeline))
        for when, result in (("before", http_before), ("after", http_after)):
            if result is not None:
                counts = ", ".join(f"{k} {v}" for k, v in sorted(result["counts"].items()))
                print(f"HTTP through the VIP {when} the failover: {counts or 'nothing'}; "
                      f"{result['failed']} failed")
    return 0 if ok else 1


def cmd_failover(args: argparse.Namespace) -> int:
    from haguard.lab.runner import LabRunner

    runner = LabRunner.attach(args.name, _say)
    return _drill(runner, args)


def guest_run_argv(args: argparse.Namespace, python: str) -> list[str]:
    """The `haguard lab run` the guest runs: this one's options, the kernel left out."""
    configs = [os.path.abspath(c) for c in (args.config or [_default_config()])]
    argv = [python, "-m", "haguard", "lab", "run", "--name", args.name, "--method",
            args.method, "--ping-interval-ms", str(args.ping_interval_ms)]
    for config in configs:
        argv += ["-c", config]
    if args.json:
        argv.append("--json")
    if args.agent:
        argv.append("--agent")
    return argv


def _run_in_vm(args: argparse.Namespace) -> int:
    import sys as _sys

    from haguard.lab.runner import require_root
    from haguard.lab.vm import VM, prepare_kernel

    require_root()
    interrupt_on_termination()  # the VM's context manager powers it off
    argv = guest_run_argv(args, _sys.executable)
    _say("preparing the Debian kernel (cached after the first time) ...")
    kernel = prepare_kernel()
    _say(f"booting {kernel.version} under qemu (no KVM needed) ...")
    with VM(kernel) as vm:
        _say(f"booted in {vm.boot_seconds:.0f} s; running the lab inside (slow under emulation)")
        result = vm.run(argv, timeout=3600)
    _sys.stdout.write(result.stdout)
    _sys.stderr.write(result.stderr)
    return result.returncode


def cmd_run(args: argparse.Namespace) -> int:
    if args.kernel == "vm":
        return _run_in_vm(args)
    runner = _runner(args)
    interrupt_on_termination()
    runner.claim()
    try:
        runner.up()
        return _drill(runner, args)
    finally:
        for line in runner.down():
            _say(f"  {line}")
