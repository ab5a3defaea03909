"""Tests for haguard.core.ipvsadm: the ipvsadm save-file codec.

The save format is what ``ipvsadm -S -n`` prints and ``ipvsadm -R`` reads. The codec
must round-trip it exactly, agree with the config's ``ipvs`` section (a table imported
from a save file loads back from YAML unchanged), and reject every bad line with
``FILE:LINE: message``, all bad lines at once.
"""

from __future__ import annotations

import ipaddress
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from haguard.core.config import loads
from haguard.core.ipvsadm import dump_yaml, format_save, parse_save, to_yaml_section
from haguard.core.ipvsconfig import (
    MAX_PERSISTENCE_S,
    SCHEDULER_FLAGS,
    SCHEDULERS,
    Persistence,
    RealServer,
    ServiceKey,
    VirtualService,
)
from haguard.errors import ConfigError, ExitStatus

FILE = "rules.txt"

NODE = """\
node:
  name: lb1
"""

DIRECTOR = NODE + """\
instances:
  - name: VI_1
    interface: eth0
    virtual_router_id: 51
    priority: 150
    vips: [192.0.2.100/24, 192.0.2.101/24, 2001:db8::100/64]
"""

# An ipvs section using every feature, as an operator writes it.
CONFIG = DIRECTOR + """\
ipvs:
  on_backup: keep
  sync: {interface: eth0, syncid: 51}
  services:
    - vip: 192.0.2.100
      port: 80
      protocol: tcp
      scheduler: wrr
      persistence: {timeout_s: 300}
      real_servers:
        - {address: 192.0.2.21, port: 80, forwarding: dr, weight: 1}
        - {address: 192.0.2.22, port: 80, forwarding: dr, weight: 2, upper_threshold: 100, lower_threshold: 50}
        - {address: 192.0.2.23, forwarding: dr, weight: 0}
    - vip: 192.0.2.100
      port: 53
      protocol: udp
      scheduler: rr
      real_servers:
        - {address: 10.0.0.21, port: 5353, forwarding: nat, weight: 3}
    - vip: 192.0.2.101
      port: 3868
      protocol: sctp
      scheduler: sh
      flags: [sh-fallback, sh-port]
      persistence: {timeout_s: 3600, netmask: 255.255.255.0}
      real_servers:
        - {address: 192.0.2.31, port: 3868, forwarding: tun, weight: 5}
        - {address: 192.0.2.32, port: 3868, forwarding: tun, tunnel_type: gre}
        - {address: 192.0.2.33, port: 3868, forwarding: tun, tunnel_type: gue, tunnel_port: 6080}
    - vip: 2001:db8::100
      port: 443
      scheduler: mh
      flags: [mh-port]
      persistence: {timeout_s: 60, netmask: 64}
      real_servers:
        - {address: "2001:db8::21", port: 443, forwarding: dr, weight: 10, upper_threshold: 7}
    - fwmark: 1
      scheduler: wlc
      persistence: {timeout_s: 300}
      real_servers:
        - {address: 192.0.2.41, forwarding: dr}
        - {address: 192.0.2.42, port: 8080, forwarding: nat}
    - fwmark: 4294967295
      family: inet6
      scheduler: lc
      real_servers:
        - {address: "2001:db8::41", forwarding: tun, tunnel_type: gue, tunnel_port: 5555}
"""


def problems(text: str) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        parse_save(text, FILE)
    assert caught.value.exit_code == ExitStatus.BAD_INPUT
    return caught.value.problems


def config_services(text: str) -> tuple[VirtualService, ...]:
    config = loads(text, "lb1.yaml")
    assert config.ipvs is not None
    return config.ipvs.services


def rs(address: str, port: int, **kw: Any) -> RealServer:
    return RealServer(address=ipaddress.ip_address(address), port=port, **kw)


# --------------------------------------------------------------------------- round trips

