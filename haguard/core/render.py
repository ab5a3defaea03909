"""Config -> keepalived.conf text.

keepalived gets the election only: no ``virtual_ipaddress`` is rendered, so keepalived
neither adds addresses nor sends gratuitous ARP, and every announcement on the wire is
haguard's. The notify hook carries the path of the node config.
"""

from __future__ import annotations

import posixpath

from haguard.core.config import Config, Instance
from haguard.core.vrrpconfig import SyncGroup, Tracked, VrrpScript
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


def process_tracker(name: str) -> str:
    """The vrrp_track_process block haguard renders for a tracked process name."""
    return f"haguard_process_{name}"


def _script_block(script: VrrpScript) -> list[str]:
    lines = [f"vrrp_script {script.name} {{",
             f'    script "{" ".join(script.command)}"',
             f"    interval {_advert(script.interval_s)}"]
    if script.timeout_s is not None:
        lines.append(f"    timeout {_advert(script.timeout_s)}")
    lines += [f"    rise {script.rise}", f"    fall {script.fall}",
              f"    weight {script.weight}"]
    if script.user is not None:
        lines.append(f"    user {script.user}")
    return [*lines, "}", ""]


def _process_blocks(config: Config) -> list[str]:
    names = dict.fromkeys(t.name for inst in config.instances for t in inst.track.processes)
    lines: list[str] = []
    for name in names:
        lines += [f"vrrp_track_process {process_tracker(name)} {{", f"    process {name}",
                  "}", ""]
    return lines


def _sync_group_block(group: SyncGroup) -> list[str]:
    return [f"vrrp_sync_group {group.name} {{", "    group {",
            *(f"        {name}" for name in group.instances), "    }",
            # haguard's priority lever is a weighted track_file on each member; keepalived
            # takes weights on sync-group members only with this (equal weights here).
            "    sync_group_tracking_weight", "}", ""]


def tracked_interfaces(inst: Instance) -> tuple[Tracked, ...]:
    """The instance's track.interfaces, and every vips[].interface device not among them:
    keepalived tracks the device of each VIP it holds (FAULT when one goes down), and
    since haguard holds them, the rendered file says so itself."""
    listed = {t.name for t in inst.track.interfaces}
    implied = [d for d, _ in inst.vips_by_device() if d != inst.interface and d not in listed]
    return inst.track.interfaces + tuple(Tracked(d) for d in implied)


def _tracked(keyword: str, items: tuple[Tracked, ...], name: str = "{}") -> list[str]:
    if not items:
        return []
    return [f"    {keyword} {{",
            *(f"        {name.format(t.name)}" + ("" if t.weight is None else
                                                   f" weight {t.weight}") for t in items),
            "    }"]


def rx_lower_pri_command(config: Config, inst: Instance) -> str:
    """The hook line keepalived runs when this MASTER hears a lower priority: the
    split brain has healed, and the VIPs are announced again."""
    return f"{hook_command(config)} INSTANCE {inst.name} MASTER_RX_LOWER_PRI"


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
    if inst.preempt_delay_s:
        lines.append(f"    preempt_delay {_advert(inst.preempt_delay_s)}")
    if inst.unicast_src_ip is not None:
        lines.append(f"    unicast_src_ip {inst.unicast_src_ip}")
    if inst.unicast_peers:
        lines.append("    unicast_peer {")
        lines += [f"        {peer}" for peer in inst.unicast_peers]
        lines.append("    }")
    if inst.dont_track_primary:
        lines.append("    dont_track_primary")
    lines += _tracked("track_interface", tracked_interfaces(inst))
    lines += _tracked("track_script", inst.track.scripts)
    lines += _tracked("track_process", inst.track.processes, process_tracker("{}"))
    if needs_no_vip_keyword(config, inst):
        lines.append("    no_virtual_ipaddress")
    lines += ["    track_file {",
              f"        haguard_demote_{inst.name} weight 0",
              f"        haguard_priority_{inst.name} weight 1",
              "    }"]
    lines.append(f'    notify "{hook_command(config)}"')
    lines.append(f'    notify_master_rx_lower_pri "{rx_lower_pri_command(config, inst)}"')
    lines.append("    # VIPs owned by haguard: " + ", ".join(
        str(v) + (f" on {v.device}" if v.device else "") for v in inst.vips))
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
    for script in config.scripts:
        lines += _script_block(script)
    lines += _process_blocks(config)
    for group in config.sync_groups:
        lines += _sync_group_block(group)
    for inst in config.instances:
        lines += _instance_block(config, inst)
        lines.append("")
    return "\n".join(lines)
