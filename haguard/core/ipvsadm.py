"""ipvsadm's save format <-> the IPVS model: import a running table, export one.

``parse_save`` reads what ``ipvsadm -S -n`` prints (and what ``ipvsadm -R`` reads):
one command per line, ``-A`` for a virtual service and ``-a`` for a real server of a
service defined on an earlier line. Every bad line is reported as ``FILE:LINE: message``
(one problem per line, all lines checked before raising ``ConfigError``), and the
result is finally run through the ``ipvs`` section's own validation, so a save file
is accepted exactly when the same services written as YAML would be.

``format_save`` writes services back in that format, ``to_yaml_section`` /
``dump_yaml`` as the config's ``ipvs:`` section. Pure code: no I/O, no subprocess.

Things about ipvsadm's format this codec relies on (ipvsadm 1.31, ipvsadm.c):

* ``-S`` always writes ``-s SCHED``; ``-p`` without a value means 300 s
  (IPVS_SVC_PERSISTENT_TIMEOUT); ``-M`` is written only when it is not the default
  (255.255.255.255, or 128 for IPv6, where it is a prefix length).
* ``-b`` lists the flags as ``sh-fallback,sh-port`` (fallback first).
* A fwmark service is ``-f MARK``, followed by ``-6`` for IPv6 (ipvsadm refuses a ``-6``
  before ``-f``); its real servers are written with port 0 (``-r 192.0.2.21:0``).
* ``-S`` never writes ``-x``/``-y`` (thresholds are lost by a save); ``-R`` accepts them.
* ``-S`` of ipvsadm >= 1.30 writes ``--tun-type ipip`` for every tunnel server and
  ``--tun-nocsum`` after gue/gre; both are defaults and are accepted here. Older ipvsadm
  knows neither option, so ``format_save`` writes ``--tun-type`` only for gue/gre.
* ``-R`` silently replaces the port of a ``-g``/``-i`` real server with the service
  port; here a different port is an error, as in the YAML.
* ``-R`` drops any ``ipvsadm`` word, so runbook lines ``ipvsadm -A -t ...`` are accepted.
* ``-S`` sorts services and, within each, real servers by address and port; the order
  here is the file's (and ``format_save`` keeps the model's), so compare tables as sets.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import yaml

from haguard.core.checker import Checker
from haguard.core.ipvsconfig import (
    MAX_THRESHOLD,
    MAX_WEIGHT,
    SCHEDULER_FLAGS,
    SCHEDULERS,
    TUNNEL_TYPES,
    IPAddress,
    Persistence,
    RealServer,
    ServiceKey,
    VirtualService,
    parse_ipvs,
)
from haguard.core.yamlsrc import Path, Source
from haguard.errors import ConfigError

DEFAULT_SCHEDULER = "wlc"            # ipvsadm's DEF_SCHED
DEFAULT_PERSISTENCE_TIMEOUT = 300    # IPVS_SVC_PERSISTENT_TIMEOUT: `-p` without a value
MAX_TIMEOUT = 2**31 - 1              # ipvsconfig's bound for persistence.timeout_s
MAX_MARK = 2**32 - 1
DEFAULT_NETMASK = {4: "255.255.255.255", 6: "128"}

_FORWARDING_SWITCH = {"dr": "-g", "tun": "-i", "nat": "-m"}
_PROTOCOL_SWITCH = {"tcp": "-t", "udp": "-u", "sctp": "--sctp-service"}

# --------------------------------------------------------------------------- options

_FLAG, _VALUE, _OPTIONAL = "flag", "value", "optional"


@dataclass(frozen=True)
class _Option:
    name: str            # canonical spelling, used as the key
    arity: str           # _FLAG | _VALUE | _OPTIONAL
    commands: str        # "A", "a" or "Aa": the commands it applies to
    group: str = ""      # options of one group exclude each other
    spellings: tuple[str, ...] = ()


_OPTIONS = (
    _Option("-t", _VALUE, "Aa", "service", ("-t", "--tcp-service")),
    _Option("-u", _VALUE, "Aa", "service", ("-u", "--udp-service")),
    _Option("--sctp-service", _VALUE, "Aa", "service", ("--sctp-service",)),
    _Option("-f", _VALUE, "Aa", "service", ("-f", "--fwmark-service")),
    _Option("-6", _FLAG, "Aa", "", ("-6", "--ipv6")),
    _Option("-s", _VALUE, "A", "", ("-s", "--scheduler")),
    _Option("-p", _OPTIONAL, "A", "", ("-p", "--persistent")),
    _Option("-M", _VALUE, "A", "", ("-M", "--netmask")),
    _Option("-b", _VALUE, "A", "", ("-b", "--sched-flags")),
    _Option("-o", _FLAG, "A", "", ("-o", "--ops")),
    _Option("-r", _VALUE, "a", "", ("-r", "--real-server")),
    _Option("-g", _FLAG, "a", "forwarding", ("-g", "--gatewaying")),
    _Option("-i", _FLAG, "a", "forwarding", ("-i", "--ipip")),
    _Option("-m", _FLAG, "a", "forwarding", ("-m", "--masquerading")),
    _Option("-w", _VALUE, "a", "", ("-w", "--weight")),
    _Option("-x", _VALUE, "a", "", ("-x", "--u-threshold")),
    _Option("-y", _VALUE, "a", "", ("-y", "--l-threshold")),
    _Option("--tun-type", _VALUE, "a", "", ("--tun-type",)),
    _Option("--tun-port", _VALUE, "a", "", ("--tun-port",)),
    _Option("--tun-nocsum", _FLAG, "a", "", ("--tun-nocsum",)),
)
_BY_SPELLING = {spelling: opt for opt in _OPTIONS for spelling in opt.spellings}

_COMMANDS = {"-A": "A", "--add-service": "A", "-a": "a", "--add-server": "a"}
_COMMAND_NAMES = {"A": "-A (add-service)", "a": "-a (add-server)"}
# ipvsadm's other commands: real, but never in a save file.
_OTHER_COMMANDS = ("-E", "--edit-service", "-D", "--delete-service", "-C", "--clear", "-L",
                   "-l", "--list", "-Z", "--zero", "-e", "--edit-server", "-d",
                   "--delete-server", "--set", "-h", "--help", "-v", "--version", "-R",
                   "--restore", "-S", "--save", "--start-daemon", "--stop-daemon")
# ipvsadm options the model cannot express: refusing them beats dropping them silently.
_UNSUPPORTED = {
    "--pe": "persistence engines", "--tun-csum": "tunnel checksums",
    "--tun-remcsum": "remote tunnel checksums",
}
# ipvsadm's listing and sync-daemon options: meaningless on an add command.
_OTHER_OPTIONS = ("-n", "--numeric", "-c", "--connection", "--timeout", "--daemon", "--stats",
                  "--rate", "--thresholds", "--persistent-conn", "--nosort", "--sort", "-X",
                  "--exact", "--tun-info", "--mcast-interface", "--syncid", "--mcast-group",
                  "--mcast-port", "--mcast-ttl", "--sync-maxlen")

_NEGATIVE_NUMBER = re.compile(r"^-\d+$")
_DIGITS = re.compile(r"^\d+$")
_NAME_HINT = re.compile(r"[g-zG-Z]")


class _Bad(Exception):
    """The one problem reported for a line."""


@dataclass
class _Line:
    number: int
    command: str                              # "A" or "a"
    options: dict[str, tuple[str, str | None]]   # canonical name -> (as written, value)

    def has(self, name: str) -> bool:
        return name in self.options

    def value(self, name: str) -> str | None:
        return self.options[name][1] if name in self.options else None

    def written(self, name: str) -> str:
        return self.options[name][0]


# Every one-letter option and command ipvsadm knows: what popt lets one word bundle.
_SHORT = frozenset("AEDCRSaedLlZtufsprgimwxyMbn6chvXo")
_TAKES_VALUE = frozenset("tufsrwxyMb")


def _unbundle(words: list[str]) -> list[str]:
    """popt's bundled short options as separate words: ``-At`` is ``-A -t``, and the
    rest of a bundle after an option that takes a value is that value (``-w3``)."""
    out: list[str] = []
    for word in words:
        letters = word[1:]
        if not word.startswith("-") or word.startswith("--") or len(letters) < 2 \
                or word in _BY_SPELLING or _NEGATIVE_NUMBER.match(word) \
                or letters[0] not in _SHORT:
            out.append(word)
            continue
        for i, letter in enumerate(letters):
            if letter not in _SHORT:   # not a bundle after all: let the checks name it
                out.append("-" + letters[i:])
                break
            out.append("-" + letter)
            if letter in _TAKES_VALUE and i + 1 < len(letters):
                out.append(letters[i + 1:])
                break
    return out


def _looks_like_option(token: str) -> bool:
    """An option word, as opposed to a value; ``-1`` is a (bad) value, ``-6`` an option."""
    if token in _BY_SPELLING:
        return True
    return token.startswith("-") and len(token) > 1 and not _NEGATIVE_NUMBER.match(token)


def _tokenize(number: int, raw: str) -> _Line | None:
    """One line's words as a command and its options; None for a blank line."""
    words = raw.split("#", 1)[0].split()
    if words and (words[0] == "ipvsadm" or words[0].endswith("/ipvsadm")):
        words = words[1:]
    words = _unbundle(words)
    if not words:
        return None
    first = words[0]
    if first not in _COMMANDS:
        if first in _OTHER_COMMANDS:
            raise _Bad(f"'{first}' is not an add command; a save file has only -A "
                       "(add-service) and -a (add-server) lines")
        raise _Bad(f"a line must start with -A (add-service) or -a (add-server), not "
                   f"'{first}'")
    command = _COMMANDS[first]
    options: dict[str, tuple[str, str | None]] = {}
    groups: dict[str, str] = {}
    i = 1
    while i < len(words):
        word = words[i]
        i += 1
        if not _looks_like_option(word):
            raise _Bad(f"unexpected argument '{word}'")
        spelling, eq, inline = word.partition("=") if word.startswith("--") else (word, "", "")
        opt = _BY_SPELLING.get(spelling)
        if opt is None:
            if spelling in _UNSUPPORTED:
                raise _Bad(f"'{spelling}' is not supported: haguard's ipvs model has no "
                           f"{_UNSUPPORTED[spelling]}")
            if spelling in _COMMANDS or spelling in _OTHER_COMMANDS:
                raise _Bad(f"'{spelling}' is a second command; one command per line")
            if spelling in _OTHER_OPTIONS:
                raise _Bad(f"'{spelling}' does not apply to {_COMMAND_NAMES[command]}")
            raise _Bad(f"unknown option '{spelling}'")
        if command not in opt.commands:
            raise _Bad(f"'{spelling}' does not apply to {_COMMAND_NAMES[command]}")
        if opt.name in options:
            raise _Bad(f"'{spelling}' is given twice")
        if opt.group and opt.group in groups:
            raise _Bad(f"'{spelling}' conflicts with '{groups[opt.group]}' (one "
                       f"{opt.group} option per line)")
        value: str | None = None
        if opt.arity == _FLAG:
            if eq:
                raise _Bad(f"'{spelling}' takes no value")
        elif eq:
            if not inline:
                raise _Bad(f"missing value for '{spelling}'")
            value = inline
        elif i < len(words) and not _looks_like_option(words[i]):
            value = words[i]
            i += 1
        elif opt.arity == _VALUE:
            raise _Bad(f"missing value for '{spelling}'")
        options[opt.name] = (spelling, value)
        if opt.group:
            groups[opt.group] = spelling
    return _Line(number, command, options)


