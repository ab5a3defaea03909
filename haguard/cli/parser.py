"""The argument spec of ``haguard``: every command, its options and its --help text.

Command functions are imported lazily by name (``func``) only where they run, so
building the parser stays cheap on keepalived's failover path.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

from haguard import __version__
from haguard.cli.commands import (
    cmd_agent,
    cmd_announce_loop,
    cmd_check,
    cmd_doctor,
    cmd_failover_test,
    cmd_hooks_install,
    cmd_ipvs_apply,
    cmd_ipvs_diff,
    cmd_ipvs_export,
    cmd_ipvs_import,
    cmd_ipvs_lever,
    cmd_ipvs_show,
    cmd_lever,
    cmd_levers_expire,
    cmd_migrate,
    cmd_notify,
    cmd_realserver,
    cmd_render,
    cmd_status,
)
from haguard.errors import ExitStatus

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
was changed), 3 doctor found warnings only / migrate wrote lines that need a decision.
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
        self.exit(ExitStatus.BAD_INPUT, f"{self.prog}: error: {message}\n")


def _add_config(p: argparse.ArgumentParser) -> None:
    p.add_argument("-c", "--config", default=os.environ.get("HAGUARD_CONFIG", DEFAULT_CONFIG),
                   metavar="FILE", help=f"node config (default: $HAGUARD_CONFIG or {DEFAULT_CONFIG})")


def build_parser() -> argparse.ArgumentParser:
    """The whole ``haguard`` argument spec."""
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

    p = sub.add_parser(
        "migrate", help="translate a keepalived.conf into haguard's YAML",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="""\
Read a keepalived.conf the way keepalived does (include globs relative to the including
file, ! and # comments, quoted strings, blocks on one line or many, the deprecated
synonyms nb_get_retry, lb_kind, lb_algo, state SLAVE) and write haguard's YAML for this
director: vrrp_instance -> instances, virtual_ipaddress -> vips, virtual_server with its
real servers and checkers -> ipvs services with health, sorry_server, quorum.

Nothing is dropped silently. Every line haguard's YAML cannot say as keepalived meant it
is listed on standard error, and at the head of the YAML, as
  FILE:LINE: keyword: what haguard does instead / what to decide
Lines marked 'note:' keep keepalived's behaviour and need no decision.

Exit codes: 0 everything expressed and the YAML valid; 3 the YAML is written and the
listed lines need a decision; 2 not a readable keepalived.conf (nothing written).""")
    p.add_argument("file", metavar="FILE", help="the keepalived.conf to read")
    p.add_argument("--node", metavar="NAME",
                   help="this director's name in the YAML (default: global_defs router_id)")
    p.add_argument("-o", "--output", metavar="OUT",
                   help="write the YAML here (atomically) instead of standard output")
    p.set_defaults(func=cmd_migrate)

    from haguard.cli.lab import add_lab_parser

    add_lab_parser(sub)

    p = sub.add_parser("notify", help="apply a keepalived state change (called by the hook)",
                       description="Apply one keepalived event. The hook calls this with the "
                       "words keepalived passes: TYPE NAME STATE [PRIORITY], e.g. "
                       "`haguard notify -c lb1.yaml INSTANCE VI_1 MASTER 150`.")
    _add_config(p)
    p.add_argument("type", metavar="TYPE", help="INSTANCE (GROUP events are logged, ignored)")
    p.add_argument("name", metavar="NAME", help="vrrp_instance name")
    p.add_argument("state", metavar="STATE", help="MASTER, BACKUP, FAULT, STOP or DELETED "
                   "(MASTER_RX_LOWER_PRI: still MASTER, announce again)")
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
                       "root-owned and not writable by others or a group other than root's, "
                       "a sticky directory excepted) and record which Python runs haguard.")
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

One real server, by hand (audited, kept across restarts until enable or --ttl):
  haguard ipvs disable -c lb1.yaml 'tcp 192.0.2.100:80' 192.0.2.21:80 --reason "disk"
  haguard ipvs drain   -c lb1.yaml 'tcp 192.0.2.100:80' 192.0.2.21:80 --reason "deploy" \
                       --wait --timeout 600 --remove
  haguard ipvs enable  -c lb1.yaml 'tcp 192.0.2.100:80' 192.0.2.21:80
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
                        "message says what was and was not done; run it again to finish. "
                        "While `haguard agent` runs on the node it owns the table: apply asks "
                        "it to re-read the file (SIGHUP), waits until it has applied it "
                        "(where the node holds the services) and prints its changes.")
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
    for action, summary, text in (
            ("disable", "take one real server out of the kernel (audited)",
             "Take REALSERVER out of SERVICE's table now and keep it out, whatever its health "
             "checks say, until `haguard ipvs enable` or --ttl. Recorded in "
             "lever_dir/realservers.json and the audit log; the agent follows it."),
            ("drain", "weight 0 for one real server: no new connections (audited)",
             "Set REALSERVER's weight to 0 in SERVICE: its connections finish, no new ones "
             "come. --wait prints its active and inactive connections until none is left "
             "(or --timeout: exit 1, it stays drained); --remove then takes it out, as "
             "disable does."),
            ("enable", "lift disable or drain from one real server",
             "Remove the lever from REALSERVER: its health checks alone decide again.")):
        q = isub.add_parser(action, help=summary, description=text)
        _add_config(q)
        q.add_argument("service", metavar="SERVICE",
                       help="as haguard prints it: 'tcp 192.0.2.100:80', 'fwmark 7'")
        q.add_argument("realserver", metavar="REALSERVER",
                       help="address:port as configured, e.g. 192.0.2.21:80 or "
                            "[2001:db8::21]:80")
        q.add_argument("--reason", required=action != "enable", default="enable",
                       help="why (the audit log)")
        if action != "enable":
            q.add_argument("--ttl", metavar="DURATION",
                           help="lift it by itself after this long: 90s, 30m, 1h30m")
        if action == "drain":
            q.add_argument("--wait", action="store_true",
                           help="count the connections down to 0")
            q.add_argument("--timeout", type=float, default=300.0, metavar="S",
                           help="give up waiting after S seconds (default 300)")
            q.add_argument("--remove", action="store_true",
                           help="with --wait: take it out once no connection is left")
        q.set_defaults(func=cmd_ipvs_lever, lever=action)
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