CANONICAL = {
    "tcp_dr_persistent": """\
-A -t 192.0.2.100:80 -s wrr -p 300
-a -t 192.0.2.100:80 -r 192.0.2.21:80 -g -w 1
-a -t 192.0.2.100:80 -r 192.0.2.22:80 -g -w 2
""",
    "udp_nat_port_mapping": """\
-A -u 192.0.2.100:53 -s rr
-a -u 192.0.2.100:53 -r 10.0.0.21:5353 -m -w 1
-a -u 192.0.2.100:53 -r 10.0.0.22:53 -m -w 0
""",
    "sctp": """\
-A --sctp-service 192.0.2.100:3868 -s lc
-a --sctp-service 192.0.2.100:3868 -r 192.0.2.21:3868 -g -w 1
""",
    "fwmark_with_netmask": """\
-A -f 1 -s wlc -p 600 -M 255.255.255.0
-a -f 1 -r 192.0.2.21:0 -g -w 1
-a -f 1 -r 192.0.2.22:8080 -m -w 1
""",
    "fwmark_ipv6": """\
-A -f 2 -6 -s rr -p 300 -M 64
-a -f 2 -6 -r [2001:db8::21]:0 -g -w 1
""",
    "ipv6_sh_flags": """\
-A -t [2001:db8::100]:443 -s sh -b sh-fallback,sh-port
-a -t [2001:db8::100]:443 -r [2001:db8::21]:443 -g -w 1
""",
    "mh_flag": """\
-A -t 192.0.2.100:443 -s mh -b mh-port
-a -t 192.0.2.100:443 -r 192.0.2.21:443 -g -w 1
""",
    "thresholds": """\
-A -t 192.0.2.100:80 -s wlc
-a -t 192.0.2.100:80 -r 192.0.2.21:80 -g -w 5 -x 1000 -y 800
-a -t 192.0.2.100:80 -r 192.0.2.22:80 -g -w 5 -x 10
""",
    "tunnel_types": """\
-A -t 192.0.2.100:80 -s rr
-a -t 192.0.2.100:80 -r 192.0.2.21:80 -i -w 1
-a -t 192.0.2.100:80 -r 192.0.2.22:80 -i -w 1 --tun-type gre
-a -t 192.0.2.100:80 -r 192.0.2.23:80 -i -w 1 --tun-type gue --tun-port 6080
""",
    "service_without_servers_then_another": """\
-A -t 192.0.2.100:80 -s rr
-A -t 192.0.2.100:443 -s rr
-a -t 192.0.2.100:443 -r 192.0.2.21:443 -g -w 1
""",
}


@pytest.mark.parametrize("text", CANONICAL.values(), ids=CANONICAL.keys())
def test_canonical_save_text_survives_parse_and_format_unchanged(text: str) -> None:
    assert format_save(parse_save(text, FILE)) == text


def test_services_from_a_yaml_config_survive_format_and_parse() -> None:
    services = config_services(CONFIG)
    assert len(services) == 6
    assert parse_save(format_save(services), FILE) == services


def test_services_from_a_yaml_config_are_written_as_ipvsadm_prints_them() -> None:
    assert format_save(config_services(CONFIG)) == """\
-A -t 192.0.2.100:80 -s wrr -p 300
-a -t 192.0.2.100:80 -r 192.0.2.21:80 -g -w 1
-a -t 192.0.2.100:80 -r 192.0.2.22:80 -g -w 2 -x 100 -y 50
-a -t 192.0.2.100:80 -r 192.0.2.23:80 -g -w 0
-A -u 192.0.2.100:53 -s rr
-a -u 192.0.2.100:53 -r 10.0.0.21:5353 -m -w 3
-A --sctp-service 192.0.2.101:3868 -s sh -p 3600 -M 255.255.255.0 -b sh-fallback,sh-port
-a --sctp-service 192.0.2.101:3868 -r 192.0.2.31:3868 -i -w 5
-a --sctp-service 192.0.2.101:3868 -r 192.0.2.32:3868 -i -w 1 --tun-type gre
-a --sctp-service 192.0.2.101:3868 -r 192.0.2.33:3868 -i -w 1 --tun-type gue --tun-port 6080
-A -t [2001:db8::100]:443 -s mh -p 60 -M 64 -b mh-port
-a -t [2001:db8::100]:443 -r [2001:db8::21]:443 -g -w 10 -x 7
-A -f 1 -s wlc -p 300
-a -f 1 -r 192.0.2.41:0 -g -w 1
-a -f 1 -r 192.0.2.42:8080 -m -w 1
-A -f 4294967295 -6 -s lc
-a -f 4294967295 -6 -r [2001:db8::41]:0 -i -w 1 --tun-type gue --tun-port 5555
"""


@pytest.mark.parametrize("text", CANONICAL.values(), ids=CANONICAL.keys())
def test_dumped_yaml_loads_back_as_the_same_services(text: str) -> None:
    services = parse_save(text, FILE)
    assert config_services(NODE + dump_yaml(services)) == services


def test_yaml_config_dumped_and_loaded_again_gives_the_same_services() -> None:
    services = config_services(CONFIG)
    assert config_services(NODE + dump_yaml(services)) == services


def test_empty_table_round_trips() -> None:
    assert parse_save("", FILE) == ()
    assert parse_save("\n# nothing saved\n\n", FILE) == ()
    assert format_save(()) == ""
    assert to_yaml_section(()) == {"on_backup": "keep", "services": []}
    assert config_services(NODE + dump_yaml(())) == ()


# --------------------------------------------------------------------------- real input

# What `ipvsadm -S -n` (1.31) prints: sorted, -s always present, tunnel servers with
# --tun-type (even ipip) and --tun-nocsum after gue/gre, fwmark servers with port 0.
IPVSADM_131_OUTPUT = """\
-A -t 119.147.139.126:80 -s rr
-a -t 119.147.139.126:80 -r 119.147.139.138:80 -g -w 1
-a -t 119.147.139.126:80 -r 119.147.139.139:80 -g -w 1
-A -t 119.147.139.126:7003 -s rr -p 300
-a -t 119.147.139.126:7003 -r 119.147.139.138:7003 -i -w 1 --tun-type ipip
-a -t 119.147.139.126:7003 -r 119.147.139.139:7003 -i -w 1 --tun-type gue --tun-port 6080 --tun-nocsum
-a -t 119.147.139.126:7003 -r 119.147.139.140:7003 -i -w 1 --tun-type gre --tun-nocsum
-A -f 7 -6 -s sh -p 1800 -M 64 -b sh-port
-a -f 7 -6 -r [2001:db8::21]:0 -g -w 100
"""