# --------------------------------------------------------------------------- values

def _integer(text: str, lo: int, hi: int, what: str) -> int:
    if not _DIGITS.match(text) or not lo <= int(text) <= hi:
        raise _Bad(f"'{text}' is not {what} ({lo}-{hi})")
    return int(text)


def _split_hostport(text: str, port_required: bool, protocol: str = "tcp",
                    port_names: Mapping[tuple[str, str], int] | None = None
                    ) -> tuple[IPAddress, int | None]:
    """``ADDR:PORT`` / ``[V6]:PORT`` (and without the port when it is optional); a port
    may be a service name of ``port_names`` ((name, protocol) -> number, /etc/services)."""
    shape = "ADDRESS:PORT" if port_required else "ADDRESS[:PORT]"
    hint = ""
    if "$" in text:
        hint = " (a shell variable: write the value)"
    elif _NAME_HINT.search(text.rpartition(":")[0] if ":" in text else text):
        hint = (": a host name; haguard does not resolve names (the table would change "
                "with DNS at each load): write the address, as ipvsadm -S -n prints it")
    elif _NAME_HINT.search(text):
        hint = (f": the port is not a number nor a {protocol} service of /etc/services "
                "(ipvsadm -S -n prints numbers)")
    bad = _Bad(f"'{text}' is not {shape}{hint}")
    host: str
    port: str | None
    if text.startswith("["):
        host, sep, rest = text[1:].partition("]")
        if not sep:
            raise bad
        if rest:
            if not rest.startswith(":"):
                raise bad
            port = rest[1:]
        else:
            port = None
        try:
            address: IPAddress = ipaddress.IPv6Address(host)
        except ValueError:
            raise bad from None
    else:
        try:
            address = ipaddress.IPv6Address(text)
            host, port = text, None           # a bare IPv6 address, as ipvsadm reads it
        except ValueError:
            host, sep, port_text = text.rpartition(":")
            if not sep:
                host, port = text, None
            else:
                port = port_text
            try:
                address = ipaddress.IPv4Address(host)
            except ValueError:
                raise bad from None
    if port is None:
        if port_required:
            if address.version == 6 and not text.startswith("["):
                raise _Bad(f"'{text}' has no port: an IPv6 service is [ADDRESS]:PORT")
            raise _Bad(f"'{text}' has no port: a service is ADDRESS:PORT (for every port "
                       "of an address, mark its packets and use -f MARK)")
        return address, None
    if not _DIGITS.match(port) and port_names and (port, protocol) in port_names:
        return address, port_names[(port, protocol)]   # ipvsadm: getservbyname(port, proto)
    if not _DIGITS.match(port) or int(port) > 65535:
        raise bad
    return address, int(port)


