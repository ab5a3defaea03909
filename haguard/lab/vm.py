"""A real Debian kernel under qemu, for what the host kernel cannot do (IPVS).

The guest has no disk: a tiny busybox initramfs loads virtio and 9p, mounts the host's
root read-only over 9p with a tmpfs overlay on top (so every host path is there and
writable, and nothing reaches the host), bind-mounts the Debian kernel's own modules
where modprobe looks for them, and starts a small agent on a virtio-serial port. The
host sends the agent commands (argument lists) and gets exit code and output back.

Everything is built from Debian packages: the kernel image that ``linux-image-amd64``
depends on (``apt-get download``), ``busybox-static`` and ``cpio``; it is cached under
``/var/cache/haguard/vm/<kernel version>``. qemu runs with ``-accel tcg`` (no KVM is
needed): timings inside are slow and only meaningful as ratios.
"""

from __future__ import annotations

import gzip
import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from haguard.adapters import process
from haguard.adapters.waiting import wait_until
from haguard.errors import LabError

CACHE_DIR = "/var/cache/haguard/vm"
# One file per running guest: who started it and where its qemu pid is, so a guest
# whose owner was killed (SIGKILL, a lost session) can still be found and ended.
REGISTRY_DIR = "/run/haguard-vm"
META_PACKAGE = "linux-image-amd64"
AGENT_PORT_NAME = "haguard.agent"
# Loaded by the initramfs before the host root can be mounted; the rest autoloads.
INIT_MODULES = ("virtio_pci", "9pnet_virtio", "9p", "overlay", "virtio_console")
BUSYBOX = "/bin/busybox"

_INIT = r"""#!/bin/busybox sh
/bin/busybox mkdir -p /bin /proc /sys /dev /host /upper /root
/bin/busybox --install -s /bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
for m in $(cat /modules/order); do insmod /modules/$m || echo "haguard-vm: insmod $m failed"; done
arg() { for w in $(cat /proc/cmdline); do case $w in "$1="*) echo "${w#*=}";; esac; done; }
mount -t 9p -o trans=virtio,version=9p2000.L,ro,msize=512000,cache=loose hostroot /host \
    || { echo "haguard-vm: cannot mount the host root"; poweroff -f; }
mount -t tmpfs -o size=75% tmpfs /upper
mkdir -p /upper/data /upper/work /root
mount -t overlay overlay -o lowerdir=/host,upperdir=/upper/data,workdir=/upper/work /root \
    || { echo "haguard-vm: overlay mount failed"; poweroff -f; }
for d in proc sys dev run tmp; do mkdir -p /root/$d; done
mount -t proc proc /root/proc
mount -t sysfs sysfs /root/sys
mount -t devtmpfs devtmpfs /root/dev
mkdir -p /root/dev/pts /root/dev/shm
mount -t devpts devpts /root/dev/pts
mount -t tmpfs tmpfs /root/dev/shm
# A clean /run (the host's holds its own pid files and netns mounts). /tmp stays the
# overlay's: a checkout or test file under the host's /tmp must be visible here.
mount -t tmpfs tmpfs /root/run
work=$(arg haguard.work)
if [ -n "$work" ]; then
    mkdir -p "/root$work"
    mount -t 9p -o trans=virtio,version=9p2000.L,msize=512000 work "/root$work"
fi
# The kernel's own modules where modprobe looks for them: in the guest's root for
# ipvsadm and friends, and in this initramfs for the kernel's own autoloading, which
# runs its helper here, outside the chroot (busybox's modprobe).
modules=$(arg haguard.modules)
for top in /root ""; do
    mkdir -p "$top/lib/modules/$(uname -r)"
    mount --bind "/root$modules" "$top/lib/modules/$(uname -r)"
done
echo /bin/modprobe > /proc/sys/kernel/modprobe
hostname haguard-vm
ip link set lo up 2>/dev/null
echo "haguard-vm: running $(arg haguard.run)"
chroot /root /bin/sh "$(arg haguard.run)"
echo "haguard-vm: exit $?"
poweroff -f
"""

@dataclass(frozen=True)
class Kernel:
    version: str
    root: str

    @property
    def vmlinuz(self) -> str:
        return f"{self.root}/boot/vmlinuz-{self.version}"

    @property
    def initrd(self) -> str:
        return f"{self.root}/haguard-initrd.gz"

    @property
    def modules(self) -> str:
        return f"{self.root}/lib/modules/{self.version}"


