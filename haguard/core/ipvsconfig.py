"""The ``ipvs`` and ``realserver`` sections: the seed runbook's ipvsadm lines as data.

Model (frozen dataclasses) and path-precise validation. The kernel's numbers for
protocols, forwarding methods, scheduler flags and tunnel types live here too, so the
planner, the netlink adapter and the ipvsadm save-file codec agree on them.
"""

from __future__ import annotations

import dataclasses
import functools
import ipaddress
from dataclasses import dataclass
from typing import Any

from haguard.core.checker import Checker, field, show
from haguard.core.healthconfig import (
    Quorum,
    RealServerHealth,
    ServiceHealth,
    parse_quorum,
    parse_service_health,
    real_server_health,
)
from haguard.core.yamlsrc import Path

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

SCHEDULERS = ("rr", "wrr", "lc", "wlc", "lblc", "lblcr", "dh", "sh", "sed", "nq", "fo", "ovf",
              "mh", "twos")
# IP_VS_SVC_F_SCHED1 / SCHED2, meaning per scheduler.
SCHEDULER_FLAGS = {"sh-fallback": ("sh", 0x08), "sh-port": ("sh", 0x10),
                   "mh-fallback": ("mh", 0x08), "mh-port": ("mh", 0x10)}
SVC_F_PERSISTENT = 0x01
SVC_F_ONEPACKET = 0x04     # one-packet scheduling: the kernel applies it to UDP packets only
PROTOCOLS = {"tcp": 6, "udp": 17, "sctp": 132}
FORWARDING = {"nat": 0, "tun": 2, "dr": 3}      # IP_VS_CONN_F_MASQ / TUNNEL / DROUTE
TUNNEL_TYPES = {"ipip": 0, "gue": 1, "gre": 2}  # IP_VS_CONN_F_TUNNEL_TYPE_*
ON_BACKUP = ("keep", "remove")
REALSERVER_MODES = ("dr", "tun")
MAX_WEIGHT = 65535
MAX_THRESHOLD = 2**31 - 1
MAX_PERSISTENCE_S = 2678400  # 31 days: ipvsadm's limit (the kernel keeps it in jiffies)
MAX_TIMEOUT_S = 2**31 // 1000   # the kernel keeps connection timeouts in jiffies

# Director sysctls that matter for failover; declared by `ipvs`, overridable in `sysctl`.
# expire_nodest_conn drops connections to a removed real server at once instead of
# black-holing them; expire_quiescent_template lets persistence move off weight-0
# servers; conntrack keeps NAT working with connection sync.
FAILOVER_SYSCTLS = (("net.ipv4.vs.expire_nodest_conn", "1"),
                    ("net.ipv4.vs.expire_quiescent_template", "1"))
NAT_SYSCTLS = (("net.ipv4.vs.conntrack", "1"), ("net.ipv4.ip_forward", "1"))


@dataclass(frozen=True, order=True)
class ServiceKey:
    """What identifies a virtual service in the kernel."""

    family: int          # 4 or 6
    protocol: str        # tcp | udp | sctp | fwmark
    address: str         # the VIP, or the mark as text
    port: int            # 0 for fwmark services

    def __str__(self) -> str:
        if self.protocol == "fwmark":
            return f"fwmark {self.address}" + (" (IPv6)" if self.family == 6 else "")
        host = f"[{self.address}]" if self.family == 6 else self.address
        return f"{self.protocol} {host}:{self.port}"


SERVICE_NAME_FORMS = "'tcp 192.0.2.100:80', 'udp [2001:db8::100]:53' or 'fwmark 7'"


def parse_service_name(text: str) -> ServiceKey | None:
    """The service a name as haguard prints it names ('tcp 192.0.2.100:80', 'fwmark 7',
    'fwmark 7 (IPv6)'); None when it is not such a name."""
    words = text.split()
    if len(words) >= 2 and words[0] == "fwmark" and words[1].isdigit():
        if words[2:] not in ([], ["(IPv6)"]) or not 1 <= int(words[1]) <= 2**32 - 1:
            return None
        return ServiceKey(6 if words[2:] else 4, "fwmark", str(int(words[1])), 0)
    if len(words) != 2 or words[0] not in PROTOCOLS or ":" not in words[1]:
        return None
    host, _, port = words[1].rpartition(":")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    elif ":" in host:
        return None          # an IPv6 VIP goes in brackets, as haguard prints it
    try:
        vip = ipaddress.ip_address(host)
    except ValueError:
        return None
    if not port.isdigit() or not 1 <= int(port) <= 65535:
        return None
    return ServiceKey(vip.version, words[0], str(vip), int(port))


