"""`haguard doctor`, the pure part: observed facts + the config -> findings.

Each rule turns one mistake operators really make into a Finding that says what was
found, why it matters on a director pair, and how to fix it. Nothing here touches the
system: the shell (haguard/doctor.py) gathers ``Observations`` and these functions
judge them, so every rule is unit-tested with fabricated observations.

Severities: "error" breaks failover (or breaks it the first time it is needed);
"warning" bites on a later event (a networkd restart, a reboot); "info" is a check
that could not run here, or a note. The exit code follows the worst one.
"""

from __future__ import annotations

import fnmatch
import ipaddress
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Literal

from haguard.core.config import Config, IPAddress
from haguard.core.rsplan import interface_for, required_sysctls
from haguard.core.vrrp import Advert

Severity = Literal["error", "warning", "info"]
SEVERITIES: tuple[Severity, ...] = ("error", "warning", "info")

# Exit codes: 0 nothing worse than info, 1 an error, 3 warnings only. 2 stays the CLI's
# "bad input" (the config itself did not load), so a script can tell the three apart.
EXIT_CLEAN = 0
EXIT_ERRORS = 1
EXIT_WARNINGS = 3

# What each check looks at, in report order (the text report lists the clean ones too).
CHECKS: tuple[tuple[str, str], ...] = (
    ("keepalived-test", "keepalived -t accepts the rendered config"),
    ("keepalived-conf", "keepalived.conf on disk matches the rendering"),
    ("script-security", "hook paths pass enable_script_security"),
    ("keepalived-killmode", "stopping keepalived.service lets the STOP hook finish"),
    ("nopreempt-weight", "no nopreempt instance relies on a weighted tracker"),
    ("networkd", "systemd-networkd keeps foreign addresses on VRRP interfaces"),
    ("sysctl", "the sysctls haguard needs are present and set"),
    ("ip_vs", "the ip_vs module is loaded or loadable"),
    ("realserver", "real-server VIPs are host addresses"),
    ("duplicate-address", "no other host answers for a VIP"),
    ("vrid-collision", "no foreign VRRP router uses our VRIDs"),
)

# KeepConfiguration= values under which systemd-networkd leaves foreign (and static)
# addresses alone when it starts or reconfigures a link. "dhcp", "dhcp-on-stop",
# "dynamic", "dynamic-on-stop" and "no" keep only leases (or nothing): it removes the VIPs.
_KEEPS_FOREIGN = {"yes", "true", "on", "1", "static"}


@dataclass(frozen=True)
class Finding:
    check: str
    severity: Severity
    what: str
    why: str
    fix: str
    subject: str = ""

    def as_dict(self) -> dict[str, str]:
        return {"check": self.check, "severity": self.severity, "subject": self.subject,
                "what": self.what, "why": self.why, "fix": self.fix}


# --------------------------------------------------------------------------- observations

@dataclass(frozen=True)
class KeepalivedTest:
    """``keepalived -t`` on the rendered text (complaints exclude the expected one)."""

    ok: bool
    returncode: int
    complaints: tuple[str, ...] = ()
    hints: tuple[str, ...] = ()


@dataclass(frozen=True)
class PathCheck:
    """One script path keepalived would run, and what script security says about it."""

    path: str
    exists: bool
    problems: tuple[str, ...] = ()   # insecure_path_components, "does not exist" left out
    source: str = "rendered"         # "rendered" (haguard's hook) or the conf file's path


@dataclass(frozen=True)
class NetworkdFile:
    """A .network file as systemd-networkd would use it: its text and its drop-ins."""

    path: str
    text: str
    dropins: tuple[tuple[str, str], ...] = ()   # (path, text) of NAME.network.d/*.conf


@dataclass(frozen=True)
class ArpProbe:
    """ARP probes for one VIP (sender 0.0.0.0, RFC 5227): who answered, by MAC."""

    vip: str
    interface: str
    replies: tuple[str, ...] = ()
    skipped: str | None = None