def test_ipvsadm_131_save_output_is_read_with_every_setting() -> None:
    web, tunnel, marked = parse_save(IPVSADM_131_OUTPUT, FILE)
    assert web == VirtualService(
        key=ServiceKey(4, "tcp", "119.147.139.126", 80), scheduler="rr",
        real_servers=(rs("119.147.139.138", 80), rs("119.147.139.139", 80)))
    assert tunnel.persistence == Persistence(timeout_s=300, netmask="255.255.255.255")
    assert tunnel.real_servers == (
        rs("119.147.139.138", 7003, forwarding="tun"),
        rs("119.147.139.139", 7003, forwarding="tun", tunnel_type="gue", tunnel_port=6080),
        rs("119.147.139.140", 7003, forwarding="tun", tunnel_type="gre"))
    assert marked == VirtualService(
        key=ServiceKey(6, "fwmark", "7", 0), scheduler="sh", flags=("sh-port",),
        persistence=Persistence(timeout_s=1800, netmask="64"),
        real_servers=(rs("2001:db8::21", 0, weight=100),))


def test_ipvsadm_131_defaults_are_dropped_when_written_back() -> None:
    written = format_save(parse_save(IPVSADM_131_OUTPUT, FILE)).splitlines()
    assert written[4] == "-a -t 119.147.139.126:7003 -r 119.147.139.138:7003 -i -w 1"
    assert written[5] == ("-a -t 119.147.139.126:7003 -r 119.147.139.139:7003 -i -w 1 "
                          "--tun-type gue --tun-port 6080")
    assert written[6] == ("-a -t 119.147.139.126:7003 -r 119.147.139.140:7003 -i -w 1 "
                          "--tun-type gre")


def test_seed_runbook_commands_are_read_as_a_save_file() -> None:
    runbook = """\
#set lvs
/sbin/ipvsadm -A -t 119.147.139.126:80 -s rr
/sbin/ipvsadm -a -t 119.147.139.126:80 -r 119.147.139.138:80 -g
ipvsadm -a -t 119.147.139.126:80 -r 119.147.139.139 -g   # second real server
"""
    (service,) = parse_save(runbook, FILE)
    assert format_save((service,)) == """\
-A -t 119.147.139.126:80 -s rr
-a -t 119.147.139.126:80 -r 119.147.139.138:80 -g -w 1
-a -t 119.147.139.126:80 -r 119.147.139.139:80 -g -w 1
"""


def test_seed_runbook_table_imports_into_a_config_with_its_vip() -> None:
    save = IPVSADM_131_OUTPUT.split("-A -f")[0]
    services = parse_save(save, FILE)
    director = NODE + """\
instances:
  - name: VI_1
    interface: em2
    virtual_router_id: 51
    priority: 150
    vips: [119.147.139.126/24]
"""
    assert config_services(director + dump_yaml(services)) == services


# --------------------------------------------------------------------------- defaults

def test_missing_settings_take_ipvsadm_defaults() -> None:
    (service,) = parse_save("-A -t 192.0.2.100:80 -p\n"
                            "-a -t 192.0.2.100:80 -r 192.0.2.21\n", FILE)
    assert service.scheduler == "wlc"
    assert service.persistence == Persistence(timeout_s=300, netmask="255.255.255.255")
    assert service.real_servers == (rs("192.0.2.21", 80, forwarding="dr", weight=1),)


def test_persistent_without_a_value_before_another_option_means_300_seconds() -> None:
    (service,) = parse_save("-A -t 192.0.2.100:80 -p -s rr -M 255.255.0.0\n", FILE)
    assert service.persistence == Persistence(timeout_s=300, netmask="255.255.0.0")
    assert service.scheduler == "rr"


def test_real_server_without_port_inherits_the_service_port() -> None:
    (tcp, v6, marked) = parse_save("""\
-A -t 192.0.2.100:8443 -s rr
-a -t 192.0.2.100:8443 -r 192.0.2.21 -m
-A -t [2001:db8::100]:80 -s rr
-a -t [2001:db8::100]:80 -r [2001:db8::21] -g
-a -t [2001:db8::100]:80 -r 2001:db8::22 -g
-A -f 3 -s rr
-a -f 3 -r 192.0.2.21 -g
""", FILE)
    assert [s.port for s in tcp.real_servers] == [8443]
    assert [s.port for s in v6.real_servers] == [80, 80]
    assert [s.port for s in marked.real_servers] == [0]


