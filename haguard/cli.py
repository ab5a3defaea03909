"""The ``haguard`` command: argument spec, exit codes, text and --json output.

Exit codes: 0 success, 1 an operation failed, 2 bad input (nothing was changed).
Heavy modules are imported inside the command that needs them: ``haguard notify`` runs
on keepalived's failover path and every millisecond of start-up counts.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import TYPE_CHECKING, Any, Callable, Sequence

from haguard import __version__
from haguard.errors import EXIT_BAD_INPUT, EXIT_FAILED, EXIT_OK, BadInput, ConfigError, HaguardError

if TYPE_CHECKING:
    from haguard.core.ipvsconfig import ServiceKey

DEFAULT_CONFIG = "/etc/haguard/haguard.yaml"

DESCRIPTION = """\
haguard makes a pair of Linux LVS directors highly available with keepalived.
keepalived runs VRRP and decides who is MASTER; haguard renders its config, and on
every state change adds or removes the VIPs, announces them (gratuitous ARP, unsolicited
NA) and records the state.

Typical use:
  haguard check  -c /etc/haguard/lb1.yaml          validate the YAML and keepalived -t
  haguard render -c /etc/haguard/lb1.yaml -o /etc/keepalived/keepalived.conf
  haguard hooks install -c /etc/haguard/lb1.yaml   put the notify hook where keepalived wants it
  haguard agent  -c /etc/haguard/lb1.yaml          apply keepalived's events (production mode)
  haguard status -c /etc/haguard/lb1.yaml          what this node is and holds, and the wire
  haguard doctor -c /etc/haguard/lb1.yaml          find the mistakes that break failover
  haguard demote -c /etc/haguard/lb1.yaml --reason "kernel update" --ttl 1h --wait
  haguard lab run                                  watch a failover in network namespaces

Exit codes: 0 ok, 1 an operation failed or a problem was found, 2 bad input (nothing
was changed), 3 doctor found warnings only.
"""


DOCTOR_HELP = """\
A preflight for a director (or real server): finds the mistakes that break failover
before they bite. For each finding: what was found, why it matters, how to fix it.

Checks:
  keepalived-test    keepalived -t accepts haguard's rendering of this config
  keepalived-conf    keepalived.conf on disk is that rendering (not stale)
  script-security    the notify hook (and every script keepalived.conf names) exists
                     and every path component is root-owned and not group/world
                     writable; enable_script_security is on
  nopreempt-weight   no nopreempt instance relies on a weighted track_* (never moves)
  networkd           systemd-networkd does not manage a VRRP interface without
                     KeepConfiguration=static (it deletes the VIPs on restart)
  sysctl             the sysctls haguard applies exist and are set already
  ip_vs              with an ipvs: section, the ip_vs module is loaded or loadable
  realserver         a real server holds its VIPs as /32 (/128), not lo:1 .../24
  duplicate-address  no host other than the MASTER answers ARP for a VIP
  vrid-collision     no foreign VRRP router advertises one of our VRIDs

Exit codes: 0 nothing worse than info, 1 at least one error, 3 warnings but no
error, 2 bad input (the config itself did not load).
"""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> Any:  # argparse's own exit code is 2 as well
        self.print_usage(sys.stderr)
        self.exit(EXIT_BAD_INPUT, f"{self.prog}: error: {message}\n")


def _add_config(p: argparse.ArgumentParser) -> None:
    p.add_argument("-c", "--config", default=os.environ.get("HAGUARD_CONFIG", DEFAULT_CONFIG),
                   metavar="FILE", help=f"node config (default: $HAGUARD_CONFIG or {DEFAULT_CONFIG})")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="haguard", description=DESCRIPTION,
                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"haguard {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True,
                                parser_class=_Parser)

    p = sub.add_parser("check", help="validate a config (and keepalived -t its rendering)",
                       description="Validate the YAML completely and, when keepalived is "
                       "installed, run `keepalived -t` on the rendered config. keepalived's "
                       "'No VIP specified' complaint is expected (haguard owns the VIPs) and "
                       "not an error; any other complaint is.")
    _add_config(p)
    p.add_argument("--json", action="store_true", help="machine-readable result")
    p.set_defaults(func=cmd_check)

    p = sub.add_parser("render", help="write keepalived.conf from the config",
                       description="Render keepalived.conf: one vrrp_instance per instance, "
                       "a notify hook carrying this config's path, no virtual_ipaddress.")
    _add_config(p)
    p.add_argument("-o", "--output", metavar="PATH",
                   help="write here (atomically) instead of standard output")
    p.set_defaults(func=cmd_render)

    from haguard.lab.cli import add_lab_parser

    add_lab_parser(sub)

    p = sub.add_parser("notify", help="apply a keepalived state change (called by the hook)",
                       description="Apply one keepalived event. The hook calls this with the "
                       "words keepalived passes: TYPE NAME STATE [PRIORITY], e.g. "
                       "`haguard notify -c lb1.yaml INSTANCE VI_1 MASTER 150`.")
    _add_config(p)
    p.add_argument("type", metavar="TYPE", help="INSTANCE (GROUP events are logged, ignored)")
    p.add_argument("name", metavar="NAME", help="vrrp_instance name")
    p.add_argument("state", metavar="STATE", help="MASTER, BACKUP, FAULT, STOP or DELETED")
    p.add_argument("priority", metavar="PRIORITY", nargs="?", help="priority keepalived reports")
    p.set_defaults(func=cmd_notify)

    p = sub.add_parser(
        "agent", help="apply keepalived's events from its notify FIFO (production mode)",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="""\