@dataclass(frozen=True)
class RealServer:
    address: IPAddress
    port: int
    forwarding: str = "dr"
    weight: int = 1
    upper_threshold: int = 0
    lower_threshold: int = 0
    tunnel_type: str = "ipip"
    tunnel_port: int = 0
    # How the agent watches it; not part of what the kernel holds.
    health: RealServerHealth | None = dataclasses.field(default=None, compare=False)

    @functools.cached_property
    def key(self) -> tuple[str, int]:
        # Cached: the agent looks its real servers up by key on every check.
        return (str(self.address), self.port)

    def __str__(self) -> str:
        host = f"[{self.address}]" if self.address.version == 6 else str(self.address)
        return f"{host}:{self.port}"


@dataclass(frozen=True)
class Persistence:
    timeout_s: int
    netmask: str         # IPv4: a dotted mask; IPv6: a prefix length


@dataclass(frozen=True)
class VirtualService:
    key: ServiceKey
    scheduler: str = "wlc"
    flags: tuple[str, ...] = ()
    persistence: Persistence | None = None
    real_servers: tuple[RealServer, ...] = ()
    ops: bool = False        # one-packet scheduling (ipvsadm -o)
    # What the agent does when too few real servers are up; not in the kernel either.
    quorum: Quorum | None = dataclasses.field(default=None, compare=False)
    sorry_server: RealServer | None = dataclasses.field(default=None, compare=False)

    @property
    def checked(self) -> bool:
        """Whether the agent watches any of this service's real servers."""
        return any(rs.health is not None for rs in self.real_servers)

    @property
    def watched(self) -> bool:
        """Checked, or with a quorum or a sorry server: the agent may change its table."""
        return self.checked or self.quorum is not None or self.sorry_server is not None

    @property
    def flag_bits(self) -> int:
        bits = SVC_F_PERSISTENT if self.persistence else 0
        if self.ops:
            bits |= SVC_F_ONEPACKET
        for name in self.flags:
            bits |= SCHEDULER_FLAGS[name][1]
        return bits


@dataclass(frozen=True)
class SyncSettings:
    interface: str
    syncid: int = 0


@dataclass(frozen=True)
class IpvsTimeouts:
    """The kernel's connection timeouts (ipvsadm --set; keepalived lvs_timeouts), in
    seconds; 0 leaves that one as the kernel has it."""

    tcp_s: int = 0
    tcpfin_s: int = 0
    udp_s: int = 0

    def over(self, current: tuple[int, int, int]) -> tuple[int, int, int]:
        """The timeouts wanted, given the kernel's ``current`` (tcp, tcpfin, udp)."""
        return (self.tcp_s or current[0], self.tcpfin_s or current[1],
                self.udp_s or current[2])


@dataclass(frozen=True)
class IpvsSettings:
    on_backup: str = "keep"
    sync: SyncSettings | None = None
    services: tuple[VirtualService, ...] = ()
    timeouts: IpvsTimeouts | None = None
    # A NAT real server or sorry server anywhere in the config, found once when it is
    # read: every MASTER transition asks, and looking through ten thousand services then
    # would delay its announcement.
    nat: bool = False

    @property
    def watched(self) -> bool:
        """Whether the agent may change this table (see ``VirtualService.watched``)."""
        return any(s.watched for s in self.services)

    def director_sysctls(self) -> tuple[tuple[str, str], ...]:
        return FAILOVER_SYSCTLS + (NAT_SYSCTLS if self.nat else ())


@dataclass(frozen=True)
class RealServerRole:
    """What `haguard realserver` sets up: the VIPs on lo (DR) or tunl0 (TUN)."""

    mode: str
    vips: tuple[IPAddress, ...]

    @property
    def interface(self) -> str:
        return "lo" if self.mode == "dr" else "tunl0"


