"""keepalived.conf (as a statement tree) -> haguard's YAML document, and what it cannot say.

Pure. Every keyword is either expressed in the document with keepalived's meaning (its
defaults written out where haguard's differ) or reported as a ``Finding``: the file and
line, the keyword, and what haguard does instead or what the operator must decide.
Nothing is dropped silently; an unknown keyword is a finding too.
"""

from __future__ import annotations

import copy
import ipaddress
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from haguard.core.kaconf import KeepalivedConfError, Stmt

# keepalived's tuning of its own processes and logs: nothing a peer, a client or a real
# server sees changes, and haguard's rendering leaves keepalived at its defaults.
PROCESS_TUNING = frozenset({
    "max_auto_priority", "vrrp_no_swap", "checker_no_swap", "bfd_no_swap", "vrrp_priority",
    "checker_priority", "bfd_priority", "vrrp_rlimit_rttime", "checker_rlimit_rttime",
    "vrrp_rt_priority", "checker_rt_priority", "process_names", "process_name",
    "vrrp_process_name", "checker_process_name", "checker_log_all_failures", "log_detail",
    "vrrp_rx_bufs_policy", "vrrp_rx_bufs_multiplier", "vrrp_netlink_cmd_rcv_bufs",
    "vrrp_netlink_monitor_rcv_bufs", "lvs_netlink_cmd_rcv_bufs",
    "lvs_netlink_monitor_rcv_bufs", "vrrp_startup_delay", "dynamic_interfaces",
    "child_wait_time", "vrrp_dont_use_vmac", "uptime"})
# Announcement settings keepalived reads in a vrrp_instance (and, with vrrp_, in
# global_defs); written bare in global_defs they are unknown to it.
INSTANCE_GARP = frozenset({"garp_master_delay", "garp_master_repeat", "garp_master_refresh",
                           "garp_master_refresh_repeat", "garp_lower_prio_delay",
                           "garp_lower_prio_repeat"})
MAIL = ("haguard sends no mail: it logs every transition (journald, or node.log_file) and "
        "exports metrics (haguard metrics); alert on those")
# keepalived's checker defaults (keepalived.conf(5), keepalived/check/), written out in
# the YAML because haguard's own defaults differ.
KA_DELAY_LOOP_S = 60.0
KA_CONNECT_TIMEOUT_S = 5.0
KA_RETRY = {"tcp": 1, "http": 1, "https": 1, "script": 0, "dns": 3}
KA_DELAY_BEFORE_RETRY_S = {"tcp": 1.0, "http": 3.0, "https": 3.0, "script": 1.0, "dns": 1.0}
KA_PERSISTENCE_S = 360
KA_AUTH_PASS_MAX = 8
LB_KINDS = {"NAT": "nat", "DR": "dr", "TUN": "tun"}
CHECKERS = {"TCP_CHECK": "tcp", "HTTP_GET": "http", "SSL_GET": "https", "MISC_CHECK": "script",
            "DNS_CHECK": "dns"}
UNSUPPORTED_CHECKERS = ("SMTP_CHECK", "BFD_CHECK", "PING_CHECK", "UDP_CHECK", "FILE_CHECK")
_INT_RE = re.compile(r"^-?[0-9]+$")
_NUM_RE = re.compile(r"^[0-9]+(\.[0-9]+)?$")


@dataclass(frozen=True)
class Finding:
    """One line haguard's YAML does not express as keepalived meant it."""

    where: str
    keyword: str
    advice: str
    decision: bool = True    # False: keepalived's behaviour is kept; said so it is not silent

    def __str__(self) -> str:
        note = "" if self.decision else "note: "
        return f"{self.where}: {self.keyword}: {note}{self.advice}"


@dataclass(frozen=True)
class Migration:
    """The YAML document and the lines that need the operator's decision."""

    doc: dict[str, Any]
    findings: tuple[Finding, ...]

    @property
    def decisions(self) -> tuple[Finding, ...]:
        return tuple(f for f in self.findings if f.decision)


# keepalived's virtual_ipaddress options that take a value; every other word is a flag
# (no_track, home, -nodad, noprefixroute, autojoin, mngtmpaddr, ...).
VIP_VALUE_OPTIONS = frozenset({"brd", "broadcast", "dev", "scope", "label", "peer",
                               "preferred_lft"})


def vip_options(args: tuple[str, ...] | list[str]) -> tuple[dict[str, str], list[str]]:
    """A VIP line's words after the address: (options with their values, flags)."""
    options: dict[str, str] = {}
    flags: list[str] = []
    words = list(args)
    while words:
        word = words.pop(0)
        if word in VIP_VALUE_OPTIONS and words:
            options[word] = words.pop(0)
        else:
            flags.append(word)
    return options, flags


_PARAM_RE = re.compile(r"\$\{?([A-Za-z_][A-Za-z0-9_]*)")


def defined_params(stmts: tuple[Stmt, ...]) -> frozenset[str]:
    """The names the file defines as keepalived parameters (``$NAME=value`` lines)."""
    names: set[str] = set()
    for stmt in stmts:
        if stmt.keyword.startswith("$") and "=" in stmt.keyword:
            names.add(stmt.keyword[1:].split("=", 1)[0])
        if stmt.block:
            names |= defined_params(stmt.block)
    return frozenset(names)


def migrate(stmts: tuple[Stmt, ...], node: str | None = None,
            programs: Mapping[str, str] | None = None) -> Migration:
    """Translate a parsed keepalived.conf; ``node`` names the director (else router_id);
    ``programs`` maps a command written without a directory to where keepalived's PATH
    search finds it."""
    conv = _Converter(params=defined_params(stmts), programs=programs or {})
    return conv.run(stmts, node)