Run until stopped, applying keepalived's VRRP events in the order keepalived wrote them
to its notify FIFO (the config's `agent:` section; `haguard render` adds
`vrrp_notify_fifo` to keepalived.conf). Compared with the hooks alone:
  - events are applied strictly in order, an overtaken one is skipped;
  - a takeover costs a netlink call and a frame: no process start on the failover path;
  - the state is re-asserted when keepalived reloads and on MASTER_RX_LOWER_PRI;
  - when keepalived's VRRP process ends without a STOP (SIGKILL, crash, OOM) the VIPs
    are removed at once, so the surviving peer is their only owner;
  - on start it applies what it missed and re-asserts the rest (no blip on restart).
The hooks stay configured: while the agent runs they hand events to it; when it does not
they do the work (fallback). Stopping the agent leaves the VIPs as they are.

Run it under systemd: `haguard agent -c FILE --unit` prints a unit to install.""")
    _add_config(p)
    p.add_argument("--unit", action="store_true",
                   help="print a systemd unit (haguard-agent.service) for this config and exit")
    p.set_defaults(func=cmd_agent)

    for action, helptext, description in (
            ("demote", "hand this node's MASTER role over (keepalived track file, FAULT)",
             "Put each instance (all, or --instance) in FAULT through its demote track file: "
             "keepalived sends priority 0 and the peer takes over at once. A peer must "
             "answer within 3 x advert_int + 1 s, or the demotion is undone (exit 1) so the "
             "instance keeps a MASTER; --force demotes anyway. --ttl makes it expire by "
             "itself (the expiry is on disk: it survives restarts). Every action goes to "
             "lever_dir/audit.log and syslog with who and --reason."),
            ("promote", "take the MASTER role where preemption allows it",
             "Raise this node's priority (priority track file) just above what the current "
             "MASTER advertises, so keepalived preempts. With nopreempt that cannot work: "
             "promote refuses, changes nothing and prints what to run on the MASTER "
             "instead (exit 1). --clear removes the levers (same as `haguard undo`).")):
        p = sub.add_parser(action, help=helptext, description=description)
        _add_config(p)
        p.add_argument("--instance", action="append", metavar="NAME",
                       help="only this instance (repeatable; default: all)")
        p.add_argument("--reason", default="", help="why (required; goes to the audit log)")
        p.add_argument("--wait", action="store_true",
                       help="block until the VIPs are observed on the new MASTER")
        p.add_argument("--timeout", type=float, default=30.0, metavar="S",
                       help="for --wait (default 30 s); exit 1 when it runs out")
        p.add_argument("--force", action="store_true",
                       help="skip the safety checks (a warning says which)")
        if action == "demote":
            p.add_argument("--ttl", metavar="DURATION",
                           help="undo by itself after this long: 90s, 30m, 1h30m")
        else:
            p.add_argument("--clear", action="store_true", help="remove the levers instead")
        p.set_defaults(func=cmd_lever, lever=action)
    p = sub.add_parser(
        "failover-test", help="a measured failover drill (a live pair, or the lab)",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="""\
