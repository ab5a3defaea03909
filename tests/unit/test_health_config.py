"""The ``health``, ``quorum`` and ``sorry_server`` keys of an IPVS service: what a valid
document means (defaults, merging, lists of checks), and every bad key reported with its
file, line and path.

``BASE`` is a valid director with the agent; its service starts on line 13:

    line 13      - vip: 192.0.2.100       line 17          interval_s: 2
    line 14        port: 80               line 18        real_servers:
    line 15        health:                line 19          - {address: 192.0.2.21}
    line 16          check: tcp           line 20          - {address: 192.0.2.22}
"""

from __future__ import annotations

import pytest

from haguard.core.config import Config, loads
from haguard.core.healthconfig import (
    HTTP_SUCCESS,
    Check,
    DnsSpec,
    HttpSpec,
    Quorum,
    RealServerHealth,
    ScriptSpec,
    TlsSpec,
)
from haguard.core.ipvsconfig import RealServer, VirtualService
from tests.unit.yamlcases import FILENAME, at, edit, problems_of

BASE = """\
node:
  name: lb1
agent: {}
instances:
  - name: VI_1
    interface: eth0
    virtual_router_id: 51
    priority: 150
    vips: [192.0.2.100/24, 192.0.2.101/24, 2001:db8::100/64]
ipvs:
  on_backup: keep
  services:
    - vip: 192.0.2.100
      port: 80
      health:
        check: tcp
        interval_s: 2
      real_servers:
        - {address: 192.0.2.21}
        - {address: 192.0.2.22}
"""

SVC = "ipvs.services[0]"
RS0 = f"{SVC}.real_servers[0]"


def base(*changes: tuple[str, str]) -> str:
    return edit(BASE, *changes)


def rs0(health: str) -> str:
    """BASE with the first real server's own health (a flow mapping or list)."""
    return base(("- {address: 192.0.2.21}", "- {address: 192.0.2.21, health: " + health + "}"))


def service_health(*lines: str) -> str:
    """BASE with the service's health replaced by ``lines`` (line 16 onwards)."""
    return base(("        check: tcp\n        interval_s: 2\n",
                 "".join(f"        {line}\n" for line in lines)))


def first_service(text: str) -> VirtualService:
    config: Config = loads(text, filename=FILENAME)
    assert config.ipvs is not None
    return config.ipvs.services[0]


def test_the_base_document_checks_every_real_server_with_the_services_tcp_check() -> None:
    svc = first_service(BASE)
    want = RealServerHealth(checks=(Check(kind="tcp", port=80, interval_s=2.0, timeout_s=2.0),))
    assert [rs.health for rs in svc.real_servers] == [want, want]
    assert svc.checked


def test_the_issue_example_loads_with_every_key_meaning_what_it_says() -> None:
    text = base(("        check: tcp\n        interval_s: 2\n", """\
        check: http
        interval_s: 2
        timeout_s: 1
        retries: 3
        retry_interval_s: 1
        rise: 2
        port: 8080
        on_down: weight0
        start: down
        http: {path: /healthz, status: [200, "301-302"], host: www.example.org, body: ok}
        notify: {up: [/usr/local/bin/rs-up, "{x}"], down: [/usr/local/bin/rs-down]}
"""), ("      real_servers:\n", """\
      quorum: {weight: 2, hysteresis: 1, up: [/usr/local/bin/q-up], down: [/usr/local/bin/q-down]}
      sorry_server: {address: 192.0.2.30, port: 80, forwarding: dr}
      real_servers:
"""), ("- {address: 192.0.2.22}", "- {address: 192.0.2.22, weight: 3, health: {check: tcp}}"))
    problems = problems_of(text)
    # notify commands take no placeholders: they would be filled with a real server's address
    assert problems == [at(26, f"{SVC}.health.notify.up[1]: {{x}} is not a placeholder haguard "
                               "fills in (placeholders work only in script.command)")]
    svc = first_service(text.replace(', "{x}"]', "]"))
    http = Check(kind="http", port=8080, interval_s=2.0, timeout_s=1.0, retries=3,
                 retry_interval_s=1.0, rise=2, start="down",
                 http=HttpSpec(path="/healthz", status=(200, 301, 302), host="www.example.org",
                               body="ok"))
    notify = {"notify_up": ("/usr/local/bin/rs-up",), "notify_down": ("/usr/local/bin/rs-down",)}
    assert svc.real_servers[0].health == RealServerHealth(checks=(http,), on_down="weight0",
                                                          **notify)
    # The real server's own mapping is merged over the service's: check and nothing else.
    tcp = Check(kind="tcp", port=8080, interval_s=2.0, timeout_s=1.0, retries=3,
                retry_interval_s=1.0, rise=2, start="down")
    assert svc.real_servers[1].health == RealServerHealth(checks=(tcp,), on_down="weight0",
                                                          **notify)
    assert svc.quorum == Quorum(weight=2, hysteresis=1, up=("/usr/local/bin/q-up",),
                                down=("/usr/local/bin/q-down",))
    assert svc.sorry_server is not None and str(svc.sorry_server) == "192.0.2.30:80"


