"""What `haguard doctor` observes on this host and on the wire, for its rules to judge.

Everything here only reads, except two things on the wire, both skipped with
--skip-wire: ARP probes for the IPv4 VIPs (sender 0.0.0.0, as RFC 5227 duplicate
address detection does, so no neighbour cache learns anything from them) and a few
seconds of listening for VRRP adverts.
"""

from __future__ import annotations

import glob
import os
import threading
from collections.abc import Sequence
from typing import Any

from haguard.adapters import kmod, systemd
from haguard.adapters.arpprobe import arp_probe
from haguard.core import doctorrules as rules
from haguard.core.config import Config
from haguard.core.doctorrules import (
    ArpProbe,
    KeepalivedTest,
    NetworkdFile,
    Observations,
    PathCheck,
)
from haguard.core.vrrp import advert_window

NETWORKD_DIRS = ("/etc/systemd/network", "/run/systemd/network", "/usr/lib/systemd/network")


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
    if config.ipvs is not None:
        from haguard.core.health import commands

        paths += [(program, f"ipvs: {where}") for where, program in commands(config.ipvs)]
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


def _wire(config: Config, obs: dict[str, Any], seconds: float) -> None:
    from haguard.adapters.netlink import Netlink

    interfaces = rules.instance_interfaces(config)
    macs: dict[str, str] = {}
    held: set[str] = set()
    with Netlink() as netlink:
        for iface in rules.vip_devices(config):
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
            device = inst.device_of(vip)
            if vip.family != 4:
                probes.append(ArpProbe(str(vip.address), device,
                                       skipped="IPv6 VIPs are not probed"))
            elif device not in macs:
                probes.append(ArpProbe(str(vip.address), device,
                                       skipped=f"{device} does not exist"))
            elif str(vip.address) in held:
                # This node answers for it itself; a second owner is found by the peer's
                # doctor (which does not hold it) and by the duplicate's own conflicts.
                continue
            else:
                probes.append(ArpProbe(str(vip.address), device))
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
        obs["ip_vs"] = kmod.ip_vs_loadable()
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