@dataclass(frozen=True)
class Observations:
    rendered: str = ""
    keepalived_test: KeepalivedTest | None = None   # None: keepalived is not installed
    keepalived_test_error: str | None = None        # it is installed but could not run
    conf_path: str = ""
    conf_text: str | None = None                    # None: no keepalived.conf on disk
    conf_error: str | None = None
    paths: tuple[PathCheck, ...] = ()
    networkd: tuple[NetworkdFile, ...] = ()         # in networkd's order (by file name)
    sysctls: dict[str, str | None] = field(default_factory=dict)
    ip_vs: tuple[bool, str] | None = None           # (loadable, how/why); None: not checked
    local_addresses: dict[str, frozenset[tuple[IPAddress, int]]] = field(default_factory=dict)
    probes: tuple[ArpProbe, ...] = ()
    probe_skipped: str | None = None                # why no probe ran at all
    adverts: tuple[Advert, ...] | None = None       # None: not listened
    wire_skipped: str | None = None
    wire_seconds: float = 0.0
    own_addresses: frozenset[str] = frozenset()
    own_macs: frozenset[str] = frozenset()
    killmode: str | None = None                     # keepalived.service's; None: no systemd


# --------------------------------------------------------------------------- keepalived.conf

@dataclass(frozen=True)
class Stmt:
    """One keepalived.conf statement: its words and, for a block, what it holds."""

    words: tuple[str, ...]
    block: tuple[Stmt, ...] | None
    line: int

    @property
    def keyword(self) -> str:
        return self.words[0] if self.words else ""

    def children(self, keyword: str) -> list[Stmt]:
        return [s for s in self.block or () if s.keyword == keyword]


_TOKEN = re.compile(r'"[^"]*"|[{}]|[^\s{}"]+')


def parse_keepalived(text: str) -> tuple[Stmt, ...]:
    """keepalived.conf -> statements; tolerant (an operator's file, not ours to reject).

    Comments start with # or !; ``{`` may end a line or stand on the next one.
    """
    tokens: list[tuple[str, int]] = []
    for number, raw in enumerate(text.splitlines(), 1):
        for tok in _TOKEN.findall(raw):
            if tok[0] in "#!":
                break
            tokens.append((tok, number))
        tokens.append(("\n", number))
    pos = 0

    def opens_next() -> bool:
        i = pos
        while i < len(tokens) and tokens[i][0] == "\n":
            i += 1
        return i < len(tokens) and tokens[i][0] == "{"

    def block() -> list[Stmt]:
        nonlocal pos
        out: list[Stmt] = []
        words: list[str] = []
        line = 0
        while pos < len(tokens):
            tok, number = tokens[pos]
            pos += 1
            if tok == "\n":
                if words and not opens_next():
                    out.append(Stmt(tuple(words), None, line))
                    words = []
            elif tok == "{":
                children = block()
                out.append(Stmt(tuple(words), tuple(children), line or number))
                words = []
            elif tok == "}":
                break
            else:
                if not words:
                    line = number
                words.append(tok)
        if words:
            out.append(Stmt(tuple(words), None, line))
        return out

    stmts: list[Stmt] = []
    while pos < len(tokens):  # a stray "}" at the top ends one block(); read on
        stmts += block()
    return tuple(stmts)


HAGUARD_LEVER_PREFIX = "haguard_"

_NOTIFY_KEYWORDS = ("notify", "notify_master", "notify_backup", "notify_fault", "notify_stop",
                    "notify_deleted", "notify_master_rx_lower_pri", "notify_fifo_script",
                    "vrrp_notify_fifo_script", "script")


def script_paths(stmts: Iterable[Stmt]) -> list[str]:
    """Every script keepalived would run (notify*, vrrp_script's script), first word."""
    out: list[str] = []
    for s in stmts:
        if s.keyword in _NOTIFY_KEYWORDS and len(s.words) > 1:
            cmd = s.words[1].strip('"').split()
            if cmd and cmd[0].startswith("/") and cmd[0] not in out:
                out.append(cmd[0])
        if s.block:
            out += [p for p in script_paths(s.block) if p not in out]
    return out