@dataclass
class _Converter:
    # keepalived expands $NAME where the file defines NAME (or NAME is one of its own,
    # which start with _); any other $ is literal text to it, and to the YAML.
    params: frozenset[str] = frozenset()
    programs: Mapping[str, str] = field(default_factory=dict)
    findings: list[Finding] = field(default_factory=list)
    router_id: str | None = None
    script_user: str | None = None
    global_garp: dict[str, Stmt] = field(default_factory=dict)
    groups: dict[str, Stmt] = field(default_factory=dict)
    scripts: list[dict[str, Any]] = field(default_factory=list)
    processes: dict[str, Stmt] = field(default_factory=dict)
    sync_groups: list[dict[str, Any]] = field(default_factory=list)
    # Sync groups that let tracked weights move priority (sync_group_tracking_weight).
    weighted_groups: set[str] = field(default_factory=set)
    # Where each tracked entry was written: (instance, part, name) -> its line.
    track_lines: dict[tuple[str, str, str], Stmt] = field(default_factory=dict)
    owners: set[str] = field(default_factory=set)    # instances at priority 255
    sync: dict[str, Any] | None = None
    vrrp_version: int = 2
    timeouts: dict[str, int] | None = None

    # ------------------------------------------------------------------ plumbing
    def note(self, stmt: Stmt, advice: str, keyword: str | None = None,
             decision: bool = True) -> None:
        self.findings.append(Finding(stmt.where, keyword or stmt.keyword, advice, decision))

    def unknown(self, stmt: Stmt, within: str) -> None:
        if stmt.keyword[:1] in ("$", "@"):
            self.note(stmt, "keepalived's parameters ($NAME) and config ids (@ID) are not "
                            "expanded by haguard migrate: expand them for this director and "
                            "migrate that file")
            return
        if "=" in stmt.keyword:
            self.note(stmt, "not a keyword to keepalived either (keyword and value run "
                            "together with '='), so keepalived ignored this line; so does "
                            "the YAML", decision=False)
            return
        if stmt.keyword == "include":   # left by the reader: nothing matched its pattern
            self.note(stmt, f"{' '.join(stmt.args)}: no file matches here, so nothing "
                            "of it is in the YAML; run migrate where the included files "
                            "are, or decide they are not needed")
            return
        self.note(stmt, f"not a keyword haguard migrate knows in {within}; nothing in the "
                        "YAML carries it: decide whether it matters")

    def arg(self, stmt: Stmt, index: int = 0, what: str = "a value") -> str:
        if len(stmt.args) <= index:
            raise KeepalivedConfError(f"{stmt.where}: {stmt.keyword} needs {what}")
        value = stmt.args[index]
        if any(name in self.params or name.startswith("_")
               for name in _PARAM_RE.findall(value)):
            raise KeepalivedConfError(f"{stmt.where}: {stmt.keyword} {value}: "
                                      "keepalived's parameters are not expanded by haguard "
                                      "migrate: expand them for this director first")
        return value

    def integer(self, stmt: Stmt, index: int = 0) -> int:
        value = self.arg(stmt, index, "a number")
        if not _INT_RE.match(value):
            raise KeepalivedConfError(f"{stmt.where}: {stmt.keyword}: {value!r} is not a "
                                      "whole number")
        return int(value)

    def number(self, stmt: Stmt, index: int = 0) -> float:
        value = self.arg(stmt, index, "a number")
        if not _NUM_RE.match(value):
            raise KeepalivedConfError(f"{stmt.where}: {stmt.keyword}: {value!r} is not a "
                                      "number")
        return float(value)

    def block(self, stmt: Stmt) -> tuple[Stmt, ...]:
        if stmt.block is None:
            raise KeepalivedConfError(f"{stmt.where}: {stmt.keyword} needs a {{ ... }} block")
        return stmt.block

    # ------------------------------------------------------------------ the file
    def run(self, stmts: tuple[Stmt, ...], node: str | None) -> Migration:
        for stmt in stmts:   # definitions the rest refers to, wherever they are written
            if stmt.keyword == "global_defs":
                self.global_defs(stmt)
            elif stmt.keyword == "virtual_server_group":
                self.groups[self.arg(stmt, 0, "a name")] = stmt
            elif stmt.keyword == "vrrp_track_process":
                self.processes[self.arg(stmt, 0, "a name")] = stmt
        instances: list[dict[str, Any]] = []
        services: list[dict[str, Any]] = []
        for stmt in stmts:
            kw = stmt.keyword
            if kw in ("global_defs", "virtual_server_group", "vrrp_track_process"):
                continue
            if kw == "vrrp_instance":
                instances.append(self.instance(stmt))
            elif kw == "virtual_server":
                services.extend(self.virtual_server(stmt))
            elif kw == "vrrp_sync_group":
                self.sync_group(stmt)
            elif kw == "vrrp_script":
                self.script(stmt)
            elif kw in ("static_ipaddress", "static_routes", "static_rules",
                        "virtual_routes", "local_address_group"):
                self.note(stmt, "haguard has no equivalent; configure it outside haguard "
                                "(ifupdown, systemd-networkd) or decide it is not needed")
            else:
                self.unknown(stmt, "the top level")
        for instance in instances:
            self.ignored_weights(instance)
        if services and not instances:
            first = next(s for s in stmts if s.keyword == "virtual_server")
            self.note(first, "no vrrp_instance in the file: haguard runs LVS beside "
                             "keepalived's VRRP; add the instance this director holds the "
                             "VIPs with", "virtual_server")
        name = node or self.router_id
        if name is None:
            raise KeepalivedConfError("the file has no global_defs { router_id ... }: name "
                                      "this director with --node NAME")
        doc: dict[str, Any] = {"node": {"name": name}}
        if self.vrrp_version == 3:
            doc["keepalived"] = {"version": 3}
        if self.scripts:
            doc["scripts"] = self.scripts
        if self.sync_groups:
            doc["sync_groups"] = self.sync_groups
        if instances:
            doc["instances"] = instances
        if services or self.sync is not None or self.timeouts is not None:
            ipvs: dict[str, Any] = {"on_backup": "keep"}   # keepalived's checker: both nodes
            if self.sync is not None:
                ipvs["sync"] = self.sync
            if self.timeouts is not None:
                ipvs["timeouts"] = self.timeouts
            ipvs["services"] = services
            doc["ipvs"] = ipvs
            if any(_checked(s) for s in services):
                doc["agent"] = {}
        order = sorted(self.findings, key=lambda f: _place(f.where))
        return Migration(doc=doc, findings=tuple(order))

    def global_defs(self, stmt: Stmt) -> None:
        for s in self.block(stmt):
            kw = s.keyword
            if kw == "router_id":
                self.router_id = self.arg(s, 0, "a name")
            elif kw in ("notification_email", "notification_email_from", "smtp_server",
                        "smtp_connect_timeout", "smtp_helo_name", "smtp_alert",
                        "smtp_alert_vrrp", "smtp_alert_checker", "email_faults"):
                self.note(s, MAIL, decision=False)
            elif kw == "script_user":
                self.script_user = self.arg(s, 0, "a user")
            elif kw == "enable_script_security":
                pass   # haguard renders it, and checks its own scripts the same way
            elif kw in ("vrrp_garp_master_delay", "vrrp_garp_master_repeat",
                        "vrrp_garp_master_refresh", "vrrp_garp_master_refresh_repeat",
                        "vrrp_garp_interval", "vrrp_gna_interval",
                        "vrrp_garp_lower_prio_delay", "vrrp_garp_lower_prio_repeat"):
                self.global_garp[kw.removeprefix("vrrp_")] = s
            elif kw == "vrrp_version":
                version = self.integer(s)
                if version == 3:
                    self.vrrp_version = 3
                elif version != 2:
                    raise KeepalivedConfError(f"{s.where}: vrrp_version {version}: VRRP "
                                              "versions are 2 and 3")
            elif kw in PROCESS_TUNING:
                self.note(s, "tunes keepalived's own processes; haguard's rendering leaves "
                             "keepalived at its defaults", decision=False)
            elif kw in ("vrrp_skip_check_adv_addr", "vrrp_check_unicast_src"):
                self.note(s, "a check keepalived makes on adverts it receives; haguard's "
                             "rendering leaves keepalived's default", decision=False)
            elif kw in ("vrrp_strict", "vrrp_iptables", "nftables", "vrrp_ipsets"):
                self.note(s, "keepalived's strict mode / its firewall rules for the VIPs: "
                             "haguard adds the VIPs as plain addresses and renders no "
                             "firewall rules; a VIP answers ping and traffic it did not "
                             "answer before")
            elif kw in ("vrrp_mcast_group4", "vrrp_mcast_group6"):
                self.note(s, "haguard renders keepalived's default multicast group; a "
                             "pair on another group must move together")
            elif kw in ("enable_traps", "enable_snmp_vrrp", "enable_snmp_checker",
                        "enable_snmp_rfc", "enable_snmp_rfcv2", "enable_snmp_rfcv3",
                        "snmp_socket"):
                self.note(s, "haguard renders no SNMP; it exports metrics (haguard metrics) "
                             "and logs every transition")
            elif kw in ("notify_fifo", "vrrp_notify_fifo", "lvs_notify_fifo",
                        "notify_fifo_script", "vrrp_notify_fifo_script",
                        "lvs_notify_fifo_script"):
                self.note(s, "haguard's agent reads keepalived's notify FIFO itself (agent: "
                             "section); a reader of your own is not carried")
            elif kw == "lvs_flush":
                self.note(s, "keepalived flushed the whole IPVS table at start; haguard "
                             "changes only the services it owns and leaves others alone",
                          decision=False)
            elif kw == "lvs_timeouts":
                self.lvs_timeouts(s)
            elif kw == "lvs_sync_daemon":
                self.sync_daemon(s, named_instance=True)
            elif kw in INSTANCE_GARP:
                self.note(s, f"an instance's keyword, not a global one (that is vrrp_{kw}): "
                             "keepalived ignored it here ('Unknown keyword'); so does the "
                             "YAML", decision=False)
            elif kw == "lvs_id":
                self.note(s, "a name for the director in keepalived's mail; nothing acts "
                             "on it", decision=False)
            else:
                self.unknown(s, "global_defs")

    # ------------------------------------------------------------------ VRRP
    def instance(self, stmt: Stmt) -> dict[str, Any]:
        name = self.arg(stmt, 0, "a name")
        out: dict[str, Any] = {"name": name}
        vips: list[Any] = []
        garp = dict(self.global_garp)
        deferred_vips: list[Stmt] = []
        for s in self.block(stmt):
            kw = s.keyword
            if kw == "state":
                state = self.arg(s, 0, "MASTER or BACKUP").upper()
                if state not in ("MASTER", "BACKUP", "SLAVE"):
                    raise KeepalivedConfError(f"{s.where}: state: {s.args[0]!r} is not MASTER "
                                              "or BACKUP")
                out["state"] = "BACKUP" if state == "SLAVE" else state
            elif kw == "interface":
                out["interface"] = self.arg(s, 0, "a device")
            elif kw == "virtual_router_id":
                out["virtual_router_id"] = self.integer(s)
            elif kw == "priority":
                out["priority"] = self.integer(s)
                if out["priority"] == 255:
                    self.owners.add(name)
                    out["priority"] = 254
                    self.note(s, "255 makes keepalived the address owner: the VIPs are this "
                                 "host's own addresses, it is MASTER whatever else advertises "
                                 "and tracked weights do not count. haguard holds the VIPs "
                                 "itself and takes priorities 1-254: the YAML has 254, the "
                                 "highest; decide whether the peer may still take over")
            elif kw == "advert_int":
                value = self.number(s)
                out["advert_int"] = int(value) if value.is_integer() else value
            elif kw == "nopreempt":
                out["nopreempt"] = True
            elif kw == "preempt":
                out["nopreempt"] = False
            elif kw == "authentication":
                self.authentication(s, out)
            elif kw in ("virtual_ipaddress", "virtual_ipaddress_excluded"):
                deferred_vips.append(s)
            elif kw == "unicast_peer":
                out["unicast_peers"] = [self.peer(p) for p in self.block(s)]
            elif kw in ("garp_interval", "gna_interval"):
                self.note(s, f"not an instance's keyword to keepalived (it is vrrp_{kw} in "
                             "global_defs, or a garp_group's): keepalived ignored it here "
                             "('Unknown keyword'); so does the YAML", decision=False)
            elif kw.startswith("garp_"):
                garp[kw] = s
            elif kw in ("notify_master", "notify_backup", "notify_fault", "notify_stop",
                        "notify"):
                self.notify(s, out)
            elif kw == "notify_master_rx_lower_pri":
                self.note(s, "haguard renders its own notify_master_rx_lower_pri (the MASTER "
                             "announces its VIPs again); your command is not run: decide "
                             "whether it is needed beyond that")
            elif kw == "smtp_alert":
                self.note(s, MAIL, decision=False)
            elif kw in ("track_interface", "track_script", "track_process"):
                self.track(s, out)
            elif kw in ("track_file", "track_bfd"):
                self.note(s, "haguard renders its own track files (the demote and promote "
                             "levers) but not yours, nor BFD: this instance's priority and "
                             "FAULT state do not follow it")
            elif kw == "unicast_src_ip":
                address, slash, _ = self.arg(s, 0, "an address").partition("/")
                out["unicast_src_ip"] = address
                if slash:
                    self.note(s, f"{s.args[0]}: keepalived rejects a source with a prefix "
                                 "and leaves it out; the YAML has "
                                 f"{address}: adverts will leave from it")
            elif kw == "mcast_src_ip":
                self.note(s, "haguard does not render mcast_src_ip: adverts leave from the "
                             "interface's primary address")
            elif kw == "preempt_delay":
                out["preempt_delay_s"] = _num(self.number(s))
            elif kw == "dont_track_primary":
                out["dont_track_primary"] = True
            elif kw == "lvs_sync_daemon_interface":
                self.sync_daemon(s)
            elif kw in ("use_vmac", "vmac_xmit_base"):
                self.note(s, "haguard adds VIPs to the interface itself and announces its "
                             "MAC; it has no VMAC mode")
            elif kw == "native_ipv6":
                pass   # an IPv6-only instance: haguard's VIPs say which family they are
            elif kw == "version":
                if self.integer(s) == 3:
                    self.vrrp_version = 3
            elif kw in ("skip_check_adv_addr", "debug", "kernel_rx_buf_size",
                        "notify_priority_changes", "linkbeat_use_polling"):
                self.note(s, "keepalived-internal; haguard's rendering leaves keepalived's "
                             "default", decision=False)
            elif kw in ("accept", "no_accept"):
                self.note(s, "haguard's VIPs are plain addresses of the interface: they "
                             "accept traffic (keepalived's accept)", decision=kw == "no_accept")
            elif kw == "strict_mode":
                self.note(s, "keepalived's strict mode is not rendered: the VIPs answer "
                             "traffic and no firewall rules are added")
            elif kw in ("virtual_routes", "virtual_rules"):
                self.note(s, "haguard moves addresses, not routes or rules: add them with "
                             "the instance's notify commands (instances[].notify)")
            elif kw == "notify_deleted":
                self.note(s, "haguard treats DELETED like STOP (it removes the VIPs); your "
                             "command there is not run")
            else:
                self.unknown(s, f"vrrp_instance {name}")
        if out.get("preempt_delay_s") and (out.get("nopreempt")
                                           or out.get("state") == "MASTER"):
            where = next(s for s in self.block(stmt) if s.keyword == "preempt_delay")
            self.note(where, "keepalived ignores preempt_delay with nopreempt or an initial "
                             "MASTER state; the YAML leaves it out", decision=False)
            del out["preempt_delay_s"]
        if out.get("nopreempt") and out.get("state") == "MASTER":
            where = next(s for s in self.block(stmt) if s.keyword == "nopreempt")
            self.note(where, "keepalived ignores nopreempt on an instance starting as "
                             "MASTER; the YAML leaves it out (for nopreempt, start both "
                             "directors as BACKUP)", decision=False)
            del out["nopreempt"]
        family: list[int] = []      # the instance's, set by its first virtual_ipaddress
        for s in sorted(deferred_vips, key=lambda v: v.keyword != "virtual_ipaddress"):
            vips.extend(self.vips(s, out.get("interface"), family))
        if vips:
            out["vips"] = vips
        announce = self.announce(garp)
        if announce:
            out["announce"] = announce
        return out

    def script(self, stmt: Stmt) -> None:
        """A vrrp_script as an entry of ``scripts``."""
        out: dict[str, Any] = {"name": self.arg(stmt, 0, "a name")}
        for s in self.block(stmt):
            kw = s.keyword
            if kw == "script":
                out["command"] = self.command(s)
            elif kw in ("interval", "timeout"):
                out[f"{kw}_s"] = _num(self.number(s))
            elif kw in ("rise", "fall"):
                out[kw] = self.integer(s)
            elif kw == "weight":
                out["weight"] = self.integer(s)
                if s.args[1:]:
                    self.note(s, f"{' '.join(s.args[1:])}: haguard renders the weight alone")
            elif kw == "user":
                out["user"] = self.arg(s, 0, "a user")
                if len(s.args) > 1:
                    self.note(s, "a group after the user: haguard renders the user alone "
                                 "(keepalived then uses the user's group)")
            elif kw == "init_fail":
                self.note(s, "haguard does not render init_fail: the script starts as "
                             "keepalived's default (succeeding until it fails)")
            else:
                self.unknown(s, f"vrrp_script {out['name']}")
        if "command" not in out:
            raise KeepalivedConfError(f"{stmt.where}: vrrp_script needs a script line")
        self.scripts.append(out)

    def sync_group(self, stmt: Stmt) -> None:
        name = self.arg(stmt, 0, "a name")
        members: list[str] = []
        for s in self.block(stmt):
            if s.keyword == "group":
                members += s.words() + list(s.args)
            elif s.keyword in ("notify_master", "notify_backup", "notify_fault", "notify_stop",
                               "notify", "smtp_alert", "track_interface", "track_script",
                               "track_file", "track_process", "track_bfd"):
                self.note(s, "on the sync group: haguard's YAML says this per instance; "
                             "put it on the members that need it")
            elif s.keyword in ("global_tracking", "sync_group_tracking_weight"):
                self.weighted_groups.add(name)
            else:
                self.unknown(s, f"vrrp_sync_group {name}")
        if len(members) < 2:
            self.note(stmt, f"a sync group of {len(members)} instance syncs nothing (keepalived "
                            "says so too); the YAML leaves it out", decision=False)
            return
        self.sync_groups.append({"name": name, "instances": members})

    def ignored_weights(self, instance: dict[str, Any]) -> None:
        """What keepalived does to the weights of a sync group's member (unless the group
        says sync_group_tracking_weight) and of an address owner (priority 255): a
        weighted tracked interface counts as unweighted (down is FAULT), a weighted
        tracked script is not tracked at all. haguard's keepalived.conf lets weights count
        in sync groups (its own levers need it), so the YAML drops what keepalived ignored,
        and says so."""
        group = next((g["name"] for g in self.sync_groups
                      if instance["name"] in g["instances"]), None)
        if instance["name"] in self.owners:
            why = "the address owner (priority 255)"
        elif group is not None and group not in self.weighted_groups:
            why = (f"a member of sync group {group}, which does not say "
                   "sync_group_tracking_weight")
        else:
            return
        track = instance.get("track") or {}
        own = {sc["name"]: sc.get("weight", 0) for sc in self.scripts}
        for entry in track.get("interfaces", []):
            if entry.get("weight"):
                weight = entry.pop("weight")
                self.note(self.track_lines[(instance["name"], "interfaces", entry["name"])],
                          f"{entry['name']} weight {weight}: keepalived ignores the weight "
                          f"of a tracked interface on {why} (down puts the instance in "
                          "FAULT); the YAML tracks it without one, as keepalived ran it",
                          "track_interface", decision=False)
        kept = []
        for entry in track.get("scripts", []):
            weight = entry.get("weight", own.get(entry["name"], 0))
            if not weight:
                kept.append(entry)
                continue
            self.note(self.track_lines[(instance["name"], "scripts", entry["name"])],
                      f"{entry['name']} (weight {weight}): keepalived does not track a "
                      f"weighted script on {why} (it logs \"ignoring tracked script\"); the "
                      "YAML leaves it out, as keepalived ran it. Add it back to have it "
                      "count: haguard's keepalived.conf lets weights move a sync group's "
                      "priority", "track_script", decision=False)
        if "scripts" in track:
            track["scripts"] = kept
            if not kept:
                del track["scripts"]
        if "track" in instance and not instance["track"]:
            del instance["track"]

    def track(self, stmt: Stmt, out: dict[str, Any]) -> None:
        part = {"track_script": "scripts", "track_interface": "interfaces",
                "track_process": "processes"}[stmt.keyword]
        entries = out.setdefault("track", {}).setdefault(part, [])
        for item in self.block(stmt):
            self.track_lines[(out["name"], part, item.keyword)] = item
            entry: dict[str, Any] = {"name": item.keyword}
            args = list(item.args)
            if args[:1] == ["weight"] and len(args) >= 2:
                entry["weight"] = self.integer(item, 1)
                args = args[2:]
            if args:
                self.note(item, f"{' '.join(args)}: not carried (haguard renders the name "
                                "and weight)", stmt.keyword)
            if part == "processes":
                entry = self.process(item, entry)
                if not entry:
                    continue
            entries.append(entry)

    def process(self, item: Stmt, entry: dict[str, Any]) -> dict[str, Any]:
        """A track_process entry: haguard tracks a process by its name (its
        vrrp_track_process of one ``process NAME`` line, weight and nothing else)."""
        block = self.processes.get(entry["name"])
        if block is None:
            self.note(item, "no vrrp_track_process of that name in the file", "track_process")
            return {}
        tracked: dict[str, Any] = {}
        for s in self.block(block):
            if s.keyword == "process" and len(s.args) == 1:
                tracked["name"] = s.args[0]
            elif s.keyword == "weight" and len(s.args) == 1:
                tracked.setdefault("weight", self.integer(s))
            else:
                self.note(s, "haguard tracks a process by its name alone; this is not "
                             "carried", "vrrp_track_process")
        if "name" not in tracked:
            return {}
        if "weight" in entry:
            tracked["weight"] = entry["weight"]
        return tracked

    def notify(self, stmt: Stmt, out: dict[str, Any]) -> None:
        """keepalived's notify scripts as the instance's ``notify`` commands; the generic
        one gets the words keepalived appends."""
        argv = self.command(stmt.__class__(stmt.keyword, stmt.args[:1], stmt.file,
                                           stmt.line))
        if len(stmt.args) > 1 and stmt.args[1] != "root":
            self.note(stmt, f"runs as {' '.join(stmt.args[1:])} under keepalived; haguard "
                            "runs notify commands as root")
        notify = out.setdefault("notify", {})
        if stmt.keyword == "notify":
            for state in ("master", "backup", "fault", "stop"):
                notify.setdefault(state, []).append(
                    [*argv, "INSTANCE", "{instance}", "{state}", "{priority}"])
        else:
            notify.setdefault(stmt.keyword.removeprefix("notify_"), []).append(argv)

    def authentication(self, stmt: Stmt, out: dict[str, Any]) -> None:
        kind = "PASS"
        password: Stmt | None = None
        for s in self.block(stmt):
            if s.keyword == "auth_type":
                kind = self.arg(s, 0, "PASS or AH").upper()
            elif s.keyword == "auth_pass":
                password = s
            else:
                self.unknown(s, "authentication")
        if kind != "PASS":
            self.note(stmt, f"auth_type {kind}: haguard renders PASS authentication only "
                            "(RFC 3768 removed AH); both directors must change together",
                      "auth_type")
        if password is None:
            return
        text = self.arg(password, 0, "a password")
        if len(text) > KA_AUTH_PASS_MAX:
            out["auth_pass"] = text[:KA_AUTH_PASS_MAX]
            self.note(password, f"{len(text)} characters: keepalived used only the first "
                                f"{KA_AUTH_PASS_MAX} ({text[:KA_AUTH_PASS_MAX]!r}); the YAML "
                                "has those, which keeps the pair talking", decision=False)
        else:
            out["auth_pass"] = text

    def peer(self, stmt: Stmt) -> str:
        if stmt.args:
            self.note(stmt, f"{' '.join(stmt.args)}: haguard renders the peer's address "
                            "only", "unicast_peer")
        address, slash, _ = stmt.keyword.partition("/")
        if slash:
            self.note(stmt, f"{stmt.keyword}: keepalived rejects a peer with a prefix "
                            "(\"malformed unicast peer address\") and leaves it out; the "
                            f"YAML has {address} as a peer: the pair will talk unicast "
                            "where it did not before", "unicast_peer")
        return address

    def vips(self, stmt: Stmt, interface: str | None, family: list[int]) -> list[Any]:
        """``family`` holds the instance's address family once known: keepalived sets it
        from the first virtual_ipaddress and ignores one of the other family there
        (virtual_ipaddress_excluded takes both)."""
        out: list[Any] = []
        for item in self.block(stmt):
            address = item.keyword
            try:
                network = ipaddress.ip_interface(address)
            except ValueError:
                raise KeepalivedConfError(f"{item.where}: {stmt.keyword}: {address!r} is not "
                                          "an IP address") from None
            if stmt.keyword == "virtual_ipaddress":
                if not family:
                    family.append(network.version)
                elif network.version != family[0]:
                    self.note(item, f"{address}: keepalived 2 ignores an IPv{network.version} "
                                    f"address in the virtual_ipaddress of an IPv{family[0]} "
                                    "instance (\"address family must match VRRP instance\"), "
                                    "so it was never held; the YAML leaves it out. Add it to "
                                    "vips if it should be (haguard holds both families)",
                              "virtual_ipaddress")
                    continue
            if "/" not in address:   # keepalived's default prefix: the host's own
                address = f"{address}/{network.max_prefixlen}"
            options, flags = vip_options(item.args)
            label = options.pop("label", None)
            dev = options.pop("dev", None)
            for flag in flags:
                if flag == "no_track":
                    self.note(item, "no_track: haguard's keepalived.conf tracks the device of "
                                    "every VIP (FAULT when it goes down), as keepalived does "
                                    "without no_track", "virtual_ipaddress")
                else:
                    self.note(item, f"{flag}: not carried; haguard adds the VIP with the "
                                    "kernel's defaults", "virtual_ipaddress")
            for key in options:
                if key not in ("brd", "scope", "broadcast"):
                    self.note(item, f"{key} {options[key]}: not carried; haguard adds the "
                                    "VIP with the kernel's defaults", "virtual_ipaddress")
            entry: dict[str, Any] = {"address": address}
            if dev is not None and dev != interface:
                entry["interface"] = dev          # vips[].interface: added and announced there
            if label:
                entry["label"] = label
            out.append(entry if len(entry) > 1 else address)
        return out

    def announce(self, garp: dict[str, Stmt]) -> dict[str, Any]:
        """keepalived's garp_* settings as haguard's announce section (only what differs)."""
        out: dict[str, Any] = {}
        for key, stmt in garp.items():
            if key == "garp_master_repeat":
                out["count"] = self.integer(stmt)
            elif key == "garp_master_delay":
                out["repeat_after_s"] = self.number(stmt)
            elif key == "garp_master_refresh":
                out["refresh_s"] = self.number(stmt)
            elif key in ("garp_interval", "gna_interval"):
                ms = round(self.number(stmt) * 1000)
                if key == "garp_interval" or "interval_ms" not in out:
                    out["interval_ms"] = ms
            elif key in ("garp_lower_prio_repeat", "garp_lower_prio_delay"):
                self.note(stmt, "haguard announces announce.count frames whenever this "
                                "MASTER hears a lower priority (notify_master_rx_lower_pri)",
                          key, decision=False)
            elif key == "garp_master_refresh_repeat":
                self.note(stmt, "haguard repeats the whole announcement (announce.count "
                                "frames) at each refresh", key)
            else:
                self.note(stmt, "haguard announces only on becoming MASTER and at refresh",
                          key)
        return out

    def sync_daemon(self, stmt: Stmt, named_instance: bool = False) -> None:
        """lvs_sync_daemon_interface IF [id N], or global lvs_sync_daemon IF INSTANCE [id N]."""
        interface = self.arg(stmt, 0, "an interface")
        rest = list(stmt.args[2 if named_instance else 1:])
        syncid = 0
        if rest[:1] == ["id"] and len(rest) >= 2 and rest[1].isdigit():
            syncid = int(rest[1])
            rest = rest[2:]
        if rest:
            self.note(stmt, f"{' '.join(rest)}: not carried (haguard sets the interface and "
                            "syncid)")
        self.sync = {"interface": interface, "syncid": syncid}

    def lvs_timeouts(self, stmt: Stmt) -> None:
        names = {"tcp": "tcp_s", "tcpfin": "tcpfin_s", "udp": "udp_s"}
        out: dict[str, int] = {}
        args = list(stmt.args)
        while args:
            word = args.pop(0)
            if word in names and args and args[0].isdigit():
                out[names[word]] = int(args.pop(0))
            else:
                self.note(stmt, f"{word}: haguard sets the tcp, tcpfin and udp timeouts only")
                if args and args[0].isdigit():
                    args.pop(0)
        if out:
            self.timeouts = out

    # ------------------------------------------------------------------ LVS
    def virtual_server(self, stmt: Stmt) -> list[dict[str, Any]]:
        keys = self.service_keys(stmt)
        base: dict[str, Any] = {}
        forwarding = "nat"
        defaults: dict[str, Stmt] = {}
        servers: list[Stmt] = []
        quorum: dict[str, Any] = {}
        sorry: Stmt | None = None
        virtualhost: str | None = None
        flags: dict[str, Any] = {}
        protocol = "tcp"
        ip_family = "inet"
        for s in self.block(stmt):
            kw = s.keyword
            if kw in ("lb_algo", "lvs_sched"):
                base["scheduler"] = self.arg(s, 0, "a scheduler")
            elif kw in ("lb_kind", "lvs_method"):
                method = self.arg(s, 0, "NAT, DR or TUN").upper()
                if method not in LB_KINDS:
                    raise KeepalivedConfError(f"{s.where}: {kw}: {s.args[0]!r} is not NAT, "
                                              "DR or TUN")
                forwarding = LB_KINDS[method]
            elif kw == "protocol":
                protocol = self.arg(s, 0, "TCP or UDP").lower()
                if protocol not in ("tcp", "udp"):
                    self.note(s, f"{s.args[0]}: haguard's services are TCP or UDP")
                    protocol = "tcp"
            elif kw in ("delay_loop", "connect_timeout", "retry", "nb_get_retry",
                        "delay_before_retry", "warmup"):
                defaults[kw] = s
            elif kw == "persistence_timeout":
                timeout = self.integer(s) if s.args else KA_PERSISTENCE_S
                if timeout:   # 0: not persistent, as keepalived reads it
                    flags["persistence"] = {"timeout_s": timeout}
            elif kw == "persistence_granularity":
                flags["granularity"] = s
            elif kw == "real_server":
                servers.append(s)
            elif kw == "sorry_server":
                sorry = s
            elif kw == "quorum":
                quorum["weight"] = self.integer(s)
                if quorum["weight"] < 1:
                    self.note(s, f"{quorum['weight']}: keepalived refuses a quorum below 1 "
                                 "and uses 1, its default; so does the YAML", decision=False)
                    quorum["weight"] = 1
            elif kw == "hysteresis":
                quorum["hysteresis"] = self.integer(s)
            elif kw in ("quorum_up", "quorum_down"):
                quorum[kw.removeprefix("quorum_")] = self.command(s)
            elif kw == "virtualhost":
                virtualhost = self.arg(s, 0, "a host name")
            elif kw in ("alpha", "omega", "inhibit_on_failure"):
                defaults[kw] = s
            elif kw == "ha_suspend":
                self.note(s, "haguard checks on MASTER and BACKUP alike (keepalived's "
                             "default); ha_suspend's pause on the BACKUP is not carried")
            elif kw in ("sh-port", "sh-fallback", "mh-port", "mh-fallback"):
                base.setdefault("flags", []).append(kw)
            elif kw in ("lb_flags", "lvs_flags"):
                for flag in s.args:
                    if flag in ("sh-port", "sh-fallback", "mh-port", "mh-fallback"):
                        base.setdefault("flags", []).append(flag)
                    elif flag == "ops":
                        defaults["ops"] = s
                    elif flag != "hashed":
                        self.note(s, f"{flag}: haguard sets the sh/mh flags by name "
                                     "(sh-port, sh-fallback, mh-port, mh-fallback)")
            elif kw == "ip_family":
                ip_family = self.arg(s, 0, "inet or inet6")
            elif kw == "sorry_server_inhibit":
                self.note(s, "haguard adds the sorry server at its weight; keepalived's "
                             "inhibit (weight 0 when not needed) is not carried")
            elif kw == "persistence_engine":
                self.note(s, "haguard has no persistence engines (SIP): decide")
            elif kw == "smtp_alert":
                self.note(s, MAIL, decision=False)
            elif kw == "nat_mask":
                self.note(s, "keepalived 1's nat_mask; keepalived 2 ignores it",
                          decision=False)
            elif kw == "ops":
                defaults["ops"] = s
            else:
                self.unknown(s, f"virtual_server {' '.join(stmt.args)}")
        if "ops" in defaults:
            if protocol == "udp" or all("fwmark" in k for k in keys):
                flags["ops"] = True
            else:
                self.note(defaults["ops"], "keepalived sets one-packet scheduling on UDP "
                                           "services only; this one is TCP, so it is left out",
                          decision=False)
        if "granularity" in flags:
            g = flags.pop("granularity")
            if "persistence" in flags:
                flags["persistence"]["netmask"] = self.arg(g, 0, "a netmask")
            else:
                self.note(g, "without persistence_timeout it has no effect")
        if quorum and "weight" not in quorum:
            quorum["weight"] = 1
        if not keys:
            return []
        rs_docs = [self.real_server(s, forwarding, defaults, virtualhost) for s in servers]
        out = []
        for key in keys:
            svc: dict[str, Any] = dict(key)
            if "vip" in svc:
                svc["protocol"] = protocol
            elif ip_family == "inet6":
                svc["family"] = "inet6"
            svc.update(base)
            svc.update(flags)
            real = [self.same_port(copy.deepcopy(r), svc, where)
                    for r, where in zip(rs_docs, servers)]
            health = _common_health(real)
            if health is not None:
                svc["health"] = health
                for r in real:
                    r.pop("health", None)
            if quorum:
                svc["quorum"] = quorum
            if sorry is not None:
                backup: dict[str, Any] = {"address": self.arg(sorry, 0, "an address")}
                if len(sorry.args) > 1:
                    backup["port"] = self.integer(sorry, 1)
                backup["forwarding"] = forwarding
                svc["sorry_server"] = self.same_port(backup, svc, sorry)
            svc["real_servers"] = real
            out.append(svc)
        if defaults.get("omega") is not None:
            self.note(defaults["omega"], "haguard does not run the down/quorum-down "
                                         "commands when it stops")
        if "warmup" in defaults:
            self.note(defaults["warmup"], "haguard spreads first checks over the interval "
                                          "itself")
        return _fold(out)

    def same_port(self, server: dict[str, Any], svc: dict[str, Any], where: Stmt
                  ) -> dict[str, Any]:
        """DR and TUN deliver the packet unchanged: the port the real server gets is the
        service's, whatever keepalived.conf wrote. Its checks keep the written port."""
        port = server.get("port")
        if "port" not in svc or port is None or port == svc["port"] \
                or server["forwarding"] not in ("dr", "tun"):
            return server
        server["port"] = svc["port"]
        checks = server.get("health")
        for check in checks if isinstance(checks, list) else [checks] if checks else []:
            check.setdefault("port", port)
        self.note(where, f"port {port} with {server['forwarding'].upper()} forwarding: the "
                         f"kernel delivers to port {svc['port']} (the service's) all the "
                         f"same; the YAML says {svc['port']}"
                  + (f", and the checks still probe {port}" if checks else ""),
                  where.keyword, decision=False)
        return server

    def service_keys(self, stmt: Stmt) -> list[dict[str, Any]]:
        """The services a virtual_server line stands for (a group: each of its entries)."""
        args = stmt.args
        if len(args) == 2 and args[0] == "group":
            group = self.groups.get(args[1])
            if group is None:
                raise KeepalivedConfError(f"{stmt.where}: virtual_server group {args[1]!r}: "
                                          "no virtual_server_group of that name")
            keys: list[dict[str, Any]] = []
            for item in self.block(group):
                if item.keyword == "fwmark":
                    keys.append({"fwmark": self.integer(item)})
                else:
                    for address in _expand_range(item.keyword, item.where):
                        if not item.args:
                            raise KeepalivedConfError(f"{item.where}: {item.keyword} needs "
                                                      "a port")
                        keys.append({"vip": address, "port": self.integer(item)})
            return keys
        if len(args) == 2 and args[0] == "fwmark":
            return [{"fwmark": self.integer(stmt, 1)}]
        if len(args) == 1:
            self.note(stmt, "no port: IPVS takes every port of the address (with "
                            "persistence); haguard's services name a port: this service is "
                            "not in the YAML; use a fwmark service (a firewall mark on the "
                            "address) or one service per port")
            return []
        if len(args) >= 4 and args[2] == "dev":
            self.note(stmt, f"dev {args[3]}: haguard's services are not bound to a device; "
                            "decide whether the address needs it (IPv6 link-local)")
            args = args[:2]
        if len(args) == 2:
            try:
                ipaddress.ip_address(args[0])
            except ValueError:
                raise KeepalivedConfError(f"{stmt.where}: virtual_server: {args[0]!r} is not "
                                          "an IP address") from None
            if not args[1].isdigit():
                raise KeepalivedConfError(f"{stmt.where}: virtual_server: {args[1]!r} is not "
                                          "a port")
            return [{"vip": args[0], "port": int(args[1])}]
        raise KeepalivedConfError(f"{stmt.where}: virtual_server needs ADDRESS PORT, "
                                  "fwmark N or group NAME")

    def real_server(self, stmt: Stmt, forwarding: str, defaults: dict[str, Stmt],
                    virtualhost: str | None) -> dict[str, Any]:
        address = self.arg(stmt, 0, "an address")
        out: dict[str, Any] = {"address": address}
        if len(stmt.args) > 1:
            out["port"] = self.integer(stmt, 1)
        out["forwarding"] = forwarding
        out["weight"] = 1
        own = dict(defaults)
        checks: list[dict[str, Any]] = []
        notify: dict[str, list[str]] = {}
        for s in self.block(stmt) if stmt.block is not None else ():
            kw = s.keyword
            if kw == "weight":
                out["weight"] = self.integer(s)
            elif kw in ("lvs_method", "lb_kind"):
                out["forwarding"] = LB_KINDS.get(self.arg(s).upper(), forwarding)
            elif kw == "uthreshold":
                out["upper_threshold"] = self.integer(s)
            elif kw == "lthreshold":
                out["lower_threshold"] = self.integer(s)
            elif kw in ("inhibit_on_failure", "delay_loop", "connect_timeout", "retry",
                        "nb_get_retry", "delay_before_retry", "alpha", "warmup"):
                own[kw] = s
            elif kw in ("notify_up", "notify_down"):
                notify[kw.removeprefix("notify_")] = self.command(s)
            elif kw in CHECKERS:
                checks.extend(self.checker(s, own, virtualhost))
            elif kw in UNSUPPORTED_CHECKERS:
                self.note(s, "haguard has no such check (it has tcp, http, https, script, "
                             "dns): use a script check, or decide the real server goes "
                             "unchecked")
            else:
                self.unknown(s, f"real_server {' '.join(stmt.args)}")
        if checks:
            for check in checks:
                if "inhibit_on_failure" in own:
                    check["on_down"] = "weight0"
                if "alpha" in own:
                    check["start"] = "down"
                if notify:
                    check["notify"] = notify
            out["health"] = checks[0] if len(checks) == 1 else checks
        elif notify:
            self.note(stmt, "notify_up / notify_down on a real server without checks: "
                            "nothing would call them", "real_server")
        return out

    def checker(self, stmt: Stmt, inherited: dict[str, Stmt], virtualhost: str | None
                ) -> list[dict[str, Any]]:
        kind = CHECKERS[stmt.keyword]
        settings = dict(inherited)
        urls: list[Stmt] = []
        extra: dict[str, Any] = {}
        for s in self.block(stmt) if stmt.block is not None else ():
            kw = s.keyword
            if kw in ("connect_timeout", "retry", "nb_get_retry", "delay_before_retry",
                      "delay_loop", "warmup"):
                settings[kw] = s
            elif kw == "connect_port":
                extra["port"] = self.integer(s)
            elif kw == "url" and kind in ("http", "https"):
                urls.append(s)
            elif kw == "virtualhost" and kind in ("http", "https"):
                virtualhost = self.arg(s, 0, "a host name")
            elif kw == "misc_path" and kind == "script":
                extra["command"] = self.command(s)
            elif kw == "misc_timeout" and kind == "script":
                settings["connect_timeout"] = s
            elif kw == "misc_dynamic" and kind == "script":
                extra["dynamic_weight"] = True
            elif kw == "user" and kind == "script":
                extra["user"] = self.arg(s, 0, "a user")
            elif kw in ("type", "name") and kind == "dns":
                extra["dns_" + kw] = self.arg(s)
            elif kw in ("connect_ip", "bindto", "bind_port", "bind_if", "fwmark"):
                self.note(s, "haguard checks the real server's own address from the "
                             "director's default source; not carried")
            elif kw == "enable_sni" and kind == "https":
                extra["sni"] = True
            else:
                self.unknown(s, stmt.keyword)
        check: dict[str, Any] = {"check": kind}
        interval = self.number(settings["delay_loop"]) if "delay_loop" in settings \
            else KA_DELAY_LOOP_S
        timeout = self.number(settings["connect_timeout"]) if "connect_timeout" in settings \
            else (interval if kind == "script" else KA_CONNECT_TIMEOUT_S)
        retry_stmt = settings.get("retry") or settings.get("nb_get_retry")
        retries = self.integer(retry_stmt) if retry_stmt is not None else KA_RETRY[kind]
        retry_interval = self.number(settings["delay_before_retry"]) \
            if "delay_before_retry" in settings else KA_DELAY_BEFORE_RETRY_S[kind]
        if timeout > interval:
            where = settings.get("connect_timeout", stmt)
            self.note(where, f"a {timeout:g} s timeout with checks every {interval:g} s: "
                             f"haguard refuses a timeout longer than the interval; the YAML "
                             f"has {interval:g} s", "connect_timeout")
            timeout = interval
        check.update(interval_s=_num(interval), timeout_s=_num(timeout), retries=retries,
                     retry_interval_s=_num(retry_interval))
        if "port" in extra:
            check["port"] = extra["port"]
        if kind == "script":
            if "command" not in extra:
                raise KeepalivedConfError(f"{stmt.where}: MISC_CHECK needs misc_path")
            user = extra.get("user") or self.script_user
            script: dict[str, Any] = {"command": extra["command"]}
            if user is None:
                self.note(stmt, "keepalived ran misc_path as root (no script_user); haguard "
                                "runs checks as 'nobody' unless health.script.user says "
                                "otherwise: the YAML says root, decide whether it must")
                user = "root"
            script["user"] = user
            if extra.get("dynamic_weight"):
                script["dynamic_weight"] = True
            check["script"] = script
        if kind == "dns":
            check["dns"] = {"name": extra.get("dns_name", "."), "type": extra.get("dns_type", "SOA")}
        if kind == "https":
            check["tls"] = {"verify": False, **({"sni": virtualhost}
                                               if extra.get("sni") and virtualhost else {})}
        if kind not in ("http", "https"):
            return [check]
        if not urls:
            raise KeepalivedConfError(f"{stmt.where}: {stmt.keyword} needs a url {{ path ... }}")
        out = []
        for url in urls:   # keepalived ANDs a checker's urls; haguard ANDs a server's checks
            one = dict(check)
            one["http"] = self.url(url, virtualhost)
            out.append(one)
        return out

    def url(self, stmt: Stmt, virtualhost: str | None) -> dict[str, Any]:
        http: dict[str, Any] = {}
        for s in self.block(stmt):
            if s.keyword == "path":
                http["path"] = self.arg(s, 0, "a path")
            elif s.keyword == "status_code":
                http["status"] = [_status(code, s) for code in s.args]
            elif s.keyword == "virtualhost":
                virtualhost = self.arg(s, 0, "a host name")
            elif s.keyword == "digest":
                self.note(s, "haguard does not compare an MD5 digest of the body: use "
                             "http.body (text the body must contain), or status alone")
            elif s.keyword == "regex":
                self.note(s, "haguard matches http.body as plain text, not a regular "
                             "expression; the YAML has no body check")
            else:
                self.unknown(s, "url")
        http.setdefault("path", "/")
        if virtualhost:
            http["host"] = virtualhost
        return http

    def command(self, stmt: Stmt) -> list[str]:
        """A keepalived script string as an argument list (its words, as keepalived splits
        a quoted command)."""
        words = [w for arg in stmt.args for w in arg.split()]
        if not words:
            raise KeepalivedConfError(f"{stmt.where}: {stmt.keyword} needs a command")
        program = words[0]
        if "/" in program:
            return words
        # keepalived searches its PATH for a bare name; haguard runs commands without
        # a PATH search, so the YAML needs the file keepalived would have run.
        found = self.programs.get(program)
        if found is None:
            self.note(stmt, f"{program!r}: keepalived looked for it on its PATH, and it is "
                            "not on this machine's: write its absolute path (or migrate "
                            "on the director that runs it)")
            return words
        self.note(stmt, f"{program!r}: keepalived found it on its PATH; the YAML has "
                        f"{found}, where it is on this machine (migrate on the director "
                        "that runs it)", decision=False)
        return [found, *words[1:]]