def _run(args: Sequence[str], cwd: str | None = None, timeout: float = 600) -> str:
    try:
        proc = subprocess.run(list(args), capture_output=True, text=True, cwd=cwd,
                              timeout=timeout, stdin=subprocess.DEVNULL)
    except FileNotFoundError:
        raise LabError(f"{args[0]}: not installed (see scripts/setup)") from None
    if proc.returncode != 0:
        raise LabError(f"{' '.join(args)}: {proc.stderr.strip() or 'exit ' + str(proc.returncode)}")
    return proc.stdout


def kernel_package() -> str:
    """The kernel image package that linux-image-amd64 depends on, e.g. linux-image-6.1.0-57-amd64."""
    out = _run(["apt-cache", "depends", META_PACKAGE])
    for line in out.splitlines():
        word = line.strip().split(":", 1)
        if word[0] == "Depends" and word[1].strip().startswith("linux-image-"):
            return word[1].strip()
    raise LabError(f"apt-cache depends {META_PACKAGE}: no linux-image dependency "
                   "(run apt-get update)")


def prepare_kernel(cache_dir: str = CACHE_DIR) -> Kernel:
    """Download, unpack and index the Debian kernel and build the initramfs (cached)."""
    package = kernel_package()
    version = package.removeprefix("linux-image-")
    kernel = Kernel(version=version, root=os.path.join(cache_dir, version))
    if os.path.exists(os.path.join(kernel.root, ".ready")):
        return kernel
    os.makedirs(cache_dir, mode=0o755, exist_ok=True)
    staging = tempfile.mkdtemp(prefix=f".{version}.", dir=cache_dir)
    try:
        _run(["apt-get", "download", package], cwd=staging)
        deb = next(f for f in os.listdir(staging) if f.endswith(".deb"))
        unpacked = os.path.join(staging, "root")
        _run(["dpkg-deb", "-x", os.path.join(staging, deb), unpacked])
        os.unlink(os.path.join(staging, deb))
        _run(["depmod", "-b", unpacked, version])
        staged = Kernel(version=version, root=unpacked)
        _build_initrd(staged)
        open(os.path.join(unpacked, ".ready"), "w").close()
        if os.path.exists(kernel.root):
            shutil.rmtree(kernel.root)
        os.rename(unpacked, kernel.root)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return kernel


def _build_initrd(kernel: Kernel) -> None:
    if not os.path.exists(BUSYBOX):
        raise LabError(f"{BUSYBOX}: not installed (apt-get install busybox-static)")
    order: list[str] = []
    with tempfile.TemporaryDirectory() as tree:
        os.makedirs(f"{tree}/bin")
        os.makedirs(f"{tree}/modules")
        shutil.copy2(BUSYBOX, f"{tree}/bin/busybox")
        for module in INIT_MODULES:
            out = _run(["modprobe", "-d", kernel.root, "-S", kernel.version, "--show-depends",
                        module])
            for line in out.splitlines():
                words = line.split()
                if len(words) >= 2 and words[0] == "insmod":
                    name = os.path.basename(words[1])
                    if name not in order:
                        shutil.copy2(words[1], f"{tree}/modules/{name}")
                        order.append(name)
        with open(f"{tree}/modules/order", "w", encoding="ascii") as fh:
            fh.write("\n".join(order) + "\n")
        with open(f"{tree}/init", "w", encoding="ascii") as fh:
            fh.write(_INIT)
        os.chmod(f"{tree}/init", 0o755)
        names = []
        for base, dirs, files in os.walk(tree):
            for name in dirs + files:
                names.append(os.path.relpath(os.path.join(base, name), tree))
        archive = subprocess.run(["cpio", "-o", "-H", "newc", "--quiet"], cwd=tree,
                                 input="\n".join(names).encode(), capture_output=True)
        if archive.returncode != 0:
            raise LabError(f"cpio: {archive.stderr.decode().strip()}")
    with gzip.open(kernel.initrd, "wb", compresslevel=1) as fh:
        fh.write(archive.stdout)


@dataclass
class Result:
    argv: list[str]
    returncode: int
    stdout: str
    stderr: str
    duration_s: float