# --------------------------------------------------------------------------- validation

_SERVICE_KEYS = ("vip", "port", "protocol", "fwmark", "family", "scheduler", "flags",
                 "persistence", "health", "quorum", "sorry_server", "real_servers", "ops",
                 "vips", "ports")
_RS_KEYS = ("address", "port", "forwarding", "weight", "upper_threshold", "lower_threshold",
            "tunnel_type", "tunnel_port", "health")
_SORRY_KEYS = ("address", "port", "forwarding", "weight", "tunnel_type", "tunnel_port")


def _address(c: Checker, value: Any, path: Path, role: str = "") -> IPAddress | None:
    """An address without a prefix; with ``role``, one that can serve as that role."""
    if not isinstance(value, str) or "/" in value:
        what = "an IP address without a prefix" if isinstance(value, str) else "an IP address"
        c.fail(path, f"{show(value)} is not {what}")
        return None
    try:
        ip = ipaddress.ip_address(value)
    except ValueError:
        c.fail(path, f"{value!r} is not an IP address")
        return None
    if role and (ip.is_multicast or ip.is_unspecified
                 or (role == "a VIP" and (ip.is_loopback or ip.is_link_local))):
        kinds = "multicast, unspecified, loopback or link-local" if role == "a VIP" \
            else "multicast or unspecified"
        c.fail(path, f"{value!r} cannot be {role} ({kinds})")
        return None
    return ip


def _persistence(c: Checker, raw: Any, path: Path, family: int) -> Persistence | None:
    data = c.mapping(raw, path, ("timeout_s", "netmask"), required=("timeout_s",))
    timeout = field(c, data, "timeout_s", path,
                    lambda v, p: c.integer(v, p, 1, MAX_PERSISTENCE_S))
    default_mask = "255.255.255.255" if family == 4 else "128"
    netmask: str | None = default_mask
    if "netmask" in data:
        npath = path + ("netmask",)
        value = data["netmask"]
        netmask = None
        if family == 6:
            bits = c.integer(value, npath, 1, 128)
            netmask = None if bits is None else str(bits)
        else:
            try:
                mask = ipaddress.IPv4Network(f"0.0.0.0/{value}") if isinstance(value, str) else None
                # IPv4Network also reads prefix lengths and host masks; only a netmask goes.
                if mask is not None and ipaddress.IPv4Address(value) != mask.netmask:
                    mask = None
            except ValueError:
                mask = None
            if mask is None:
                c.fail(npath, f"{show(value)} is not an IPv4 netmask (like 255.255.255.0)")
            else:
                netmask = str(mask.netmask)
    if timeout is None or netmask is None:
        return None
    return Persistence(timeout_s=timeout, netmask=netmask)