def _weight(words: tuple[str, ...], default: int) -> int:
    if "weight" in words:
        i = words.index("weight")
        try:
            return int(words[i + 1])
        except (IndexError, ValueError):
            return default
    return default


def weighted_trackers(stmts: tuple[Stmt, ...], instance: Stmt) -> list[str]:
    """The instance's trackers that change its priority instead of putting it in FAULT."""
    # Defaults from their declarations: vrrp_script 0 (keepalived >= 2), vrrp_track_file 1.
    declared: dict[tuple[str, str], int] = {}
    for kind, tracker, default in (("vrrp_script", "track_script", 0),
                                   ("vrrp_track_file", "track_file", 1),
                                   ("vrrp_track_process", "track_process", 0)):
        for s in stmts:
            if s.keyword == kind and len(s.words) > 1:
                declared[(tracker, s.words[1])] = _weight(
                    tuple(w for c in s.children("weight") for w in c.words), default)
    out = []
    for tracker in ("track_script", "track_file", "track_process", "track_interface",
                    "track_bfd"):
        for block in instance.children(tracker):
            for entry in block.block or ():
                name = entry.keyword
                weight = _weight(entry.words, declared.get((tracker, name), 0))
                # haguard's own priority lever (render.lever_files) is weighted on purpose
                # and only ever used where preemption is on; it is not the operator's tracker.
                if weight and not name.startswith(HAGUARD_LEVER_PREFIX):
                    out.append(f"{tracker} {name} (weight {weight})")
    return out


def _nopreempt_instances(stmts: tuple[Stmt, ...]) -> list[tuple[str, list[str]]]:
    out = []
    for s in stmts:
        if s.keyword == "vrrp_instance" and s.block is not None and s.children("nopreempt"):
            trackers = weighted_trackers(stmts, s)
            if trackers:
                out.append((s.words[1] if len(s.words) > 1 else "?", trackers))
    return out


# --------------------------------------------------------------------------- rules

def check_keepalived_test(obs: Observations) -> list[Finding]:
    if obs.keepalived_test_error:
        return [Finding("keepalived-test", "warning", f"could not run keepalived -t: "
                        f"{obs.keepalived_test_error}",
                        "the rendered config was not checked by the keepalived that will run it",
                        "run `haguard check -c FILE` and read keepalived's own output")]
    result = obs.keepalived_test
    if result is None:
        return [Finding("keepalived-test", "info", "keepalived is not installed here: "
                        "keepalived -t skipped",
                        "the rendered config is checked only by haguard's own validation",
                        "install keepalived (apt-get install keepalived) and run doctor again")]
    if result.ok:
        return []
    complaints = "; ".join(result.complaints) or f"exit {result.returncode}"
    fix = " ".join(result.hints) or ("correct the YAML so keepalived accepts its rendering "
                                     "(`haguard check -c FILE` shows keepalived's full output)")
    return [Finding("keepalived-test", "error",
                    f"keepalived -t rejects the rendered config: {complaints}",
                    "keepalived refuses to start with it, and a reload keeps the old config "
                    "running: the change you made never takes effect",
                    fix, "rendered keepalived.conf")]


def check_keepalived_conf(obs: Observations) -> list[Finding]:
    path = obs.conf_path
    if obs.conf_error:
        return [Finding("keepalived-conf", "warning", f"cannot read {path}: {obs.conf_error}",
                        "doctor cannot see what keepalived really runs",
                        "run doctor as root", path)]
    if obs.conf_text is None:
        return [Finding("keepalived-conf", "info", f"{path} does not exist",
                        "keepalived has no config from haguard yet (or keepalived.config "
                        "points elsewhere)",
                        f"`haguard render -c FILE -o {path}`, then reload keepalived", path)]
    if obs.conf_text == obs.rendered:
        return []
    if "# Rendered by haguard" in obs.conf_text:
        return [Finding("keepalived-conf", "warning",
                        f"{path} was rendered by haguard but differs from today's rendering",
                        "the YAML changed after the last render: keepalived runs an election "
                        "the config no longer describes (VRID, priority, peers, hook)",
                        f"`haguard render -c FILE -o {path}` and reload keepalived", path)]
    return [Finding("keepalived-conf", "info", f"{path} is not haguard's rendering "
                    "(hand-written)",
                    "doctor checks its scripts and trackers, but cannot prove it matches the "
                    "YAML", f"prefer `haguard render -c FILE -o {path}`", path)]


