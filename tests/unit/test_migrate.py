"""`haguard migrate`: keepalived.conf -> haguard's YAML, nothing dropped silently."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from haguard.cli import main
from haguard.core.config import loads
from haguard.core.kaconf import KeepalivedConfError, lines, parse
from haguard.core.migrate import Migration, migrate

# A director of an LVS-DR pair as operators write it: two VIPs, one with a label,
# unicast, a web service checked over HTTP on two URLs and a TCP service, a sorry
# server, a quorum. Every keyword here has a haguard equivalent.
DR_DIRECTOR = """\
! lb1, the primary
global_defs {
   router_id lb1
   enable_script_security
   vrrp_garp_master_delay 2
}

vrrp_instance VI_WEB {
    state MASTER
    interface eth0
    virtual_router_id 51
    priority 150
    advert_int 1
    authentication {
        auth_type PASS
        auth_pass s3cret
    }
    unicast_peer {
        192.0.2.12
    }
    virtual_ipaddress {
        192.0.2.100
        192.0.2.101/24 label eth0:1
    }
    virtual_ipaddress_excluded {
        2001:db8::100/64
    }
    garp_master_repeat 3
    garp_master_refresh 60
}

virtual_server 192.0.2.100 80 {
    delay_loop 2
    lb_algo wlc
    lb_kind DR
    protocol TCP
    persistence_timeout 300
    sorry_server 192.0.2.30 80
    quorum 2
    hysteresis 1
    quorum_up "/usr/local/bin/page-ops up"
    real_server 192.0.2.21 80 {
        weight 3
        inhibit_on_failure
        HTTP_GET {
            url {
                path /healthz
                status_code 200
            }
            url {
                path /ready
                status_code 200-299
            }
            connect_timeout 1
            nb_get_retry 2
            delay_before_retry 1
        }
    }
    real_server 192.0.2.22 80 { weight 1 }
}

virtual_server 192.0.2.101 443 {
    lvs_sched rr
    lvs_method DR
    real_server 192.0.2.21 443 {
        TCP_CHECK {
            connect_port 8443
        }
    }
}
"""


# The smallest VRRP side for a file whose point is its virtual_server.
INSTANCE = """\
vrrp_instance VI_1 { interface eth0
  virtual_router_id 51
  priority 100 }
"""


def run(text: str, node: str | None = None) -> Migration:
    return migrate(parse(lines(text, "keepalived.conf")), node)


def valid(migration: Migration) -> Any:
    """The YAML as haguard will read it (raises with the problems if it would refuse)."""
    return loads(yaml.safe_dump(migration.doc), filename="<migrated>")


def said(migration: Migration) -> list[str]:
    return [str(f) for f in migration.findings]


def test_a_dr_director_migrates_completely_to_a_valid_config() -> None:
    migration = run(DR_DIRECTOR)
    assert said(migration) == []
    config = valid(migration)
    assert config.node.name == "lb1"
    (inst,) = config.instances
    assert (inst.name, inst.state, inst.interface, inst.virtual_router_id, inst.priority,
            inst.auth_pass) == ("VI_WEB", "MASTER", "eth0", 51, 150, "s3cret")
    assert [str(p) for p in inst.unicast_peers] == ["192.0.2.12"]
    # keepalived's default prefix for a bare address is the host's own.
    assert [(str(v.interface), v.label) for v in inst.vips] == [
        ("192.0.2.100/32", None), ("192.0.2.101/24", "eth0:1"), ("2001:db8::100/64", None)]
    assert (inst.announce.count, inst.announce.repeat_after_s, inst.announce.refresh_s) == (
        3, 2.0, 60.0)


def test_checkers_carry_keepalived_semantics_and_its_defaults_written_out() -> None:
    doc = run(DR_DIRECTOR).doc
    web, tls = doc["ipvs"]["services"]
    assert web["scheduler"] == "wlc" and web["persistence"] == {"timeout_s": 300}
    assert web["sorry_server"] == {"address": "192.0.2.30", "port": 80, "forwarding": "dr"}
    assert web["quorum"] == {"weight": 2, "hysteresis": 1,
                             "up": ["/usr/local/bin/page-ops", "up"]}
    rs1, rs2 = web["real_servers"]
    # keepalived ANDs a checker's URLs: two checks, both must pass.
    assert rs1["health"] == [
        {"check": "http", "interval_s": 2, "timeout_s": 1, "retries": 2,
         "retry_interval_s": 1, "on_down": "weight0", "http": {"path": "/healthz",
                                                                "status": [200]}},
        {"check": "http", "interval_s": 2, "timeout_s": 1, "retries": 2,
         "retry_interval_s": 1, "on_down": "weight0", "http": {"path": "/ready",
                                                                "status": ["200-299"]}}]
    assert rs1["weight"] == 3 and rs1["forwarding"] == "dr"
    # A real server without checkers is never checked (keepalived: always up).
    assert "health" not in rs2 and "health" not in web
    # The defaults keepalived applies and haguard would not: delay_loop 60 s,
    # connect_timeout 5 s, retry 1, delay_before_retry 1 s (TCP).
    assert tls["health"] == {"check": "tcp", "interval_s": 60, "timeout_s": 5, "retries": 1,
                             "retry_interval_s": 1, "port": 8443}
    assert tls["scheduler"] == "rr" and tls["real_servers"][0]["forwarding"] == "dr"
    assert doc["agent"] == {}


def test_misc_check_alpha_and_ssl_get_map_onto_script_start_down_and_https() -> None:
    text = """\