def _real_server(c: Checker, raw: Any, path: Path, key: ServiceKey,
                 health: ServiceHealth | None = None,
                 allowed: tuple[str, ...] = _RS_KEYS) -> RealServer | None:
    data = c.mapping(raw, path, allowed, required=("address",))
    if not data:
        return None
    address = field(c, data, "address", path, lambda v, p: _address(c, v, p, "a real server"),
                    None)
    default_port = key.port
    port = field(c, data, "port", path,
                 lambda v, p: c.integer(v, p, 0 if key.protocol == "fwmark" else 1, 65535),
                 default_port)
    forwarding = field(c, data, "forwarding", path, lambda v, p: c.choice(v, p, tuple(FORWARDING)),
                       "dr")
    weight = field(c, data, "weight", path, lambda v, p: c.integer(v, p, 0, MAX_WEIGHT), 1)
    upper = field(c, data, "upper_threshold", path,
                  lambda v, p: c.integer(v, p, 0, MAX_THRESHOLD), 0)
    lower = field(c, data, "lower_threshold", path,
                  lambda v, p: c.integer(v, p, 0, MAX_THRESHOLD), 0)
    tunnel_type = field(c, data, "tunnel_type", path,
                        lambda v, p: c.choice(v, p, tuple(TUNNEL_TYPES)), "ipip")
    tunnel_port = field(c, data, "tunnel_port", path, lambda v, p: c.integer(v, p, 1, 65535), 0)
    if None in (address, port, forwarding, weight, upper, lower, tunnel_type, tunnel_port):
        return None
    assert address is not None
    if address.version != key.family:
        c.fail(path + ("address",), f"{address} is IPv{address.version} but the service is "
                                    f"IPv{key.family}")
        return None
    if forwarding in ("dr", "tun") and key.protocol != "fwmark" and port != key.port:
        c.fail(path + ("port",), f"{port} differs from the service port {key.port}; a "
                                 f"{forwarding.upper()} real server receives the packet "
                                 "unchanged, so it must listen on the service port (use "
                                 "forwarding: nat to map ports)")
        return None
    if upper and lower > upper:
        c.fail(path + ("lower_threshold",), f"{lower} is above upper_threshold {upper}")
        return None
    if forwarding != "tun" and ("tunnel_type" in data or "tunnel_port" in data):
        c.fail(path + ("tunnel_type" if "tunnel_type" in data else "tunnel_port",),
               "only applies to forwarding: tun")
        return None
    if tunnel_type == "gue" and not tunnel_port:
        c.fail(path, "tunnel_type: gue needs tunnel_port (the real server's GUE port)")
        return None
    if tunnel_type != "gue" and "tunnel_port" in data:
        c.fail(path + ("tunnel_port",), "only applies to tunnel_type: gue")
        return None
    before = len(c.problems)
    checks = real_server_health(c, health, data.get("health"), path + ("health",),
                                key.protocol, port) if "health" in allowed else None
    if len(c.problems) > before:
        return None
    return RealServer(address=address, port=port, forwarding=forwarding, weight=weight,
                      upper_threshold=upper, lower_threshold=lower, tunnel_type=tunnel_type,
                      tunnel_port=tunnel_port, health=checks)


def _one_per_address(c: Checker, raw: Any, path: Path) -> list[Any]:
    """A service entry with ``vips`` and/or ``ports`` (keepalived's virtual_server_group)
    as one entry per VIP and port, the rest shared; any other entry as it is."""
    if not isinstance(raw, dict) or ("vips" not in raw and "ports" not in raw):
        return [raw]
    for one, many in (("vip", "vips"), ("port", "ports"), ("fwmark", "vips"),
                      ("fwmark", "ports")):
        if one in raw and many in raw:
            c.fail(path + (many,), f"does not go with {one} (a service has one {one}, or "
                                   f"the list {many})", key=True)
            return []
    vips = c.listing(raw["vips"], path + ("vips",)) if "vips" in raw else [raw.get("vip")]
    ports = c.listing(raw["ports"], path + ("ports",)) if "ports" in raw else [raw.get("port")]
    for key, items in (("vips", vips), ("ports", ports)):
        if key in raw and isinstance(raw[key], list) and not items:
            c.fail(path + (key,), "must list at least one")
            return []
    shared = {k: v for k, v in raw.items() if k not in ("vips", "ports")}
    return [{**shared, "vip": vip, "port": port} for vip in vips for port in ports]


