#!/usr/bin/python3
"""Provision one VM of the multi-VM topology with haguard, as an operator would a server.

The Vagrantfile runs this (as root, inside the VM) with one argument: the VM's entry of
vagrant/topology.py's output, base64-encoded JSON. Nothing about the topology is decided
here: the entry says the VM's role, its private addresses and its haguard config.

- every VM: its host name, and its private interfaces (systemd-networkd on haguard's
  box, ifupdown on others) so they come back at boot;
- directors and real servers: haguard's Debian package, built on the host, installed
  with apt (the VMs have no internet: its dependencies are in the box), the node config
  written to /etc/haguard/haguard.yaml (the package's example replaced);
- directors: `haguard hooks install` (root-owned path, keepalived's script security
  on; it also gives keepalived.service KillMode=process so the STOP hook outlives
  keepalived), `haguard render -o /etc/keepalived/keepalived.conf`, `haguard ipvs
  apply`, keepalived enabled and restarted under systemd, ip_vs loaded at boot (see
  IPVS_MODULES); with an `agent` section in the config, the package's
  haguard-agent.service enabled and started before keepalived;
- real servers: `haguard realserver up` (which writes and enables its systemd unit) and
  an HTTP service naming the server (haguard.adapters.httpprobe, the lab's own).

Standard library only: it runs on the box's python3 before haguard exists.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import time
from typing import Any

DEBS = "/vagrant/vagrant/.debs"
HAGUARD = "/usr/bin/haguard"
HTTP_UNIT = "haguard-http.service"
AGENT_UNIT = "haguard-agent.service"
PACKAGED_CONFIG = "/etc/haguard/haguard.yaml"    # what the package's units run
# What a public Debian box lacks and haguard's own box has (the .deb's dependencies).
PACKAGES = ("keepalived", "ipvsadm", "iproute2", "kmod", "rsync", "python3-prometheus-client",
            "python3-pyroute2", "python3-scapy", "python3-structlog", "python3-tenacity",
            "python3-yaml")


START = time.monotonic()


def say(text: str) -> None:
    print(f"provision: +{time.monotonic() - START:.1f} s {text}", flush=True)


def run(args: list[str], check: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(args, text=True, capture_output=True, stdin=subprocess.DEVNULL)
    out = (proc.stdout + proc.stderr).strip()
    if out:
        print("\n".join(f"  | {line}" for line in out.splitlines()), flush=True)
    if check and proc.returncode != 0:
        raise SystemExit(f"provision: {' '.join(args)} exited {proc.returncode}")
    return proc


def write(path: str, text: str, mode: int = 0o644) -> bool:
    """Write only when different; True when it changed."""
    try:
        with open(path, encoding="utf-8") as fh:
            if fh.read() == text:
                return False
    except FileNotFoundError:
        pass
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tmp = f"{path}.tmp"
    with open(tmp, "w", encoding="utf-8") as fh:
        fh.write(text)
    os.chmod(tmp, mode)
    os.replace(tmp, path)
    return True


def packages() -> None:
    missing = [p for p in PACKAGES
               if run(["dpkg-query", "-W", "-f=${Status}", p], check=False).stdout
               != "install ok installed"]
    if missing:
        say(f"installing {' '.join(missing)} (not a haguard box)")
        env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
        subprocess.run(["apt-get", "update", "-qq"], check=True, env=env)
        subprocess.run(["apt-get", "install", "-y", "-qq", "--no-install-recommends", *missing],
                       check=True, env=env)


def hostname(name: str) -> None:
    """Set here rather than by Vagrant, whose Debian support restarts every interface."""
    write("/etc/hostname", name + "\n")
    with open("/etc/hosts", encoding="utf-8") as fh:
        lines = [line for line in fh.read().splitlines() if not line.startswith("127.0.1.1")]
    write("/etc/hosts", "\n".join([*lines, f"127.0.1.1 {name}"]) + "\n")
    run(["hostname", name])


def interfaces(host: dict[str, Any]) -> None:
    networkd = run(["systemctl", "is-active", "systemd-networkd.service"],
                   check=False).stdout.strip() == "active"
    for iface in host["interfaces"]:
        name = iface["ifname"]
        header = f"# {host['name']} on {iface['network']}: from vagrant/topology.py\n"
        if networkd:
            changed = write(f"/etc/systemd/network/20-{name}.network",
                            header + f"[Match]\nName={name}\n\n[Network]\n"
                            f"Address={iface['address']}\n")
            if changed:
                run(["networkctl", "reload"])
                run(["networkctl", "reconfigure", name])
        else:
            changed = write(f"/etc/network/interfaces.d/{name}",
                            header + f"auto {name}\niface {name} inet static\n"
                            f"    address {iface['address']}\n")
            if changed:
                run(["ifup", name])
        wait_for_address(name, iface["address"])
        say(f"{name} {iface['address']}")


def wait_for_address(name: str, address: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        shown = run(["ip", "-o", "-4", "addr", "show", "dev", name], check=False).stdout
        if f" {address} " in shown:
            return
        time.sleep(0.5)
    raise SystemExit(f"provision: {address} did not appear on {name}")


def install_haguard() -> None:
    """haguard's .deb, built on the host, installed with apt as an operator would.

    Every dependency is in haguard's box (on another box `packages` installed them), so
    apt needs no network. A re-provision installs the new build over the old one.
    """
    debs = sorted(d for d in os.listdir(DEBS) if d.startswith("haguard_") and d.endswith(".deb"))
    if len(debs) != 1:
        raise SystemExit(f"provision: expected one haguard .deb in {DEBS}, found {debs}")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    proc = subprocess.run(["apt-get", "install", "-y", "-q", "--no-install-recommends",
                           "--reinstall", "-o", "Dpkg::Options::=--force-confold",
                           f"{DEBS}/{debs[0]}"], text=True, capture_output=True,
                          stdin=subprocess.DEVNULL, env=env)
    if proc.returncode != 0:
        print(proc.stdout + proc.stderr, flush=True)
        raise SystemExit(f"provision: apt-get install {debs[0]} exited {proc.returncode}")
    # The package's units and keepalived's drop-in, known to systemd before they are used.
    run(["systemctl", "daemon-reload"])
    say(f"installed {debs[0]} ({run([HAGUARD, '--version']).stdout.strip()})")


def enable(unit: str) -> None:
    """Enable a unit unless it is: keepalived's sysv compatibility makes `enable` cost
    half a minute under emulation."""
    if run(["systemctl", "is-enabled", unit], check=False).stdout.strip() != "enabled":
        # Callers reload systemd when they change a unit file; one reload is seconds.
        run(["systemctl", "enable", "--no-reload", unit])


# IPVS loaded at boot, before keepalived. haguard's MASTER transition applies the
# net.ipv4.vs.* sysctls before it reconciles IPVS (which would load the module), so
# when a rebooted director's first event is MASTER (its BACKUP event overtaken, as
# happens when it preempts) the sysctl does not exist yet, the transition stops there
# and neither director holds the VIP. Measured in this topology's reboot test.
IPVS_MODULES = "# Written by the haguard provisioning: IPVS before keepalived's first event.\nip_vs\n"


def director(config: str, agent: bool) -> None:
    write("/etc/modules-load.d/haguard-ipvs.conf", IPVS_MODULES)
    # Every command here is a Python start of seconds under emulation: `render` and
    # `ipvs apply` validate the config completely, and the tests run `haguard check`.
    # Also writes keepalived's KillMode=process drop-in (the STOP hook outlives keepalived).
    run([HAGUARD, "hooks", "install", "-c", config])
    run([HAGUARD, "render", "-c", config, "-o", "/etc/keepalived/keepalived.conf"])
    run([HAGUARD, "ipvs", "apply", "-c", config])
    if agent:
        if config != PACKAGED_CONFIG:
            raise SystemExit(f"provision: the package's {AGENT_UNIT} runs {PACKAGED_CONFIG}, "
                             f"and this director's config is {config}")
        # The package's unit (for /etc/haguard/haguard.yaml), started before keepalived
        # so the notify FIFO is there when keepalived opens it.
        enable(AGENT_UNIT)
        run(["systemctl", "restart", AGENT_UNIT])
        say("haguard-agent " + run(["systemctl", "is-active", AGENT_UNIT]).stdout.strip())
    enable("keepalived.service")
    run(["systemctl", "restart", "keepalived.service"])
    say("keepalived " + run(["systemctl", "is-active", "keepalived.service"]).stdout.strip())


def realserver(host: dict[str, Any], config: str) -> None:
    run([HAGUARD, "realserver", "-c", config, "up"])
    ports = host.get("http_ports") or [80]
    units = [HTTP_UNIT if port == ports[0] else f"haguard-http-{port}.service"
             for port in ports]
    changed = False
    for unit, port in zip(units, ports):
        text = ("# The real server's service in the multi-VM topology: answers with its name.\n"
                f"[Unit]\nDescription=HTTP on port {port} naming {host['name']}\n"
                "After=network.target\n\n[Service]\n"
                "ExecStart=/usr/bin/python3 -m haguard.adapters.httpprobe serve "
                f"--name {host['name']} --port {port} --bind ::\nRestart=always\n\n"
                "[Install]\nWantedBy=multi-user.target\n")
        changed |= write(f"/etc/systemd/system/{unit}", text)
    if changed:
        run(["systemctl", "daemon-reload"])
    for unit in units:
        enable(unit)
    run(["systemctl", "restart", *units])


def main(argv: list[str]) -> int:
    host = json.loads(base64.b64decode(argv[1]))
    say(f"{host['name']} ({host['role']})")
    hostname(host["name"])
    if not host.get("haguard_box"):
        packages()
    interfaces(host)
    if host["role"] in ("director", "realserver"):
        install_haguard()
        config = host["node_config"]
        write(config, host["config_yaml"])
        if host["role"] == "director":
            director(config, "agent" in (host["config"] or {}))
        else:
            realserver(host, config)
    say(f"{host['name']} done")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