def _host(address: IPAddress | str, family: int) -> str:
    return f"[{address}]" if family == 6 else str(address)


def _service_key(line: _Line, port_names: Mapping[tuple[str, str], int] | None = None
                 ) -> ServiceKey:
    if line.has("-f"):
        mark = _integer(line.value("-f") or "", 1, MAX_MARK, "a firewall mark")
        return ServiceKey(6 if line.has("-6") else 4, "fwmark", str(mark), 0)
    given = next(((name, protocol) for name, protocol in
                  (("-t", "tcp"), ("-u", "udp"), ("--sctp-service", "sctp")) if line.has(name)),
                 None)
    if given is None:
        raise _Bad(f"{_COMMAND_NAMES[line.command].split()[0]} needs a service: -t, -u or "
                   "--sctp-service ADDRESS:PORT, or -f MARK")
    name, protocol = given
    if line.has("-6"):
        raise _Bad(f"'{line.written('-6')}' only applies to -f (fwmark) services; a "
                   "VIP's family comes from its address")
    text = line.value(name) or ""
    address, port = _split_hostport(text, True, protocol, port_names)
    if port == 0:
        raise _Bad(f"'{text}': port 0 (a persistent all-ports service) is not supported; "
                   "mark the packets and use -f MARK")
    assert port is not None
    return ServiceKey(address.version, protocol, str(address), port)