def _service(c: Checker, raw: Any, path: Path) -> VirtualService | None:
    data = c.mapping(raw, path, _SERVICE_KEYS)
    if not data:
        if isinstance(raw, dict):
            c.fail(path, "is empty; give vip, port and real_servers (or fwmark)")
        return None
    key: ServiceKey | None = None
    if "fwmark" in data:
        for other in ("vip", "port", "protocol"):
            if other in data:
                c.fail(path + (other,), "does not go with fwmark (the mark selects the "
                                        "packets; drop vip, port and protocol)", key=True)
        mark = c.integer(data["fwmark"], path + ("fwmark",), 1, 2**32 - 1)
        family = field(c, data, "family", path, lambda v, p: c.choice(v, p, ("inet", "inet6")),
                       "inet")
        if mark is not None and family is not None:
            key = ServiceKey(4 if family == "inet" else 6, "fwmark", str(mark), 0)
    else:
        if "family" in data:
            c.fail(path + ("family",), "only applies to fwmark services (a VIP has its own)",
                   key=True)
        if "vip" not in data:
            c.fail(path, "missing required key 'vip' (or 'fwmark')")
        if "port" not in data:
            c.fail(path, "missing required key 'port'")
        vip = field(c, data, "vip", path, lambda v, p: _address(c, v, p, "a VIP"), None)
        port = field(c, data, "port", path, lambda v, p: c.integer(v, p, 1, 65535), None)
        protocol = field(c, data, "protocol", path, lambda v, p: c.choice(v, p, tuple(PROTOCOLS)),
                         "tcp")
        if vip is not None and port is not None and protocol is not None:
            key = ServiceKey(vip.version, protocol, str(vip), port)
    scheduler = field(c, data, "scheduler", path, lambda v, p: c.choice(v, p, SCHEDULERS), "wlc")
    flags: list[str] = []
    if "flags" in data:
        fpath = path + ("flags",)
        for i, flag in enumerate(c.listing(data["flags"], fpath)):
            if flag not in SCHEDULER_FLAGS:
                c.fail(fpath + (i,), f"{show(flag)} is not one of: {', '.join(SCHEDULER_FLAGS)}")
            elif scheduler is not None and SCHEDULER_FLAGS[flag][0] != scheduler:
                c.fail(fpath + (i,), f"{flag} is a flag of the {SCHEDULER_FLAGS[flag][0]} "
                                     f"scheduler, not of {scheduler}")
            elif flag in flags:
                c.fail(fpath + (i,), f"{flag} is listed twice")
            else:
                flags.append(flag)
    flags.sort(key=list(SCHEDULER_FLAGS).index)  # the kernel keeps a bit mask, not a list
    ops = field(c, data, "ops", path, c.boolean, False)
    if ops and key is not None and key.protocol not in ("udp", "fwmark"):
        c.fail(path + ("ops",), f"one-packet scheduling is for UDP services (or a fwmark "
                                f"that marks UDP); {key} is {key.protocol.upper()}")
        ops = None
    persistence = None
    if "persistence" in data and key is not None:
        persistence = _persistence(c, data["persistence"], path + ("persistence",), key.family)
    health = quorum = sorry = None
    if "health" in data and key is not None:
        health = parse_service_health(c, data["health"], path + ("health",))
    if "quorum" in data:
        quorum = parse_quorum(c, data["quorum"], path + ("quorum",))
    if "sorry_server" in data and key is not None:
        sorry = _real_server(c, data["sorry_server"], path + ("sorry_server",), key,
                             allowed=_SORRY_KEYS)
    servers: list[RealServer] = []
    if "real_servers" in data and key is None:
        # Without a valid key the entries cannot be judged in full; still name bad keys.
        rpath = path + ("real_servers",)
        for i, item in enumerate(c.listing(data["real_servers"], rpath)):
            c.mapping(item, rpath + (i,), _RS_KEYS, required=("address",))
    if "real_servers" in data and key is not None:
        rpath = path + ("real_servers",)
        seen: dict[tuple[str, int], int] = {}
        for i, item in enumerate(c.listing(data["real_servers"], rpath)):
            rs = _real_server(c, item, rpath + (i,), key, health)
            if rs is None:
                continue
            if rs.key in seen:
                c.fail(rpath + (i,), f"{rs} is already real_servers[{seen[rs.key]}]")
                continue
            seen[rs.key] = i
            servers.append(rs)
    if sorry is not None and sorry.key in {rs.key for rs in servers}:
        c.fail(path + ("sorry_server",), f"{sorry} is one of the real servers; the sorry "
                                         "server stands in when they are all down")
        sorry = None
    if key is None or scheduler is None or ops is None:
        return None
    return VirtualService(key=key, scheduler=scheduler, flags=tuple(flags),
                          persistence=persistence, real_servers=tuple(servers),
                          ops=ops, quorum=quorum, sorry_server=sorry)


