"""core.vrrp.advert_window: the one definition of "long enough to hear a MASTER, or for a
BACKUP to take over", used by status, doctor, demote/promote and the live drill."""

from __future__ import annotations

import pytest

from haguard.core.config import loads
from haguard.core.vrrp import LISTEN_SLACK_S, TAKEOVER_SLACK_S, advert_window

DOC = """\
node: {name: lb1}
keepalived: {version: 3}
instances:
  - {name: VI_1, interface: eth0, virtual_router_id: 51, priority: 150,
     advert_int: 0.5, vips: [192.0.2.100]}
  - {name: VI_2, interface: eth1, virtual_router_id: 52, priority: 150,
     advert_int: 2, vips: [198.51.100.100]}
"""


@pytest.mark.parametrize(("names", "slack", "expected"), [
    (("VI_1",), LISTEN_SLACK_S, 1.5 + 0.2),
    (("VI_2",), LISTEN_SLACK_S, 6 + 0.2),
    (("VI_1", "VI_2"), LISTEN_SLACK_S, 6 + 0.2),     # the slowest instance decides
    (("VI_1", "VI_2"), TAKEOVER_SLACK_S, 6 + 1.0),
    (("VI_1",), 0.0, 1.5),
    ((), LISTEN_SLACK_S, 3 + 0.2),                    # no instance: keepalived's default 1 s
])
def test_the_window_is_three_intervals_of_the_slowest_instance_plus_slack(
        names: tuple[str, ...], slack: float, expected: float) -> None:
    config = loads(DOC, filename="lb1.yaml")
    chosen = [i for i in config.instances if i.name in names]
    assert advert_window(chosen, slack_s=slack) == pytest.approx(expected)
