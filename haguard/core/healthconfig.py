"""The ``health``, ``quorum`` and ``sorry_server`` keys of an IPVS service: model and
path-precise validation.

A service's ``health`` is the default for its real servers' checks; a real server's own
``health`` is merged over it (nested mappings one key at a time). Either may also be a
list of checks: a real server is up only while every one of its checks is (keepalived
ANDs its checkers the same way).

Defaults are keepalived's where keepalived has a sensible one (retry 1, a retry after
1 s, 2xx as HTTP success, remove on failure, checks starting up) and haguard's where it
does not: ``interval_s`` 5 (keepalived's delay_loop defaults to 60 s, so a dead server
kept its share for a minute) and ``timeout_s`` 3 (keepalived's 5 s would outlast the
interval).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from haguard.core.checker import Checker, argv, field, show
from haguard.core.yamlsrc import Path

CHECK_KINDS = ("tcp", "http", "https", "script", "dns", "none")
ON_DOWN = ("remove", "weight0")
START = ("up", "down")
DNS_TYPES = ("A", "AAAA", "NS", "CNAME", "SOA", "MX", "TXT", "PTR", "SRV")
SCRIPT_PLACEHOLDERS = ("address", "port", "vip", "vport", "protocol")
MAX_S = 3600.0

DEFAULT_INTERVAL_S = 5.0
DEFAULT_TIMEOUT_S = 3.0
DEFAULT_RETRIES = 1
DEFAULT_RETRY_INTERVAL_S = 1.0
DEFAULT_SCRIPT_USER = "nobody"
HTTP_SUCCESS = tuple(range(200, 300))

_HEALTH_KEYS = ("check", "interval_s", "timeout_s", "retries", "retry_interval_s", "rise",
                "port", "on_down", "start", "http", "tls", "script", "dns", "notify")
_BLOCK_FOR = {"http": ("http", "https"), "tls": ("https",), "script": ("script",),
              "dns": ("dns",)}
_HOST_RE = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9.-]{0,251}[A-Za-z0-9])?(:[0-9]{1,5})?$")
_USER_RE = re.compile(r"^[a-z_][a-z0-9_.-]*\$?$")


@dataclass(frozen=True)
class HttpSpec:
    path: str = "/"
    status: tuple[int, ...] = HTTP_SUCCESS
    host: str | None = None     # the Host header; the real server's address when None
    body: str | None = None     # text the body must contain


@dataclass(frozen=True)
class TlsSpec:
    verify: bool = False        # keepalived's SSL_GET does not verify either
    sni: str | None = None


@dataclass(frozen=True)
class ScriptSpec:
    command: tuple[str, ...]
    user: str = DEFAULT_SCRIPT_USER
    dynamic_weight: bool = False  # exit 2-255 sets the weight to exit - 2 (misc_dynamic)


@dataclass(frozen=True)
class DnsSpec:
    name: str
    type: str = "A"


@dataclass(frozen=True)
class Check:
    """One check of one real server, every default applied."""

    kind: str                   # tcp | http | https | script | dns
    port: int                   # where it connects (the real server's port by default)
    interval_s: float = DEFAULT_INTERVAL_S
    timeout_s: float = DEFAULT_TIMEOUT_S
    retries: int = DEFAULT_RETRIES
    retry_interval_s: float = DEFAULT_RETRY_INTERVAL_S
    rise: int = 1
    start: str = "up"
    http: HttpSpec | None = None
    tls: TlsSpec | None = None
    script: ScriptSpec | None = None
    dns: DnsSpec | None = None


@dataclass(frozen=True)
class RealServerHealth:
    """A real server's checks (all must pass) and what its failure does."""

    checks: tuple[Check, ...]
    on_down: str = "remove"
    notify_up: tuple[str, ...] = ()
    notify_down: tuple[str, ...] = ()


@dataclass(frozen=True)
class Quorum:
    """keepalived's quorum: the live real servers' weights must add up to ``weight``."""

    weight: int = 1
    hysteresis: int = 0
    up: tuple[str, ...] = ()
    down: tuple[str, ...] = ()