# --------------------------------------------------------------------------- commands

@dataclass
class _Service:
    key: ServiceKey
    line: int
    scheduler: str
    flags: tuple[str, ...]
    persistence: Persistence | None
    servers: list[tuple[RealServer, int]]
    ops: bool = False


def _add_service(line: _Line, key: ServiceKey) -> _Service:
    scheduler = line.value("-s") or DEFAULT_SCHEDULER
    if scheduler not in SCHEDULERS:
        raise _Bad(f"unknown scheduler '{scheduler}' (known: {', '.join(SCHEDULERS)})")
    persistence = None
    if line.has("-p"):
        given = line.value("-p")
        timeout = DEFAULT_PERSISTENCE_TIMEOUT if given is None else \
            _integer(given, 1, MAX_TIMEOUT, "a persistence timeout in seconds")
        netmask = DEFAULT_NETMASK[key.family]
        if line.has("-M"):
            netmask = _netmask(line.value("-M") or "", key.family)
        persistence = Persistence(timeout_s=timeout, netmask=netmask)
    elif line.has("-M"):
        raise _Bad(f"'{line.written('-M')}' needs -p: the netmask groups clients for "
                   "persistence")
    flags: list[str] = []
    if line.has("-b"):
        for flag in (line.value("-b") or "").split(","):
            if flag not in SCHEDULER_FLAGS:
                raise _Bad(f"unknown scheduler flag '{flag}' (known: "
                           f"{', '.join(SCHEDULER_FLAGS)})")
            owner = SCHEDULER_FLAGS[flag][0]
            if owner != scheduler:
                raise _Bad(f"{flag} is a flag of the {owner} scheduler, not of {scheduler}")
            if flag in flags:
                raise _Bad(f"{flag} is listed twice")
            flags.append(flag)
    return _Service(key=key, line=line.number, scheduler=scheduler, flags=tuple(flags),
                    persistence=persistence, servers=[], ops=line.has("-o"))


