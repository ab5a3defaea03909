"""`haguard lab`: build the namespace topology, run keepalived + haguard, fail over.

Everything the lab creates is recorded in ``<workdir>/lab.json`` as it is created, so
``lab down`` (or the cleanup of an interrupted ``lab run``) removes exactly that:
processes by their own pid, then the namespaces, then the work directory.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

import yaml

from haguard.adapters import keepalived as keepalived_adapter
from haguard.adapters import process
from haguard.adapters.files import load_config, read_jsonl, write_atomic
from haguard.app.hooks import install as install_hooks
from haguard.core.config import Config
from haguard.core.render import lever_files, render
from haguard.errors import BadInput, LabError
from haguard.lab import netns
from haguard.lab.timeline import Timeline, build_timeline
from haguard.lab.topology import (
    EXEC_ROOT,
    LAB_ROOT,
    Director,
    IPNetwork,
    Lab,
    RealServerNode,
    build,
    check_lab_name,
)

Say = Callable[[str], None]

# Inside the lab's own namespaces only.
HOST_SYSCTLS = (
    ("net.ipv6.conf.all.accept_dad", "0"),
    ("net.ipv6.conf.default.accept_dad", "0"),
    ("net.ipv6.conf.all.accept_ra", "0"),
    ("net.ipv6.conf.default.accept_ra", "0"),
)


def load_lab(name: str, config_paths: list[str], agent: bool = False,
             outside: tuple[IPNetwork, ...] = ()) -> tuple[Lab, list[Config]]:
    """Validate the operator's config(s) and lay out the lab for them.

    ``agent`` runs `haguard agent` on the directors even when the configs have no
    ``agent`` section (the lab adds one). Real servers in ``outside`` networks get no
    lab host (see topology.build).
    """
    configs = [load_config(p) for p in config_paths]
    docs = []
    for path in config_paths:
        with open(path, encoding="utf-8") as fh:
            doc = yaml.safe_load(fh)
        if agent and isinstance(doc, dict):
            doc.setdefault("agent", {})
        docs.append(doc)
    return build(name, configs, docs, hooks_in_exec_root=not holds_programs(LAB_ROOT),
                 outside=outside), configs


def holds_programs(path: str) -> bool:
    """Whether programs can run from ``path`` (or, while it does not exist, from the
    nearest directory above it): not on a file system mounted noexec."""
    while not os.path.exists(path) and path != os.path.dirname(path):
        path = os.path.dirname(path)
    return not os.statvfs(path).f_flag & os.ST_NOEXEC


def time_scale() -> float:
    """How much slower than a real machine this one is: 1, or 10 inside haguard's VM.

    Under qemu without KVM every Python start takes seconds; waits stretch accordingly.
    HAGUARD_LAB_TIME_SCALE overrides it.
    """
    override = os.environ.get("HAGUARD_LAB_TIME_SCALE")
    if override:
        return float(override)
    try:
        with open("/proc/cmdline", encoding="ascii", errors="replace") as fh:
            return 10.0 if "haguard.run=" in fh.read() else 1.0
    except OSError:
        return 1.0


def lab_file(name: str) -> str:
    return f"{LAB_ROOT}/{name}/lab.json"


def read_record(name: str) -> dict[str, Any] | None:
    try:
        with open(lab_file(name), encoding="utf-8") as fh:
            record: dict[str, Any] = json.load(fh)
            return record
    except (FileNotFoundError, ValueError):
        return None


def require_root() -> None:
    if os.geteuid() != 0:
        raise LabError("the lab needs root (it creates network namespaces and runs "
                       "keepalived); run it with sudo")


class LabRunner:
    """Owns one lab's life: up, wait, failover, down."""

    def __init__(self, lab: Lab, sources: list[str], say: Say = lambda s: None,
                 record: dict[str, Any] | None = None,
                 render_fn: Callable[[Config], str] = render) -> None:
        self.lab = lab
        self.say = say
        # What becomes keepalived.conf; benchmarks swap in keepalived's own VIP handling.
        self.render_fn = render_fn
        self.record: dict[str, Any] = record or {
            "name": lab.name, "workdir": lab.workdir, "sources": [os.path.abspath(p) for p in sources],
            "namespaces": [], "pids": {}, "directors": {}, "client": lab.client.namespace,
            "vips": list(lab.vips)}
        self._children: dict[int, subprocess.Popen[bytes]] = {}
        self._configs: dict[str, Config] = {}
        self.claimed = False
        self.time_scale = time_scale()

    @classmethod
    def attach(cls, name: str, say: Say = lambda s: None) -> LabRunner:
        """A runner for a lab brought up earlier (by another process)."""
        record = read_record(check_lab_name(name))
        if record is None:
            raise BadInput(f"lab {name!r} is not up (no {lab_file(name)}); run `haguard lab up`")
        lab, _ = load_lab(name, record["sources"], agent=bool(record.get("agent")))
        return cls(lab, record["sources"], say, record)

    def _config(self, node: str) -> Config:
        if node not in self._configs:
            self._configs[node] = load_config(self.record["directors"][node]["config"])
        return self._configs[node]

    # ------------------------------------------------------------------ bookkeeping
    def _save(self) -> None:
        write_atomic(lab_file(self.lab.name), json.dumps(self.record, indent=1, sort_keys=True))

    # ------------------------------------------------------------------ up
    def claim(self) -> None:
        """Check the lab can be built and take its name; from here on, down() cleans up.

        Raises without touching anything when a lab of this name exists: its owner's.
        """
        require_root()
        for tool in ("ip", "ping", "sysctl", "setsid"):
            if shutil.which(tool) is None:
                raise LabError(f"{tool}: not installed (see scripts/setup)")
        if keepalived_adapter.binary() is None:
            raise LabError("keepalived: not installed (apt-get install keepalived)")
        if os.path.exists(lab_file(self.lab.name)) or any(netns.exists(n) for n in self.lab.namespaces):
            raise BadInput(f"lab {self.lab.name!r} is already up; run "
                           f"`haguard lab down --name {self.lab.name}` first")
        os.makedirs(self.lab.workdir, mode=0o755, exist_ok=True)
        self.record["created"] = time.time()
        self._save()
        self.claimed = True

    def up(self) -> None:
        """Build the topology and start keepalived on both directors."""
        if not self.claimed:
            self.claim()
        install_hooks(self.lab.hooks_dir)
        for ns in self.lab.namespaces:
            netns.create(ns)
            self.record["namespaces"].append(ns)
            self._save()
        for bridge in self.lab.bridges:
            netns.add_bridge(self.lab.switch_namespace, bridge)
        hosts: list[tuple[str, Any]] = [(self.lab.client.namespace, self.lab.client.legs)]
        hosts += [(d.namespace, d.legs) for d in self.lab.directors]
        for ns, legs in hosts:
            for key, value in HOST_SYSCTLS:
                netns.set_sysctl(ns, key, value)

            for leg in legs:
                netns.add_port(self.lab.switch_namespace, self.lab.bridges[leg.segment],
                               leg.port, ns, leg.ifname)
                netns.add_address(ns, leg.ifname, leg.ipv4)
                netns.add_address(ns, leg.ifname, leg.ipv6)
                netns.link_up(ns, leg.ifname)
                if ns == self.lab.client.namespace and self.time_scale > 1:
                    # Under emulation a takeover takes tens of seconds; a client that would
                    # learn the new owner from the announcement on real hardware must not
                    # re-ask on its own first just because the clock runs slow.
                    for family in ("ipv4", "ipv6"):
                        netns.set_sysctl(ns, f"net.{family}.neigh.{leg.ifname}."
                                         "base_reachable_time_ms",
                                         str(int(30000 * self.time_scale)))
        for prefix, ifname in self.lab.client.onlink_routes:
            netns.add_route(self.lab.client.namespace, prefix, ifname)
        for address in self.lab.client.extra_ipv4:
            netns.add_address(self.lab.client.namespace, self.lab.client.legs[0].ifname, address)
        for rs in self.lab.real_servers:
            self._start_real_server(rs)
        for director in self.lab.directors:
            self._start_director(director)
        self.say(f"lab {self.lab.name} is up: directors "
                 + ", ".join(f"{d.node} ({d.namespace})" for d in self.lab.directors)
                 + f", client {self.lab.client.namespace}, switch {self.lab.switch_namespace}")

    def _start_real_server(self, rs: RealServerNode) -> None:
        ns = rs.namespace
        for key, value in HOST_SYSCTLS:
            netns.set_sysctl(ns, key, value)
        netns.add_port(self.lab.switch_namespace, self.lab.bridges[rs.leg.segment], rs.leg.port,
                       ns, rs.leg.ifname)
        netns.add_address(ns, rs.leg.ifname, rs.leg.ipv4 or rs.leg.ipv6)
        netns.link_up(ns, rs.leg.ifname)
        if rs.gateway:
            netns.run([netns.IP, "-n", ns, "route", "add", "default", "via", rs.gateway])
        os.makedirs(rs.workdir, mode=0o755, exist_ok=True)
        write_atomic(rs.config_path, "# Written by `haguard lab`.\n"
                     + yaml.safe_dump(rs.config_doc, sort_keys=False))
        if rs.mode in ("dr", "tun"):
            netns.run(netns.ns_exec(ns, sys.executable, "-m", "haguard", "realserver", "-c",
                                    rs.config_path, "up", "--no-persist"), timeout=120)
        self.record.setdefault("real_servers", {})[rs.node] = {
            "namespace": ns, "address": rs.address, "mode": rs.mode, "ports": list(rs.ports),
            "config": rs.config_path}
        for port in rs.ports:
            out = os.path.join(rs.workdir, f"http-{port}.out")
            with open(out, "wb") as fh:
                proc = subprocess.Popen(
                    netns.ns_exec(ns, sys.executable, "-m", "haguard.adapters.httpprobe", "serve", "--name",
                                  rs.node, "--port", str(port)),
                    stdout=fh, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                    start_new_session=True)
            self._children[proc.pid] = proc
            self.record["pids"][f"{rs.node}:{port}"] = proc.pid
            self._save()
            self.wait_for(lambda: "serving" in _read_text(out), 120,
                          f"{rs.node}'s HTTP server on port {port}")

    def _start_director(self, director: Director) -> None:
        os.makedirs(director.workdir, mode=0o755, exist_ok=True)
        write_atomic(director.config_path, "# Written by `haguard lab` from the operator's "
                     "config.\n" + yaml.safe_dump(director.config_doc, sort_keys=False))
        config = load_config(director.config_path)
        os.makedirs(os.path.join(config.node.lever_dir, "track"), mode=0o755, exist_ok=True)
        text = self.render_fn(config)
        result = keepalived_adapter.check_text(text, netns=director.namespace)
        if result is not None and not result.ok:
            raise LabError(f"{director.node}: keepalived -t rejected the rendered config: "
                           + "; ".join(result.complaints))
        write_atomic(config.keepalived.config, text)
        self.record["directors"][director.node] = {
            "namespace": director.namespace, "config": director.config_path,
            "state_dir": config.node.state_dir, "log_file": config.node.log_file,
            "mac": {leg.ifname: netns.mac_of(director.namespace, leg.ifname)
                    for leg in director.legs},
            "pid_file": config.keepalived.pid_file,
            "agent": config.agent is not None}
        self._save()
        if config.agent is not None:
            self.record["agent"] = True
            self.start_agent(director.node)
        self.start_keepalived(director.node)

    def start_agent(self, node: str, env: dict[str, str] | None = None) -> int:
        """Start `haguard agent` on ``node`` and wait until it serves its FIFO."""
        info = self.record["directors"][node]
        config = self._config(node)
        assert config.agent is not None
        workdir = os.path.dirname(info["config"])
        out = os.path.join(workdir, "agent.out")
        earlier = os.path.getsize(out) if os.path.exists(out) else 0
        with open(out, "ab") as fh:
            proc = subprocess.Popen(
                netns.ns_exec(info["namespace"], sys.executable, "-m", "haguard", "agent", "-c",
                              info["config"]),
                stdout=fh, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                start_new_session=True, env={**os.environ, **(env or {})})
        self._children[proc.pid] = proc
        self.record["pids"][f"{node}:agent"] = proc.pid
        self._save()

        def serving() -> bool:
            if proc.poll() is not None:
                raise LabError(f"{node}: haguard agent exited ({proc.returncode}): "
                               + _read_text(out)[-2000:])
            # This agent's own line, not an earlier agent's in the same file; and the one
            # after it took what was pending in the FIFO: from here on every line
            # keepalived writes reaches its loop.
            return "agent_resync" in _read_text(out, earlier)
        self.wait_for(serving, 60, f"{node}'s haguard agent")
        return proc.pid

    def stop_agent(self, node: str, sig: int = signal.SIGTERM) -> None:
        """Stop ``node``'s agent (SIGKILL: a crash) and reap it."""
        pid = self.record["pids"].get(f"{node}:agent")
        if not pid or not process.alive(pid):
            return
        os.kill(pid, sig)
        self._reap(pid, 10.0)

    def start_keepalived(self, node: str) -> int:
        info = self.record["directors"][node]
        workdir = os.path.dirname(info["config"])
        exe = keepalived_adapter.binary() or "keepalived"
        log = open(os.path.join(workdir, "keepalived.log"), "ab")
        args = netns.ns_exec(info["namespace"], exe, "--dont-fork", "--log-console",
                             "--log-detail", "--vrrp", "--use-file",
                             os.path.join(workdir, "keepalived.conf"),
                             "--pid", info["pid_file"],
                             "--vrrp_pid", os.path.join(workdir, "keepalived-vrrp.pid"))
        # `ip netns exec` execs keepalived in place, so this pid is keepalived's own.
        proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True)
        log.close()
        self._children[proc.pid] = proc
        self.record["pids"][node] = proc.pid
        self._save()
        return proc.pid

    # ------------------------------------------------------------------ observe
    def states(self) -> dict[str, dict[str, Any]]:
        """Each director's recorded state for every instance, and its VIPs present."""
        out = {}
        for node, info in self.record["directors"].items():
            config = self._config(node)
            present = netns.run(["ip", "-n", info["namespace"], "-j", "addr", "show"]).stdout
            addrs = {a["local"] for link in json.loads(present or "[]")
                     for a in link.get("addr_info", [])}
            instances = {}
            for inst in config.instances:
                rec = _read_json(os.path.join(info["state_dir"], f"{inst.name}.json")) or {}
                instances[inst.name] = {
                    "state": rec.get("state"), "complete": rec.get("complete"),
                    **({"error": rec["error"]} if rec.get("error") else {}),
                    "vips_present": [str(v.address) for v in inst.vips if str(v.address) in addrs],
                    "vips": [str(v.address) for v in inst.vips]}
            pid = self.record["pids"].get(node)
            out[node] = {"instances": instances,
                         "keepalived_pid": pid if pid and process.alive(pid) else None}
        return out

    def masters(self) -> list[str]:
        """Directors that are MASTER of every instance and hold all its VIPs."""
        return [node for node, s in self.states().items()
                if s["instances"] and all(i["state"] == "MASTER" and i["complete"]
                                          and set(i["vips_present"]) == set(i["vips"])
                                          for i in s["instances"].values())]

    def master(self) -> str | None:
        """The one director that is MASTER of every instance with all VIPs, if any."""
        found = self.masters()
        return found[0] if len(found) == 1 else None

    def wait_for(self, predicate: Callable[[], Any], timeout: float, what: str) -> Any:
        """Poll ``predicate`` until truthy; ``timeout`` is scaled by the lab's time scale."""
        timeout *= self.time_scale
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = predicate()
            if value:
                return value
            time.sleep(0.05)
        raise LabError(f"timed out after {timeout:.0f} s waiting for {what}; "
                       f"states: {json.dumps(self.states(), sort_keys=True)}")

    def elected(self) -> str | None:
        """The director the configs elect, where priority alone decides it: every
        director's keepalived running with no lever pulled, every instance preempting,
        and one director strictly highest on all of them. None otherwise."""
        nodes = list(self.record["directors"])
        configs = {node: self._config(node) for node in nodes}
        for node, config in configs.items():
            pid = self.record["pids"].get(node)
            if not pid or not process.alive(pid):
                return None
            for inst in config.instances:
                if inst.nopreempt or any(_read_text(f).strip() not in ("", "0")
                                         for f in lever_files(config, inst)):
                    return None
        names = {inst.name for config in configs.values() for inst in config.instances}
        winners = set()
        for name in names:
            prios = {node: inst.priority for node, config in configs.items()
                     for inst in config.instances if inst.name == name}
            best = max(prios.values())
            top = [node for node, prio in prios.items() if prio == best]
            if len(prios) != len(nodes) or len(top) != 1:
                return None
            winners.add(top[0])
        return winners.pop() if len(winners) == 1 else None

    def wait_steady(self, predicate: Callable[[], Any], hold: float, timeout: float,
                    what: str) -> Any:
        """Poll ``predicate`` until it has returned the same truthy value for ``hold``
        seconds on end; both times are scaled by the lab's time scale."""
        if hold <= 0:
            return self.wait_for(predicate, timeout, what)
        scaled_hold = hold * self.time_scale
        since: float | None = None
        held: Any = None

        def steady() -> Any:
            nonlocal since, held
            value, now = predicate(), time.monotonic()
            if not value or value != held:
                since, held = (now if value else None), value
                return None
            return value if since is not None and now - since >= scaled_hold else None

        return self.wait_for(steady, timeout + hold, f"{what} (unchanged for {scaled_hold:g} s)")

    def wait_for_master(self, timeout: float = 20.0, steady_s: float = 0.0) -> str:
        """The one MASTER holding every VIP; where the configs decide who that is, that
        director: a peer that won the first election only until the elected one came up
        and preempted it is no MASTER to rely on. ``steady_s``: it must stay so that long
        (keepalived may still be acting on a lever that was pulled and released)."""
        elected = self.elected()
        if elected is None:
            master: str = self.wait_steady(self.master, steady_s, timeout,
                                           "one MASTER holding every VIP")
            return master
        self.wait_steady(lambda: self.master() == elected, steady_s, timeout,
                         f"{elected} (elected by priority) MASTER holding every VIP")
        return elected

    # ------------------------------------------------------------------ drive
    def stop_keepalived(self, node: str, sig: int = signal.SIGTERM, wait: bool = True) -> None:
        pid = self.record["pids"].get(node)
        if not pid or not process.alive(pid):
            return
        os.kill(pid, sig)
        if wait:
            self._reap(pid, 10.0)

    def _reap(self, pid: int, timeout: float) -> None:
        proc = self._children.pop(pid, None)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if proc is not None and proc.poll() is not None:
                return
            if proc is None and not process.alive(pid):
                return
            time.sleep(0.02)
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        if proc is not None:
            proc.wait(5)

    def start_probe(self, out: str, ping: str | None, interval_ms: int = 10) -> subprocess.Popen[bytes]:
        args = netns.ns_exec(self.lab.client.namespace, sys.executable, "-m", "haguard.adapters.witness",
                             "--out", out)
        for leg in self.lab.client.legs:
            args += ["--iface", leg.ifname]
        for vip in self.lab.vips:
            args += ["--watch", vip]
        if ping:
            args += ["--ping", ping, "--interval-ms", str(interval_ms)]
        proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL, start_new_session=True)
        self._children[proc.pid] = proc
        self.record["pids"]["probe"] = proc.pid
        self._save()
        def probe_ready() -> bool:
            events = read_jsonl(out)
            failed = [e["error"] for e in events if e.get("kind") == "error"]
            if failed or proc.poll() is not None:
                raise LabError(f"the client probe failed: {'; '.join(failed) or 'it exited'}")
            return any(e.get("kind") == "ready" for e in events)

        self.wait_for(probe_ready, 20, "the client probe to start")
        return proc

    def stop_probe(self, proc: subprocess.Popen[bytes]) -> None:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
        self._reap(proc.pid, 5.0)
        self.record["pids"].pop("probe", None)
        self._save()

    def client_ping(self, target: str, count: int = 3) -> bool:
        family = "-6" if ":" in target else "-4"
        proc = netns.run(netns.ns_exec(self.lab.client.namespace, "ping", family, "-n", "-c",
                                       str(count), "-i", "0.2", "-W", "1", target), check=False)
        return proc.returncode == 0

    def client_fetch(self, count: int = 4) -> dict[str, Any] | None:
        """HTTP requests from the client to the first service's VIP, if the lab has one."""
        sources = self.record.get("sources") or []
        config = load_config(sources[0]) if sources else None
        services = [s for s in (config.ipvs.services if config and config.ipvs else ())
                    if s.key.protocol == "tcp"]
        if not services or not self.lab.real_servers:
            return None
        key = services[0].key
        out = netns.run(netns.ns_exec(self.lab.client.namespace, sys.executable, "-m",
                                      "haguard.adapters.httpprobe", "fetch", key.address, "--port",
                                      str(key.port), "--count", str(count)),
                        check=False, timeout=120 * self.time_scale).stdout
        try:
            result: dict[str, Any] = json.loads(out)
            return result
        except ValueError:
            return {"failed": count, "counts": {}, "errors": [out.strip() or "no answer"]}

    def failover(self, probe_file: str, ping_interval_ms: int, method: str = "stop",
                 timeout: float = 20.0) -> Timeline:
        """Fail the current MASTER over to the other director; measure from the client."""
        old = self.master()
        if old is None:
            raise LabError("no single MASTER holds the VIPs; cannot fail over (see `haguard "
                           f"lab status --name {self.lab.name}`)")
        new = next(n for n in self.record["directors"] if n != old)
        old_info, new_info = self.record["directors"][old], self.record["directors"][new]
        iface = self.lab.interfaces[0]
        trigger = time.time()
        if method == "stop":
            self.stop_keepalived(old, signal.SIGTERM, wait=False)
        elif method == "kill":
            self.stop_keepalived(old, signal.SIGKILL, wait=False)
        elif method == "demote":
            from haguard.app import levers

            levers.pull_demote(self._config(old), "failover drill")
        elif method == "link":
            for leg in next(d for d in self.lab.directors if d.node == old).legs:
                netns.link_down(self.lab.switch_namespace, leg.port)
        else:
            raise BadInput(f"failover method {method!r}: use stop, kill, link or demote")
        # The new MASTER is what the client needs; whether the old one let go is
        # reported below (a STOP hook killed by keepalived leaves its VIPs behind).
        self.wait_for(lambda: new in self.masters(), timeout, f"{new} to become MASTER")
        # Let the client's witnesses see the announcement burst and the neighbour change.
        new_mac = new_info["mac"][iface]
        new_mac_of = {vip: new_info["mac"][device] for vip, device in self.lab.vip_interfaces}

        def client_switched() -> bool:
            events = read_jsonl(probe_file)
            return all(any(e.get("kind") == "neigh" and e.get("ip") == vip and
                           e.get("mac") == new_mac_of.get(vip, new_mac) and
                           e.get("t", 0) >= trigger for e in events)
                       for vip in self.lab.vips)
        try:
            self.wait_for(client_switched, 10.0, "the client's neighbour entries to follow")
        except LabError:
            pass  # reported as "NOT switched" in the timeline
        try:  # the whole announcement burst belongs in the timeline
            self.wait_for(lambda: any(e.get("event") == "burst_done" and e.get("ts", 0) >= trigger
                                      for e in read_jsonl(new_info["log_file"])),
                          10.0, f"{new}'s announcement burst to end")
        except LabError:
            pass  # the timeline counts what was seen
        time.sleep(max(0.3, 3 * ping_interval_ms / 1000))
        old_kept = [v for i in self.states()[old]["instances"].values() for v in i["vips_present"]]
        client_addresses = [leg.ipv4.split("/")[0] for leg in self.lab.client.legs]
        client_addresses += [leg.ipv6.split("/")[0] for leg in self.lab.client.legs]
        timeline = build_timeline(
            trigger, old, new, old_info["mac"][iface], new_mac, list(self.lab.vips),
            read_jsonl(probe_file), read_jsonl(old_info["log_file"]),
            read_jsonl(new_info["log_file"]), client_addresses, ping_interval_ms, new_mac_of)
        timeline.old_master_kept = old_kept
        return timeline

    def restore(self) -> list[str]:
        """Start keepalived again on every director where it no longer runs."""
        started = []
        for node in self.record["directors"]:
            pid = self.record["pids"].get(node)
            if not pid or not process.alive(pid):
                started.append(f"started keepalived on {node} (pid {self.start_keepalived(node)})")
        for director in self.lab.directors:
            for leg in director.legs:
                netns.link_up(self.lab.switch_namespace, leg.port)
        return started

    # ------------------------------------------------------------------ down
    def down(self) -> list[str]:
        """Remove what this runner made; nothing when it never claimed the name."""
        if not self.claimed:
            return []
        return teardown(self.lab.name, self._children)


