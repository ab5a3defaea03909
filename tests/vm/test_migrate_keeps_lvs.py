"""`haguard migrate` keeps an LVS director's behaviour, in the real kernel: the same
director run by keepalived from an operator's keepalived.conf and by haguard from the
migrated YAML builds the same IPVS table, holds the same VIPs, and takes a failed real
server out the same way (tests/vm/migrate_proof.py runs both in the VM)."""

from __future__ import annotations

import json
import os
import tempfile

from haguard.lab.vm import VM
from tests.vm.conftest import REPO
from tests.vm.migrate_proof import CHECK_SCRIPT, NOTE_SCRIPT

# An operator's file, written to use the keywords a migration must carry into the real
# kernel: DR with persistence, wlc and weights; an HTTP check on one real server and a
# TCP check on the other (keepalived's defaults where it says nothing); a sorry server;
# a UDP service with one-packet scheduling (ops); a virtual_server_group of two VIPs;
# lvs_timeouts; a VIP on another device (dev eth1); a tracked script whose weight shows
# in the adverts' priority; the operator's own notify_master command; a quorum of 3 (the
# weights' sum), so rs1's failure loses it, the sorry server stands in alone and the
# quorum commands note each change; and the other checkers, SSL_GET on a TLS service,
# DNS_CHECK on the UDP one and MISC_CHECK (an operator's script) on the group's, each of
# which takes rs2 out of its service when rs2 fails it. Their timeouts are generous: a
# TLS handshake, a script's fork or a DNS round trip by Python under emulation, beside
# the other tiers, can take seconds, and a flapping check would leave no steady table.
ORIGINAL = """\
global_defs {
    router_id lb1
    enable_script_security
    script_user root
    lvs_timeouts tcp 7200 tcpfin 60 udp 120
}
vrrp_script chk_ok {
    script "/bin/true"
    interval 1
    weight 10
}
vrrp_instance VI_1 {
    state MASTER
    interface eth0
    virtual_router_id 51
    priority 150
    advert_int 1
    track_script {
        chk_ok
    }
    notify_master "@NOTE@ master"
    virtual_ipaddress {
        192.0.2.100
        192.0.2.101
        198.51.100.100/24 dev eth1
    }
}
virtual_server_group web {
    192.0.2.100 8080
    192.0.2.101 8080
}
virtual_server 192.0.2.100 80 {
    delay_loop 2
    lb_algo wlc
    lb_kind DR
    protocol TCP
    persistence_timeout 300
    quorum 3
    hysteresis 0
    quorum_up "@NOTE@ quorum_up"
    quorum_down "@NOTE@ quorum_down"
    sorry_server 192.0.2.23 80
    real_server 192.0.2.21 80 {
        weight 2
        HTTP_GET {
            url {
                path /
                status_code 200
            }
            connect_timeout 1
            nb_get_retry 1
            delay_before_retry 1
        }
    }
    real_server 192.0.2.22 80 {
        weight 1
        TCP_CHECK {
            connect_timeout 1
        }
    }
}
virtual_server group web {
    delay_loop 6
    lb_algo rr
    lb_kind DR
    protocol TCP
    real_server 192.0.2.22 8080 {
        weight 1
        MISC_CHECK {
            misc_path "@CHECK@ 192.0.2.22"
            misc_timeout 5
        }
    }
}
virtual_server 192.0.2.100 443 {
    delay_loop 6
    lb_algo rr
    lb_kind DR
    protocol TCP
    real_server 192.0.2.21 443 {
        weight 1
        SSL_GET {
            url {
                path /
                status_code 200
            }
            connect_timeout 5
        }
    }
    real_server 192.0.2.22 443 {
        weight 1
        SSL_GET {
            url {
                path /
                status_code 200
            }
            connect_timeout 5
        }
    }
}
virtual_server 192.0.2.100 53 {
    delay_loop 6
    lb_algo rr
    lb_kind DR
    protocol UDP
    ops
    real_server 192.0.2.22 53 {
        weight 1
        DNS_CHECK {
            type A
            name www.example.org
            connect_timeout 5
            retry 1
            delay_before_retry 1
        }
    }
}
"""