def test_defaults_are_keepalived_s_where_it_has_sensible_ones() -> None:
    svc = first_service(service_health("check: http"))
    check = svc.real_servers[0].health.checks[0]  # type: ignore[union-attr]
    assert (check.interval_s, check.timeout_s, check.retries, check.retry_interval_s,
            check.rise, check.start, check.port) == (5.0, 3.0, 1, 1.0, 1, "up", 80)
    assert check.http == HttpSpec(path="/", status=HTTP_SUCCESS)
    assert svc.real_servers[0].health.on_down == "remove"  # type: ignore[union-attr]


def test_a_short_interval_brings_the_default_timeout_down_with_it() -> None:
    svc = first_service(service_health("check: tcp", "interval_s: 0.5"))
    assert svc.real_servers[0].health.checks[0].timeout_s == 0.5  # type: ignore[union-attr]


def test_a_list_of_checks_is_all_of_them_and_nested_blocks_merge_key_by_key() -> None:
    text = service_health("check: https", "http: {path: /ready}", "tls: {sni: app.example.org}")
    text = text.replace("- {address: 192.0.2.21}", """\
- address: 192.0.2.21
          health:
            - {http: {host: a.example.org}}
            - check: script
              script: {command: [/usr/local/lib/check, "{address}", "{port}"], user: checker}
""")
    health = first_service(text).real_servers[0].health
    assert health is not None
    https, script = health.checks
    assert (https.kind, https.http, https.tls) == (
        "https", HttpSpec(path="/ready", host="a.example.org"), TlsSpec(sni="app.example.org"))
    assert (script.kind, script.script) == (
        "script", ScriptSpec(command=("/usr/local/lib/check", "{address}", "{port}"),
                             user="checker"))


def test_check_none_leaves_one_real_server_unwatched() -> None:
    svc = first_service(rs0("{check: none}"))
    assert svc.real_servers[0].health is None and svc.real_servers[1].health is not None


def test_dns_and_script_checks_serve_a_udp_service() -> None:
    text = base(("      port: 80\n", "      port: 53\n      protocol: udp\n"))
    text = text.replace("        check: tcp\n", "        check: dns\n        dns: {name: example.org, type: aaaa}\n")
    check = first_service(text).real_servers[0].health.checks[0]  # type: ignore[union-attr]
    assert (check.kind, check.dns, check.port) == ("dns", DnsSpec("example.org", "AAAA"), 53)


def test_without_health_nothing_is_checked_and_the_kernel_view_is_unchanged() -> None:
    text = base(("      health:\n        check: tcp\n        interval_s: 2\n", ""))
    svc = first_service(text)
    assert not svc.checked and svc.quorum is None and svc.sorry_server is None
    # health is not part of what the kernel holds: a checked real server equals its
    # kernel twin
    assert first_service(BASE).real_servers[0] == RealServer(
        address=svc.real_servers[0].address, port=80)