def _fold(services: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """A virtual_server_group's services as one entry with ``vips`` / ``ports`` when they
    are every VIP with every port and alike otherwise (real servers on the service's
    port then name no port); else as they are."""
    if len(services) < 2 or any("vip" not in s for s in services):
        return services

    def checks(health: Any) -> list[dict[str, Any]]:
        return health if isinstance(health, list) else [health] if health else []

    def shape(service: dict[str, Any]) -> dict[str, Any]:
        rest = copy.deepcopy(service)
        port = rest.pop("port")
        rest.pop("vip")
        # The port each check probes, said outright: it must not follow the service's.
        if all(r.get("port") == port for r in rest["real_servers"]):
            for check in checks(rest.get("health")):
                check.setdefault("port", port)
        for server in rest["real_servers"]:
            for check in checks(server.get("health")):
                check.setdefault("port", server.get("port"))
        for server in [*rest["real_servers"], rest.get("sorry_server") or {}]:
            if server.get("port") == port:
                server.pop("port")
        return rest

    shapes = [shape(s) for s in services]
    vips = list(dict.fromkeys(s["vip"] for s in services))
    ports = list(dict.fromkeys(s["port"] for s in services))
    pairs = {(s["vip"], s["port"]) for s in services}
    if any(x != shapes[0] for x in shapes) or len(services) != len(vips) * len(ports) \
            or pairs != {(v, p) for v in vips for p in ports}:
        return services
    head: dict[str, Any] = {"vips": vips} if len(vips) > 1 else {"vip": vips[0]}
    head.update({"ports": ports} if len(ports) > 1 else {"port": ports[0]})
    return [{**head, **shapes[0]}]


def _place(where: str) -> tuple[str, int]:
    file, _, line = where.rpartition(":")
    return (file, int(line)) if line.isdigit() else (where, 0)


def _status(code: str, stmt: Stmt) -> Any:
    if re.match(r"^[0-9]{3}-[0-9]{3}$", code):
        return code
    if not re.match(r"^[0-9]{3}$", code):
        raise KeepalivedConfError(f"{stmt.where}: status_code: {code!r} is not an HTTP status")
    return int(code)


def _num(value: float) -> float | int:
    return int(value) if float(value).is_integer() else value


def _checked(service: dict[str, Any]) -> bool:
    """Whether the service needs the agent: checks, a quorum or a sorry server."""
    return (any(key in service for key in ("health", "quorum", "sorry_server"))
            or any("health" in r for r in service["real_servers"]))


def _common_health(servers: list[dict[str, Any]]) -> Any:
    """The health every real server has alike, said once on the service; else None."""
    healths = [r.get("health") for r in servers]
    if not healths or healths[0] is None or any(h != healths[0] for h in healths):
        return None
    return healths[0]


def _expand_range(text: str, where: str) -> list[str]:
    """keepalived's ``192.0.2.10-20`` (last octet / group) range, or one address."""
    head, sep, last = text.rpartition("-")
    if not sep:
        try:
            return [str(ipaddress.ip_address(text))]
        except ValueError:
            raise KeepalivedConfError(f"{where}: {text!r} is not an IP address") from None
    try:
        first = ipaddress.ip_address(head)
        count = int(last, 16 if first.version == 6 else 10) - int(head.split(":" if
                                                                  first.version == 6 else ".")[-1] or "0",
                                                                  16 if first.version == 6 else 10)
    except ValueError:
        raise KeepalivedConfError(f"{where}: {text!r} is not an address range") from None
    if count < 0:
        raise KeepalivedConfError(f"{where}: {text!r}: the range ends before it starts")
    return [str(first + i) for i in range(count + 1)]



def to_yaml(migration: Migration, source: str) -> str:
    """The document as YAML, the open decisions as comments at its head."""
    import yaml

    body = yaml.safe_dump(migration.doc, sort_keys=False, default_flow_style=None,
                          width=100, allow_unicode=True)
    head = [f"# Migrated from {source} by `haguard migrate`."]
    if migration.findings:
        head.append("# What haguard migrate said of the original (on standard error too); "
                    "lines marked 'note:' keep keepalived's behaviour:")
        head += [f"#   {f}" for f in migration.findings]
    return "\n".join(head) + "\n" + body