def _netmask(text: str, family: int) -> str:
    if family == 6:
        return str(_integer(text, 1, 128, "an IPv6 netmask prefix length"))
    try:
        mask = str(ipaddress.IPv4Network(f"0.0.0.0/{text}").netmask)
    except ValueError:
        mask = None
    if mask != text:      # also refuses a prefix length (24) and a host mask (0.0.0.255)
        raise _Bad(f"'{text}' is not an IPv4 netmask (like 255.255.255.0)")
    return mask


def _add_server(line: _Line, service: _Service | None, key: ServiceKey,
                port_names: Mapping[tuple[str, str], int] | None = None) -> RealServer:
    """A real server; ``service`` None: its -A line was bad, check the line alone."""
    if not line.has("-r"):
        raise _Bad("-a needs -r ADDRESS[:PORT] (the real server)")
    text = line.value("-r") or ""
    protocol = key.protocol if key.protocol in ("tcp", "udp", "sctp") else "tcp"
    address, given_port = _split_hostport(text, False, protocol, port_names)
    forwarding = "dr"
    for name in ("-g", "-i", "-m"):
        if line.has(name):
            forwarding = {"-g": "dr", "-i": "tun", "-m": "nat"}[name]
    weight = 1 if not line.has("-w") else \
        _integer(line.value("-w") or "", 0, MAX_WEIGHT, "a weight")
    upper = 0 if not line.has("-x") else \
        _integer(line.value("-x") or "", 0, MAX_THRESHOLD, "an upper threshold")
    lower = 0 if not line.has("-y") else \
        _integer(line.value("-y") or "", 0, MAX_THRESHOLD, "a lower threshold")
    tunnel_type, tunnel_port = "ipip", 0
    tunnel_options = [n for n in ("--tun-type", "--tun-port", "--tun-nocsum") if line.has(n)]
    if tunnel_options and forwarding != "tun":
        raise _Bad(f"'{tunnel_options[0]}' only applies to -i (tunnel) real servers")
    if line.has("--tun-type"):
        tunnel_type = line.value("--tun-type") or ""
        if tunnel_type not in TUNNEL_TYPES:
            raise _Bad(f"unknown tunnel type '{tunnel_type}' (known: "
                       f"{', '.join(TUNNEL_TYPES)})")
    if line.has("--tun-port"):
        if tunnel_type != "gue":
            raise _Bad("'--tun-port' only applies to --tun-type gue")
        tunnel_port = _integer(line.value("--tun-port") or "", 1, 65535, "a tunnel port")
    elif tunnel_type == "gue":
        raise _Bad("--tun-type gue needs --tun-port (the real server's GUE port)")
    if line.has("--tun-nocsum") and tunnel_type == "ipip":
        raise _Bad("'--tun-nocsum' only applies to --tun-type gue or gre")
    if upper and lower > upper:
        raise _Bad(f"lower threshold {lower} (-y) is above upper threshold {upper} (-x)")
    port = given_port
    if service is not None:
        key = service.key
        if port is None:
            port = key.port
        if address.version != key.family:
            raise _Bad(f"{address} is IPv{address.version} but {key} is an "
                       f"IPv{key.family} service")
        if key.protocol != "fwmark":
            if port == 0:
                raise _Bad(f"'{text}': port 0 only applies to -f (fwmark) services")
            if forwarding in ("dr", "tun") and port != key.port:
                switch = _FORWARDING_SWITCH[forwarding]
                raise _Bad(f"{_host(address, key.family)}:{port}: a {switch} "
                           f"({forwarding.upper()}) real server must use the service port "
                           f"{key.port}, the packet reaches it unchanged (ipvsadm -R would "
                           "silently use the service port; use -m to map ports)")
    return RealServer(address=address, port=port or 0, forwarding=forwarding, weight=weight,
                      upper_threshold=upper, lower_threshold=lower, tunnel_type=tunnel_type,
                      tunnel_port=tunnel_port)