def check_script_security(config: Config, obs: Observations) -> list[Finding]:
    findings = []
    security_off = False
    if obs.conf_text is not None:
        stmts = parse_keepalived(obs.conf_text)
        security_off = not any(c.keyword == "enable_script_security"
                               for s in stmts if s.keyword == "global_defs"
                               for c in s.block or ())
    for check in obs.paths:
        if check.source.startswith("ipvs: "):
            findings += _agent_command(check)
            continue
        where = "haguard's notify hook" if check.source == "rendered" else \
            f"a script named in {check.source}"
        if not check.exists:
            findings.append(Finding(
                "script-security", "error", f"{where} {check.path} does not exist",
                "keepalived cannot run it: on every state change nothing happens, the VIPs "
                "never move",
                f"`haguard hooks install -c FILE` (installs into {config.keepalived.hooks_dir})"
                if check.source == "rendered" else "install the script or fix the path",
                check.path))
        elif check.problems:
            if security_off:
                why = ("enable_script_security is off, so keepalived runs it as root anyway: "
                       "whoever can write one of these paths gets root on the director")
            else:
                why = ("with enable_script_security keepalived refuses to run it: state "
                       "changes happen without haguard, the VIPs never move")
            findings.append(Finding(
                "script-security", "error",
                f"{where} {check.path} is not safe: " + "; ".join(check.problems), why,
                "make every directory on the path owned by root and not writable by group or "
                "others (chown root:root; chmod 755), or reinstall with `haguard hooks install`",
                check.path))
    if security_off:
        findings.append(Finding(
            "script-security", "warning", f"{obs.conf_path} does not enable_script_security",
            "keepalived then runs notify and track scripts as root without checking who can "
            "change them",
            "add `enable_script_security` and `script_user root` to global_defs (haguard's "
            "rendering has both)", obs.conf_path))
    return findings


def _agent_command(check: PathCheck) -> list[Finding]:
    """A program `haguard agent` runs (a script check, a notify or quorum command)."""
    where = check.source.removeprefix("ipvs: ")
    if not check.exists:
        return [Finding("script-security", "error", f"{where}: {check.path} does not exist",
                        "the agent cannot run it: a script check fails and takes its real "
                        "server out; a command is never run", "install it or fix the path",
                        check.path)]
    if check.problems:
        return [Finding("script-security", "error", f"{where}: {check.path} is not safe: "
                        + "; ".join(check.problems),
                        "the agent refuses to run it (whoever can write it would run code "
                        "through the agent): a script check fails and takes its real server "
                        "out; a command is never run",
                        "make every directory on the path owned by root and not writable by "
                        "group or others (chown root:root; chmod 755)", check.path)]
    return []


def check_killmode(obs: Observations) -> list[Finding]:
    # "process" signals keepalived alone; "none" nobody. Under "control-group" and "mixed"
    # systemd kills what is left in the unit's cgroup when keepalived exits.
    if obs.killmode is None or obs.killmode in ("process", "none"):
        return []
    return [Finding(
        "keepalived-killmode", "error",
        f"keepalived.service has KillMode={obs.killmode}",
        "keepalived runs the STOP hook as it shuts down and the hook detaches to finish "
        "removing the VIPs; with this KillMode systemd kills it together with keepalived, "
        "so `systemctl stop keepalived` leaves this director holding the VIPs while the peer "
        "takes them over (two hosts answering for one address)",
        "`haguard hooks install -c CONFIG` writes the drop-in "
        "/etc/systemd/system/keepalived.service.d/haguard.conf (KillMode=process), or run "
        "`haguard agent` (its own unit); then `systemctl daemon-reload`", "keepalived.service")]