def teardown(name: str, children: dict[int, subprocess.Popen[bytes]] | None = None) -> list[str]:
    """Remove everything a lab made: its processes (by pid), namespaces and work dir."""
    check_lab_name(name)
    record = read_record(name) or {}
    done = []
    for role, pid in (record.get("pids") or {}).items():
        if isinstance(pid, int) and process.alive(pid):
            try:
                os.kill(pid, signal.SIGTERM)
                done.append(f"stopped {role} (pid {pid})")
            except ProcessLookupError:
                pass
    prefix = f"hg-{name}-"
    namespaces = set(record.get("namespaces") or [])
    if os.path.isdir("/run/netns"):
        namespaces.update(n for n in os.listdir("/run/netns") if n.startswith(prefix))
    deadline = time.monotonic() + 5
    for pid in (record.get("pids") or {}).values():
        while isinstance(pid, int) and process.alive(pid) and time.monotonic() < deadline:
            time.sleep(0.02)
    for ns in sorted(namespaces):
        killed = netns.kill_all_in(ns)
        if killed:
            done.append(f"ended {len(killed)} process(es) left in {ns}")
        netns.delete(ns)
        done.append(f"deleted namespace {ns}")
    for proc in (children or {}).values():
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            pass
    for workdir in (f"{LAB_ROOT}/{name}", f"{EXEC_ROOT}/{name}"):
        if os.path.isdir(workdir):
            shutil.rmtree(workdir, ignore_errors=True)
            done.append(f"removed {workdir}")
    return done


def _read_text(path: str, offset: int = 0) -> str:
    """The file from byte ``offset`` on; "" while it does not exist."""
    try:
        with open(path, "rb") as fh:
            fh.seek(offset)
            return fh.read().decode("utf-8", errors="replace")
    except FileNotFoundError:
        return ""


def _read_json(path: str) -> dict[str, Any] | None:
    try:
        with open(path, encoding="utf-8") as fh:
            data = json.load(fh)
    except (FileNotFoundError, ValueError):
        return None
    return data if isinstance(data, dict) else None