global_defs { router_id lb2
  script_user checker }
virtual_server fwmark 7 {
    delay_loop 10
    lb_kind NAT
    alpha
    real_server 198.51.100.21 8080 {
        MISC_CHECK {
            misc_path "/usr/local/lib/check-app 198.51.100.21"
            misc_timeout 4
            misc_dynamic
        }
        SSL_GET {
            url { path / }
            virtualhost www.example.org
        }
    }
}
"""
    migration = run(text)
    (svc,) = migration.doc["ipvs"]["services"]
    assert svc["fwmark"] == 7 and "vip" not in svc
    # One real server: its checks are said once, on the service.
    script, https = svc["health"]
    assert script == {"check": "script", "interval_s": 10, "timeout_s": 4, "retries": 0,
                      "retry_interval_s": 1, "start": "down",
                      "script": {"command": ["/usr/local/lib/check-app", "198.51.100.21"],
                                 "user": "checker", "dynamic_weight": True}}
    assert https["check"] == "https" and https["retry_interval_s"] == 3
    assert https["http"] == {"path": "/", "host": "www.example.org"}
    assert https["tls"] == {"verify": False}


def test_deprecated_synonyms_read_as_their_current_keywords() -> None:
    text = DR_DIRECTOR.replace("state MASTER", "state SLAVE").replace(
        "lb_algo wlc", "lvs_sched wlc").replace("lb_kind DR", "lvs_method DR")
    doc = run(text).doc
    assert doc["instances"][0]["state"] == "BACKUP"
    assert doc == {**run(DR_DIRECTOR).doc, "instances": doc["instances"]}


def test_a_virtual_server_group_becomes_one_service_per_entry_with_the_same_servers() -> None:
    text = """\
global_defs { router_id lb1 }
virtual_server_group WEB {
    192.0.2.100-102 80
    fwmark 5
}
virtual_server group WEB {
    lb_kind DR
    real_server 192.0.2.21 80 { weight 2 }
}
"""
    services = run(text).doc["ipvs"]["services"]
    assert [(s.get("vip"), s.get("port"), s.get("fwmark")) for s in services] == [
        ("192.0.2.100", 80, None), ("192.0.2.101", 80, None), ("192.0.2.102", 80, None),
        (None, None, 5)]
    assert all(s["real_servers"] == [{"address": "192.0.2.21", "port": 80, "forwarding": "dr",
                                      "weight": 2}] for s in services)


def test_every_keyword_haguard_cannot_say_is_listed_with_its_line() -> None:
    text = """\