def check_nopreempt_weight(obs: Observations) -> list[Finding]:
    findings = []
    sources = [("rendered keepalived.conf", obs.rendered)]
    if obs.conf_text is not None:
        sources.append((obs.conf_path, obs.conf_text))
    seen = set()
    for where, text in sources:
        for name, trackers in _nopreempt_instances(parse_keepalived(text)):
            if name in seen:
                continue
            seen.add(name)
            findings.append(Finding(
                "nopreempt-weight", "error",
                f"vrrp_instance {name} in {where} has nopreempt and a weighted tracker: "
                + ", ".join(trackers),
                "a weight lowers the MASTER's priority so the peer takes over, but with "
                "nopreempt the peer never takes over from a live MASTER: the tracker never "
                "moves the VIPs",
                "use weight 0 on the tracker (a failure puts the instance in FAULT, which "
                "hands over even with nopreempt), or remove nopreempt", name))
    return findings


def _networkd_values(nf: NetworkdFile) -> tuple[list[str], bool, str | None]:
    """[Match] Name globs, whether they are negated, and KeepConfiguration= (last wins)."""
    names: list[str] = []
    negate = False
    keep: str | None = None
    for _, text in ((nf.path, nf.text), *nf.dropins):
        section = ""
        for raw in text.splitlines():
            line = raw.strip()
            if not line or line[0] in "#;":
                continue
            if line.startswith("[") and line.endswith("]"):
                section = line[1:-1].strip()
                continue
            key, sep, value = line.partition("=")
            if not sep:
                continue
            key, value = key.strip(), value.strip()
            if section == "Match" and key == "Name":
                if not value:
                    names, negate = [], False  # an empty assignment resets the list
                    continue
                if value.startswith("!"):
                    negate, value = True, value[1:]
                names += value.split()
            elif section == "Network" and key == "KeepConfiguration":
                keep = value.lower() or None
    return names, negate, keep


def networkd_file_for(files: Iterable[NetworkdFile], interface: str) -> NetworkdFile | None:
    """The first .network file (in networkd's order) whose [Match] Name= takes ``interface``."""
    for nf in files:
        names, negate, _ = _networkd_values(nf)
        if not names:
            continue  # matches everything or by other keys: too broad to judge
        hit = any(fnmatch.fnmatchcase(interface, g) for g in names)
        if hit != negate:
            return nf
    return None


def check_networkd(config: Config, obs: Observations) -> list[Finding]:
    findings = []
    for iface in vip_devices(config):     # networkd would flush a VIP on any of them
        nf = networkd_file_for(obs.networkd, iface)
        if nf is None:
            continue
        keep = _networkd_values(nf)[2]
        if keep in _KEEPS_FOREIGN:
            continue
        setting = f"KeepConfiguration={keep}" if keep else "no KeepConfiguration="
        findings.append(Finding(
            "networkd", "warning",
            f"systemd-networkd manages {iface} through {nf.path} with {setting}",
            "when networkd restarts or reconfigures the link (an upgrade, `networkctl reload`) "
            "it removes addresses it did not configure: the VIPs vanish from the MASTER while "
            "keepalived still says MASTER",
            f"add `KeepConfiguration=static` to the [Network] section of {nf.path} (or a "
            "drop-in) and `networkctl reload`", iface))
    return findings


def wanted_sysctls(config: Config) -> tuple[tuple[str, str, str], ...]:
    """(key, value, role) for every sysctl this node needs."""
    out = [(k, v, "director") for k, v in config.director_sysctls()] if config.instances else []
    if config.realserver is not None:
        out += [(k, v, "realserver") for k, v in required_sysctls(config.realserver)]
    return tuple(out)


