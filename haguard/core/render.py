"""Config -> keepalived.conf text.

keepalived gets the election only: no ``virtual_ipaddress`` is rendered, so keepalived
neither adds addresses nor sends gratuitous ARP, and every announcement on the wire is
haguard's. The notify hook carries the path of the node config.
"""

from __future__ import annotations

import posixpath

from haguard.core.config import Config, Instance
from haguard.errors import BadInput

NOTIFY_HOOK = "notify"


def hook_command(config: Config) -> str:
    """The notify command line keepalived runs (it appends TYPE NAME STATE PRIORITY).

    With an agent, ``-a LOCK`` lets the hook see that the agent is running and leave the
    event to it (the agent reads the same event from keepalived's FIFO).
    """
    hook = posixpath.join(config.keepalived.hooks_dir, NOTIFY_HOOK)
    checked = [("config path", config.path), ("keepalived.hooks_dir", hook)]
    if config.agent is not None:
        checked.append(("node.state_dir", config.agent_lock))
    for what, text in checked:
        if any(ch.isspace() or ch in "\"'\\" for ch in text):
            raise BadInput(f"{what} {text!r}: keepalived splits script lines on spaces and "
                           "quotes; use a path without them")
    if config.agent is not None:
        return f"{hook} -c {config.path} -a {config.agent_lock}"
    return f"{hook} -c {config.path}"


def _advert(value: float) -> str:
    return f"{value:.2f}".rstrip("0").rstrip(".")


def needs_no_vip_keyword(config: Config, inst: Instance) -> bool:
    """keepalived refuses a VIP-less instance under VRRPv3 or IPv6 adverts unless told.

    ``no_virtual_ipaddress`` (keepalived >= 2.2.8) says the VIPs are managed elsewhere.
    """
    return config.keepalived.version == 3 or any(p.version == 6 for p in inst.unicast_peers)


def lever_files(config: Config, inst: Instance) -> tuple[str, str]:
    """The two track files of ``inst``: (demote, priority).

    demote (weight 0): any non-zero value puts the instance in FAULT, so keepalived
    hands over at once. priority (weight 1): its value is added to the priority, which
    moves the MASTER where preemption is on. Both are haguard's manual levers.
    """
    base = posixpath.join(config.node.lever_dir, "track")
    return (posixpath.join(base, f"{inst.name}.demote"),
            posixpath.join(base, f"{inst.name}.priority"))


def _track_file_blocks(config: Config, inst: Instance) -> list[str]:
    lines = []
    for kind, path in zip(("demote", "priority"), lever_files(config, inst)):
        lines += [f"track_file haguard_{kind}_{inst.name} {{",
                  f"    file {path}",
                  "    init_file",      # 0 when missing; never overwritten by keepalived
                  "}", ""]
    return lines


def _instance_block(config: Config, inst: Instance) -> list[str]:
    lines = [
        f"vrrp_instance {inst.name} {{",
        f"    state {inst.state}",
        f"    interface {inst.interface}",
        f"    virtual_router_id {inst.virtual_router_id}",
        f"    priority {inst.priority}",
        f"    advert_int {_advert(inst.advert_int)}",
    ]
    if inst.nopreempt:
        lines.append("    nopreempt")
    if inst.auth_pass is not None:
        lines += [
            "    authentication {",
            "        auth_type PASS",
            f"        auth_pass {inst.auth_pass}",
            "    }",
        ]
    if inst.unicast_peers:
        lines.append("    unicast_peer {")
        lines += [f"        {peer}" for peer in inst.unicast_peers]
        lines.append("    }")
    if needs_no_vip_keyword(config, inst):
        lines.append("    no_virtual_ipaddress")
    lines += ["    track_file {",
              f"        haguard_demote_{inst.name} weight 0",
              f"        haguard_priority_{inst.name} weight 1",
              "    }"]
    lines.append(f'    notify "{hook_command(config)}"')
    lines.append("    # VIPs owned by haguard: " + ", ".join(str(v) for v in inst.vips))
    lines.append("}")
    return lines


def render(config: Config) -> str:
    """Render the whole keepalived.conf for one node."""
    lines = [
        f"# Rendered by haguard from {config.path}; edit that file and run",
        f"# `haguard render -c {config.path} -o {config.keepalived.config}`, not this one.",
        "",
        "global_defs {",
        f"    router_id {config.node.name}",
        "    enable_script_security",
        "    script_user root",
    ]
    if config.keepalived.version == 3:
        lines.append("    vrrp_version 3")
    if config.agent is not None:
        # Events in keepalived's order, for `haguard agent`; the hooks stay as fallback.
        lines.append(f"    vrrp_notify_fifo {config.agent.fifo}")
    lines += ["}", ""]
    for inst in config.instances:
        lines += _track_file_blocks(config, inst)
    for inst in config.instances:
        lines += _instance_block(config, inst)
        lines.append("")
    return "\n".join(lines)