global_defs {
    router_id lb1
    notification_email { ops@example.org }
    frobnicate yes
}
vrrp_script chk_app {
    script "/usr/local/bin/chk"
}
vrrp_instance VI_1 {
    interface eth0
    virtual_router_id 51
    priority 100
    track_script { chk_app }
    notify_master "/usr/local/bin/conntrack-sync master"
    preempt_delay 30
    virtual_ipaddress { 192.0.2.100 dev eth1 peer 192.0.2.1 }
}
virtual_server 192.0.2.100 80 {
    real_server 192.0.2.21 80 {
        HTTP_GET {
            url {
                path /
                digest 0123456789abcdef
            }
        }
        SMTP_CHECK { }
    }
}
"""
    found = [(f.where, f.keyword, f.decision) for f in run(text).findings]
    assert found == [
        ("keepalived.conf:3", "notification_email", False),   # a note: alert on the logs
        ("keepalived.conf:4", "frobnicate", True),
        ("keepalived.conf:16", "virtual_ipaddress", True),
        ("keepalived.conf:23", "digest", True),
        ("keepalived.conf:26", "SMTP_CHECK", True)]


def test_a_long_auth_pass_keeps_the_first_8_characters_keepalived_used() -> None:
    migration = run(DR_DIRECTOR.replace("auth_pass s3cret", "auth_pass s3cretpassword"))
    assert migration.doc["instances"][0]["auth_pass"] == "s3cretpa"
    (note,) = migration.findings
    assert not note.decision and "keepalived used only the first 8 ('s3cretpa')" in note.advice
    valid(migration)


def test_a_dr_real_server_port_is_the_services_and_its_checks_keep_the_written_one() -> None:
    text = INSTANCE + """\
global_defs { router_id lb1 }
virtual_server 192.0.2.100 1521 {
    lb_kind DR
    real_server 192.0.2.21 1522 { TCP_CHECK { connect_timeout 3 } }
}
"""
    migration = run(text)
    (rs,) = migration.doc["ipvs"]["services"][0]["real_servers"]
    assert rs["port"] == 1521
    assert migration.doc["ipvs"]["services"][0]["health"]["port"] == 1522
    assert [f.decision for f in migration.findings] == [False]


def test_a_timeout_longer_than_the_interval_is_shortened_and_listed() -> None:
    text = """\
global_defs { router_id lb1 }
virtual_server 192.0.2.100 80 {
    delay_loop 6
    real_server 192.0.2.21 80 { TCP_CHECK { connect_timeout 10 } }
}
"""
    migration = run(text)
    assert migration.doc["ipvs"]["services"][0]["health"]["timeout_s"] == 6
    assert [(f.where, f.keyword, f.decision) for f in migration.findings] == [
        ("keepalived.conf:2", "virtual_server", True),      # no vrrp_instance
        ("keepalived.conf:4", "connect_timeout", True)]


def test_without_router_id_the_node_must_be_named() -> None:
    with pytest.raises(KeepalivedConfError, match="--node NAME"):
        run("vrrp_instance VI_1 { interface eth0 }\n")
    assert run("vrrp_instance VI_1 { interface eth0 }\n", node="lb9").doc["node"] == {
        "name": "lb9"}


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "keepalived.conf"
    path.write_text(text)
    return path


def test_migrate_exits_0_when_everything_is_expressed(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "lb1.yaml"
    assert main(["migrate", str(write(tmp_path, DR_DIRECTOR)), "-o", str(out)]) == 0
    assert "everything expressed" in capsys.readouterr().err
    assert loads(out.read_text(), str(out)).instances[0].name == "VI_WEB"


def test_migrate_exits_3_and_lists_the_lines_when_a_decision_is_needed(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write(tmp_path, DR_DIRECTOR.replace("    advert_int 1\n",
                                               "    advert_int 1\n    use_vmac\n"))
    assert main(["migrate", str(path)]) == 3
    out, err = capsys.readouterr()
    assert f"{path}:14: use_vmac: haguard adds VIPs to the interface itself" in err
    assert f"#   {path}:14: use_vmac:" in out      # the YAML carries it too
    assert "1 line(s) need a decision" in err


def test_migrate_exits_2_on_a_file_keepalived_could_not_read_and_writes_nothing(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "lb1.yaml"
    path = write(tmp_path, "vrrp_instance VI_1 {\n  state MASTER\n")
    assert main(["migrate", str(path), "--node", "lb1", "-o", str(out)]) == 2
    assert f"{path}:1: the block of 'vrrp_instance'" in capsys.readouterr().err
    assert not out.exists()


def test_trackers_scripts_sync_groups_and_notify_commands_carry_over() -> None:
    text = """\