def check_sysctls(config: Config, obs: Observations) -> list[Finding]:
    findings = []
    for key, value, role in wanted_sysctls(config):
        if key not in obs.sysctls:
            continue
        current = obs.sysctls[key]
        if current is None:
            module = " (load ip_vs: `modprobe ip_vs`, and add it to /etc/modules)" \
                if key.startswith("net.ipv4.vs.") else ""
            findings.append(Finding(
                "sysctl", "error", f"{key} does not exist on this kernel",
                "haguard sets it on every MASTER transition: the write fails and the takeover "
                "stops there" if role == "director" else
                "the real server cannot be set up as the config says",
                f"make the key exist{module}, or remove it from `sysctl:`", key))
        elif current.split() != value.split():
            if role == "director":
                why = ("haguard sets it only when this node becomes MASTER: until then what "
                       "needs it (a service binding the VIP on the BACKUP) fails, and the "
                       "takeover spends time writing it")
            else:
                why = ("a DR/TUN real server that answers ARP for the VIP steals the "
                       "director's traffic" if "arp_" in key else
                       "tunnelled packets arrive with the director's source and are dropped")
            findings.append(Finding(
                "sysctl", "warning" if role == "director" else "error",
                f"{key} is {current}, the config needs {value}", why,
                f"`sysctl -w {key}={value}` and persist it in /etc/sysctl.d/90-haguard.conf"
                + ("" if role == "director" else " (`haguard realserver up` does both)"), key))
    return findings


def check_ip_vs(config: Config, obs: Observations) -> list[Finding]:
    if config.ipvs is None or obs.ip_vs is None:
        return []
    loadable, reason = obs.ip_vs
    if loadable:
        return []
    return [Finding(
        "ip_vs", "error", f"the ip_vs module is not loaded and cannot be loaded: {reason}",
        "the config has an ipvs section: the MASTER transition cannot install the virtual "
        "services, and the VIPs lead nowhere",
        "install a kernel with IPVS (CONFIG_IP_VS; Debian's linux-image-amd64 has it) or the "
        "matching modules package, then `modprobe ip_vs`", "ip_vs")]


def check_realserver(config: Config, obs: Observations) -> list[Finding]:
    role = config.realserver
    if role is None:
        return []
    findings = []
    for vip in role.vips:
        iface = interface_for(role, vip)
        present = obs.local_addresses.get(iface, frozenset())
        for addr, plen in sorted(present, key=str):
            if addr == vip and plen != vip.max_prefixlen:
                net = ipaddress.ip_interface(f"{addr}/{plen}").network
                findings.append(Finding(
                    "realserver", "error",
                    f"{vip}/{plen} on {iface}: the VIP with a /{plen} prefix",
                    f"a real server must hold the VIP as a host address (/{vip.max_prefixlen}); "
                    f"with /{plen} (the old `ifconfig lo:1 ... netmask` mistake) it claims all "
                    f"of {net}: replies to its neighbours on that subnet go to {iface}",
                    f"`ip addr del {vip}/{plen} dev {iface}` and `haguard realserver up -c FILE`"
                    f" (adds {vip}/{vip.max_prefixlen})", str(vip)))
        if (vip, vip.max_prefixlen) not in present and not any(a == vip for a, _ in present):
            findings.append(Finding(
                "realserver", "warning", f"{vip} is not on {iface}",
                f"the director forwards packets for {vip} unchanged ({role.mode.upper()}); "
                "without the VIP on this host they are dropped",
                "`haguard realserver up -c FILE`", str(vip)))
    return findings


def _masters(config: Config, obs: Observations) -> dict[str, set[str]]:
    """Per interface: MACs sending adverts for one of our VRIDs (the current MASTERs)."""
    out: dict[str, set[str]] = {}
    ours = {(i.interface, i.virtual_router_id) for i in config.instances}
    for ad in obs.adverts or ():
        if (ad.interface, ad.vrid) in ours and ad.priority > 0:
            out.setdefault(ad.interface, set()).add(ad.source_mac.lower())
    return out