class VM:
    """One booted guest with its agent; use as a context manager (always powered off)."""

    def __init__(self, kernel: Kernel, memory_mb: int = 2048, cpus: int = 2,
                 python: str | None = None, boot_timeout: float = 300) -> None:
        self.kernel = kernel
        self.memory_mb = memory_mb
        self.cpus = cpus
        self.python = python or _venv_python()
        self.boot_timeout = boot_timeout
        self.work = tempfile.mkdtemp(prefix="haguard-vm-")
        self.console = os.path.join(self.work, "console.log")
        self.pid_file = os.path.join(self.work, "qemu.pid")
        self.registry_entry = os.path.join(REGISTRY_DIR, os.path.basename(self.work) + ".json")
        self._proc: subprocess.Popen[bytes] | None = None
        self._sock: socket.socket | None = None
        self._file: Any = None
        self._next_id = 0
        self._buf = b""
        self.boot_seconds: float | None = None

    def __enter__(self) -> VM:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> None:
        started = time.monotonic()
        run_script = os.path.join(self.work, "run.sh")
        with open(run_script, "w", encoding="ascii") as fh:
            fh.write("#!/bin/sh\n# The guest's job: serve the host's commands until told to stop.\n"
                     "export PYTHONDONTWRITEBYTECODE=1 PATH=/usr/sbin:/usr/bin:/sbin:/bin\n"
                     f"exec {self.python} -m haguard.lab.vmagent --name {AGENT_PORT_NAME}\n")
        sock_path = os.path.join(self.work, "agent.sock")
        append = " ".join(["console=ttyS0", "panic=-1", "quiet", "loglevel=3",
                           f"haguard.run={run_script}", f"haguard.work={self.work}",
                           f"haguard.modules={self.kernel.modules}"])
        _register(self.registry_entry, self.work)
        args = ["qemu-system-x86_64", "-accel", "tcg", "-m", str(self.memory_mb),
                "-pidfile", self.pid_file,
                "-smp", str(self.cpus), "-display", "none", "-monitor", "none", "-no-reboot",
                "-nic", "none", "-serial", f"file:{self.console}",
                "-kernel", self.kernel.vmlinuz, "-initrd", self.kernel.initrd, "-append", append,
                "-virtfs", "local,path=/,mount_tag=hostroot,security_model=none,readonly=on,"
                "multidevs=remap",
                "-virtfs", f"local,path={self.work},mount_tag=work,security_model=none",
                "-device", "virtio-serial",
                "-chardev", f"socket,id=agent,path={sock_path},server=on,wait=off",
                "-device", f"virtserialport,chardev=agent,name={AGENT_PORT_NAME}"]
        try:
            self._proc = subprocess.Popen(args, stdin=subprocess.DEVNULL,
                                          stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        except FileNotFoundError:
            raise LabError("qemu-system-x86_64: not installed (apt-get install "
                           "qemu-system-x86)") from None
        deadline = time.monotonic() + 30
        while not os.path.exists(sock_path):
            self._check_alive()
            if time.monotonic() > deadline:
                raise LabError("qemu did not create its agent socket within 30 s")
            time.sleep(0.05)
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._sock.connect(sock_path)
        self._file = self._sock.makefile("rwb", buffering=0)
        hello = self._read_line(self.boot_timeout)
        if not hello.get("ready"):
            raise LabError(f"the guest agent said {hello!r} instead of ready")
        self.boot_seconds = time.monotonic() - started

    def _check_alive(self) -> None:
        if self._proc is not None and self._proc.poll() is not None:
            err = self._proc.stderr.read().decode() if self._proc.stderr else ""
            raise LabError(f"qemu exited with {self._proc.returncode}: {err.strip()}\n"
                           f"console:\n{self.console_tail()}")

    def console_tail(self, lines: int = 40) -> str:
        try:
            with open(self.console, encoding="utf-8", errors="replace") as fh:
                return "".join(fh.readlines()[-lines:])
        except OSError:
            return ""

    def _read_line(self, timeout: float) -> dict[str, Any]:
        assert self._sock is not None and self._file is not None
        deadline = time.monotonic() + timeout
        while True:
            if b"\n" in self._buf:
                line, _, self._buf = self._buf.partition(b"\n")
                try:
                    reply: dict[str, Any] = json.loads(line)
                except ValueError:
                    continue
                return reply
            self._check_alive()
            left = deadline - time.monotonic()
            if left <= 0:
                raise LabError(f"no answer from the guest within {timeout:.0f} s; console:\n"
                               f"{self.console_tail()}")
            self._sock.settimeout(min(left, 1.0))
            try:
                chunk = self._sock.recv(1 << 20)
            except TimeoutError:
                continue
            if not chunk:
                raise LabError(f"the guest agent hung up; console:\n{self.console_tail()}")
            self._buf += chunk

    def run(self, argv: Sequence[str], timeout: float = 300, check: bool = False,
            env: dict[str, str] | None = None, cwd: str | None = None) -> Result:
        """Run one command in the guest (argument list, no shell) and wait for it."""
        assert self._file is not None
        self._next_id += 1
        request = {"id": self._next_id, "argv": list(argv), "timeout": timeout,
                   "env": env or {}, "cwd": cwd}
        self._file.write(json.dumps(request).encode() + b"\n")
        answer = self._read_line(timeout + 30)
        result = Result(argv=list(argv), returncode=answer.get("rc", -1),
                        stdout=answer.get("stdout", ""), stderr=answer.get("stderr", ""),
                        duration_s=answer.get("duration_s", 0.0))
        if check and result.returncode != 0:
            raise LabError(f"in the VM: {' '.join(argv)} exited {result.returncode}:\n"
                           f"{result.stdout}\n{result.stderr}")
        return result

    def spawn(self, argv: Sequence[str], out: str, env: dict[str, str] | None = None) -> int:
        """Start a process in the guest that outlives the call; its output goes to ``out``."""
        assert self._file is not None
        self._next_id += 1
        request = {"id": self._next_id, "op": "spawn", "argv": list(argv), "out": out,
                   "env": env or {}}
        self._file.write(json.dumps(request).encode() + b"\n")
        answer = self._read_line(60)
        if answer.get("rc") != 0:
            raise LabError(f"in the VM: cannot start {' '.join(argv)}: {answer.get('stderr')}")
        return int(answer["pid"])

    def stop(self) -> None:
        """Ask the agent to power off; end qemu by its pid if it does not go.

        The guest keeps nothing worth a clean shutdown (its disk is a tmpfs), so an agent
        that is still busy with a command (an interrupted run) is not waited for long.
        """
        if self._file is not None:
            try:
                self._file.write(b'{"op": "poweroff"}\n')
            except OSError:
                pass
        if self._proc is not None:
            try:
                self._proc.wait(5 if self._file is not None else 0)
            except subprocess.TimeoutExpired:
                pass
            process.stop_child(self._proc)
        if self._sock is not None:
            self._sock.close()
        shutil.rmtree(self.work, ignore_errors=True)
        _unregister(self.registry_entry)


def _register(entry: str, work: str) -> None:
    os.makedirs(REGISTRY_DIR, mode=0o755, exist_ok=True)
    me = os.getpid()
    with open(entry, "w", encoding="utf-8") as fh:
        json.dump({"owner": me, "owner_start_ticks": process.start_ticks(me), "work": work}, fh)


def _unregister(entry: str) -> None:
    try:
        os.unlink(entry)
    except FileNotFoundError:
        pass


def remove_orphans(registry: str = REGISTRY_DIR) -> list[str]:
    """End every guest whose owner is gone (by its recorded qemu pid) and remove its files."""
    done: list[str] = []
    try:
        names = sorted(os.listdir(registry))
    except FileNotFoundError:
        return done
    for name in names:
        entry = os.path.join(registry, name)
        try:
            with open(entry, encoding="utf-8") as fh:
                record = json.load(fh)
            work = str(record["work"])
        except (OSError, ValueError, KeyError):
            continue
        if process.same_process(int(record.get("owner", 0)), record.get("owner_start_ticks")):
            continue
        pid = process.pid_from_file(os.path.join(work, "qemu.pid"))
        # The pid file names the guest only while that pid still runs qemu on this work dir.
        if pid and process.terminate_if(pid, "qemu-system", work):
            if not wait_until(lambda: not process.alive(pid), 10, step=0.05):
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            done.append(f"ended the VM of pid {record.get('owner')}, which is gone (qemu pid {pid})")
        if os.path.isdir(work):
            shutil.rmtree(work, ignore_errors=True)
            done.append(f"removed {work}")
        _unregister(entry)
    return done


def _venv_python() -> str:
    import sys

    return sys.executable
