"""What every key of haguard's YAML means: the model behind haguard.yaml(5).

Pure data. Each section names the keys its validator accepts (tests/unit/test_configdoc.py
loads a config that uses every section and compares, so a key added to the validator and
not here fails the unit tier); defaults are read from the dataclasses that apply them.
"""

from __future__ import annotations

from dataclasses import dataclass

from haguard.core.config import Announce, KeepalivedSettings, NodeSettings
from haguard.core.healthconfig import (
    DEFAULT_INTERVAL_S,
    DEFAULT_RETRIES,
    DEFAULT_RETRY_INTERVAL_S,
    DEFAULT_SCRIPT_USER,
    DEFAULT_TIMEOUT_S,
)
from haguard.core.vrrpconfig import DEFAULT_NOTIFY_TIMEOUT_S

_ANNOUNCE = Announce()
_KEEPALIVED = KeepalivedSettings()


@dataclass(frozen=True)
class Key:
    """One key: its name, the values it takes, and what it does (with its default)."""

    name: str
    value: str
    text: str


@dataclass(frozen=True)
class Section:
    """A mapping of the YAML: where it is, what it is for, and its keys."""

    path: str                       # as written in messages: ipvs.services[].health
    text: str
    keys: tuple[Key, ...]
    also: tuple[str, ...] = ()      # other places with the same keys


def normalized(path: str) -> str:
    """A section's path without list markers (``a[].b`` -> ``a.b``), as tests compare."""
    return path.replace("[]", "")


def _g(value: float) -> str:
    return f"{value:g}"


COMMAND = "[PROGRAM, ARG, ...]"