# --------------------------------------------------------------------------- parse

class _SaveFileSource(Source):
    """Problems found by the YAML validation, placed on the save file's lines."""

    def where(self, path: Path, key: bool = False) -> str:
        return f"{self.filename}:{self.line(path, key)}"


def parse_save(text: str, filename: str,
               port_names: Mapping[tuple[str, str], int] | None = None
               ) -> tuple[VirtualService, ...]:
    """Services from ``ipvsadm -S`` output; ConfigError lists every bad line.

    ``port_names`` resolves service names in ports (``-S`` without ``-n`` writes
    ``192.0.2.100:http``) the way ipvsadm -R does; host names are refused.
    """
    problems: list[str] = []
    services: dict[ServiceKey, _Service] = {}
    broken: set[ServiceKey] = set()      # keys whose -A line was bad: no cascade
    for number, raw in enumerate(text.splitlines(), start=1):
        key: ServiceKey | None = None
        line: _Line | None = None
        try:
            line = _tokenize(number, raw)
            if line is None:
                continue
            key = _service_key(line, port_names)
            if line.command == "A":
                if key in services:
                    raise _Bad(f"{key} is already defined on line {services[key].line}")
                services[key] = _add_service(line, key)
                continue
            service = services.get(key)
            if service is None and key not in broken:
                raise _Bad(f"{key} is not defined; its -A line must come before its "
                           "real servers")
            rs = _add_server(line, service, key, port_names)
            if service is None:
                continue
            for other, other_line in service.servers:
                if other.key == rs.key:
                    raise _Bad(f"{rs} is already a real server of {key} (line {other_line})")
            service.servers.append((rs, number))
        except _Bad as exc:
            problems.append(f"{filename}:{number}: {exc}")
            if key is not None and line is not None and line.command == "A" \
                    and key not in services:
                broken.add(key)
    if problems:
        raise ConfigError(problems)
    return _validate(list(services.values()), filename)


def _validate(parsed: list[_Service], filename: str) -> tuple[VirtualService, ...]:
    """Run the result through the ``ipvs`` section's validation, lines mapped back."""
    services = tuple(
        VirtualService(key=s.key, scheduler=s.scheduler, flags=s.flags,
                       persistence=s.persistence, ops=s.ops,
                       real_servers=tuple(rs for rs, _ in s.servers))
        for s in parsed)
    section = to_yaml_section(services)
    source = _SaveFileSource(filename=filename, data={"ipvs": section})
    source.lines[()] = parsed[0].line if parsed else 1
    for i, s in enumerate(parsed):
        source.lines[("ipvs", "services", i)] = s.line
        for j, (_, number) in enumerate(s.servers):
            source.lines[("ipvs", "services", i, "real_servers", j)] = number
    checker = Checker(source)
    settings = parse_ipvs(checker, section, None)
    if checker.problems or settings is None:
        raise ConfigError(checker.problems or [f"{filename}:1: invalid ipvs table"])
    return settings.services


