"""The Vagrantfile and the topology it reads, without booting anything (seconds)."""

from __future__ import annotations

import ipaddress
import os
import shutil
import subprocess
import tempfile
from types import ModuleType

from haguard.core.config import loads
from haguard.lab.runner import load_lab
from tests.conftest import require
from tests.vagrant.conftest import REPO


def test_vagrantfile_validates_offline() -> None:
    require(shutil.which("vagrant") is not None,
            "vagrant is not installed (vagrant/run installs it; see scripts/setup)")
    with tempfile.TemporaryDirectory() as home:
        # A machine state of its own: a running topology's is not this test's business.
        env = dict(os.environ, VAGRANT_HOME=home, VAGRANT_CWD=os.path.join(REPO, "vagrant"),
                   VAGRANT_DOTFILE_PATH=os.path.join(home, "dotfile"),
                   VAGRANT_CHECKPOINT_DISABLE="1",
                   HAGUARD_PYTHON=os.path.join(REPO, ".venv", "bin", "python"))
        proc = subprocess.run(["vagrant", "validate"], env=env, capture_output=True,
                              text=True, timeout=120, stdin=subprocess.DEVNULL)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "validated successfully" in proc.stdout


def test_vms_are_the_labs_hosts(topology: ModuleType) -> None:
    """Same names and addresses as `haguard lab` builds from the same config; every
    node config valid for haguard, with the VMs' interface names."""
    layout = topology.build()
    lab, _ = load_lab("vagrant", [os.path.join(REPO, p) for p in layout.configs])
    lab_hosts = {d.node: d.legs[0].ipv4 for d in lab.directors}
    lab_hosts.update({r.node: r.leg.ipv4 for r in lab.real_servers})
    lab_hosts["client"] = lab.client.legs[0].ipv4
    assert {h.name: h.interfaces[0].address for h in layout.hosts} == lab_hosts
    documentation = [ipaddress.ip_network(n) for n in
                     ("192.0.2.0/24", "198.51.100.0/24", "203.0.113.0/24", "2001:db8::/32")]
    for net in (*layout.networks, layout.management):
        cidr = ipaddress.ip_network(net["cidr"])
        assert any(cidr.version == d.version and cidr.subnet_of(d) for d in documentation), cidr
    for host in layout.hosts:
        if host.config is None:
            continue
        config = loads(topology._yaml(host, layout.configs), f"{host.name}.yaml")
        if host.role == "director":
            assert {i.interface for i in config.instances} == {"eth1"}
            assert config.ipvs is not None
        else:
            assert config.realserver is not None
            assert [str(v) for v in config.realserver.vips] == list(layout.vips)