BAD = [
    pytest.param(service_health("check: tcpp"),
                 [at(16, f"{SVC}.health.check: 'tcpp' is not one of: tcp, http, https, script, "
                         "dns, none")], id="unknown-check"),
    pytest.param(service_health("check: tcp", "interval: 2"),
                 [at(17, f"{SVC}.health.interval: unknown key (did you mean 'interval_s'?)")],
                 id="unknown-key-did-you-mean"),
    pytest.param(service_health("check: tcp", "interval_s: 2", "timeout_s: 3"),
                 [at(16, f"{SVC}.health: timeout_s 3 is longer than interval_s 2: a check "
                         "would still be waiting when the next one is due")],
                 id="timeout-longer-than-interval"),
    pytest.param(service_health("check: http", "http: {status: [200, 600]}"),
                 [at(17, f"{SVC}.health.http.status[1]: 600 is not an HTTP status (100-599)")],
                 id="status-out-of-range"),
    pytest.param(service_health("check: http", "http: {status: ['299-200']}"),
                 [at(17, f"{SVC}.health.http.status[0]: '299-200' is not a range of HTTP "
                         "statuses (100-599, low-high)")], id="status-range-backwards"),
    pytest.param(service_health("check: http", "http: {path: healthz}"),
                 [at(17, f"{SVC}.health.http.path: 'healthz' must start with '/'")],
                 id="path-without-slash"),
    pytest.param(service_health("check: tcp", "http: {path: /}"),
                 [at(17, f"{SVC}.health.http: only applies to check: http or https (this one "
                         "is check: tcp)")], id="http-block-on-a-tcp-check"),
    pytest.param(service_health("check: http", "tls: {verify: true}"),
                 [at(17, f"{SVC}.health.tls: only applies to check: https (this one is "
                         "check: http)")], id="tls-block-on-http"),
    pytest.param(service_health("check: script"),
                 [at(16, f"{SVC}.health: check: script needs script.command (the program "
                         "and its arguments)")], id="script-without-command"),
    pytest.param(service_health("check: script", "script: {command: [check-app]}"),
                 [at(17, f"{SVC}.health.script.command[0]: 'check-app' must be an absolute "
                         "path (commands run without a shell or a PATH search)")],
                 id="script-relative-path"),
    pytest.param(service_health("check: script", "script: {command: [/bin/c, '{host}']}"),
                 [at(17, f"{SVC}.health.script.command[1]: {{host}} is not a placeholder "
                         "haguard fills in (known: {address}, {port}, {vip}, {vport}, "
                         "{protocol})")], id="script-unknown-placeholder"),
    pytest.param(service_health("check: dns"),
                 [at(16, f"{SVC}.health: check: dns needs dns.name (the name to ask the real "
                         "server for)")], id="dns-without-name"),
    pytest.param(service_health("retries: 2"),
                 [at(16, f"{SVC}.health: missing required key 'check' (tcp, http, https, "
                         "script, dns or none), here or in the service's health")],
                 id="no-check-anywhere"),
    pytest.param(service_health("check: tcp", "retries: -1"),
                 [at(17, f"{SVC}.health.retries: -1 is out of range (0-100)")],
                 id="negative-retries"),
    pytest.param(service_health("check: tcp", "on_down: drop"),
                 [at(17, f"{SVC}.health.on_down: 'drop' is not one of: remove, weight0")],
                 id="unknown-on-down"),
    pytest.param(rs0("[]"),
                 [at(19, f"{RS0}.health: must list at least one check (or be check: none)")],
                 id="empty-list"),
    pytest.param(rs0("[{check: tcp, on_down: remove}, {check: http, on_down: weight0}]"),
                 [at(19, f"{RS0}.health: its checks disagree on on_down; a real server has "
                         "one")], id="list-disagrees-on-on-down"),
    pytest.param(base(("      port: 80\n", "      port: 80\n      protocol: udp\n")),
                 [at(17, f"{SVC}.health: a tcp check connects over TCP, and this service is "
                         "udp; use check: dns or script")], id="tcp-check-on-udp"),
    pytest.param(base(("      real_servers:\n", "      quorum: {weight: 0}\n      real_servers:\n")),
                 [at(18, f"{SVC}.quorum.weight: 0 is out of range (1-2147483647)")],
                 id="quorum-weight-zero"),
    pytest.param(base(("      real_servers:\n",
                       "      sorry_server: {address: 192.0.2.21}\n      real_servers:\n")),
                 [at(18, f"{SVC}.sorry_server: 192.0.2.21:80 is one of the real servers; the "
                         "sorry server stands in when they are all down")],
                 id="sorry-server-is-a-real-server"),
    pytest.param(base(("      real_servers:\n",
                       "      sorry_server: {address: 2001:db8::30}\n      real_servers:\n")),
                 [at(18, f"{SVC}.sorry_server.address: 2001:db8::30 is IPv6 but the service is "
                         "IPv4")], id="sorry-server-wrong-family"),
    pytest.param(base(("      real_servers:\n",
                       "      sorry_server: {address: 192.0.2.30, health: {check: tcp}}\n"
                       "      real_servers:\n")),
                 [at(18, f"{SVC}.sorry_server.health: unknown key (known keys: address, port, "
                         "forwarding, weight, tunnel_type, tunnel_port)")],
                 id="sorry-server-is-not-checked"),
    pytest.param(base(("agent: {}\n", "")),
                 [at(14, f"{SVC}.health: real-server checks run in `haguard agent`: add an "
                         "`agent:` section (and render keepalived.conf again)")],
                 id="health-needs-the-agent"),
]


@pytest.mark.parametrize(("text", "wanted"), BAD)
def test_a_bad_health_key_is_reported_with_file_line_and_path(text: str,
                                                              wanted: list[str]) -> None:
    assert problems_of(text) == wanted