# --------------------------------------------------------------------------- write

def _selector(key: ServiceKey) -> str:
    if key.protocol == "fwmark":
        return f"-f {key.address}" + (" -6" if key.family == 6 else "")
    return f"{_PROTOCOL_SWITCH[key.protocol]} {_host(key.address, key.family)}:{key.port}"


def format_save(services: Iterable[VirtualService]) -> str:
    """The lines ``ipvsadm -R`` reads, written the way ``ipvsadm -S -n`` writes them."""
    lines: list[str] = []
    for service in services:
        selector = _selector(service.key)
        head = f"-A {selector} -s {service.scheduler}"
        if service.persistence is not None:
            head += f" -p {service.persistence.timeout_s}"
            if service.persistence.netmask != DEFAULT_NETMASK[service.key.family]:
                head += f" -M {service.persistence.netmask}"
        if service.flags:
            ordered = [f for f in SCHEDULER_FLAGS if f in service.flags]
            head += " -b " + ",".join(ordered)
        if service.ops:
            head += " -o"
        lines.append(head)
        for rs in service.real_servers:
            line = (f"-a {selector} -r {_host(rs.address, rs.address.version)}:{rs.port} "
                    f"{_FORWARDING_SWITCH[rs.forwarding]} -w {rs.weight}")
            if rs.upper_threshold:
                line += f" -x {rs.upper_threshold}"
            if rs.lower_threshold:
                line += f" -y {rs.lower_threshold}"
            if rs.forwarding == "tun" and rs.tunnel_type != "ipip":
                line += f" --tun-type {rs.tunnel_type}"
                if rs.tunnel_type == "gue":
                    line += f" --tun-port {rs.tunnel_port}"
            lines.append(line)
    return "".join(line + "\n" for line in lines)


def _server_data(rs: RealServer, key: ServiceKey) -> dict[str, Any]:
    data: dict[str, Any] = {"address": str(rs.address)}
    if rs.port or key.protocol != "fwmark":
        data["port"] = rs.port
    data["forwarding"] = rs.forwarding
    data["weight"] = rs.weight
    if rs.upper_threshold:
        data["upper_threshold"] = rs.upper_threshold
    if rs.lower_threshold:
        data["lower_threshold"] = rs.lower_threshold
    if rs.forwarding == "tun" and rs.tunnel_type != "ipip":
        data["tunnel_type"] = rs.tunnel_type
        if rs.tunnel_type == "gue":
            data["tunnel_port"] = rs.tunnel_port
    return data


def _service_data(service: VirtualService) -> dict[str, Any]:
    key = service.key
    data: dict[str, Any]
    if key.protocol == "fwmark":
        data = {"fwmark": int(key.address)}
        if key.family == 6:
            data["family"] = "inet6"
    else:
        data = {"vip": key.address, "port": key.port, "protocol": key.protocol}
    data["scheduler"] = service.scheduler
    if service.flags:
        data["flags"] = list(service.flags)
    if service.ops:
        data["ops"] = True
    if service.persistence is not None:
        persistence: dict[str, Any] = {"timeout_s": service.persistence.timeout_s}
        netmask = service.persistence.netmask
        if netmask != DEFAULT_NETMASK[key.family]:
            persistence["netmask"] = int(netmask) if key.family == 6 else netmask
        data["persistence"] = persistence
    data["real_servers"] = [_server_data(rs, key) for rs in service.real_servers]
    return data


def to_yaml_section(services: Iterable[VirtualService]) -> dict[str, Any]:
    """The config's ``ipvs:`` section as plain data (``on_backup: keep``)."""
    return {"on_backup": "keep", "services": [_service_data(s) for s in services]}


def dump_yaml(services: Iterable[VirtualService]) -> str:
    """``ipvs:`` and its section as YAML text, ready to paste into a node config."""
    return yaml.safe_dump({"ipvs": to_yaml_section(services)}, sort_keys=False,
                          default_flow_style=None, width=1000)
