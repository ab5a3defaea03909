"""`haguard doctor`: gather what the rules in haguard.core.doctorrules judge, and report.

Everything here only reads, except two things on the wire, both skipped with
--skip-wire: ARP probes for the IPv4 VIPs (sender 0.0.0.0, as RFC 5227 duplicate
address detection does, so no neighbour cache learns anything from them) and a few
seconds of listening for VRRP adverts.
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import threading
from collections.abc import Sequence
from typing import Any

from haguard.adapters import systemd
from haguard.adapters.arpprobe import arp_probe
from haguard.core import doctorrules as rules
from haguard.core.config import Config
from haguard.core.doctorrules import (
    ArpProbe,
    Finding,
    KeepalivedTest,
    NetworkdFile,
    Observations,
    PathCheck,
)
from haguard.core.vrrp import advert_window

NETWORKD_DIRS = ("/etc/systemd/network", "/run/systemd/network", "/usr/lib/systemd/network")



# --------------------------------------------------------------------------- observing

def _keepalived_checks(config: Config, obs: dict[str, Any]) -> None:
    from haguard.adapters import keepalived
    from haguard.core.render import render
    from haguard.errors import KeepalivedError

    rendered = render(config)
    obs["rendered"] = rendered
    try:
        result = keepalived.check_text(rendered)
    except KeepalivedError as exc:
        obs["keepalived_test_error"] = str(exc)
    else:
        if result is not None:
            obs["keepalived_test"] = KeepalivedTest(result.ok, result.returncode,
                                                    result.complaints, result.hints)
    conf = config.keepalived.config
    obs["conf_path"] = conf
    try:
        with open(conf, encoding="utf-8", errors="replace") as fh:
            obs["conf_text"] = fh.read()
    except FileNotFoundError:
        pass
    except OSError as exc:
        obs["conf_error"] = exc.strerror or str(exc)
    paths = [(os.path.join(config.keepalived.hooks_dir, "notify"), "rendered")]
    if obs.get("conf_text") is not None:
        for path in rules.script_paths(rules.parse_keepalived(obs["conf_text"])):
            if path not in (p for p, _ in paths):
                paths.append((path, conf))
    checks = []
    for path, source in paths:
        problems = tuple(p for p in keepalived.insecure_path_components(path)
                         if not p.endswith(": does not exist"))
        checks.append(PathCheck(path, os.path.exists(path), problems, source))
    obs["paths"] = tuple(checks)
    obs["killmode"] = systemd.unit_property("keepalived.service", "KillMode")


def networkd_files(dirs: Sequence[str]) -> tuple[NetworkdFile, ...]:
    """.network files as networkd orders them: by name, the earlier directory winning."""
    chosen: dict[str, str] = {}
    for d in dirs:
        for path in glob.glob(os.path.join(glob.escape(d), "*.network")):
            chosen.setdefault(os.path.basename(path), path)
    out = []
    for name in sorted(chosen):
        dropins: dict[str, str] = {}
        for d in dirs:
            for path in glob.glob(os.path.join(glob.escape(d), name + ".d", "*.conf")):
                dropins.setdefault(os.path.basename(path), path)
        out.append(NetworkdFile(chosen[name], _read(chosen[name]),
                                tuple((dropins[n], _read(dropins[n])) for n in sorted(dropins))))
    return tuple(out)


def _read(path: str) -> str:
    try:
        with open(path, encoding="utf-8", errors="replace") as fh:
            return fh.read()
    except OSError:
        return ""  # masked (/dev/null) or unreadable: networkd ignores it too


def ip_vs_loadable() -> tuple[bool, str]:
    # /proc/net/ip_vs appears once IPVS is in the kernel (built in or loaded).
    if os.path.exists("/proc/net/ip_vs"):
        return True, "loaded"
    modprobe = shutil.which("modprobe") or next(
        (p for p in ("/usr/sbin/modprobe", "/sbin/modprobe") if os.path.exists(p)), None)
    if modprobe is None:
        return False, "not loaded, and modprobe is not installed (apt-get install kmod)"
    try:
        # -n: resolve and report, load nothing (doctor changes nothing on the host).
        proc = subprocess.run([modprobe, "-n", "-v", "ip_vs"], capture_output=True, text=True,
                              timeout=30, stdin=subprocess.DEVNULL)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return False, f"modprobe -n ip_vs failed: {exc}"
    if proc.returncode == 0:
        return True, "not loaded; modprobe can load it"
    return False, (proc.stderr.strip() or f"modprobe -n ip_vs exited {proc.returncode}")


def _wire(config: Config, obs: dict[str, Any], seconds: float) -> None:
    from haguard.adapters.netlink import Netlink

    interfaces = rules.instance_interfaces(config)
    macs: dict[str, str] = {}
    held: set[str] = set()
    with Netlink() as netlink:
        for iface in interfaces:
            link = netlink.link(iface)
            if link is not None and link.mac:
                macs[iface] = link.mac
        obs["own_addresses"] = frozenset(str(a.address) for a in netlink.addresses())
        held = set(obs["own_addresses"])
    obs["own_macs"] = frozenset(m.lower() for m in macs.values())
    if os.geteuid() != 0:
        obs["probe_skipped"] = obs["wire_skipped"] = "needs root (raw sockets)"
        return
    present = [i for i in interfaces if i in macs]
    adverts: list[Any] = []
    failure: list[str] = []

    def listen() -> None:
        try:
            from haguard.adapters import wire
        except ImportError:
            failure.append("haguard.adapters.wire is not available")
            return
        try:
            adverts.extend(wire.listen(present, seconds))
        except Exception as exc:  # noqa: BLE001 - report it, keep the other checks
            failure.append(str(exc))

    listener = threading.Thread(target=listen, name="vrrp-listen", daemon=True)
    if present:
        listener.start()
    probes = []
    for inst in config.instances:
        for vip in inst.vips:
            if vip.family != 4:
                probes.append(ArpProbe(str(vip.address), inst.interface,
                                       skipped="IPv6 VIPs are not probed"))
            elif inst.interface not in macs:
                probes.append(ArpProbe(str(vip.address), inst.interface,
                                       skipped=f"{inst.interface} does not exist"))
            elif str(vip.address) in held:
                # This node answers for it itself; a second owner is found by the peer's
                # doctor (which does not hold it) and by the duplicate's own conflicts.
                continue
            else:
                probes.append(ArpProbe(str(vip.address), inst.interface))
    todo: dict[str, list[str]] = {}
    for p in probes:
        if p.skipped is None:
            todo.setdefault(p.interface, []).append(p.vip)
    answered: dict[tuple[str, str], list[str]] = {}
    for iface, vips in todo.items():
        try:
            for address, macs_seen in arp_probe(iface, macs[iface], vips).items():
                answered[(iface, address)] = macs_seen
        except OSError as exc:
            probes = [ArpProbe(p.vip, p.interface, skipped=f"probe failed: {exc.strerror}")
                      if p.interface == iface and p.skipped is None else p for p in probes]
    obs["probes"] = tuple(ArpProbe(p.vip, p.interface, tuple(answered.get((p.interface, p.vip),
                                                                          ())), p.skipped)
                          for p in probes)
    if present:
        listener.join()
    if failure:
        obs["wire_skipped"] = failure[0]
    elif present:
        obs["adverts"] = tuple(adverts)
        obs["wire_seconds"] = seconds
    else:
        obs["wire_skipped"] = "none of the instances' interfaces exists"


def observe(config: Config, networkd_dirs: Sequence[str] = NETWORKD_DIRS,
            wire_seconds: float | None = None, skip_wire: bool = False) -> Observations:
    """Everything the rules need, read from this host (and, unless skipped, the wire)."""
    from haguard.adapters import sysctl
    from haguard.errors import OperationFailed

    obs: dict[str, Any] = {}
    if config.instances:
        _keepalived_checks(config, obs)
        obs["networkd"] = networkd_files(networkd_dirs)
    values: dict[str, str | None] = {}
    for key, _, _ in rules.wanted_sysctls(config):
        try:
            values[key] = sysctl.read(key)
        except OperationFailed:
            continue  # unreadable (not root?): not judged rather than misjudged
    obs["sysctls"] = values
    if config.ipvs is not None:
        obs["ip_vs"] = ip_vs_loadable()
    if config.realserver is not None:
        from haguard.adapters.netlink import Netlink
        from haguard.core.rsplan import interface_for

        with Netlink() as netlink:
            local = {}
            for iface in {interface_for(config.realserver, v) for v in config.realserver.vips}:
                link = netlink.link(iface)
                local[iface] = frozenset((a.address, a.prefixlen)
                                         for a in netlink.addresses(link)) if link else frozenset()
        obs["local_addresses"] = local
    if config.instances:
        if skip_wire:
            obs["probe_skipped"] = obs["wire_skipped"] = "--skip-wire"
        else:
            _wire(config, obs, advert_window(config.instances, slack_s=0.0)
                  if wire_seconds is None else wire_seconds)
    return Observations(**obs)


# --------------------------------------------------------------------------- reporting

def _wire_seen(obs: Observations) -> dict[str, Any]:
    """What the probes and the listener saw, so a clean report shows its evidence."""
    adverts: dict[tuple[str, int, str, str], dict[str, Any]] = {}
    for ad in obs.adverts or ():
        key = (ad.interface, ad.vrid, ad.source, ad.source_mac)
        entry = adverts.setdefault(key, {"interface": ad.interface, "vrid": ad.vrid,
                                         "source": ad.source, "source_mac": ad.source_mac,
                                         "priority": ad.priority, "outgoing": ad.outgoing,
                                         "count": 0})
        entry["count"] += 1
    return {"probes": [{"vip": p.vip, "interface": p.interface, "replies": list(p.replies)}
                       for p in obs.probes if p.skipped is None],
            "adverts": list(adverts.values()) if obs.adverts is not None else None}


def report(config: Config, findings: Sequence[Finding],
           obs: Observations | None = None) -> dict[str, Any]:
    worst: dict[str, str] = {}
    for f in findings:
        if f.check not in worst or rules.SEVERITIES.index(f.severity) < \
                rules.SEVERITIES.index(worst[f.check]):
            worst[f.check] = f.severity
    applicable = _applicable(config, obs)
    return {
        "node": config.node.name,
        "config": config.path,
        "findings": [f.as_dict() for f in findings],
        "summary": rules.summary(findings),
        "checks": [{"check": name, "about": about, "result": worst.get(name, "ok")}
                   for name, about in rules.CHECKS if name in applicable or name in worst],
        "exit_code": rules.exit_code(findings),
        "wire": _wire_seen(obs) if obs is not None else None,
    }


def _applicable(config: Config, obs: Observations | None) -> set[str]:
    out = set()
    if config.instances and obs is not None and obs.killmode is not None:
        out.add("keepalived-killmode")  # only where systemd runs keepalived
    if config.instances:
        out |= {"keepalived-test", "keepalived-conf", "script-security", "nopreempt-weight",
                "networkd", "sysctl", "duplicate-address", "vrid-collision"}
    if config.ipvs is not None:
        out.add("ip_vs")
    if config.realserver is not None:
        out |= {"realserver", "sysctl"}
    return out


def run(config: Config, networkd_dirs: Sequence[str] = NETWORKD_DIRS,
        wire_seconds: float | None = None, skip_wire: bool = False) -> dict[str, Any]:
    obs = observe(config, networkd_dirs, wire_seconds, skip_wire)
    return report(config, rules.diagnose(config, obs), obs)


_LABEL = {"error": "ERROR", "warning": "WARNING", "info": "note"}


def format_text(data: dict[str, Any]) -> str:
    lines = [f"haguard doctor: node {data['node']} ({data['config']})"]
    for f in data["findings"]:
        lines.append(f"{_LABEL[f['severity']]:<8}{f['check']}: {f['what']}")
        lines.append(f"        why: {f['why']}")
        lines.append(f"        fix: {f['fix']}")
    for c in data["checks"]:
        if c["result"] == "ok":
            lines.append(f"{'ok':<8}{c['check']}: {c['about']}")
    s = data["summary"]
    verdict = {0: "clean", 1: "errors found", 3: "warnings found"}.get(data["exit_code"], "")
    lines.append(f"{s['error']} error(s), {s['warning']} warning(s), {s['info']} note(s): "
                 f"{verdict} (exit {data['exit_code']})")
    return "\n".join(lines)