def proved(vm: VM, original: str, proof: str = "migrate_proof.py") -> tuple[dict, dict]:
    """What keepalived from ``original`` and haguard from its migration did in the VM:
    the two observations of the guest script ``proof`` (tests/vm/)."""
    work = tempfile.mkdtemp(prefix="migrate-", dir=vm.work)
    conf = os.path.join(work, "keepalived.conf")
    with open(conf, "w", encoding="utf-8") as fh:
        fh.write(original.replace("@NOTE@", NOTE_SCRIPT).replace("@CHECK@", CHECK_SCRIPT))
    result = vm.run([vm.python, os.path.join(REPO, "tests", "vm", proof), work, conf],
                    timeout=900, env={"PYTHONPATH": REPO})
    assert result.returncode == 0, result.stderr[-4000:]
    found = json.loads(result.stdout)
    return found["keepalived"], found["haguard"]


def test_keepalived_and_haguard_from_its_migration_build_the_same_table(vm: VM) -> None:
    by_keepalived, by_haguard = proved(vm, ORIGINAL)
    assert by_haguard["vips"] == by_keepalived["vips"] == [
        "192.0.2.100/32", "192.0.2.101/32", "198.51.100.100/24"]
    assert by_haguard["table"] == by_keepalived["table"]
    assert any(line.startswith("-A -u 192.0.2.100:53") and " -o" in line
               for line in by_haguard["table"])                      # ops
    assert len([line for line in by_haguard["table"] if ":8080 " in line and
                line.startswith("-A")]) == 2                          # the group's two VIPs
    assert by_haguard["timeouts"] == by_keepalived["timeouts"] == \
        "Timeout (tcp tcpfin udp): 7200 60 120"
    # The adverts: same VRID, interval and version, and the same priority, which the
    # tracked script's weight raised from 150 to 160 in both.
    assert by_haguard["adverts"]["vrrp"] == by_keepalived["adverts"]["vrrp"] == \
        {"vrid": 51, "priority": 160, "advert_int_s": 1.0, "version": 2}
    # notify_master and, as the service starts with quorum, quorum_up: two processes of
    # keepalived's (VRRP, checker), so in either order.
    assert sorted(by_haguard["notified"]) == sorted(by_keepalived["notified"]) == \
        ["master", "quorum_up"]
    assert by_haguard["rs1_down"]["table"] == by_keepalived["rs1_down"]["table"]
    down = [line for line in by_haguard["rs1_down"]["table"] if ":80 " in line]
    assert not any("192.0.2.21" in line or "192.0.2.22" in line for line in down)
    assert any("192.0.2.23" in line for line in down)          # the sorry server alone
    for phase in ("rs1_down", "rs1_back"):
        assert sorted(by_haguard[phase]["notified"]) == \
            sorted(by_keepalived[phase]["notified"]), phase
    assert by_haguard["rs1_down"]["notified"][-1:] == ["quorum_down"]
    assert by_haguard["rs1_back"]["notified"][-1:] == ["quorum_up"]
    # SSL_GET, DNS_CHECK and MISC_CHECK: rs2 up in each service while it answers, out of
    # each once it fails them, in both runs alike.
    for service in ("-t 192.0.2.100:443", "-u 192.0.2.100:53", "-t 192.0.2.100:8080",
                    "-t 192.0.2.101:8080"):
        assert any(line.startswith(f"-a {service} -r 192.0.2.22") for line in by_haguard["table"])
    assert by_haguard["rs2_failed"]["table"] == by_keepalived["rs2_failed"]["table"]
    assert not any(line.startswith(("-a -t 192.0.2.100:443 -r 192.0.2.22",
                                    "-a -u 192.0.2.100:53 -r 192.0.2.22",
                                    "-a -t 192.0.2.100:8080 -r 192.0.2.22"))
                   for line in by_haguard["rs2_failed"]["table"])
    assert any(line.startswith("-a -t 192.0.2.100:443 -r 192.0.2.21")
               for line in by_haguard["rs2_failed"]["table"])


# An operator's file tracking a process (keepalived's process-events connector: the
# VM's own network namespace, see tests/vm/track_process_proof.py).
TRACKED = """\
global_defs {
    router_id lb1
}
vrrp_track_process chk_sleeper {
    process tpsleeper
    weight 10
}
vrrp_instance VI_9 {
    state MASTER
    interface hgtp0
    virtual_router_id 61
    priority 100
    advert_int 1
    track_process {
        chk_sleeper
    }
    virtual_ipaddress {
        203.0.113.100
    }
}
"""


def test_a_tracked_process_moves_the_priority_alike_under_keepalived_and_the_migration(
        vm: VM) -> None:
    by_keepalived, by_haguard = proved(vm, TRACKED, "track_process_proof.py")
    # The process's weight while it runs, none once it is gone, and back with it.
    assert by_haguard == by_keepalived == {"running": 110, "gone": 100, "again": 110}