def test_long_options_and_equals_values_read_like_short_options() -> None:
    long = """\
--add-service --tcp-service 192.0.2.100:80 --scheduler sh --persistent 60 --netmask 255.255.255.0 --sched-flags sh-port
--add-server --tcp-service=192.0.2.100:80 --real-server=192.0.2.21:80 --ipip --weight=3 --u-threshold 9 --l-threshold 4 --tun-type gre
--add-server --tcp-service 192.0.2.100:80 --real-server 192.0.2.22:80 --gatewaying
--add-service --udp-service 192.0.2.100:53 --scheduler rr
--add-server --udp-service 192.0.2.100:53 --real-server 10.0.0.1:5353 --masquerading
--add-service --fwmark-service 9 --ipv6 --scheduler rr
"""
    assert format_save(parse_save(long, FILE)) == """\
-A -t 192.0.2.100:80 -s sh -p 60 -M 255.255.255.0 -b sh-port
-a -t 192.0.2.100:80 -r 192.0.2.21:80 -i -w 3 -x 9 -y 4 --tun-type gre
-a -t 192.0.2.100:80 -r 192.0.2.22:80 -g -w 1
-A -u 192.0.2.100:53 -s rr
-a -u 192.0.2.100:53 -r 10.0.0.1:5353 -m -w 1
-A -f 9 -6 -s rr
"""


def test_default_netmask_written_explicitly_is_read_and_then_omitted() -> None:
    text = "-A -t 192.0.2.100:80 -s rr -p 300 -M 255.255.255.255\n" \
           "-A -t [2001:db8::1]:80 -s rr -p 300 -M 128\n"
    assert format_save(parse_save(text, FILE)) == \
        "-A -t 192.0.2.100:80 -s rr -p 300\n-A -t [2001:db8::1]:80 -s rr -p 300\n"


def test_scheduler_flags_are_written_in_ipvsadm_order() -> None:
    service = VirtualService(key=ServiceKey(4, "tcp", "192.0.2.100", 80), scheduler="sh",
                             flags=("sh-port", "sh-fallback"))
    assert format_save((service,)) == "-A -t 192.0.2.100:80 -s sh -b sh-fallback,sh-port\n"


def test_ipv6_addresses_are_normalised_so_spellings_of_one_service_match() -> None:
    (service,) = parse_save("-A -t [2001:DB8:0::100]:80 -s rr\n"
                            "-a -t [2001:db8::100]:80 -r [2001:db8:0:0::21]:80 -g -w 1\n", FILE)
    assert service.key == ServiceKey(6, "tcp", "2001:db8::100", 80)
    assert str(service.real_servers[0]) == "[2001:db8::21]:80"


# --------------------------------------------------------------------------- YAML section

def test_yaml_section_writes_scheduler_and_forwarding_and_omits_defaults() -> None:
    services = parse_save("""\
-A -t 192.0.2.100:80 -s wlc -p 300
-a -t 192.0.2.100:80 -r 192.0.2.21:80 -g -w 1
-a -t 192.0.2.100:80 -r 192.0.2.22:80 -i -w 2 -x 10
-A -f 5 -6 -s sh -p 60 -M 48 -b sh-fallback
-a -f 5 -6 -r [2001:db8::21]:0 -i -w 1 --tun-type gue --tun-port 6080
-a -f 5 -6 -r [2001:db8::22]:8080 -m -w 1
""", FILE)
    assert to_yaml_section(services) == {"on_backup": "keep", "services": [
        {"vip": "192.0.2.100", "port": 80, "protocol": "tcp", "scheduler": "wlc",
         "persistence": {"timeout_s": 300},
         "real_servers": [
             {"address": "192.0.2.21", "port": 80, "forwarding": "dr", "weight": 1},
             {"address": "192.0.2.22", "port": 80, "forwarding": "tun", "weight": 2,
              "upper_threshold": 10}]},
        {"fwmark": 5, "family": "inet6", "scheduler": "sh", "flags": ["sh-fallback"],
         "persistence": {"timeout_s": 60, "netmask": 48},
         "real_servers": [
             {"address": "2001:db8::21", "forwarding": "tun", "weight": 1,
              "tunnel_type": "gue", "tunnel_port": 6080},
             {"address": "2001:db8::22", "port": 8080, "forwarding": "nat", "weight": 1}]},
    ]}


def test_dumped_yaml_is_an_ipvs_section_to_paste_into_a_config() -> None:
    services = parse_save(CANONICAL["tcp_dr_persistent"], FILE)
    assert dump_yaml(services) == """\
ipvs:
  on_backup: keep
  services:
  - vip: 192.0.2.100
    port: 80
    protocol: tcp
    scheduler: wrr
    persistence: {timeout_s: 300}
    real_servers:
    - {address: 192.0.2.21, port: 80, forwarding: dr, weight: 1}
    - {address: 192.0.2.22, port: 80, forwarding: dr, weight: 2}
"""


# --------------------------------------------------------------------------- bad lines

SVC = "-A -t 192.0.2.100:80 -s rr\n"
RS = "-a -t 192.0.2.100:80 -r 192.0.2.21:80"

