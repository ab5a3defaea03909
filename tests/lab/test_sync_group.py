"""A sync group keeps an LVS-NAT pair's two VIPs on one director: the client side's VIP
and the real servers' gateway move together when either side fails."""

from __future__ import annotations

from haguard.lab import netns
from tests.conftest import wait_until

# The NAT lab's two instances (conf/lab-nat.yaml) without its IPVS table: the host
# kernel has none, and the grouping is keepalived's business.
NAT_PAIR = """\
node: {name: lb1}
sync_groups:
  - {name: NAT, instances: [VI_1, VI_GW]}
instances:
  - name: VI_1
    interface: eth0
    virtual_router_id: 71
    priority: 150
    vips: [192.0.2.100/32]
    announce: {count: 1, interval_ms: 0, repeat_after_s: 0}
  - name: VI_GW
    interface: eth1
    virtual_router_id: 72
    priority: 150
    vips: [198.51.100.1/24]
    announce: {count: 1, interval_ms: 0, repeat_after_s: 0}
"""


def _holders(lab) -> dict[str, list[str]]:
    """Which director holds which instance's VIPs, as recorded and seen."""
    out: dict[str, list[str]] = {"VI_1": [], "VI_GW": []}
    for node, state in lab.runner.states().items():
        for name, inst in state["instances"].items():
            if inst["state"] == "MASTER" and set(inst["vips_present"]) == set(inst["vips"]):
                out[name].append(node)
    return out


def test_a_failed_gateway_link_moves_both_vips_of_the_sync_group(make_lab) -> None:
    lab = make_lab(NAT_PAIR)
    wait_until(lambda: _holders(lab) == {"VI_1": ["lb1"], "VI_GW": ["lb1"]}, 30,
               "lb1 to hold both VIPs", step=0.2)
    # Only lb1's real-server side fails; its client side is fine. Without the group
    # lb2 would take the gateway alone and the replies would go to the wrong director.
    netns.run(["ip", "-n", lab.ns("lb1"), "link", "set", "eth1", "down"])
    wait_until(lambda: _holders(lab) == {"VI_1": ["lb2"], "VI_GW": ["lb2"]}, 30,
               "lb2 to hold both VIPs", step=0.2)
    states = {n: {i: s["state"] for i, s in st["instances"].items()}
              for n, st in lab.runner.states().items()}
    assert states["lb1"] == {"VI_1": "FAULT", "VI_GW": "FAULT"}, states