global_defs { router_id lb1 }
vrrp_script chk_proxy {
    script "/usr/local/bin/chk-proxy --port 8080"
    interval 2
    fall 3
    rise 2
    weight -20
}
vrrp_track_process track_haproxy {
    process haproxy
    weight 0
}
vrrp_sync_group NAT {
    group {
        VI_CLIENT
        VI_GW
    }
    sync_group_tracking_weight
}
vrrp_instance VI_CLIENT {
    interface eth0
    virtual_router_id 61
    priority 150
    preempt_delay 30
    unicast_src_ip 192.0.2.11
    unicast_peer { 192.0.2.12 }
    dont_track_primary
    track_script { chk_proxy }
    track_interface { eth1 weight -10 }
    track_process { track_haproxy }
    notify_master "/usr/sbin/conntrackd -c"
    notify /usr/local/bin/tell-ops
    virtual_ipaddress { 192.0.2.100 }
}
vrrp_instance VI_GW {
    interface eth1
    virtual_router_id 62
    priority 150
    virtual_ipaddress { 198.51.100.1/24 }
}
"""
    migration = run(text)
    assert said(migration) == []
    doc = migration.doc
    assert doc["scripts"] == [{"name": "chk_proxy", "command": ["/usr/local/bin/chk-proxy",
                                                                "--port", "8080"],
                               "interval_s": 2, "fall": 3, "rise": 2, "weight": -20}]
    assert doc["sync_groups"] == [{"name": "NAT", "instances": ["VI_CLIENT", "VI_GW"]}]
    client = doc["instances"][0]
    assert (client["preempt_delay_s"], client["unicast_src_ip"], client["dont_track_primary"]) \
        == (30, "192.0.2.11", True)
    assert client["track"] == {"scripts": [{"name": "chk_proxy"}],
                               "interfaces": [{"name": "eth1", "weight": -10}],
                               "processes": [{"name": "haproxy", "weight": 0}]}
    # keepalived appends TYPE NAME STATE PRIORITY to the generic notify script.
    generic = ["/usr/local/bin/tell-ops", "INSTANCE", "{instance}", "{state}", "{priority}"]
    assert client["notify"] == {"master": [["/usr/sbin/conntrackd", "-c"], generic],
                                "backup": [generic], "fault": [generic], "stop": [generic]}
    config = valid(migration)
    assert config.sync_group_of("VI_GW") is not None


SYNC_WEIGHTS = """\
global_defs { router_id lb1 }
vrrp_script chk_own { script /bin/true
    weight 10 }
vrrp_script chk_fault { script /bin/true }
vrrp_sync_group G1 {
    group { VI_1 VI_2 }@TRACKING@
}
vrrp_instance VI_1 { interface eth0
    virtual_router_id 51
    priority 150
    track_interface {
        eth1 weight -10
        eth2
    }
    track_script {
        chk_own
        chk_fault
    }
    virtual_ipaddress { 192.0.2.100 } }
vrrp_instance VI_2 { interface eth0
    virtual_router_id 52
    priority 150
    virtual_ipaddress { 192.0.2.101 } }
vrrp_instance VI_3 { interface eth0
    virtual_router_id 53
    priority 255
    track_interface { eth1 weight 5 }
    virtual_ipaddress { 192.0.2.102 } }