BAD_LINES = {
    "unknown_option": (SVC + RS + " -g --frobnicate\n",
                       "rules.txt:2: unknown option '--frobnicate'"),
    "bad_service_address": ("-A -t 192.0.2.300:80 -s rr\n",
                            "rules.txt:1: '192.0.2.300:80' is not ADDRESS:PORT"),
    "service_without_port": ("-A -t 192.0.2.100 -s rr\n",
                             "rules.txt:1: '192.0.2.100' has no port: a service is "
                             "ADDRESS:PORT (for every port of an address, mark its packets "
                             "and use -f MARK)"),
    "service_port_out_of_range": ("-A -u 192.0.2.100:65536 -s rr\n",
                                  "rules.txt:1: '192.0.2.100:65536' is not ADDRESS:PORT"),
    "ipv6_service_without_brackets": ("-A -t 2001:db8::1:80 -s rr\n",
                                      "rules.txt:1: '2001:db8::1:80' has no port: an "
                                      "IPv6 service is [ADDRESS]:PORT"),
    "bad_real_server_address": (SVC + "-a -t 192.0.2.100:80 -r 192.0.2:80 -g\n",
                                "rules.txt:2: '192.0.2:80' is not ADDRESS[:PORT]"),
    "hostname_from_save_without_n": (
        "-A -t lb.example.com:http -s rr\n",
        "rules.txt:1: 'lb.example.com:http' is not ADDRESS:PORT: a host name; haguard does "
        "not resolve names (the table would change with DNS at each load): write the "
        "address, as ipvsadm -S -n prints it"),
    "shell_variable_from_runbook": (
        "/sbin/ipvsadm -A -t $VIP:7003 -s rr\n",
        "rules.txt:1: '$VIP:7003' is not ADDRESS:PORT (a shell variable: write the value)"),
    "missing_value_at_end": ("-A -t 192.0.2.100:80 -s\n",
                             "rules.txt:1: missing value for '-s'"),
    "missing_value_before_option": (SVC + RS + " -w -g\n",
                                    "rules.txt:2: missing value for '-w'"),
    "missing_value_after_equals": ("-A --tcp-service= -s rr\n",
                                   "rules.txt:1: missing value for '--tcp-service'"),
    "unknown_scheduler": (
        "-A -t 192.0.2.100:80 -s roundrobin\n",
        "rules.txt:1: unknown scheduler 'roundrobin' (known: " + ", ".join(SCHEDULERS) + ")"),
    "server_before_its_service": (
        RS + " -g\n" + SVC,
        "rules.txt:1: tcp 192.0.2.100:80 is not defined; its -A line must come before its "
        "real servers"),
    "server_of_another_protocol": (
        SVC + "-a -u 192.0.2.100:80 -r 192.0.2.21:80 -g\n",
        "rules.txt:2: udp 192.0.2.100:80 is not defined; its -A line must come before its "
        "real servers"),
    "dr_server_on_another_port": (
        SVC + "-a -t 192.0.2.100:80 -r 192.0.2.21:8080 -g\n",
        "rules.txt:2: 192.0.2.21:8080: a -g (DR) real server must use the service port 80, "
        "the packet reaches it unchanged (ipvsadm -R would silently use the service port; "
        "use -m to map ports)"),
    "tun_server_on_another_port": (
        SVC + "-a -t 192.0.2.100:80 -r 192.0.2.21:81 -i\n",
        "rules.txt:2: 192.0.2.21:81: a -i (TUN) real server must use the service port 80, "
        "the packet reaches it unchanged (ipvsadm -R would silently use the service port; "
        "use -m to map ports)"),
    "weight_too_big": (SVC + RS + " -g -w 65536\n",
                       "rules.txt:2: '65536' is not a weight (0-65535)"),
    "negative_weight": (SVC + RS + " -g -w -1\n",
                        "rules.txt:2: '-1' is not a weight (0-65535)"),
    "threshold_not_a_number": (SVC + RS + " -g -x ten\n",
                               "rules.txt:2: 'ten' is not an upper threshold (0-2147483647)"),
    "lower_above_upper": (SVC + RS + " -g -x 5 -y 10\n",
                          "rules.txt:2: lower threshold 10 (-y) is above upper threshold 5 (-x)"),
    "flag_of_another_scheduler": ("-A -t 192.0.2.100:80 -s wrr -b sh-port\n",
                                  "rules.txt:1: sh-port is a flag of the sh scheduler, not of wrr"),
    "flag_with_default_scheduler": (
        "-A -t 192.0.2.100:80 -b mh-port\n",
        "rules.txt:1: mh-port is a flag of the mh scheduler, not of wlc"),
    "generic_flag": (
        "-A -t 192.0.2.100:80 -s rr -b flag-1\n",
        "rules.txt:1: unknown scheduler flag 'flag-1' (known: " + ", ".join(SCHEDULER_FLAGS)
        + ")"),
    "flag_twice": ("-A -t 192.0.2.100:80 -s sh -b sh-port,sh-port\n",
                   "rules.txt:1: sh-port is listed twice"),
    "service_twice": (SVC + "-A -t 192.0.2.100:80 -s wrr\n",
                      "rules.txt:2: tcp 192.0.2.100:80 is already defined on line 1"),
    "server_twice": (SVC + RS + " -g\n" + "-a -t 192.0.2.100:80 -r 192.0.2.21 -g -w 2\n",
                     "rules.txt:3: 192.0.2.21:80 is already a real server of tcp "
                     "192.0.2.100:80 (line 2)"),
    "ipv6_server_for_ipv4_service": (
        SVC + "-a -t 192.0.2.100:80 -r [2001:db8::21]:80 -i\n",
        "rules.txt:2: 2001:db8::21 is IPv6 but tcp 192.0.2.100:80 is an IPv4 service"),
    "ipv4_server_for_ipv6_fwmark": (
        "-A -f 1 -6 -s rr\n-a -f 1 -6 -r 192.0.2.21 -g\n",
        "rules.txt:2: 192.0.2.21 is IPv4 but fwmark 1 (IPv6) is an IPv6 service"),
    "ipv6_flag_on_a_vip_service": (
        "-A -t 192.0.2.100:80 -6 -s rr\n",
        "rules.txt:1: '-6' only applies to -f (fwmark) services; a VIP's family comes from "
        "its address"),
    "fwmark_zero": ("-A -f 0 -s rr\n",
                    "rules.txt:1: '0' is not a firewall mark (1-4294967295)"),
    "all_ports_service": (
        "-A -t 192.0.2.100:0 -s rr -p\n",
        "rules.txt:1: '192.0.2.100:0': port 0 (a persistent all-ports service) is not "
        "supported; mark the packets and use -f MARK"),
    "persistence_timeout_zero": ("-A -t 192.0.2.100:80 -s rr -p 0\n",
                                 "rules.txt:1: '0' is not a persistence timeout in seconds "
                                 "(1-2147483647)"),
    "netmask_without_persistence": (
        "-A -t 192.0.2.100:80 -s rr -M 255.255.255.0\n",
        "rules.txt:1: '-M' needs -p: the netmask groups clients for persistence"),
    "non_contiguous_netmask": ("-A -t 192.0.2.100:80 -s rr -p -M 255.0.255.0\n",
                               "rules.txt:1: '255.0.255.0' is not an IPv4 netmask "
                               "(like 255.255.255.0)"),
    "host_mask_as_netmask": ("-A -t 192.0.2.100:80 -s rr -p -M 0.0.0.255\n",
                             "rules.txt:1: '0.0.0.255' is not an IPv4 netmask "
                             "(like 255.255.255.0)"),
    "ipv6_netmask_too_long": ("-A -t [2001:db8::1]:80 -s rr -p 300 -M 129\n",
                              "rules.txt:1: '129' is not an IPv6 netmask prefix length (1-128)"),
    "gue_without_port": (SVC + RS + " -i --tun-type gue\n",
                         "rules.txt:2: --tun-type gue needs --tun-port (the real server's GUE "
                         "port)"),
    "tunnel_type_on_dr_server": (SVC + RS + " -g --tun-type gre\n",
                                 "rules.txt:2: '--tun-type' only applies to -i (tunnel) real "
                                 "servers"),
    "tunnel_port_on_gre": (SVC + RS + " -i --tun-type gre --tun-port 6080\n",
                           "rules.txt:2: '--tun-port' only applies to --tun-type gue"),
    "unknown_tunnel_type": (SVC + RS + " -i --tun-type vxlan\n",
                            "rules.txt:2: unknown tunnel type 'vxlan' (known: ipip, gue, gre)"),
    "tunnel_checksum": (SVC + RS + " -i --tun-type gre --tun-csum\n",
                        "rules.txt:2: '--tun-csum' is not supported: haguard's ipvs model "
                        "has no tunnel checksums"),
    "persistence_engine": ("-A -u 192.0.2.100:5060 -s rr -p 60 --pe sip\n",
                           "rules.txt:1: '--pe' is not supported: haguard's ipvs model has no "
                           "persistence engines"),
    "two_forwarding_methods": (SVC + RS + " -g -m\n",
                               "rules.txt:2: '-m' conflicts with '-g' (one forwarding option "
                               "per line)"),
    "option_twice": (SVC + RS + " -g -w 1 --weight 2\n",
                     "rules.txt:2: '--weight' is given twice"),
    "service_option_on_server_line": (SVC + RS + " -g -s wrr\n",
                                      "rules.txt:2: '-s' does not apply to -a (add-server)"),
    "server_option_on_service_line": ("-A -t 192.0.2.100:80 -s rr -w 1\n",
                                      "rules.txt:1: '-w' does not apply to -A (add-service)"),
    "listing_option": ("-A -t 192.0.2.100:80 -s rr -n\n",
                       "rules.txt:1: '-n' does not apply to -A (add-service)"),
    "server_line_without_real_server": (SVC + "-a -t 192.0.2.100:80 -g\n",
                                        "rules.txt:2: -a needs -r ADDRESS[:PORT] (the real "
                                        "server)"),
    "service_line_without_service": ("-A -s rr\n",
                                     "rules.txt:1: -A needs a service: -t, -u or "
                                     "--sctp-service ADDRESS:PORT, or -f MARK"),
    "clear_command": ("-C\n",
                      "rules.txt:1: '-C' is not an add command; a save file has only -A "
                      "(add-service) and -a (add-server) lines"),
    "command_not_first": ("-t 192.0.2.100:80 -A -s rr\n",
                          "rules.txt:1: a line must start with -A (add-service) or -a "
                          "(add-server), not '-t'"),
    "second_command": ("-A -t 192.0.2.100:80 -s rr -a\n",
                       "rules.txt:1: '-a' is a second command; one command per line"),
    "stray_word": ("-A -t 192.0.2.100:80 rr\n",
                   "rules.txt:1: unexpected argument 'rr'"),
    "value_for_a_switch": (SVC + RS + " --gatewaying=yes\n",
                           "rules.txt:2: '--gatewaying' takes no value"),
}


