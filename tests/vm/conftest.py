"""Real-kernel tier: a Debian kernel with IPVS under qemu (the host kernel has none)."""

from __future__ import annotations

import os
import shutil
from typing import Iterator

import pytest

from haguard.lab.vm import VM, prepare_kernel
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
