"""`haguard failover-test --lab NAME`: a measured failover drill on the lab pair.

(On a live pair: haguard.app.livedrill.)

Checks both directors are healthy, probes the VIP from the client (ICMP every
--interval-ms, a TCP connect to VIP:port as often, and long-lived connections opened
before), triggers the failover (demote lever or keepalived stop), and reports the
timeline, the outage, lost probes, whether existing connections survived and whether the
IPVS rules were in place before the VIP. The pair is put back as it was found (lever
removed, keepalived started) unless --leave, also when the drill fails or is interrupted.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from typing import Any

from haguard.adapters import process
from haguard.adapters.files import read_jsonl
from haguard.adapters.probepoint import HOLD_CONNECTIONS
from haguard.core.drillreport import INTERRUPTED_NOTE, failure_run, ipvs_before_vip
from haguard.errors import HaguardError, OperationFailed
from haguard.lab import netns
from haguard.lab.runner import LabRunner


def _healthy(runner: LabRunner) -> tuple[str, str]:
    states = runner.states()
    master = runner.master()
    if master is None:
        raise OperationFailed("the pair is not healthy: no single MASTER holds every VIP "
                              f"({json.dumps(states, sort_keys=True)}); fix that before a drill")
    backup = next(n for n in states if n != master)
    bad = [f"{backup} {name}: {i['state']}" for name, i in states[backup]["instances"].items()
           if i["state"] != "BACKUP" or i["vips_present"]]
    for node, s in states.items():
        if s["keepalived_pid"] is None:
            bad.append(f"{node}: keepalived is not running")
    if bad:
        raise OperationFailed(f"the pair is not healthy: {'; '.join(bad)}")
    return master, backup


def _service(runner: LabRunner, port: int | None) -> tuple[str, int, bool]:
    """(VIP, port, served_by_ipvs): the first TCP service, else the directors serve."""
    config = runner._config(next(iter(runner.record["directors"])))
    if config.ipvs is not None:
        for svc in config.ipvs.services:
            if svc.key.protocol == "tcp" and ":" not in svc.key.address:
                return svc.key.address, port or svc.key.port, True
    vip = next(v for v in runner.lab.vips if ":" not in v)
    return vip, port or 8080, False


def run(name: str, *, method: str, port: int | None, interval_ms: int, failback: bool,
        leave: bool) -> dict[str, Any]:
    """The drill; every figure measured, the pair restored unless ``leave``."""
    def say(text: str) -> None:
        print(text, file=sys.stderr, flush=True)

    runner = LabRunner.attach(name, say)
    master, backup = _healthy(runner)
    vip, service_port, by_ipvs = _service(runner, port)
    client = runner.lab.client.namespace
    work = os.path.join(runner.lab.workdir, f"drill-{int(time.time() * 1000)}")
    os.makedirs(work, exist_ok=True)
    started: list[subprocess.Popen[bytes]] = []
    report: dict[str, Any] = {"lab": name, "method": method, "old_master": master,
                              "new_master": backup, "vip": vip, "port": service_port}
    restored = False

    def spawn(ns: str, *args: str) -> subprocess.Popen[bytes]:
        proc = subprocess.Popen(netns.ns_exec(ns, sys.executable, *args),
                                stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=subprocess.DEVNULL, start_new_session=True)
        started.append(proc)
        return proc

    def restore() -> None:
        if leave:
            return
        if method == "demote":
            from haguard.app import levers

            levers.undo(runner._config(master), None, "failover drill over")
        runner.restore()

    try:
        if not by_ipvs:
            for node in runner.record["directors"]:
                spawn(runner.record["directors"][node]["namespace"], "-m", "haguard.adapters.httpprobe",
                      "serve", "--name", node, "--port", str(service_port), "--bind", "0.0.0.0")
        def answered() -> bool:
            out = subprocess.run(netns.ns_exec(client, sys.executable, "-m", "haguard.adapters.httpprobe",
                                               "fetch", vip, "--port", str(service_port),
                                               "--count", "1", "--timeout", "1"),
                                 capture_output=True, text=True).stdout
            try:
                return bool(json.loads(out).get("failed") == 0)
            except ValueError:
                return False
        runner.wait_for(answered, 30, f"the service on {vip}:{service_port}")
        go = os.path.join(work, "go")
        ready = os.path.join(work, "ready")
        holder = spawn(client, "-m", "haguard.adapters.httpprobe", "hold", vip, "--port",
                       str(service_port), "--count", str(HOLD_CONNECTIONS), "--go-file", go,
                       "--ready-file", ready, "--wait-s", "120")
        runner.wait_for(lambda: os.path.exists(ready), 30, "long-lived connections opened")
        tcp_file = os.path.join(work, "tcp.jsonl")
        knocker = spawn(client, "-m", "haguard.adapters.httpprobe", "knock", vip, "--port",
                        str(service_port), "--interval-ms", str(interval_ms), "--out", tcp_file)
        probe_file = os.path.join(work, "probe.jsonl")
        probe = runner.start_probe(probe_file, vip, interval_ms)
        try:
            time.sleep(0.5)
            timeline = runner.failover(probe_file, interval_ms, method)
        finally:
            runner.stop_probe(probe)
            knocker.send_signal(signal.SIGTERM)
            knocker.wait(10)
        with open(go, "w", encoding="ascii"):
            pass
        out, _ = holder.communicate(timeout=60)
        held = json.loads(out.decode() or "{}")
        trigger = timeline.trigger_at
        tcp = failure_run(read_jsonl(tcp_file), trigger, lambda e: e.get("ok"))
        new_log = read_jsonl(runner.record["directors"][backup]["log_file"])
        report.update(timeline.as_dict())
        report.update({
            "outage_ms": timeline.outage_ms, "pings_lost": timeline.pings_lost,
            "tcp_outage_ms": tcp.ms, "tcp_connects_failed": tcp.lost,
            "connections_survived": held.get("survived"), "connections": held.get("total"),
            "ipvs_before_vip": ipvs_before_vip(new_log, trigger)})
        restore()
        restored = True
        if failback and not leave:
            t0 = time.time()
            runner.wait_for(lambda: runner.master() == master, 30, f"{master} back as MASTER")
            report["failback_ms"] = round((time.time() - t0) * 1000, 1)
    finally:
        for proc in started:
            process.stop_child(proc)
        if not restored:
            restore()
            if not leave:
                say(INTERRUPTED_NOTE)
    _record_outage(runner, report)
    return report


def _record_outage(runner: LabRunner, report: dict[str, Any]) -> None:
    from haguard.adapters.files import load_config
    from haguard.adapters.statefile import StateDir

    for info in runner.record["directors"].values():
        try:
            config = load_config(info["config"])
        except HaguardError:
            continue  # the drill's report stands without the textfile
        StateDir(config.node.state_dir).record_drill(config.node.name,
                                                     [i.name for i in config.instances], report)
