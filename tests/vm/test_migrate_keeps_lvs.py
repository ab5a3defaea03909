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

# An operator's file: DR, a persistent web service with an HTTP check on one real server
# and a TCP check on the other (keepalived's defaults where it says nothing), a sorry
# server, a weight, wlc.
ORIGINAL = """\
global_defs {
    router_id lb1
}
vrrp_instance VI_1 {
    state MASTER
    interface eth0
    virtual_router_id 51
    priority 150
    advert_int 1
    virtual_ipaddress {
        192.0.2.100
    }
}
virtual_server 192.0.2.100 80 {
    delay_loop 2
    lb_algo wlc
    lb_kind DR
    protocol TCP
    persistence_timeout 300
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
"""


def test_keepalived_and_haguard_from_its_migration_build_the_same_table(vm: VM) -> None:
    work = tempfile.mkdtemp(prefix="migrate-", dir=vm.work)
    conf = os.path.join(work, "keepalived.conf")
    with open(conf, "w", encoding="utf-8") as fh:
        fh.write(ORIGINAL)
    result = vm.run([vm.python, os.path.join(REPO, "tests", "vm", "migrate_proof.py"), work,
                     conf], timeout=900, env={"PYTHONPATH": REPO})
    assert result.returncode == 0, result.stderr[-4000:]
    found = json.loads(result.stdout)
    by_keepalived, by_haguard = found["keepalived"], found["haguard"]
    assert by_haguard["vips"] == by_keepalived["vips"] == ["192.0.2.100/32"]
    assert by_haguard["table"] == by_keepalived["table"]
    assert by_haguard["rs1_down"]["table"] == by_keepalived["rs1_down"]["table"]
    assert not any("192.0.2.21" in line for line in by_haguard["rs1_down"]["table"])