@pytest.mark.parametrize(("text", "message"), BAD_LINES.values(), ids=BAD_LINES.keys())
def test_bad_line_is_rejected_with_file_line_and_message(text: str, message: str) -> None:
    assert problems(text) == [message]


def test_every_bad_line_is_reported_once_in_line_order() -> None:
    text = """\
# a save file with several mistakes
-A -t 192.0.2.100:80 -s rr
-a -t 192.0.2.100:80 -r 192.0.2.21:80 -g -w 1
-a -t 192.0.2.100:80 -r 192.0.2.22:80 -g -w heavy --frobnicate

-A -t 192.0.2.101:80 -s nosuch
-a -t 192.0.2.101:80 -r 192.0.2.31:80 -g -w 1
-a -t 192.0.2.101:80 -r 192.0.2.32:80 -g --frobnicate
-a -t 192.0.2.102:80 -r 192.0.2.41:80 -g
-A -u 192.0.2.300:53 -s rr
-a -t 192.0.2.100:80 -r 192.0.2.21:8080 -g
"""
    assert problems(text) == [
        "rules.txt:4: unknown option '--frobnicate'",
        "rules.txt:6: unknown scheduler 'nosuch' (known: " + ", ".join(SCHEDULERS) + ")",
        "rules.txt:8: unknown option '--frobnicate'",
        "rules.txt:9: tcp 192.0.2.102:80 is not defined; its -A line must come before its "
        "real servers",
        "rules.txt:10: '192.0.2.300:53' is not ADDRESS:PORT",
        "rules.txt:11: 192.0.2.21:8080: a -g (DR) real server must use the service port 80, "
        "the packet reaches it unchanged (ipvsadm -R would silently use the service port; "
        "use -m to map ports)",
    ]