Fail the MASTER over and measure it.

On a live pair, run it on the MASTER: haguard failover-test -c FILE [--probe-from NETNS]
It checks this node is the healthy MASTER of every instance (keepalived running, VIPs
here, no lever pulled, one MASTER on the wire), triggers the failover, and reports
from this node's log and the wire: trigger, this node leaving MASTER (priority 0
advert, VIPs removed), the new MASTER's first advert, its first gratuitous ARP /
unsolicited NA. With --probe-from, probes run in that network namespace of this host
(one that reaches the VIP as clients do): ICMP and a TCP connect to VIP:port every
--interval-ms, long-lived HTTP connections opened before. If no peer takes over within
--peer-wait (default 3 x advert_int + 1 s) the trigger is undone and the drill
fails (exit 1).

On the lab: haguard failover-test --lab NAME; both directors are watched and the
client namespace probes.

--method demote pulls the demote lever; stop stops keepalived (systemctl on a live
pair, SIGTERM in the lab). The trigger is undone afterwards (lever cleared, keepalived
started), also when the drill fails or is interrupted, unless --leave; where the
instances preempt, the old MASTER takes over again and that is timed (failback).
--max-outage-ms turns the drill into an SLO gate: exit 1 when the outage is longer.""")
    target = p.add_mutually_exclusive_group(required=True)
    target.add_argument("-c", "--config", metavar="FILE",
                        help="this director's config: drill the live pair from here")
    target.add_argument("--lab", metavar="NAME",
                        help="the lab to drill (`haguard lab up --name NAME`)")
    p.add_argument("--probe-from", metavar="NETNS",
                   help="live pair: run the client probes in this network namespace")
    p.add_argument("--peer-wait", type=float, metavar="S",
                   help="live pair: how long the peer has to advertise as MASTER once the "
                   "trigger is done (default 3 x advert_int + 1 s; more on slow machines)")
    p.add_argument("--method", choices=("demote", "stop"), default="demote")
    p.add_argument("--port", type=int, help="TCP port probed on the VIP (default: the first "
                   "TCP service of the ipvs section)")
    p.add_argument("--interval-ms", type=int, default=10, metavar="MS")
    p.add_argument("--max-outage-ms", type=float, metavar="N")
    p.add_argument("--failback", action="store_true",
                   help="lab: after restoring, wait for the old MASTER to take over again "
                   "(a live drill always waits where the instances preempt)")
    p.add_argument("--leave", action="store_true", help="do not put the pair back")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_failover_test)

    p = sub.add_parser("undo", help="remove demote/promote levers",
                       description="Clear the demote and priority track files of each "
                       "instance (all, or --instance): keepalived's election alone decides.")
    _add_config(p)
    p.add_argument("--instance", action="append", metavar="NAME")
    p.add_argument("--reason", default="undo", help="for the audit log")
    p.set_defaults(func=cmd_lever, lever="undo")
    p = sub.add_parser(
        "levers-expire",
        description="Internal: sleep until the next lever expiry and undo what is due.")
    _add_config(p)
    p.set_defaults(func=cmd_levers_expire)

    p = sub.add_parser(
        "announce-loop",
        description="Internal: re-announce the VIPs after repeat_after_s and every refresh_s "
        "while the MASTER that started it is still current.")
    _add_config(p)
    p.add_argument("--instance", required=True)
    p.add_argument("--order", required=True)
    p.add_argument("--since", type=float, required=True,
                   help="wall-clock time of the first announcement")
    p.set_defaults(func=cmd_announce_loop)
    # Internal command: keep it out of the command list.
    sub._choices_actions = [a for a in sub._choices_actions
                            if a.dest not in ("announce-loop", "levers-expire")]

    p = sub.add_parser("status", help="recorded state, VIPs present, the wire, keepalived",
                       description="Per instance: recorded state and since when, the last "
                       "transition's duration, which VIPs are really on this node and, as "
                       "root, who advertises its VRID on the wire (listening 3 x advert_int): "
                       "split brain (two MASTERs), a foreign router on our VRID, a MASTER "
                       "that sends no adverts. With an ipvs section: rules out of sync. "
                       "Exit 1 when anything is wrong, so it works as a monitoring check.")
    _add_config(p)
    p.add_argument("--json", action="store_true", help="machine-readable result")
    p.add_argument("--wire-seconds", type=float, metavar="S",
                   help="listen for VRRP adverts this long (default 3 x advert_int)")
    p.add_argument("--no-wire", action="store_true", help="do not listen on the wire")
    p.add_argument("--watch", type=float, nargs="?", const=2.0, metavar="SECONDS",
                   help="repeat every SECONDS (default 2) until interrupted")
    p.set_defaults(func=cmd_status)

    p = sub.add_parser("doctor", help="preflight: find the mistakes that break failover",
                       description=DOCTOR_HELP,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    _add_config(p)
    p.add_argument("--json", action="store_true", help="machine-readable result")
    p.add_argument("--wire-seconds", type=float, metavar="S",
                   help="how long to listen for VRRP adverts (default: 3 x the largest "
                        "advert_int)")
    p.add_argument("--skip-wire", action="store_true",
                   help="send and listen to nothing on the network (no ARP probe, no advert "
                        "watch)")
    p.add_argument("--networkd-dir", action="append", metavar="DIR",
                   help="where systemd-networkd's .network files are (repeatable; default: "
                        "/etc/systemd/network, /run/systemd/network, /usr/lib/systemd/network)")
    p.set_defaults(func=cmd_doctor)

    _add_ipvs_parser(sub)

    p = sub.add_parser(
        "realserver", help="set up a DR / TUN real server (VIP on lo, ARP sysctls)",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Configure a real server from the config's `realserver:` section, the way "
        "the runbook did by hand, correctly:\n"
        "  DR:  each VIP as a /32 (/128) on lo; arp_ignore=1, arp_announce=2\n"
        "  TUN: each VIP on tunl0 (ip6tnl0); the same ARP settings; rp_filter off\n"
        "A VIP with another prefix is refused: on lo a /24 claims the whole subnet.\n"
        "`up` also installs a systemd unit so the setup survives a reboot (not rc.local).")
    _add_config(p)
    p.add_argument("action", choices=("up", "down", "status"))
    p.add_argument("--no-persist", action="store_true",
                   help="up: do not install the systemd unit")
    p.add_argument("--unit-dir", default="/etc/systemd/system", metavar="DIR",
                   help="where the unit goes (default /etc/systemd/system)")
    p.add_argument("--json", action="store_true", help="status: machine-readable")
    p.set_defaults(func=cmd_realserver)

    p = sub.add_parser("hooks", help="install the notify hooks for keepalived",
                       description="Copy hooks/ to a root-owned directory (keepalived's "
                       "enable_script_security requires every path component to be "
                       "root-owned and not writable by group or others) and record which "
                       "Python runs haguard.")
    hsub = p.add_subparsers(dest="hooks_command", metavar="ACTION", required=True,
                            parser_class=_Parser)
    hp = hsub.add_parser("install", help="install the hooks",
                         description="Install the hooks into --dir, or the config's "
                         "keepalived.hooks_dir. Where systemd runs, also write the drop-in "
                         "keepalived.service.d/haguard.conf with KillMode=process: Debian's "
                         "keepalived unit otherwise kills the detached STOP hook when "
                         "keepalived stops, and the stopped director keeps its VIPs.")
    hp.add_argument("-c", "--config", metavar="FILE", help="take hooks_dir from this config")
    hp.add_argument("--dir", metavar="DIR", help="target directory (created 0755 root)")
    hp.add_argument("--unit-dir", metavar="DIR",
                    help="write keepalived's drop-in under DIR (default /etc/systemd/system "
                    "when systemd is running)")
    hp.add_argument("--no-systemd", action="store_true",
                    help="do not write keepalived's systemd drop-in")
    hp.set_defaults(func=cmd_hooks_install)
    return parser


IPVS_HELP = """\
The director's IPVS (LVS) rules, declared in the config's `ipvs:` section and
reconciled through netlink: only the services haguard owns are added, changed or
deleted (those in the config, and those it applied before that have left it); a
service added by hand with ipvsadm is never touched, and nothing is flushed.

  haguard ipvs diff  -c lb1.yaml            what apply would change (a dry run)
  haguard ipvs apply -c lb1.yaml            make the kernel match the config
  haguard ipvs apply -c lb1.yaml --only 'tcp 192.0.2.100:80'
                                            just that service (a large table, one edit)
  haguard ipvs show  [-c lb1.yaml]          the kernel's table, with counters
  haguard ipvs import rules.txt             `ipvsadm -S -n` output -> the YAML section
  haguard ipvs export -c lb1.yaml           the config as `ipvsadm -R` input