SECTIONS: tuple[Section, ...] = (
    Section("", "The top level. Only node is required; a real server's file may hold just "
                "node and realserver.", (
        Key("node", "mapping", "This machine: its name and where state is kept."),
        Key("keepalived", "mapping", "How keepalived is run and where its files are."),
        Key("sysctl", "mapping NAME: VALUE",
            "Sysctls applied when an instance becomes MASTER, only those that differ "
            "(like net.ipv4.ip_nonlocal_bind: 1). A value here wins over haguard's own."),
        Key("instances", "list", "The VRRP instances (keepalived's vrrp_instance)."),
        Key("scripts", "list", "keepalived's vrrp_script blocks, tracked by instances."),
        Key("sync_groups", "list", "keepalived's vrrp_sync_group: instances that change "
                                   "state together."),
        Key("ipvs", "mapping", "The IPVS (LVS) table of a director."),
        Key("realserver", "mapping", "The VIPs of a real server (haguard realserver up)."),
        Key("agent", "mapping", "Run haguard agent: keepalived's events through its notify "
                                "FIFO, and the real servers' health checks. `agent: {}` "
                                "takes the defaults."),
    )),
    Section("node", "This machine.", (
        Key("name", "NAME", "Letters, digits, _ . -; keepalived's router_id. Required."),
        Key("state_dir", "PATH", "Locks, the recorded state, health.json, the notify FIFO. "
                                 f"Default {NodeSettings.state_dir}."),
        Key("log_file", "PATH", "JSON lines besides the journal. Default: none."),
        Key("lever_dir", "PATH", "The demote/promote and real-server levers and their audit "
                                 "log; on disk, so a lever survives a reboot. Default "
                                 f"{NodeSettings.lever_dir}."),
    )),
    Section("keepalived", "keepalived's side.", (
        Key("config", "PATH", "Where haguard render -o is meant to write. Default "
                              f"{_KEEPALIVED.config}."),
        Key("version", "2 | 3", "The VRRP version; 3 allows sub-second advert_int. Default "
                                f"{_KEEPALIVED.version}."),
        Key("hooks_dir", "PATH", "Where haguard hooks install puts the notify hooks. "
                                 f"Default {_KEEPALIVED.hooks_dir}."),
        Key("pid_file", "PATH", "keepalived's main pid file, for status. Default "
                                f"{_KEEPALIVED.pid_file}."),
        Key("vrrp_pid_file", "PATH", "keepalived's VRRP process pid file; the agent watches "
                                     "that process and steps down when it dies. Default "
                                     f"{_KEEPALIVED.vrrp_pid_file}."),
    )),
    Section("instances[]", "One VRRP instance: rendered as a vrrp_instance without "
                           "virtual_ipaddress (haguard adds and announces the VIPs).", (
        Key("name", "NAME", "The vrrp_instance name. Required."),
        Key("interface", "DEVICE", "The device adverts are sent on. Required."),
        Key("virtual_router_id", "1-255", "The VRID, unique per interface. Required."),
        Key("priority", "1-254", "Higher wins the election. Required."),
        Key("state", "MASTER | BACKUP", "The initial state. Default BACKUP."),
        Key("advert_int", "SECONDS", "Version 2: whole seconds 1-255; version 3: 0.01-40.95 "
                                     "in steps of 0.01. Default 1."),
        Key("nopreempt", "BOOLEAN", "Do not take over from a lower priority MASTER; needs "
                                    "state BACKUP. Default false."),
        Key("auth_pass", "TEXT", "VRRPv2 PASS authentication, 1-8 characters (quote it). "
                                 "keepalived used only the first 8 of a longer one."),
        Key("unicast_peers", "[ADDRESS, ...]", "Send adverts to these addresses instead of "
                                               "multicast; one address family."),
        Key("unicast_src_ip", "ADDRESS", "The source address of unicast adverts."),
        Key("vips", "[VIP, ...]", "The VIPs: ADDRESS[/PREFIX] (a bare address is /32 or "
                                  "/128) or a mapping (below). Required."),
        Key("announce", "mapping", "Gratuitous ARP / unsolicited NA on becoming MASTER."),
        Key("preempt_delay_s", "SECONDS", "keepalived's preempt_delay; needs state BACKUP "
                                          "and preemption."),
        Key("dont_track_primary", "BOOLEAN", "Ignore the interface's own link state. "
                                             "Default false."),
        Key("track", "mapping", "Scripts, interfaces and processes the priority follows."),
        Key("notify", "mapping", "The operator's commands per state, run after haguard's "
                                 "own work."),
    )),
    Section("instances[].vips[]", "A VIP written as a mapping.", (
        Key("address", "ADDRESS[/PREFIX]", "The VIP. Required."),
        Key("label", "DEVICE:NAME", "An address label (ifconfig's alias name), starting "
                                    "with the device's name."),
        Key("interface", "DEVICE", "Add and announce the VIP on this device instead of the "
                                   "instance's (keepalived's dev); the device is tracked."),
    )),
    Section("instances[].announce", "How the new MASTER tells the switches.", (
        Key("count", "0-100", f"Frames per VIP. Default {_ANNOUNCE.count}."),
        Key("interval_ms", "0-10000", "Between frames. Default "
                                      f"{_ANNOUNCE.interval_ms}."),
        Key("repeat_after_s", "SECONDS", "Announce once more this long after becoming "
                                         f"MASTER (0: not). Default "
                                         f"{_g(_ANNOUNCE.repeat_after_s)}."),
        Key("refresh_s", "SECONDS", "Announce again every so often while MASTER (0: never, "
                                    f"else at least 1). Default {_g(_ANNOUNCE.refresh_s)}."),
    )),
    Section("instances[].track", "What the instance's priority follows (keepalived's "
                                 "track_script, track_interface, track_process). A weight "
                                 "of 0 makes a failure FAULT; otherwise the weight is added "
                                 "while it is up (positive) or subtracted when it fails "
                                 "(negative).", (
        Key("scripts", "[{name, weight}, ...]", "Entries of the top-level scripts; the "
                                                "script's own weight unless given."),
        Key("interfaces", "[{name, weight}, ...]", "Devices whose link state counts. "
                                                   "Weight default 0."),
        Key("processes", "[{name, weight}, ...]", "Processes, by name, that must run. "
                                                  "Weight default 0."),
    )),
    Section("instances[].track.scripts[]", "One tracked script, interface or process.", (
        Key("name", "NAME", "The script, device or process name. Required."),
        Key("weight", "-253-253", "Its weight (see track)."),
    ), also=("instances[].track.interfaces[]", "instances[].track.processes[]")),
    Section("instances[].notify", "The operator's commands (keepalived's notify_master, "
                                  "...): run by haguard after its own work, in order, each "
                                  "with a time limit, its output logged; a failure is "
                                  "logged and does not stop the others. {instance}, "
                                  "{state} and {priority} in an argument are filled in.", (
        Key("master", f"[{COMMAND}, ...]", "On becoming MASTER."),
        Key("backup", f"[{COMMAND}, ...]", "On becoming BACKUP."),
        Key("fault", f"[{COMMAND}, ...]", "On FAULT."),
        Key("stop", f"[{COMMAND}, ...]", "When keepalived stops the instance."),
        Key("timeout_s", "SECONDS", "Each command's limit; its process group is killed "
                                    f"after it. Default {_g(DEFAULT_NOTIFY_TIMEOUT_S)}."),
    )),
    Section("scripts[]", "keepalived's vrrp_script: a command keepalived runs; instances "
                         "track it by name.", (
        Key("name", "NAME", "Required."),
        Key("command", COMMAND, "An argument list, the program an absolute path, root's "
                                "and writable by nobody else. Required."),
        Key("interval_s", "SECONDS", "How often it runs. Default 1."),
        Key("timeout_s", "SECONDS", "How long one run may take. Default: keepalived's."),
        Key("rise", "1-100", "Successes in a row before it counts as up. Default 1."),
        Key("fall", "1-100", "Failures in a row before it counts as failed. Default 1."),
        Key("weight", "-253-253", "Its weight (see instances[].track). Default 0."),
        Key("user", "USER", "Run as this user (keepalived's script_user otherwise)."),
    )),
    Section("sync_groups[]", "keepalived's vrrp_sync_group.", (
        Key("name", "NAME", "Required."),
        Key("instances", "[NAME, ...]", "At least two instances that change state together. "
                                        "Required."),
    )),
    Section("ipvs", "A director's IPVS table. The services in it are haguard's; anything "
                    "else in the table is left alone.", (
        Key("on_backup", "keep | remove", "On BACKUP keep the services reconciled (a "
                                          "takeover needs no rule changes) or delete them. "
                                          "Default keep."),
        Key("sync", "mapping", "The connection-sync daemon, following the instances on its "
                               "interface."),
        Key("timeouts", "mapping", "ipvsadm --set."),
        Key("services", "list", "The virtual services."),
    )),
    Section("ipvs.sync", "The IPVS connection-sync daemon.", (
        Key("interface", "DEVICE", "Required."),
        Key("syncid", "0-255", "The sync id shared by the pair. Default 0."),
    )),
    Section("ipvs.timeouts", "ipvsadm --set; 0 leaves one as it is.", (
        Key("tcp_s", "SECONDS", "Established TCP connections."),
        Key("tcpfin_s", "SECONDS", "TCP connections after a FIN."),
        Key("udp_s", "SECONDS", "UDP."),
    )),
    Section("ipvs.services[]", "One virtual service. Its VIP must be a VIP of an instance: "
                               "the service moves with it.", (
        Key("vip", "ADDRESS", "The service's address (or fwmark, or vips)."),
        Key("port", "1-65535", "The service's port (or ports)."),
        Key("protocol", "tcp | udp | sctp", "Default tcp."),
        Key("fwmark", "1-4294967295", "A firewall-mark service instead of vip and port."),
        Key("family", "inet | inet6", "The family of a fwmark service. Default inet."),
        Key("scheduler", "NAME", "rr wrr lc wlc lblc lblcr dh sh sed nq fo ovf mh twos. "
                                 "Default wlc."),
        Key("flags", "[FLAG, ...]", "sh-fallback, sh-port (sh); mh-fallback, mh-port (mh)."),
        Key("persistence", "mapping", "Persistent connections."),
        Key("ops", "BOOLEAN", "One-packet scheduling (UDP, or a fwmark of UDP)."),
        Key("vips", "[ADDRESS, ...]", "One service per VIP (and port) with the same real "
                                      "servers (keepalived's virtual_server_group)."),
        Key("ports", "[PORT, ...]", "With vips: one service per port."),
        Key("real_servers", "list", "The real servers."),
        Key("health", "mapping or list", "The checks of its real servers (a list: all must "
                                         "pass). Needs the agent."),
        Key("quorum", "mapping", "The live real servers' weight the service needs."),
        Key("sorry_server", "mapping", "A server that stands in when quorum is lost."),
    )),
    Section("ipvs.services[].persistence", "ipvsadm -p.", (
        Key("timeout_s", "SECONDS", "Up to 31 days. Required."),
        Key("netmask", "NETMASK", "Clients grouped by this netmask (IPv6: a prefix "
                                  "length)."),
    )),
    Section("ipvs.services[].real_servers[]", "One real server (a bare ADDRESS also does).", (
        Key("address", "ADDRESS", "Required."),
        Key("port", "1-65535", "Default: the service's. DR and TUN deliver to the "
                               "service's port whatever this says."),
        Key("forwarding", "dr | nat | tun", "Default dr."),
        Key("weight", "0-65535", "0 takes no new connections. Default 1."),
        Key("upper_threshold", "NUMBER", "ipvsadm -x: no new connections above this many."),
        Key("lower_threshold", "NUMBER", "ipvsadm -y: new connections again below this."),
        Key("tunnel_type", "ipip | gue | gre", "With forwarding tun."),
        Key("tunnel_port", "1-65535", "With tunnel_type gue."),
        Key("health", "mapping or list", "Merged over the service's health (key by key); "
                                         "check: none leaves it unwatched."),
    )),
    Section("ipvs.services[].sorry_server", "keepalived's sorry_server: in the kernel "
                                            "while quorum is lost, instead of the live real "
                                            "servers.", (
        Key("address", "ADDRESS", "Required."),
        Key("port", "1-65535", "Default: the service's."),
        Key("forwarding", "dr | nat | tun", "Default dr."),
        Key("weight", "0-65535", "Default 1."),
        Key("tunnel_type", "ipip | gue | gre", "With forwarding tun."),
        Key("tunnel_port", "1-65535", "With tunnel_type gue."),
    )),
    Section("ipvs.services[].quorum", "keepalived's quorum: the sum of the live real "
                                      "servers' weights, lost below weight - hysteresis "
                                      "(or at zero), gained at weight + hysteresis.", (
        Key("weight", "NUMBER", "Default 1."),
        Key("hysteresis", "NUMBER", "Default 0."),
        Key("up", COMMAND, "Run when quorum is gained."),
        Key("down", COMMAND, "Run when quorum is lost."),
    )),
    Section("ipvs.services[].health", "Checks of the real servers, run by haguard agent on "
                                      "MASTER and BACKUP alike (keepalived's checkers). A "
                                      "check that is up re-probes a failure retries times "
                                      "and is then down; down means removed from the kernel "
                                      "(or weight 0).", (
        Key("check", "tcp | http | https | script | dns | none", "The kind. Required "
                                                                   "unless inherited."),
        Key("interval_s", "SECONDS", "keepalived's delay_loop. Default "
                                     f"{_g(DEFAULT_INTERVAL_S)}."),
        Key("timeout_s", "SECONDS", "keepalived's connect_timeout, per wait; at most "
                                    f"interval_s. Default {_g(DEFAULT_TIMEOUT_S)}."),
        Key("retries", "NUMBER", "keepalived's retry. Default "
                                 f"{DEFAULT_RETRIES}."),
        Key("retry_interval_s", "SECONDS", "keepalived's delay_before_retry. Default "
                                           f"{_g(DEFAULT_RETRY_INTERVAL_S)}."),
        Key("rise", "NUMBER", "Successes in a row before a down server is back. Default 1."),
        Key("port", "1-65535", "keepalived's connect_port. Default: the real server's."),
        Key("on_down", "remove | weight0", "keepalived's inhibit_on_failure is weight0. "
                                           "Default remove."),
        Key("start", "up | down", "keepalived's alpha is down. Default up."),
        Key("http", "mapping", "For http and https."),
        Key("tls", "mapping", "For https."),
        Key("script", "mapping", "For script (keepalived's MISC_CHECK)."),
        Key("dns", "mapping", "For dns."),
        Key("notify", "mapping", "keepalived's notify_up and notify_down."),
    ), also=("ipvs.services[].health[]", "ipvs.services[].real_servers[].health",
             "ipvs.services[].real_servers[].health[]")),
    Section("ipvs.services[].health.http", "What an HTTP answer must be.", (
        Key("path", "PATH", "Default /."),
        Key("status", "[CODE or \"LOW-HIGH\", ...]", "Accepted status codes. Default 200-299."),
        Key("host", "HOST[:PORT]", "The Host header (keepalived's virtualhost)."),
        Key("body", "TEXT", "Text the body must contain (keepalived's digest is not "
                            "supported)."),
    )),
    Section("ipvs.services[].health.tls", "For https.", (
        Key("verify", "BOOLEAN", "Verify the certificate against the system's CAs. "
                                 "Default false."),
        Key("sni", "HOST", "The server name sent."),
    )),
    Section("ipvs.services[].health.script", "keepalived's MISC_CHECK: exit 0 is up.", (
        Key("command", COMMAND, "No shell; {address} {port} {vip} {vport} {protocol} are "
                                "filled in. Required."),
        Key("user", "USER", f"Run as this user. Default {DEFAULT_SCRIPT_USER}."),
        Key("dynamic_weight", "BOOLEAN", "keepalived's misc_dynamic: exit 2-255 sets the "
                                         "weight to exit - 2. Default false."),
    )),
    Section("ipvs.services[].health.dns", "A query the real server must answer (rcode "
                                          "NOERROR).", (
        Key("name", "NAME", "The name asked for. Required."),
        Key("type", "A | AAAA | ...", "Default A."),
    )),
    Section("ipvs.services[].health.notify", "Commands run when the real server changes "
                                             "(as root, with a 10 s limit).", (
        Key("up", COMMAND, "When it comes up."),
        Key("down", COMMAND, "When it goes down."),
    )),
    Section("realserver", "A real server's side (haguard realserver up).", (
        Key("mode", "dr | tun", "DR: the VIPs on lo as /32 (/128) with arp_ignore=1 and "
                                "arp_announce=2; TUN: on tunl0 (ip6tnl0), rp_filter off. "
                                "Default dr."),
        Key("vips", "[ADDRESS, ...]", "Required."),
    )),
    Section("agent", "haguard agent (production mode).", (
        Key("fifo", "PATH", "keepalived's notify FIFO, rendered as vrrp_notify_fifo. "
                            "Default STATE_DIR/notify.fifo."),
        Key("metrics", "mapping", "Serve Prometheus metrics over HTTP."),
    )),
    Section("agent.metrics", "GET /metrics: everything the textfile has, the real "
                             "servers' health and the agent's own.", (
        Key("listen", "ADDRESS:PORT", "Like 127.0.0.1:9650 or [::1]:9650. Required."),
    )),
)


def keys_by_path() -> dict[str, frozenset[str]]:
    """Every place a mapping is read (normalized) -> the keys documented there."""
    out: dict[str, frozenset[str]] = {}
    for section in SECTIONS:
        names = frozenset(k.name for k in section.keys)
        for path in (section.path, *section.also):
            out[normalized(path)] = names
    return out
