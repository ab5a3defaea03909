"""What each ``haguard`` command does: load, call the use case in app/, print, exit code.

Heavy modules are imported inside the command that needs them: ``haguard notify`` runs
on keepalived's failover path and every millisecond of start-up counts.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import TYPE_CHECKING, Any

from haguard.cli.output import emit, load
from haguard.errors import BadInput, ExitStatus

if TYPE_CHECKING:
    from haguard.core.events import OrderKey
    from haguard.core.ipvsconfig import ServiceKey


def cmd_check(args: argparse.Namespace) -> int:
    from haguard.adapters import keepalived
    from haguard.core.render import render

    config = load(args.config)
    result = keepalived.check_text(render(config))
    data: dict[str, Any] = {"config": config.path, "yaml": "ok",
                            "instances": [i.name for i in config.instances]}
    from haguard.core.vrrpconfig import vrrp_commands

    programs = vrrp_commands(config.scripts, config.instances)
    if config.ipvs is not None:
        from haguard.core.health import commands

        programs += commands(config.ipvs)
    # What keepalived and the agent will refuse to run, said before they start.
    unsafe = [f"{where}: {problem}" for where, program in programs
              for problem in keepalived.insecure_path_components(program)]
    if programs:
        data["script_security"] = unsafe
    if result is None:
        data["keepalived"] = "not installed: keepalived -t skipped"
    else:
        data["keepalived"] = "ok" if result.ok else "rejected"
        data["keepalived_exit"] = result.returncode
        data["complaints"] = list(result.complaints)
        data["expected_complaints"] = list(result.expected)
        data["hints"] = list(result.hints)

    def text(d: dict[str, Any]) -> str:
        lines = [f"{d['config']}: YAML ok ({len(d['instances'])} instance(s): "
                 f"{', '.join(d['instances'])})"]
        if result is None:
            lines.append("keepalived: not installed, keepalived -t skipped")
        elif result.ok:
            lines.append(f"keepalived -t: ok (exit {result.returncode}; expected: "
                         f"{'; '.join(result.expected) or 'none'})")
            lines += [f"note: {h}" for h in result.hints]
        else:
            lines.append(f"keepalived -t: rejected the rendered config (exit {result.returncode}):")
            lines += [f"  {c}" for c in result.complaints] or [f"  {result.output.strip()}"]
            lines += [f"hint: {h}" for h in result.hints]
        if unsafe:
            lines.append("script security: keepalived and the agent will refuse to run these "
                         "(they must be root's and writable by nobody else, with every "
                         "directory above):")
            lines += [f"  {u}" for u in unsafe]
        return "\n".join(lines)

    emit(data, args.json, text)
    if (result is not None and not result.ok) or unsafe:
        return ExitStatus.BAD_INPUT
    return ExitStatus.OK


def cmd_render(args: argparse.Namespace) -> int:
    from haguard.core.render import render

    text = render(load(args.config))
    if args.output:
        from haguard.adapters.files import write_atomic

        write_atomic(args.output, text)
        print(f"wrote {args.output}", file=sys.stderr)
    else:
        sys.stdout.write(text)
    return ExitStatus.OK


def cmd_migrate(args: argparse.Namespace) -> int:
    from haguard.app.migrate import migrate_file

    result = migrate_file(args.file, args.node)
    if args.output:
        from haguard.adapters.files import write_atomic

        write_atomic(args.output, result.text)
    else:
        sys.stdout.write(result.text)
    for finding in result.findings:
        print(finding, file=sys.stderr)
    for problem in result.problems:
        print(f"the YAML as written: {problem}", file=sys.stderr)
    decisions = sum(1 for f in result.findings if f.decision) + len(result.problems)
    where = f"wrote {args.output}" if args.output else "the YAML is on standard output"
    print(f"{where}; " + (f"{decisions} line(s) need a decision"
                          if decisions else "everything expressed"), file=sys.stderr)
    return ExitStatus.WARNINGS if decisions else ExitStatus.OK


def cmd_notify(args: argparse.Namespace) -> int:
    from haguard.adapters.process import own_order_key
    from haguard.core.events import parse_event

    # First: when keepalived forked us is the event's place in line. A detached STOP
    # hook hands over the key of the process keepalived forked.
    order = _order_from_env(os.environ.get("HAGUARD_ORDER")) or own_order_key()
    event = parse_event(args.type, args.name, args.state, args.priority)
    config = load(args.config)
    from haguard.adapters.host import Host
    from haguard.app.transition import handle_event

    if config.ipvs is not None:
        from haguard.app import ipvsops

        config = ipvsops.effective(config)
    with Host() as host:
        handle_event(config, event, order, host=host)
    return ExitStatus.OK


def _order_from_env(value: str | None) -> OrderKey | None:
    from haguard.core.events import OrderKey

    try:
        ticks, pid = (int(x) for x in (value or "").split(","))
    except ValueError:
        return None
    return OrderKey(ticks, pid)


def cmd_agent(args: argparse.Namespace) -> int:
    config = load(args.config)
    if args.unit:
        from haguard.adapters.systemd import agent_unit

        sys.stdout.write(agent_unit(config))
        return ExitStatus.OK
    from haguard.app.agent import serve

    return serve(config)


def cmd_lever(args: argparse.Namespace) -> int:
    from haguard.app import levers
    from haguard.core.leverrules import parse_ttl

    config = load(args.config)
    if args.lever == "undo" or getattr(args, "clear", False):
        lines = levers.undo(config, args.instance, args.reason or "promote --clear")
    elif args.lever == "demote":
        ttl = parse_ttl(args.ttl) if args.ttl else None
        lines = levers.demote(config, args.instance, reason=args.reason, ttl_s=ttl,
                              wait=args.wait, timeout=args.timeout, force=args.force)
    else:
        lines = levers.promote(config, args.instance, reason=args.reason, wait=args.wait,
                               timeout=args.timeout, force=args.force)
    print("\n".join(lines))
    return ExitStatus.OK


def cmd_failover_test(args: argparse.Namespace) -> int:
    from haguard.adapters.process import interrupt_on_termination
    from haguard.core.drillreport import format_text
    from haguard.lab import drill

    interrupt_on_termination()
    if args.interval_ms <= 0:
        raise BadInput(f"--interval-ms {args.interval_ms}: must be positive")
    if args.lab is not None:
        if args.probe_from or args.peer_wait is not None:
            raise BadInput("--probe-from and --peer-wait are for a live pair (-c); the lab "
                           "probes from its client namespace")
        report = drill.run(args.lab, method=args.method, port=args.port,
                           interval_ms=args.interval_ms, failback=args.failback, leave=args.leave)
    else:
        from haguard.app import livedrill

        if args.max_outage_ms is not None and not args.probe_from:
            raise BadInput("--max-outage-ms needs --probe-from on a live pair: the outage is "
                           "what the probes measure")
        config = load(args.config)
        report = livedrill.run(config, method=args.method, probe_from=args.probe_from,
                               port=args.port, interval_ms=args.interval_ms, leave=args.leave,
                               say=lambda s: print(s, file=sys.stderr, flush=True),
                               peer_wait_s=args.peer_wait)
    code = ExitStatus.OK
    if args.max_outage_ms is not None:
        outage = report.get("outage_ms")
        met = outage is not None and outage <= args.max_outage_ms
        report["slo"] = (f"SLO: outage {outage} ms <= {args.max_outage_ms:g} ms: "
                         + ("met" if met else "MISSED"))
        code = ExitStatus.OK if met else ExitStatus.FAILED
    emit(report, args.json, format_text)
    return code


def cmd_levers_expire(args: argparse.Namespace) -> int:
    from haguard.app.levers import expire_loop

    return expire_loop(load(args.config))


def cmd_announce_loop(args: argparse.Namespace) -> int:
    from haguard.adapters.host import Host
    from haguard.adapters.log import get_logger
    from haguard.app.transition import announce_loop

    config = load(args.config)
    order = _order_from_env(args.order)
    if order is None:
        raise BadInput(f"--order {args.order!r}: expected TICKS,PID")
    log = get_logger(config.node.log_file, quiet=True, node=config.node.name)
    with Host() as host:
        announce_loop(config, args.instance, order, log, args.since, host=host)
    return ExitStatus.OK


def cmd_doctor(args: argparse.Namespace) -> int:
    from haguard.app import doctor

    if args.wire_seconds is not None and not 0 <= args.wire_seconds <= 600:
        raise BadInput(f"--wire-seconds {args.wire_seconds:g}: must be 0-600")
    data = doctor.run(load(args.config), tuple(args.networkd_dir or doctor.NETWORKD_DIRS),
                      args.wire_seconds, args.skip_wire)
    emit(data, args.json, doctor.format_text)
    return int(data["exit_code"])


def cmd_status(args: argparse.Namespace) -> int:
    import time

    from haguard.app.status import collect, format_text
    from haguard.core.vrrp import advert_window

    config = load(args.config)
    wire_s = None
    if not args.no_wire:
        if os.geteuid() == 0:
            wire_s = args.wire_seconds if args.wire_seconds is not None else advert_window(config.instances)
        elif args.wire_seconds is not None:
            raise BadInput("--wire-seconds: listening for VRRP adverts needs root")
    while True:
        report = collect(config, wire_s)
        if wire_s is None and not args.no_wire:
            report["wire"] = "not checked: listening for VRRP adverts needs root"
        if args.watch and not args.json and sys.stdout.isatty():
            sys.stdout.write("\033[H\033[J")
        emit(report, args.json, format_text)
        code = ExitStatus.OK if report["healthy"] else ExitStatus.FAILED
        if not args.watch:
            return code
        sys.stdout.flush()
        time.sleep(args.watch)


def cmd_hooks_install(args: argparse.Namespace) -> int:
    from haguard.adapters import systemd
    from haguard.app.hooks import install

    target = args.dir
    config = None
    if target is None:
        if args.config is None:
            raise BadInput("hooks install: give --dir DIR or -c CONFIG (for keepalived.hooks_dir)")
        config = load(args.config)
        target = config.keepalived.hooks_dir
    for line in install(target):
        print(line)
    if not args.no_systemd:
        if args.unit_dir is not None or systemd.running():
            for line in systemd.install_keepalived_dropin(args.unit_dir or "/etc/systemd/system",
                                                          reload=systemd.running()):
                print(line)
        else:
            print("systemd is not running here: no keepalived.service drop-in written "
                  "(under systemd, KillMode=process is needed for the STOP hook)")
    if config is not None:
        from haguard.app.levers import ensure_lever_dir

        print(ensure_lever_dir(config))
    return ExitStatus.OK


def cmd_realserver(args: argparse.Namespace) -> int:
    from haguard.app import realserver

    config = load(args.config)
    realserver.role_of(config)
    if args.action == "status":
        data = realserver.status(config, args.unit_dir)
        emit(data, args.json, realserver.format_status)
        return ExitStatus.FAILED if data["problems"] else ExitStatus.OK
    lines = realserver.up(config) if args.action == "up" else realserver.down(config)
    if args.action == "up" and not args.no_persist:
        lines += realserver.install_unit(config, args.unit_dir)
    print("\n".join(lines) or "nothing to change")
    return ExitStatus.OK


def cmd_ipvs_diff(args: argparse.Namespace) -> int:
    from haguard.app import ipvsops
    from haguard.core.ipvsplan import describe

    plan = ipvsops.diff(ipvsops.effective(load(args.config)), only=_service_names(args.only))
    emit([describe(a) for a in plan], args.json, lambda _: ipvsops.format_plan(plan))
    return ExitStatus.FAILED if args.exit_code and plan else ExitStatus.OK


def cmd_ipvs_apply(args: argparse.Namespace) -> int:
    from haguard.app import agentapply, ipvsops

    config = load(args.config)
    pid = agentapply.agent_pid(config)
    if pid is not None:
        if args.only:
            raise BadInput(f"a haguard agent (pid {pid}) runs on this node and owns the "
                           "IPVS table: it applies the whole file when asked (`haguard ipvs "
                           "apply` without --only, or `systemctl reload haguard-agent`)")
        done = agentapply.apply(config, pid)
        emit(done, args.json, lambda d: "\n".join(d))
        return ExitStatus.OK
    config = ipvsops.effective(config)
    if args.only:
        done = ipvsops.apply_only(config, _service_names(args.only))
    else:
        done = ipvsops.apply(config, incremental=args.incremental)
    emit(done, args.json, lambda d: "\n".join(d) or "nothing to change")
    return ExitStatus.OK


def cmd_ipvs_lever(args: argparse.Namespace) -> int:
    from haguard.app import rslevers
    from haguard.core.leverrules import parse_ttl

    config = load(args.config)
    ttl = parse_ttl(args.ttl) if getattr(args, "ttl", None) else None
    if args.lever == "enable":
        lines = rslevers.enable(config, args.service, args.realserver, reason=args.reason)
    elif args.lever == "disable":
        lines = rslevers.pull(config, args.service, args.realserver, kind="disabled",
                              reason=args.reason, ttl_s=ttl)
    else:
        if args.remove and not args.wait:
            raise BadInput("--remove takes the real server out once it has no connections "
                           "left: it needs --wait")
        lines = rslevers.drain(config, args.service, args.realserver, reason=args.reason,
                               ttl_s=ttl, wait=args.wait, timeout_s=args.timeout,
                               remove=args.remove, say=lambda line: print(line, flush=True))
    print("\n".join(lines))
    return ExitStatus.OK


def _service_names(names: list[str] | None) -> tuple[ServiceKey, ...]:
    from haguard.core.ipvsconfig import SERVICE_NAME_FORMS, parse_service_name

    keys = []
    for name in names or ():
        key = parse_service_name(name)
        if key is None:
            raise BadInput(f"--only {name!r}: not a service name; write it as haguard prints "
                           f"it, e.g. {SERVICE_NAME_FORMS}")
        keys.append(key)
    return tuple(keys)


def cmd_ipvs_show(args: argparse.Namespace) -> int:
    from haguard.app import ipvsops

    data = ipvsops.show(load(args.config) if args.config else None)
    emit(data, args.json, ipvsops.format_show)
    return ExitStatus.OK


def cmd_ipvs_import(args: argparse.Namespace) -> int:
    from haguard.core.ipvsadm import dump_yaml, parse_save

    name = "<stdin>" if args.file == "-" else args.file
    try:
        text = sys.stdin.read() if args.file == "-" else open(args.file, encoding="utf-8").read()
    except OSError as exc:
        raise BadInput(f"{args.file}: cannot read: {exc.strerror}") from None
    from haguard.adapters.netdb import service_ports

    sys.stdout.write(dump_yaml(parse_save(text, name, service_ports())))
    return ExitStatus.OK


def cmd_ipvs_export(args: argparse.Namespace) -> int:
    from haguard.app import ipvsops
    from haguard.core.ipvsadm import format_save

    sys.stdout.write(format_save(ipvsops.settings(load(args.config)).services))
    return ExitStatus.OK