def test_servers_of_a_rejected_service_are_checked_but_not_called_undefined() -> None:
    text = """\
-A -t 192.0.2.100:80 -s wrr -b sh-port
-a -t 192.0.2.100:80 -r 192.0.2.21:80 -g -w 1
-a -t 192.0.2.100:80 -r 192.0.2.22:80 -g -w 99999
"""
    assert problems(text) == [
        "rules.txt:1: sh-port is a flag of the sh scheduler, not of wrr",
        "rules.txt:3: '99999' is not a weight (0-65535)",
    ]


# --------------------------------------------------------------------------- property

def _usable(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    """An address the config accepts as a VIP and as a real server."""
    return not (ip.is_multicast or ip.is_unspecified or ip.is_loopback or ip.is_link_local)


_V4 = st.integers(0, 2**32 - 1).map(ipaddress.IPv4Address).filter(_usable)
_V6 = st.integers(0, 2**128 - 1).map(ipaddress.IPv6Address).filter(_usable)


@st.composite
def _services(draw: st.DrawFn) -> VirtualService:
    family = draw(st.sampled_from((4, 6)))
    addresses = _V4 if family == 4 else _V6
    protocol = draw(st.sampled_from(("tcp", "udp", "sctp", "fwmark")))
    if protocol == "fwmark":
        key = ServiceKey(family, "fwmark", str(draw(st.integers(1, 2**32 - 1))), 0)
    else:
        key = ServiceKey(family, protocol, str(draw(addresses)), draw(st.integers(1, 65535)))
    scheduler = draw(st.sampled_from(SCHEDULERS))
    flags = tuple(f for f, (owner, _) in SCHEDULER_FLAGS.items()
                  if owner == scheduler and draw(st.booleans()))
    persistence = None
    if draw(st.booleans()):
        if family == 4:
            bits = draw(st.integers(0, 32))
            netmask = str(ipaddress.IPv4Network(f"0.0.0.0/{bits}").netmask)
        else:
            netmask = str(draw(st.integers(1, 128)))
        persistence = Persistence(draw(st.integers(1, MAX_PERSISTENCE_S)), netmask)
    servers: dict[tuple[str, int], RealServer] = {}
    for _ in range(draw(st.integers(0, 4))):
        forwarding = draw(st.sampled_from(("dr", "tun", "nat")))
        if key.protocol == "fwmark":
            port = draw(st.integers(0, 65535))
        elif forwarding == "nat":
            port = draw(st.integers(1, 65535))
        else:
            port = key.port
        upper = draw(st.integers(0, 2**31 - 1))
        lower = draw(st.integers(0, upper if upper else 2**31 - 1))
        tunnel_type = draw(st.sampled_from(("ipip", "gue", "gre"))) if forwarding == "tun" \
            else "ipip"
        server = RealServer(address=draw(addresses), port=port, forwarding=forwarding,
                            weight=draw(st.integers(0, 65535)), upper_threshold=upper,
                            lower_threshold=lower, tunnel_type=tunnel_type,
                            tunnel_port=draw(st.integers(1, 65535)) if tunnel_type == "gue"
                            else 0)
        servers.setdefault(server.key, server)
    return VirtualService(key=key, scheduler=scheduler, flags=flags, persistence=persistence,
                          real_servers=tuple(servers.values()))


@st.composite
def _tables(draw: st.DrawFn) -> tuple[VirtualService, ...]:
    services = {s.key: s for s in draw(st.lists(_services(), max_size=4))}
    return tuple(services.values())


@settings(max_examples=200, deadline=None)
@given(_tables())
def test_any_valid_table_survives_save_format_and_yaml(
        services: tuple[VirtualService, ...]) -> None:
    assert parse_save(format_save(services), FILE) == services
    assert config_services(NODE + dump_yaml(services)) == services


# ------------------------------------------------------------------ operators' own files

def test_popt_bundled_options_read_as_ipvsadm_reads_them() -> None:
    bundled = parse_save("-At 192.0.2.100:80 -s rr\n"
                         "-at 192.0.2.100:80 -r 192.0.2.21 -g -w3\n", FILE)
    spelled = parse_save("-A -t 192.0.2.100:80 -s rr\n"
                         "-a -t 192.0.2.100:80 -r 192.0.2.21 -g -w 3\n", FILE)
    assert bundled == spelled
    assert bundled[0].real_servers[0].weight == 3


def test_a_bundle_with_an_unknown_letter_is_refused_by_name() -> None:
    with pytest.raises(ConfigError) as info:
        parse_save("-Aq -t 192.0.2.100:80\n", FILE)
    assert info.value.problems == [f"{FILE}:1: unknown option '-q'"]


SERVICES = {("http", "tcp"): 80, ("https", "tcp"): 443, ("domain", "udp"): 53}


def test_service_names_in_ports_resolve_per_protocol_as_ipvsadm_restore_does() -> None:
    (web, dns) = parse_save("-A -t 192.0.2.100:http -s rr\n"
                            "-a -t 192.0.2.100:http -r 198.51.100.21:https -m\n"
                            "-A -u 192.0.2.100:domain\n", FILE, SERVICES)
    assert (web.key.port, web.real_servers[0].port) == (80, 443)
    assert dns.key.port == 53
    with pytest.raises(ConfigError) as info:
        parse_save("-A -u 192.0.2.100:http\n", FILE, SERVICES)    # http is tcp only
    assert "the port is not a number nor a udp service of /etc/services" in \
        info.value.problems[0]


def test_a_host_name_is_refused_saying_why() -> None:
    with pytest.raises(ConfigError) as info:
        parse_save("-A -t www.example.org:80\n", FILE, SERVICES)
    assert info.value.problems == [
        f"{FILE}:1: 'www.example.org:80' is not ADDRESS:PORT: a host name; haguard does not "
        "resolve names (the table would change with DNS at each load): write the address, "
        "as ipvsadm -S -n prints it"]


def test_a_service_without_a_port_is_refused_saying_what_to_write() -> None:
    with pytest.raises(ConfigError) as info:
        parse_save("-At 192.0.2.100 -s rr\n", FILE)
    assert info.value.problems == [
        f"{FILE}:1: '192.0.2.100' has no port: a service is ADDRESS:PORT (for every port of "
        "an address, mark its packets and use -f MARK)"]


def test_the_services_file_is_read_with_aliases_and_the_first_entry_winning(
        tmp_path: Any) -> None:
    from haguard.adapters.netdb import service_ports

    path = tmp_path / "services"
    path.write_text("# comment\nhttp\t\t80/tcp\t\twww  # WorldWideWeb\n"
                    "domain 53/udp\nhttp 8080/tcp\nbroken line\n")
    assert service_ports(str(path)) == {("http", "tcp"): 80, ("www", "tcp"): 80,
                                        ("domain", "udp"): 53}
    assert service_ports(str(tmp_path / "missing")) == {}


def test_one_packet_scheduling_imports_exports_and_loads_back() -> None:
    save = "-A -u 192.0.2.53:53 -s rr -o\n-a -u 192.0.2.53:53 -r 192.0.2.21:53 -g -w 1\n"
    (service,) = parse_save(save, FILE)
    assert service.ops
    assert format_save((service,)) == save
    assert to_yaml_section((service,))["services"][0]["ops"] is True
    with pytest.raises(ConfigError) as info:
        parse_save("-A -t 192.0.2.100:80 -s rr -o\n", FILE)
    assert "one-packet scheduling is for UDP services" in info.value.problems[0]
