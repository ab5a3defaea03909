"""Real-kernel tier: a Debian kernel with IPVS under qemu (the host kernel has none)."""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Iterator

import pytest
import yaml

from haguard.lab.vm import VM, Result, prepare_kernel
from tests.conftest import require


def vm_prerequisites() -> str | None:
    if os.geteuid() != 0:
        return "the VM tier needs root (it downloads the kernel package and runs qemu)"
    for tool in ("qemu-system-x86_64", "cpio", "apt-get", "dpkg-deb", "depmod", "modprobe"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed (see scripts/setup)"
    if not os.path.exists("/bin/busybox"):
        return "busybox-static is not installed (see scripts/setup)"
    return None


@pytest.fixture(scope="session")
def vm() -> Iterator[VM]:
    why = vm_prerequisites()
    require(why is None, why or "")
    with VM(prepare_kernel()) as machine:
        yield machine


REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


class GuestLab:
    """A `haguard lab` running inside the VM, driven through its commands."""

    def __init__(self, vm: VM, name: str, config: str) -> None:
        self.vm = vm
        self.name = name
        self.config = os.path.join(REPO, config)
        self.python = vm.python

    def haguard(self, *args: str, ns: str | None = None, timeout: float = 600,
                check: bool = True) -> Result:
        prefix = ["ip", "netns", "exec", ns] if ns else []
        return self.vm.run([*prefix, self.python, "-m", "haguard", *args], timeout=timeout,
                           check=check)

    def up(self) -> None:
        self.haguard("lab", "up", "--name", self.name, "-c", self.config, timeout=900)

    def down(self) -> None:
        self.haguard("lab", "down", "--name", self.name, check=False)

    def ns(self, role: str) -> str:
        return f"hg-{self.name}-{role}"

    def record(self) -> dict:
        out = self.vm.run(["cat", f"/run/haguard-lab/{self.name}/lab.json"], check=True).stdout
        return json.loads(out)

    def director_ns(self, node: str) -> str:
        return self.record()["directors"][node]["namespace"]

    def director_config(self, node: str) -> dict:
        path = self.record()["directors"][node]["config"]
        return yaml.safe_load(self.vm.run(["cat", path], check=True).stdout)

    def director_config_path(self, node: str) -> str:
        return self.record()["directors"][node]["config"]

    def write_config(self, doc: dict, name: str) -> str:
        """A config file the guest can read: in the VM's shared work directory."""
        path = os.path.join(self.vm.work, name)
        with open(path, "w", encoding="utf-8") as fh:
            yaml.safe_dump(doc, fh, sort_keys=False)
        return path

    def status(self) -> dict:
        return json.loads(self.haguard("lab", "status", "--name", self.name, "--json",
                                       check=False).stdout)

    def is_master(self, node: str, record: dict) -> bool:
        """Recorded MASTER (complete) for every instance, and every VIP on the node.

        Cheap on purpose: `cat` and `ip`, no Python start-up (seconds under emulation).
        """
        info = record["directors"][node]
        config = self.director_config(node)
        names = [i["name"] for i in config["instances"]]
        files = [f"{info['state_dir']}/{n}.json" for n in names]
        text = self.vm.run(["cat", *files]).stdout
        decoder, pos, states = json.JSONDecoder(), 0, []
        while pos < len(text.rstrip()):
            obj, end = decoder.raw_decode(text, pos)
            states.append(obj)
            pos = end
            while pos < len(text) and text[pos].isspace():
                pos += 1
        if len(states) != len(names) or not all(
                st.get("state") == "MASTER" and st.get("complete") for st in states):
            return False
        links = json.loads(self.vm.run(["ip", "-n", info["namespace"], "-j", "addr"]).stdout)
        present = {a["local"] for link in links for a in link.get("addr_info", [])}
        vips = {str(v).split("/")[0] if isinstance(v, str) else str(v["address"]).split("/")[0]
                for i in config["instances"] for v in i["vips"]}
        return vips <= present

    def wait_master(self, node: str, timeout: float = 300) -> None:
        deadline = time.monotonic() + timeout
        record = self.record()
        while time.monotonic() < deadline:
            if self.is_master(node, record):
                return
            time.sleep(1)
        raise AssertionError(f"{node} did not become MASTER in {timeout} s: {self.status()}")

    def fetch(self, count: int = 6, source: str | None = None, host: str = "192.0.2.100",
              port: int = 80) -> dict:
        args = [self.python, "-m", "haguard.adapters.httpprobe", "fetch", host, "--port", str(port),
                "--count", str(count)]
        if source:
            args += ["--source", source]
        out = self.vm.run(["ip", "netns", "exec", self.ns("cl"), *args], check=True).stdout
        return json.loads(out)

    def ipvsadm(self, node: str, *args: str) -> str:
        return self.vm.run(["ip", "netns", "exec", self.director_ns(node), "ipvsadm", *args],
                           check=True).stdout

    def keepalived_pid(self, node: str) -> int:
        return int(self.record()["pids"][node])


def guest_lab(vm: VM, name: str, config: str) -> Iterator[GuestLab]:
    lab = GuestLab(vm, name, config)
    lab.up()
    try:
        yield lab
    finally:
        lab.down()