def check_duplicate_address(config: Config, obs: Observations) -> list[Finding]:
    findings = []
    masters = _masters(config, obs)
    elsewhere = {(str(v.address), v.device): i for i in config.instances for v in i.vips
                 if v.device}
    for probe in obs.probes:
        replies = sorted({m.lower() for m in probe.replies} - {m.lower() for m in obs.own_macs})
        if not replies:
            continue
        known = masters.get(probe.interface, set())
        strangers = [m for m in replies if m not in known]
        if not strangers and len(replies) == 1:
            continue  # the MASTER peer holds it: that is how it should be
        inst = elsewhere.get((probe.vip, probe.interface))
        if inst is not None and len(replies) == 1 and masters.get(inst.interface):
            # A VIP on another device than its instance's interface is answered from
            # that device's MAC, which sends no adverts: one answer while a MASTER
            # advertises the instance is that MASTER.
            continue
        if len(replies) > 1:
            what = f"{probe.vip} is answered on {probe.interface} by {len(replies)} hosts: " \
                   + ", ".join(replies)
        elif obs.adverts is None:
            what = (f"{probe.vip} is answered on {probe.interface} by {replies[0]} (the wire "
                    "was not watched, so doctor cannot tell whether that is the MASTER peer)")
        else:
            what = (f"{probe.vip} is answered on {probe.interface} by {replies[0]}, which "
                    "sends no VRRP adverts for our instances")
        findings.append(Finding(
            "duplicate-address", "error" if obs.adverts is not None or len(replies) > 1
            else "warning", what,
            "another host holds the VIP: clients and the router reach whichever answered "
            "last, whatever keepalived decides (a leftover ifconfig alias, an old director, "
            "or a DR real server without arp_ignore=1/arp_announce=2)",
            "find the host by its MAC (the switch's MAC table, `ip neigh`) and remove the "
            "address there; on a DR real server put it on lo as a /32 with "
            "`haguard realserver up`", probe.vip))
    return findings


def check_vrid_collision(config: Config, obs: Observations) -> list[Finding]:
    if obs.adverts is None:
        return []
    findings = []
    own = {a.lower() for a in obs.own_addresses}
    own_macs = {m.lower() for m in obs.own_macs}
    for inst in config.instances:
        peers = {str(p) for p in inst.unicast_peers}
        reasons: dict[tuple[str, str], list[str]] = {}
        for ad in obs.adverts:
            if ad.interface != inst.interface or ad.vrid != inst.virtual_router_id:
                continue
            if ad.outgoing or ad.source.lower() in own or ad.source_mac.lower() in own_macs:
                continue
            why = []
            if ad.addresses:
                why.append(f"it carries addresses {', '.join(ad.addresses)} (haguard's "
                           "adverts carry none)")
            if abs(ad.advert_int_s - inst.advert_int) > 0.005:
                why.append(f"advert interval {ad.advert_int_s:g} s, ours {inst.advert_int:g} s")
            if ad.version != config.keepalived.version:
                why.append(f"VRRP version {ad.version}, ours {config.keepalived.version}")
            if peers and ad.source not in peers:
                why.append(f"{ad.source} is not one of our unicast_peers")
            if why:
                reasons.setdefault((ad.source, ad.source_mac.lower()), [])
                for w in why:
                    if w not in reasons[(ad.source, ad.source_mac.lower())]:
                        reasons[(ad.source, ad.source_mac.lower())].append(w)
        for (source, mac), why in sorted(reasons.items()):
            findings.append(Finding(
                "vrid-collision", "error",
                f"VRID {inst.virtual_router_id} on {inst.interface} is also used by {source} "
                f"({mac}): " + "; ".join(why),
                "two VRRP groups with one VRID on a segment disturb each other: keepalived "
                "drops or misreads the foreign adverts, a higher foreign priority sends our "
                "MASTER to BACKUP (the VIPs go) and the groups can end with two MASTERs",
                "give this pair a VRID nobody else uses on the segment (change "
                "virtual_router_id on both directors, render, reload)"
                + _free_vrids_hint(config, obs, inst.interface), f"VRID {inst.virtual_router_id}"))
    return findings