# --------------------------------------------------------------------------- validation

def _merge(base: Mapping[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


def _argv(c: Checker, raw: Any, path: Path, placeholders: bool = False) -> tuple[str, ...] | None:
    """A command as an argument list, its program an absolute path."""
    return argv(c, raw, path, placeholders=SCRIPT_PLACEHOLDERS if placeholders else (),
                elsewhere="placeholders work only in script.command")


def _status(c: Checker, raw: Any, path: Path) -> tuple[int, ...] | None:
    codes: list[int] = []
    for i, item in enumerate(c.listing(raw, path)):
        ipath = path + (i,)
        if isinstance(item, str) and re.fullmatch(r"\d{3}-\d{3}", item):
            lo, hi = (int(x) for x in item.split("-"))
            if not 100 <= lo <= hi <= 599:
                c.fail(ipath, f"{item!r} is not a range of HTTP statuses (100-599, low-high)")
                return None
            codes += range(lo, hi + 1)
        elif isinstance(item, int) and not isinstance(item, bool):
            if not 100 <= item <= 599:
                c.fail(ipath, f"{item} is not an HTTP status (100-599)")
                return None
            codes.append(item)
        else:
            c.fail(ipath, f"{show(item)} is not an HTTP status (like 200 or '200-299')")
            return None
    if isinstance(raw, list) and not codes:
        c.fail(path, "must list at least one status")
        return None
    return tuple(sorted(set(codes))) if codes else None


def _http(c: Checker, raw: Any, path: Path) -> dict[str, Any]:
    data = c.mapping(raw, path, ("path", "status", "host", "body"))
    out: dict[str, Any] = {}
    if "path" in data:
        value = c.string(data["path"], path + ("path",))
        if value is not None and not value.startswith("/"):
            c.fail(path + ("path",), f"{value!r} must start with '/'")
        elif value is not None and any(ch.isspace() for ch in value):
            c.fail(path + ("path",), f"{value!r} must not contain spaces (escape them as %20)")
        elif value is not None:
            out["path"] = value
    if "status" in data:
        status = _status(c, data["status"], path + ("status",))
        if status is not None:
            out["status"] = status
    if "host" in data:
        host = c.string(data["host"], path + ("host",), _HOST_RE, "a host name for the "
                        "Host header (like www.example.org or www.example.org:8080)")
        if host is not None:
            out["host"] = host
    if "body" in data:
        body = c.string(data["body"], path + ("body",))
        if body is not None:
            out["body"] = body
    return out


def _parts(c: Checker, raw: Any, path: Path) -> dict[str, Any]:
    """One health mapping's own keys, each validated; nothing merged or defaulted."""
    data = c.mapping(raw, path, _HEALTH_KEYS)
    out: dict[str, Any] = {}
    check = field(c, data, "check", path, lambda v, p: c.choice(v, p, CHECK_KINDS), None)
    if check is not None:
        out["check"] = check
    for key, lo in (("interval_s", 0.1), ("timeout_s", 0.01), ("retry_interval_s", 0.01)):
        if key in data:
            number = c.number(data[key], path + (key,), lo, MAX_S)
            if number is not None:
                out[key] = number
    for key, least in (("retries", 0), ("rise", 1)):
        if key in data:
            count = c.integer(data[key], path + (key,), least, 100)
            if count is not None:
                out[key] = count
    for key, choices in (("on_down", ON_DOWN), ("start", START)):
        if key in data:
            chosen = c.choice(data[key], path + (key,), choices)
            if chosen is not None:
                out[key] = chosen
    port = field(c, data, "port", path, lambda v, p: c.integer(v, p, 1, 65535), None)
    if port is not None:
        out["port"] = port
    if "http" in data:
        out["http"] = _http(c, data["http"], path + ("http",))
    if "tls" in data:
        tpath = path + ("tls",)
        tdata = c.mapping(data["tls"], tpath, ("verify", "sni"))
        tls: dict[str, Any] = {}
        verify = field(c, tdata, "verify", tpath, c.boolean, None)
        if verify is not None:
            tls["verify"] = verify
        sni = field(c, tdata, "sni", tpath, lambda v, p: c.string(
            v, p, _HOST_RE, "a host name"), None)
        if sni is not None:
            tls["sni"] = sni
        out["tls"] = tls
    if "script" in data:
        spath = path + ("script",)
        sdata = c.mapping(data["script"], spath, ("command", "user", "dynamic_weight"))
        script: dict[str, Any] = {}
        command = field(c, sdata, "command", spath,
                        lambda v, p: _argv(c, v, p, placeholders=True), None)
        if command is not None:
            script["command"] = command
        user = field(c, sdata, "user", spath,
                     lambda v, p: c.string(v, p, _USER_RE, "a user name"), None)
        if user is not None:
            script["user"] = user
        dynamic = field(c, sdata, "dynamic_weight", spath, c.boolean, None)
        if dynamic is not None:
            script["dynamic_weight"] = dynamic
        out["script"] = script
    if "dns" in data:
        dpath = path + ("dns",)
        ddata = c.mapping(data["dns"], dpath, ("name", "type"))
        dns: dict[str, Any] = {}
        name = field(c, ddata, "name", dpath, lambda v, p: c.string(
            v, p, re.compile(r"^[A-Za-z0-9_.-]+\.?$"), "a DNS name"), None)
        if name is not None:
            dns["name"] = name
        qtype = field(c, ddata, "type", dpath, lambda v, p: c.choice(
            v, p, DNS_TYPES + tuple(t.lower() for t in DNS_TYPES)), None)
        if qtype is not None:
            dns["type"] = qtype.upper()
        out["dns"] = dns
    if "notify" in data:
        npath = path + ("notify",)
        ndata = c.mapping(data["notify"], npath, ("up", "down"))
        notify: dict[str, Any] = {}
        for key in ("up", "down"):
            command = field(c, ndata, key, npath, lambda v, p: _argv(c, v, p), None)
            if command is not None:
                notify[key] = command
        out["notify"] = notify
    if check is not None:
        for block, kinds in _BLOCK_FOR.items():
            if block in data and check not in kinds:
                c.fail(path + (block,), f"only applies to check: {' or '.join(kinds)} "
                                        f"(this one is check: {check})", key=True)
    return out


def _mappings(c: Checker, raw: Any, path: Path) -> list[tuple[Path, dict[str, Any]]] | None:
    """``health`` as (path, parts) per check: a mapping is one check, a list several."""
    if isinstance(raw, list):
        if not raw:
            c.fail(path, "must list at least one check (or be check: none)")
            return None
        return [(path + (i,), _parts(c, item, path + (i,))) for i, item in enumerate(raw)]
    return [(path, _parts(c, raw, path))]


@dataclass(frozen=True)
class ServiceHealth:
    """A service's ``health`` as written: the default for its real servers' checks."""

    parts: tuple[tuple[Path, Any], ...]   # (path, validated keys) per check
    valid: bool                           # False: a key was reported already


def parse_service_health(c: Checker, raw: Any, path: Path) -> ServiceHealth | None:
    before = len(c.problems)
    found = _mappings(c, raw, path)
    if found is None:
        return None
    return ServiceHealth(tuple(found), valid=len(c.problems) == before)


def real_server_health(c: Checker, service: ServiceHealth | None, raw: Any, path: Path,
                       protocol: str, rs_port: int) -> RealServerHealth | None:
    """The checks of one real server (None: it is not checked): its own ``health`` merged
    over the service's, every default applied, the combination judged."""
    before = len(c.problems)
    own = _mappings(c, raw, path) if raw is not None else None
    if (raw is not None and own is None) or len(c.problems) > before or \
            (service is not None and not service.valid):
        return None     # a bad key was reported; judging the combination would repeat it
    if own is None:
        if service is None:
            return None
        combined = list(service.parts)
    elif service is None or len(service.parts) > 1:
        combined = own      # a real server's list replaces the service's list
    else:
        base = service.parts[0][1]
        combined = [(p, _merge(base, parts)) for p, parts in own]
    checks: list[Check] = []
    on_down: set[str] = set()
    notify: dict[str, set[tuple[str, ...]]] = {"up": set(), "down": set()}
    for cpath, parts in combined:
        kind = parts.get("check")
        if kind is None:
            c.fail(cpath, "missing required key 'check' (tcp, http, https, script, dns "
                          "or none), here or in the service's health")
            continue
        on_down.add(parts.get("on_down", "remove"))
        for key in ("up", "down"):
            if key in parts.get("notify", {}):
                notify[key].add(parts["notify"][key])
        if kind == "none":
            continue
        check = _check(c, cpath, parts, kind, protocol, rs_port)
        if check is not None:
            checks.append(check)
    for key, label in (("on_down", on_down), ("notify.up", notify["up"]),
                       ("notify.down", notify["down"])):
        if len(label) > 1:
            c.fail(path, f"its checks disagree on {key}; a real server has one")
            return None
    if len(checks) != sum(1 for _, p in combined if p.get("check") not in (None, "none")):
        return None
    if not checks:
        return None
    return RealServerHealth(checks=tuple(checks), on_down=on_down.pop() if on_down else "remove",
                            notify_up=next(iter(notify["up"]), ()),
                            notify_down=next(iter(notify["down"]), ()))


def _check(c: Checker, path: Path, parts: dict[str, Any], kind: str, protocol: str,
           rs_port: int) -> Check | None:
    interval = parts.get("interval_s", DEFAULT_INTERVAL_S)
    timeout = parts.get("timeout_s", min(DEFAULT_TIMEOUT_S, interval))
    if timeout > interval:
        c.fail(path, f"timeout_s {timeout:g} is longer than interval_s {interval:g}: a check "
                     "would still be waiting when the next one is due")
        return None
    if kind in ("tcp", "http", "https") and protocol not in ("tcp", "fwmark"):
        c.fail(path, f"a {kind} check connects over TCP, and this service is {protocol}; "
                     "use check: dns or script")
        return None
    port = parts.get("port", rs_port)
    if not port and kind != "script":
        c.fail(path, "the real server has no port (a fwmark service); give health.port, "
                     "where the check connects")
        return None
    http = tls = script = dns = None
    if kind in ("http", "https"):
        http = HttpSpec(**parts.get("http", {}))
    if kind == "https":
        tls = TlsSpec(**parts.get("tls", {}))
    if kind == "script":
        sparts = parts.get("script", {})
        if "command" not in sparts:
            c.fail(path, "check: script needs script.command (the program and its "
                         "arguments)")
            return None
        script = ScriptSpec(**sparts)
    if kind == "dns":
        dparts = parts.get("dns", {})
        if "name" not in dparts:
            c.fail(path, "check: dns needs dns.name (the name to ask the real server for)")
            return None
        dns = DnsSpec(**dparts)
    return Check(kind=kind, port=port, interval_s=interval, timeout_s=timeout,
                 retries=parts.get("retries", DEFAULT_RETRIES),
                 retry_interval_s=parts.get("retry_interval_s", DEFAULT_RETRY_INTERVAL_S),
                 rise=parts.get("rise", 1), start=parts.get("start", "up"), http=http,
                 tls=tls, script=script, dns=dns)


def parse_quorum(c: Checker, raw: Any, path: Path) -> Quorum | None:
    data = c.mapping(raw, path, ("weight", "hysteresis", "up", "down"))
    if not isinstance(raw, dict):
        return None
    weight = field(c, data, "weight", path, lambda v, p: c.integer(v, p, 1, 2**31 - 1), 1)
    hysteresis = field(c, data, "hysteresis", path,
                       lambda v, p: c.integer(v, p, 0, 2**31 - 1), 0)
    up = field(c, data, "up", path, lambda v, p: _argv(c, v, p), ())
    down = field(c, data, "down", path, lambda v, p: _argv(c, v, p), ())
    if None in (weight, hysteresis, up, down):
        return None
    return Quorum(weight=weight, hysteresis=hysteresis, up=up, down=down)