"""


def _add_only(parser: Any, what: str) -> None:
    parser.add_argument("--only", action="append", metavar="SERVICE",
                        help=f"{what}; as haguard prints it, e.g. 'tcp 192.0.2.100:80', "
                             "'udp [2001:db8::100]:53', 'fwmark 7'; repeat for more")


def _add_ipvs_parser(sub: Any) -> None:
    p = sub.add_parser("ipvs", help="IPVS rules: diff, apply, show, import, export",
                       description=IPVS_HELP, formatter_class=argparse.RawDescriptionHelpFormatter)
    isub = p.add_subparsers(dest="ipvs_command", metavar="ACTION", required=True,
                            parser_class=_Parser)
    q = isub.add_parser("diff", help="what apply would change (dry run)",
                        description="Read the kernel's table and print the changes `apply` "
                        "would make: + added, ~ changed, - removed.")
    _add_config(q)
    q.add_argument("--json", action="store_true")
    q.add_argument("--exit-code", action="store_true",
                   help="exit 1 when there are changes (like git diff --exit-code)")
    _add_only(q, "read back and compare only this service")
    q.set_defaults(func=cmd_ipvs_diff)
    q = isub.add_parser("apply", help="make the kernel match the config",
                        description="Apply the minimal changes; print each. On failure the "
                        "message says what was and was not done; run it again to finish.")
    _add_config(q)
    q.add_argument("--json", action="store_true")
    how = q.add_mutually_exclusive_group()
    how.add_argument("--incremental", action="store_true",
                     help="read back only the services whose config changed since the last "
                          "apply (fast on large tables; hand edits elsewhere wait for a full "
                          "apply)")
    _add_only(how, "reconcile only this service: read it back, make it as configured (or "
                   "delete it if it has left the config); nothing else is read or touched")
    q.set_defaults(func=cmd_ipvs_apply)
    q = isub.add_parser("show", help="the kernel's IPVS table with counters",
                        description="Every service in the kernel with its real servers and "
                        "connection counters; with -c, services not in that config are marked.")
    q.add_argument("-c", "--config", metavar="FILE", help="mark the services this config owns")
    q.add_argument("--json", action="store_true")
    q.set_defaults(func=cmd_ipvs_show)
    q = isub.add_parser("import", help="ipvsadm save format -> the YAML `ipvs:` section",
                        description="Read `ipvsadm -S -n` output (FILE, or - for standard "
                        "input) and print the equivalent `ipvs:` section. A bad line is an "
                        "error naming its line (exit 2).")
    q.add_argument("file", metavar="FILE")
    q.set_defaults(func=cmd_ipvs_import)
    q = isub.add_parser("export", help="the config's services as `ipvsadm -R` input",
                        description="Print the `ipvs:` section as the lines `ipvsadm -R` "
                        "accepts (the format of `ipvsadm -S -n`).")
    _add_config(q)
    q.set_defaults(func=cmd_ipvs_export)


# ------------------------------------------------------------------------- commands

def _load(path: str) -> Any:
    from haguard.adapters.files import load_config

    return load_config(path)


def _emit(data: Any, as_json: bool, text: Callable[[Any], str]) -> None:
    if as_json:
        print(json.dumps(data, indent=2, sort_keys=True, default=str))
    else:
        print(text(data))


def cmd_check(args: argparse.Namespace) -> int:
    from haguard.adapters import keepalived
    from haguard.core.render import render

    config = _load(args.config)
    result = keepalived.check_text(render(config))
    data: dict[str, Any] = {"config": config.path, "yaml": "ok",
                            "instances": [i.name for i in config.instances]}
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
        return "\n".join(lines)

    _emit(data, args.json, text)
    if result is not None and not result.ok:
        return EXIT_BAD_INPUT
    return EXIT_OK


def cmd_render(args: argparse.Namespace) -> int:
    from haguard.core.render import render

    text = render(_load(args.config))
    if args.output:
        from haguard.adapters.files import write_atomic

        write_atomic(args.output, text)
        print(f"wrote {args.output}", file=sys.stderr)
    else:
        sys.stdout.write(text)
    return EXIT_OK


def cmd_notify(args: argparse.Namespace) -> int:
    from haguard.adapters.process import own_order_key
    from haguard.core.events import parse_event

    # First: when keepalived forked us is the event's place in line. A detached STOP
    # hook hands over the key of the process keepalived forked.
    order = _order_from_env(os.environ.get("HAGUARD_ORDER")) or own_order_key()
    event = parse_event(args.type, args.name, args.state, args.priority)
    config = _load(args.config)
    from haguard.log import get_logger
    from haguard.transition import handle_event

    # A MASTER's log waits until its first announcement is on the wire.
    log = get_logger(config.node.log_file, deferred=event.state == "MASTER",
                     node=config.node.name)
    try:
        handle_event(config, event, order, log)
    except HaguardError as exc:
        log.release()
        log.error("transition_failed", instance=event.name, state=event.state, error=str(exc))
        raise
    finally:
        log.release()
    return EXIT_OK


def _order_from_env(value: str | None) -> Any:
    from haguard.core.events import OrderKey

    try:
        ticks, pid = (int(x) for x in (value or "").split(","))
    except ValueError:
        return None
    return OrderKey(ticks, pid)


def cmd_agent(args: argparse.Namespace) -> int:
    config = _load(args.config)
    if args.unit:
        from haguard.units import agent_unit

        sys.stdout.write(agent_unit(config))
        return EXIT_OK
    from haguard.agent import serve

    return serve(config)


def cmd_lever(args: argparse.Namespace) -> int:
    from haguard import levers
    from haguard.core.levers import parse_ttl

    config = _load(args.config)
    if args.lever == "undo" or getattr(args, "clear", False):
        lines = levers.undo(config, args.instance, args.reason or "promote --clear")
    elif args.lever == "demote":
        ttl = parse_ttl(args.ttl) if args.ttl else None
        lines = levers.demote(config, args.instance, args.reason, ttl, args.wait, args.timeout,
                              args.force)
    else:
        lines = levers.promote(config, args.instance, args.reason, args.wait, args.timeout,
                               args.force)
    print("\n".join(lines))
    return EXIT_OK


def cmd_failover_test(args: argparse.Namespace) -> int:
    from haguard import drill
    from haguard.adapters.process import interrupt_on_termination

    interrupt_on_termination()
    if args.interval_ms <= 0:
        raise BadInput(f"--interval-ms {args.interval_ms}: must be positive")
    if args.lab is not None:
        if args.probe_from or args.peer_wait is not None:
            raise BadInput("--probe-from and --peer-wait are for a live pair (-c); the lab "
                           "probes from its client namespace")
        report = drill.run(args.lab, args.method, args.port, args.interval_ms, args.failback,
                           args.leave)
    else:
        from haguard import livedrill

        if args.max_outage_ms is not None and not args.probe_from:
            raise BadInput("--max-outage-ms needs --probe-from on a live pair: the outage is "
                           "what the probes measure")
        config = _load(args.config)
        report = livedrill.run(config, args.method, args.probe_from, args.port,
                               args.interval_ms, args.leave,
                               lambda s: print(s, file=sys.stderr, flush=True),
                               args.peer_wait)
    code = EXIT_OK
    if args.max_outage_ms is not None:
        outage = report.get("outage_ms")
        met = outage is not None and outage <= args.max_outage_ms
        report["slo"] = (f"SLO: outage {outage} ms <= {args.max_outage_ms:g} ms: "
                         + ("met" if met else "MISSED"))
        code = EXIT_OK if met else EXIT_FAILED
    _emit(report, args.json, drill.format_text)
    return code


def cmd_levers_expire(args: argparse.Namespace) -> int:
    from haguard.levers import expire_loop

    return expire_loop(_load(args.config))


def cmd_announce_loop(args: argparse.Namespace) -> int:
    from haguard.log import get_logger
    from haguard.transition import announce_loop

    config = _load(args.config)
    order = _order_from_env(args.order)
    if order is None:
        raise BadInput(f"--order {args.order!r}: expected TICKS,PID")
    log = get_logger(config.node.log_file, quiet=True, node=config.node.name)
    announce_loop(config, args.instance, order, log, args.since)
    return EXIT_OK


def cmd_doctor(args: argparse.Namespace) -> int:
    from haguard.doctor import cmd_doctor as run_doctor

    return run_doctor(args)


def cmd_status(args: argparse.Namespace) -> int:
    import time

    from haguard.status import collect, format_text, wire_window

    config = _load(args.config)
    wire_s = None
    if not args.no_wire:
        if os.geteuid() == 0:
            wire_s = args.wire_seconds if args.wire_seconds is not None else wire_window(config)
        elif args.wire_seconds is not None:
            raise BadInput("--wire-seconds: listening for VRRP adverts needs root")
    while True:
        report = collect(config, wire_s)
        if wire_s is None and not args.no_wire:
            report["wire"] = "not checked: listening for VRRP adverts needs root"
        if args.watch and not args.json and sys.stdout.isatty():
            sys.stdout.write("\033[H\033[J")
        _emit(report, args.json, format_text)
        code = EXIT_OK if report["healthy"] else EXIT_FAILED
        if not args.watch:
            return code
        sys.stdout.flush()
        time.sleep(args.watch)


def cmd_hooks_install(args: argparse.Namespace) -> int:
    from haguard.hooks import install, install_keepalived_dropin, systemd_running

    target = args.dir
    config = None
    if target is None:
        if args.config is None:
            raise BadInput("hooks install: give --dir DIR or -c CONFIG (for keepalived.hooks_dir)")
        config = _load(args.config)
        target = config.keepalived.hooks_dir
    for line in install(target):
        print(line)
    if not args.no_systemd:
        if args.unit_dir is not None or systemd_running():
            for line in install_keepalived_dropin(args.unit_dir or "/etc/systemd/system",
                                                  reload=systemd_running()):
                print(line)
        else:
            print("systemd is not running here: no keepalived.service drop-in written "
                  "(under systemd, KillMode=process is needed for the STOP hook)")
    if config is not None:
        from haguard.levers import ensure_lever_dir

        print(ensure_lever_dir(config))
    return EXIT_OK


def cmd_realserver(args: argparse.Namespace) -> int:
    from haguard import realserver

    config = _load(args.config)
    realserver.role_of(config)
    if args.action == "status":
        data = realserver.status(config, args.unit_dir)
        _emit(data, args.json, realserver.format_status)
        return EXIT_FAILED if data["problems"] else EXIT_OK
    lines = realserver.up(config) if args.action == "up" else realserver.down(config)
    if args.action == "up" and not args.no_persist:
        lines += realserver.install_unit(config, args.unit_dir)
    print("\n".join(lines) or "nothing to change")
    return EXIT_OK


def cmd_ipvs_diff(args: argparse.Namespace) -> int:
    from haguard import ipvsops
    from haguard.core.ipvsplan import describe

    plan = ipvsops.diff(_load(args.config), only=_service_names(args.only))
    _emit([describe(a) for a in plan], args.json, lambda _: ipvsops.format_plan(plan))
    return EXIT_FAILED if args.exit_code and plan else EXIT_OK


def cmd_ipvs_apply(args: argparse.Namespace) -> int:
    from haguard import ipvsops

    config = _load(args.config)
    if args.only:
        done = ipvsops.apply_only(config, _service_names(args.only))
    else:
        done = ipvsops.apply(config, incremental=args.incremental)
    _emit(done, args.json, lambda d: "\n".join(d) or "nothing to change")
    return EXIT_OK


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
    from haguard import ipvsops

    data = ipvsops.show(_load(args.config) if args.config else None)
    _emit(data, args.json, ipvsops.format_show)
    return EXIT_OK


def cmd_ipvs_import(args: argparse.Namespace) -> int:
    from haguard.core.ipvsadm import dump_yaml, parse_save

    name = "<stdin>" if args.file == "-" else args.file
    try:
        text = sys.stdin.read() if args.file == "-" else open(args.file, encoding="utf-8").read()
    except OSError as exc:
        raise BadInput(f"{args.file}: cannot read: {exc.strerror}") from None
    sys.stdout.write(dump_yaml(parse_save(text, name)))
    return EXIT_OK


def cmd_ipvs_export(args: argparse.Namespace) -> int:
    from haguard import ipvsops
    from haguard.core.ipvsadm import format_save

    sys.stdout.write(format_save(ipvsops.settings(_load(args.config)).services))
    return EXIT_OK


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args))
    except ConfigError as exc:
        for problem in exc.problems:
            print(f"error: {problem}", file=sys.stderr)
        return exc.exit_code
    except HaguardError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return EXIT_FAILED