def _free_vrids_hint(config: Config, obs: Observations, interface: str) -> str:
    used = {ad.vrid for ad in obs.adverts or () if ad.interface == interface}
    used |= {i.virtual_router_id for i in config.instances if i.interface == interface}
    seen = sorted(used)
    return f"; VRIDs seen on {interface}: {', '.join(map(str, seen))}" if seen else ""


def check_notes(config: Config, obs: Observations) -> list[Finding]:
    """Checks that did not run here, so a clean report does not overclaim."""
    notes = []
    if obs.probe_skipped:
        notes.append(Finding("duplicate-address", "info",
                             f"duplicate-address probe skipped: {obs.probe_skipped}",
                             "a second host holding a VIP is not ruled out",
                             "run doctor without --skip-wire, as root, on the director"))
    for probe in obs.probes:
        if probe.skipped:
            notes.append(Finding("duplicate-address", "info",
                                 f"{probe.vip} not probed: {probe.skipped}",
                                 "a second host holding it is not ruled out",
                                 "check by hand (`arping -D -I IFACE VIP` for IPv4, "
                                 "`ndisc6 VIP IFACE` for IPv6)", probe.vip))
    if config.instances and obs.adverts is None and obs.wire_skipped:
        notes.append(Finding("vrid-collision", "info",
                             f"VRRP adverts not watched: {obs.wire_skipped}",
                             "a foreign router with our VRID is not ruled out",
                             "run doctor without --skip-wire, as root, on the director"))
    elif obs.adverts is not None:
        for inst in config.instances:
            if not any(ad.interface == inst.interface and ad.vrid == inst.virtual_router_id
                       for ad in obs.adverts):
                notes.append(Finding(
                    "vrid-collision", "info",
                    f"no VRRP advert for VRID {inst.virtual_router_id} seen on "
                    f"{inst.interface} in {obs.wire_seconds:g} s",
                    "no MASTER is advertising this instance on this segment (keepalived not "
                    "running yet, the peer down, or multicast filtered)",
                    "start keepalived on both directors; check `haguard status`",
                    inst.name))
    return notes


def diagnose(config: Config, obs: Observations) -> list[Finding]:
    """Every finding, errors first, then in check order."""
    findings = check_sysctls(config, obs) + check_ip_vs(config, obs) \
        + check_realserver(config, obs)
    if config.instances:  # the keepalived side: a real server's file has no instances
        findings += (check_keepalived_test(obs) + check_keepalived_conf(obs)
                     + check_script_security(config, obs) + check_killmode(obs)
                     + check_nopreempt_weight(obs)
                     + check_networkd(config, obs) + check_duplicate_address(config, obs)
                     + check_vrid_collision(config, obs) + check_notes(config, obs))
    order = {name: i for i, (name, _) in enumerate(CHECKS)}
    return sorted(findings, key=lambda f: (SEVERITIES.index(f.severity), order.get(f.check, 99)))


def exit_code(findings: Iterable[Finding]) -> int:
    severities = {f.severity for f in findings}
    if "error" in severities:
        return EXIT_ERRORS
    if "warning" in severities:
        return EXIT_WARNINGS
    return EXIT_CLEAN


def summary(findings: Iterable[Finding]) -> dict[str, int]:
    counts: dict[str, int] = {s: 0 for s in SEVERITIES}
    for f in findings:
        counts[f.severity] += 1
    return counts


def instance_interfaces(config: Config) -> list[str]:
    return sorted({i.interface for i in config.instances})


def vip_devices(config: Config) -> list[str]:
    """Every device a VIP lives on: the instances' interfaces and vips[].interface."""
    return sorted({i.device_of(v) for i in config.instances for v in i.vips}
                  | set(instance_interfaces(config)))