"""


def test_weights_keepalived_ignores_in_a_sync_group_are_left_out_and_said() -> None:
    # keepalived's vrrp.c: in a sync group without sync_group_tracking_weight (and on the
    # address owner) a weighted interface counts as unweighted and a weighted script is
    # not tracked at all. haguard's keepalived.conf lets weights count in sync groups, so
    # a faithful migration drops them.
    migration = run(SYNC_WEIGHTS.replace("@TRACKING@", ""))
    vi1, _, vi3 = migration.doc["instances"]
    assert vi1["track"] == {"interfaces": [{"name": "eth1"}, {"name": "eth2"}],
                            "scripts": [{"name": "chk_fault"}]}
    assert vi3["track"] == {"interfaces": [{"name": "eth1"}]}
    assert [(f.where, f.keyword, f.decision) for f in migration.findings] == [
        ("keepalived.conf:12", "track_interface", False),
        ("keepalived.conf:16", "track_script", False),
        ("keepalived.conf:26", "priority", True),
        ("keepalived.conf:27", "track_interface", False)]
    assert "sync group G1" in migration.findings[0].advice
    assert "address owner" in migration.findings[3].advice
    assert vi3["priority"] == 254
    valid(migration)


def test_with_sync_group_tracking_weight_the_weights_carry_over() -> None:
    migration = run(SYNC_WEIGHTS.replace("@TRACKING@", "\n    sync_group_tracking_weight"))
    vi1 = migration.doc["instances"][0]
    assert vi1["track"]["interfaces"] == [{"name": "eth1", "weight": -10}, {"name": "eth2"}]
    assert [s["name"] for s in vi1["track"]["scripts"]] == ["chk_own", "chk_fault"]
    assert [f.keyword for f in migration.findings] == ["priority", "track_interface"]


def test_a_group_of_every_vip_with_every_port_stays_one_service_entry() -> None:
    text = INSTANCE.replace("priority 100 }", "priority 100\n  virtual_ipaddress { "
                            "192.0.2.100\n 192.0.2.101 } }") + """\
global_defs { router_id lb1 }
virtual_server_group WEB {
    192.0.2.100-101 80
    192.0.2.100-101 443
}
virtual_server group WEB {
    lb_kind DR
    real_server 192.0.2.21 80 { TCP_CHECK { connect_timeout 3 } }
}
"""
    migration = run(text)
    assert migration.doc["ipvs"]["services"] == [{
        "vips": ["192.0.2.100", "192.0.2.101"], "ports": [80, 443], "protocol": "tcp",
        "health": {"check": "tcp", "interval_s": 60, "timeout_s": 3, "retries": 1,
                   "retry_interval_s": 1, "port": 80},
        "real_servers": [{"address": "192.0.2.21", "forwarding": "dr", "weight": 1}]}]
    config = valid(migration)
    assert config.ipvs is not None and len(config.ipvs.services) == 4


def test_a_vip_keepalived_ignored_for_its_family_is_left_out_and_listed() -> None:
    text = """\
global_defs { router_id lb1 }
vrrp_instance VI_1 {
    interface eth0
    virtual_router_id 51
    priority 100
    virtual_ipaddress {
        192.0.2.100
        2001:db8::100/64
    }
    virtual_ipaddress_excluded { 2001:db8::101/64 }
}
"""
    migration = run(text)
    assert migration.doc["instances"][0]["vips"] == ["192.0.2.100/32", "2001:db8::101/64"]
    (finding,) = migration.findings
    assert finding.where == "keepalived.conf:8" and finding.decision
    assert "address family must match VRRP instance" in finding.advice


# The global_defs block of a typical LVS-DR tutorial config, word for word in shape.
TUTORIAL_GLOBALS = """\
global_defs {
   notification_email {
     ops@example.org
   }
   notification_email_from lb@example.org
   smtp_server 127.0.0.1
   smtp_connect_timeout 30
   router_id LVS_DEVEL
   vrrp_skip_check_adv_addr
   vrrp_strict
   vrrp_garp_interval 0
   vrrp_gna_interval 0
   max_auto_priority
   lvs_flush
}
"""


def test_tutorial_globals_are_each_classified_and_keepalived_defaults_are_notes() -> None:
    migration = run(TUTORIAL_GLOBALS + DR_DIRECTOR.split("\n", 7)[7])
    said_of = {f.keyword: f.decision for f in migration.findings}
    assert said_of == {
        # Mail is a note (haguard logs and exports metrics: alert on those).
        "notification_email": False, "notification_email_from": False, "smtp_server": False,
        "smtp_connect_timeout": False,
        "vrrp_strict": True,                       # the VIPs answer traffic now
        "vrrp_skip_check_adv_addr": False, "max_auto_priority": False, "lvs_flush": False}
    assert migration.doc["node"]["name"] == "LVS_DEVEL"
    assert migration.doc["instances"][0]["announce"]["interval_ms"] == 0
    valid(migration)


@pytest.mark.parametrize("block", ["global_defs", "vrrp_instance VI_1", "virtual_server "
                                   "192.0.2.100 80", "real_server 192.0.2.21 80", "TCP_CHECK",
                                   "url", "vrrp_script chk", "vrrp_sync_group G"])
def test_a_keyword_no_one_knows_is_listed_wherever_it_is_written(block: str) -> None:
    text = """\