def parse_ipvs(c: Checker, raw: Any, vips: set[IPAddress] | None) -> IpvsSettings | None:
    """The ``ipvs`` section; ``vips`` are the instances' VIPs (None: no instances)."""
    path: Path = ("ipvs",)
    data = c.mapping(raw, path, ("on_backup", "sync", "services", "timeouts"))
    if not isinstance(raw, dict):
        return None
    on_backup = field(c, data, "on_backup", path, lambda v, p: c.choice(v, p, ON_BACKUP), "keep")
    sync = None
    if "sync" in data:
        spath = path + ("sync",)
        sdata = c.mapping(data["sync"], spath, ("interface", "syncid"), required=("interface",))
        iface = field(c, sdata, "interface", spath, c.ifname)
        syncid = field(c, sdata, "syncid", spath, lambda v, p: c.integer(v, p, 0, 255), 0)
        if iface is not None and syncid is not None:
            sync = SyncSettings(interface=iface, syncid=syncid)
    timeouts = _timeouts(c, data["timeouts"], path + ("timeouts",)) if "timeouts" in data \
        else None
    services: list[VirtualService] = []
    seen: dict[ServiceKey, int] = {}
    if "services" in data:
        spath = path + ("services",)
        expanded = [(i, one) for i, item in enumerate(c.listing(data["services"], spath))
                    for one in _one_per_address(c, item, spath + (i,))]
        for i, item in expanded:
            service = _service(c, item, spath + (i,))
            if service is None:
                continue
            if service.key in seen:
                c.fail(spath + (i,), f"{service.key} is already services[{seen[service.key]}]")
                continue
            seen[service.key] = i
            if vips is not None and service.key.protocol != "fwmark" and \
                    ipaddress.ip_address(service.key.address) not in vips:
                c.fail(spath + (i, "vip"), f"{service.key.address} is not a VIP of any "
                                           "instance; haguard moves a service's VIP with "
                                           "its instance, so list it under instances[].vips")
                continue
            services.append(service)
    if on_backup is None:
        return None
    nat = any(rs.forwarding == "nat" for s in services
              for rs in s.real_servers + ((s.sorry_server,) if s.sorry_server else ()))
    return IpvsSettings(on_backup=on_backup, sync=sync, services=tuple(services),
                        timeouts=timeouts, nat=nat)


def _timeouts(c: Checker, raw: Any, path: Path) -> IpvsTimeouts | None:
    data = c.mapping(raw, path, ("tcp_s", "tcpfin_s", "udp_s"))
    values = {key: field(c, data, key, path, lambda v, p: c.integer(v, p, 0, MAX_TIMEOUT_S), 0)
              for key in ("tcp_s", "tcpfin_s", "udp_s")}
    if any(v is None for v in values.values()):
        return None
    return IpvsTimeouts(**{k: int(v or 0) for k, v in values.items()})


def parse_realserver(c: Checker, raw: Any) -> RealServerRole | None:
    path: Path = ("realserver",)
    data = c.mapping(raw, path, ("mode", "vips"), required=("vips",))
    if not isinstance(raw, dict):
        return None
    mode = field(c, data, "mode", path, lambda v, p: c.choice(v, p, REALSERVER_MODES), "dr")
    vips: list[IPAddress] = []
    if "vips" in data:
        vpath = path + ("vips",)
        items = c.listing(data["vips"], vpath)
        if isinstance(data["vips"], list) and not items:
            c.fail(vpath, "must list at least one VIP")
        for i, item in enumerate(items):
            if isinstance(item, str) and "/" in item:
                address, _, bits = item.partition("/")
                try:
                    written = ipaddress.ip_address(address)
                except ValueError:
                    c.fail(vpath + (i,), f"{item!r} is not an IP address")
                    continue
                if not bits.isdigit():
                    c.fail(vpath + (i,), f"{item!r} is not an IP address (prefix must be a "
                                         "length)")
                    continue
                if bits != str(written.max_prefixlen):
                    device = "lo" if mode != "tun" else "the tunnel device"
                    c.fail(vpath + (i,), f"{item!r}: a real server holds the VIP as a host "
                                         f"address (/{written.max_prefixlen}); a /{bits} on {device} "
                                         f"makes it claim the whole subnet and answer for its "
                                         f"neighbours (the seed runbook's lo:1 netmask "
                                         f"255.255.255.0 mistake)")
                    continue
                item = address
            ip = _address(c, item, vpath + (i,), "a VIP")
            if ip is None:
                continue
            if ip in vips:
                c.fail(vpath + (i,), f"{ip} is listed twice")
                continue
            vips.append(ip)
    if mode is None:
        return None
    return RealServerRole(mode=mode, vips=tuple(vips))