global_defs { router_id lb1 }
vrrp_script chk { script /bin/true }
vrrp_instance VI_1 { interface eth0
  virtual_router_id 51
  priority 100
  virtual_ipaddress { 192.0.2.100 } }
vrrp_instance VI_2 { interface eth0
  virtual_router_id 52
  priority 100
  virtual_ipaddress { 192.0.2.101 } }
vrrp_sync_group G { group { VI_1 VI_2 } }
virtual_server 192.0.2.100 80 {
  real_server 192.0.2.21 80 {
    HTTP_GET {
      url {
        path /
      }
    }
    TCP_CHECK {
      connect_timeout 2
    }
  }
}
"""
    lines = text.splitlines()
    at = next(i for i, line in enumerate(lines) if line.lstrip().startswith(block + " {")
              or line.lstrip().startswith(block + " "))
    lines.insert(at + 1, "  frobnicate 42")
    migration = run("\n".join(lines) + "\n")
    assert [(f.where, f.keyword, f.decision) for f in migration.findings
            if f.keyword == "frobnicate"] == [(f"keepalived.conf:{at + 2}", "frobnicate", True)]


def test_a_keyword_glued_to_its_value_is_a_line_keepalived_ignored_too() -> None:
    migration = run(DR_DIRECTOR.replace("    advert_int 1\n",
                                        "    advert_int 1\n    mcast_src_ip=192.0.2.11\n"))
    (finding,) = migration.findings
    assert (finding.where, finding.decision) == ("keepalived.conf:14", False)
    assert "keepalived ignored this line" in finding.advice


def test_keepalived_parameters_are_listed_or_refused_never_taken_literally() -> None:
    text = "$PRIO=150\n" + DR_DIRECTOR
    assert [(f.where, f.decision) for f in run(text).findings] == [("keepalived.conf:1", True)]
    with pytest.raises(KeepalivedConfError, match=r"priority \$PRIO: keepalived's parameters"):
        run("$PRIO=150\n" + DR_DIRECTOR.replace("priority 150", "priority $PRIO"))
    # An undefined $NAME is literal text to keepalived: a password may start with $.
    migration = run(DR_DIRECTOR.replace("auth_pass s3cret", "auth_pass $3cret"))
    assert migration.doc["instances"][0]["auth_pass"] == "$3cret"
    with pytest.raises(KeepalivedConfError, match="not expanded"):
        run(DR_DIRECTOR.replace("auth_pass s3cret", "auth_pass $_INSTANCE"))


def test_a_vip_on_another_device_keeps_its_device_and_label() -> None:
    migration = run(DR_DIRECTOR.replace(
        "192.0.2.101/24 label eth0:1",
        "192.0.2.101/24 label eth0:1\n        198.51.100.10/24 dev eth1 label eth1:5\n"
        "        198.51.100.11/24 dev eth0"))
    vips = migration.doc["instances"][0]["vips"]
    assert {"address": "198.51.100.10/24", "interface": "eth1", "label": "eth1:5"} in vips
    assert "198.51.100.11/24" in vips       # dev naming the instance's own interface
    assert not [f for f in migration.findings if f.keyword == "virtual_ipaddress"]
    config = loads(yaml.safe_dump(migration.doc))
    by_device = dict(config.instances[0].vips_by_device())
    assert [str(v) for v in by_device["eth1"]] == ["198.51.100.10/24"]


def test_vip_flags_do_not_shift_the_options_that_take_a_value() -> None:
    migration = run(DR_DIRECTOR.replace(
        "192.0.2.101/24 label eth0:1",
        "192.0.2.101/24 label eth0:1\n        198.51.100.10/24 no_track dev eth1 -nodad "
        "label eth1:5 home"))
    assert {"address": "198.51.100.10/24", "interface": "eth1", "label": "eth1:5"} in \
        migration.doc["instances"][0]["vips"]
    words = sorted(f.advice.split(":")[0] for f in migration.findings
                   if f.keyword == "virtual_ipaddress")
    assert words == ["-nodad", "home", "no_track"]



BARE_COMMANDS = """\
global_defs { router_id lb1 }
vrrp_script chk_proxy {
    script "pidof haproxy"
    interval 2
}
vrrp_instance VI_1 {
    interface eth0
    virtual_router_id 51
    priority 100
    virtual_ipaddress { 192.0.2.10 }
    track_script { chk_proxy }
    notify_master "conntrack-sync master"
}
"""


def test_a_bare_command_gets_the_path_keepalived_would_have_found() -> None:
    programs = {"pidof": "/usr/bin/pidof", "conntrack-sync": "/usr/local/sbin/conntrack-sync"}
    migration = migrate(parse(lines(BARE_COMMANDS, "keepalived.conf")), None, programs)
    valid(migration)
    assert migration.doc["scripts"][0]["command"] == ["/usr/bin/pidof", "haproxy"]
    assert migration.doc["instances"][0]["notify"]["master"] == [
        ["/usr/local/sbin/conntrack-sync", "master"]]
    assert migration.decisions == ()
    assert ("keepalived.conf:3: script: note: 'pidof': keepalived found it on its PATH; the "
            "YAML has /usr/bin/pidof, where it is on this machine (migrate on the director "
            "that runs it)") in said(migration)


def test_a_bare_command_not_found_here_is_a_decision() -> None:
    migration = migrate(parse(lines(BARE_COMMANDS, "keepalived.conf")), None,
                        {"pidof": "/usr/bin/pidof"})
    assert [str(f) for f in migration.decisions] == [
        "keepalived.conf:12: notify_master: 'conntrack-sync': keepalived looked for it on "
        "its PATH, and it is not on this machine's: write its absolute path (or migrate on "
        "the director that runs it)"]


def test_quorum_0_is_read_as_keepalived_reads_it_quorum_1() -> None:
    migration = run("""\
global_defs { router_id lb1 }
vrrp_instance VI_1 { interface eth0
  virtual_router_id 51
  priority 100
  virtual_ipaddress { 192.0.2.10 } }
virtual_server 192.0.2.10 53 {
    protocol UDP
    lb_kind DR
    quorum 0
    real_server 198.51.100.21 53 { weight 1 }
}
""")
    valid(migration)
    assert migration.doc["ipvs"]["services"][0]["quorum"] == {"weight": 1}
    assert migration.decisions == ()
    assert ("keepalived.conf:9: quorum: note: 0: keepalived refuses a quorum below 1 and "
            "uses 1, its default; so does the YAML") in said(migration)


def test_garp_keywords_written_where_keepalived_does_not_read_them_are_ignored_as_it_did() -> None:
    migration = run("""\
global_defs {
    router_id lb1
    garp_master_delay 3
}
vrrp_instance VI_1 { interface eth0
  virtual_router_id 51
  priority 100
  garp_interval 0.5
  virtual_ipaddress { 192.0.2.10 } }
""")
    valid(migration)
    assert "announce" not in migration.doc["instances"][0]
    assert migration.decisions == ()
    assert [f.where for f in migration.findings] == ["keepalived.conf:3", "keepalived.conf:8"]
