"""The multi-VM topology, for real: five VMs with their own kernels, LVS-DR through the
director pair, a failover by stopping keepalived, and reboots that must come back as
configured. The tests run in this order and share one topology (booting it is most of
the tier's time); each asserts on what the VMs and the client really observe.
"""

from __future__ import annotations

import json
import threading
import time
from typing import Any

import pytest

from tests.vagrant.conftest import Cluster, figure, wait_for

PROBE = "/vagrant/vagrant/client_probe.py"
PROBE_DIR = "/run/haguard-probe"
HTTP_UNIT = "haguard-http.service"


def _service(cluster: Cluster) -> tuple[str, int]:
    svc = cluster.layout.services[0]
    return svc["vip"], int(svc["port"])


def _names(cluster: Cluster, role: str) -> list[str]:
    return [h.name for h in cluster.layout.by_role(role)]


def _instance(cluster: Cluster, node: str) -> dict[str, Any]:
    config = cluster.layout.host(node).config
    assert config is not None
    return dict(config["instances"][0])


def _expected_master(cluster: Cluster) -> str:
    """Who is MASTER with both directors up, as the configs say (preemption on)."""
    first, second = _names(cluster, "director")
    a, b = _instance(cluster, first), _instance(cluster, second)
    return first if int(a["priority"]) >= int(b["priority"]) else second


def _views_are(cluster: Cluster, expected: dict[str, tuple[str, bool]]) -> bool:
    """Each director's (recorded state, holds the VIP) as expected; else what was seen."""
    seen = {node: cluster.view(node) for node in expected}
    assert seen == expected, f"seen {seen}"
    return True


def _master_with_vip(cluster: Cluster, node: str) -> bool:
    return _views_are(cluster, {node: ("MASTER", True)})


def _sections(text: str) -> list[str]:
    return [part.strip() for part in text.split("@@")]


def test_every_vm_is_up_and_provisioned_by_haguard(cluster: Cluster) -> None:
    """Each VM has its name and private address; directors run keepalived under systemd
    with haguard's rendered config and root-owned hooks; real servers are set up.
    (One SSH call per question set and VM: every call costs seconds under emulation.)"""
    config = cluster.topology.NODE_CONFIG
    for host in cluster.layout.hosts:
        name, addrs = _sections(cluster.ssh(host.name, "hostname; echo @@; ip -j addr show",
                                            sudo=False).out)
        assert name == host.name
        present = {f"{a['ifname']} {i['local']}/{i['prefixlen']}" for a in json.loads(addrs)
                   for i in a.get("addr_info", [])}
        for iface in host.interfaces:
            assert f"{iface.ifname} {iface.address}" in present, (host.name, present)
    for node in _names(cluster, "director"):
        enabled, active, owners, conf, agent = _sections(cluster.ssh(
            node, "systemctl is-enabled keepalived; echo @@; systemctl is-active keepalived; "
                  "echo @@; stat -c '%U %a' /usr/local/libexec/haguard "
                  "/usr/local/libexec/haguard/notify; echo @@; "
                  "cat /etc/keepalived/keepalived.conf; echo @@; "
                  "systemctl is-enabled haguard-agent; systemctl is-active haguard-agent",
            check=False).out)
        assert (enabled, active) == ("enabled", "active"), node
        if "agent" in (cluster.layout.host(node).config or {}):
            assert agent.split() == ["enabled", "active"], (node, agent)
            assert "vrrp_notify_fifo" in conf
        assert [line.split()[0] for line in owners.splitlines()] == ["root", "root"], owners
        assert "enable_script_security" in conf
        assert f"/usr/local/libexec/haguard/notify -c {config}" in conf
        assert "virtual_ipaddress" not in conf
        check = cluster.haguard(node, "check", "-c", config)
        assert check.rc == 0
    for node in _names(cluster, "realserver"):
        status = cluster.ssh(node, f"systemctl is-enabled haguard-realserver; echo @@; "
                                   f"/usr/bin/haguard realserver -c {config} status",
                             check=False)
        enabled, report = _sections(status.out)
        assert status.rc == 0 and report.splitlines()[-1] == "healthy", status.out
        assert enabled == "enabled"


# What the package puts where an operator looks for it (debian/, scripts/build-deb).
PACKAGE_FILES = ("/usr/bin/haguard", "/usr/libexec/haguard/notify",
                 "/usr/libexec/haguard/notify_master", "/lib/systemd/system/haguard-agent.service",
                 "/lib/systemd/system/haguard-realserver.service",
                 "/lib/systemd/system/keepalived.service.d/haguard.conf",
                 "/usr/share/man/man8/haguard.8.gz", "/usr/share/man/man5/haguard.yaml.5.gz",
                 "/usr/share/bash-completion/completions/haguard", "/etc/haguard/haguard.yaml",
                 "/usr/share/haguard/hooks/notify", "/usr/share/haguard/conf/lab.yaml")
# Debian 12's own versions of haguard's libraries, which the package depends on.
BOOKWORM_LIBRARIES = {"PyYAML": "6.0", "scapy": "2.5.0", "structlog": "22.3.0",
                      "tenacity": "8.2.1", "pyroute2": "0.7.2", "prometheus-client": "0.16.0"}
_WHAT_RUNS = ("import haguard, importlib.metadata as m, json; print(json.dumps("
              "{'haguard': haguard.__file__, 'libraries': {n: m.version(n) for n in "
              + repr(sorted(BOOKWORM_LIBRARIES)) + "}}))")


def test_haguard_runs_from_its_debian_package_on_debians_libraries(cluster: Cluster) -> None:
    """Every director and real server got haguard as an operator does, with apt from the
    .deb built from this checkout: its files in place, the hooks root's, and the agent
    and every command running the package's code on bookworm's own libraries."""
    for node in [*_names(cluster, "director"), *_names(cluster, "realserver")]:
        status, files, owners = _sections(cluster.ssh(
            node, "dpkg-query -W -f '${Status} ${Version}' haguard; echo @@; dpkg -L haguard; "
                  "echo @@; stat -c '%U %a' /usr/libexec/haguard /usr/libexec/haguard/notify "
                  "/var/lib/haguard", check=False).out)
        assert status.startswith("install ok installed "), (node, status)
        listed = set(files.splitlines())
        assert [f for f in PACKAGE_FILES if f not in listed] == [], node
        assert [line.split() for line in owners.splitlines()] == [
            ["root", "755"], ["root", "755"], ["root", "755"]], (node, owners)
        runs = json.loads(cluster.ssh(node, ["python3", "-c", _WHAT_RUNS]).out)
        assert runs == {"haguard": "/usr/lib/python3/dist-packages/haguard/__init__.py",
                        "libraries": BOOKWORM_LIBRARIES}, node
    for node in _names(cluster, "director"):
        if "agent" in (cluster.layout.host(node).config or {}):
            exec_start = cluster.ssh(node, "systemctl show -p ExecStart --value "
                                           "haguard-agent.service").out
            assert "/usr/bin/haguard agent -c /etc/haguard/haguard.yaml" in exec_start, exec_start
    # The package's example config, as shipped, names the package's own hooks
    # (/usr/libexec/haguard), and they pass keepalived's script security as doctor
    # checks it (keepalived -t does not check scripts).
    node = _names(cluster, "director")[0]
    example = "/root/haguard-example.yaml"
    cluster.ssh(node, f"dpkg-deb --fsys-tarfile /vagrant/vagrant/.debs/haguard_*_all.deb "
                      f"| tar -xO ./etc/haguard/haguard.yaml > {example}")
    rendered = cluster.haguard(node, "render", "-c", example).out
    assert f'notify "/usr/libexec/haguard/notify -c {example} ' in rendered, rendered
    report = json.loads(cluster.haguard(node, "doctor", "-c", example, "--json", "--skip-wire",
                                        check=False).out)
    security = {c["check"]: c["result"] for c in report["checks"]}["script-security"]
    assert security == "ok", [f for f in report["findings"] if f["check"] == "script-security"]


def test_the_installed_package_runs_the_lab(cluster: Cluster) -> None:
    """`haguard lab run` from the package (its lab config and hooks from /usr/share/haguard)
    on a real server's VM, where /run is noexec as Debian's initramfs mounts it: the pair
    in namespaces with the real keepalived fails over and the client learns the new owner
    from haguard's announcement."""
    node = _names(cluster, "realserver")[-1]
    start = time.monotonic()
    # The lab stretches its waits by itself only in haguard's own VM; this one is as slow
    # (software emulation), so it is told, as an operator on a slow machine would.
    res = cluster.ssh(node, ["env", "HAGUARD_LAB_TIME_SCALE=10", "/usr/bin/haguard", "lab",
                             "run", "--name", "pkg", "--json"], check=False, timeout=900)
    took = time.monotonic() - start
    assert res.rc == 0, f"{node}: haguard lab run exited {res.rc}\n{res.out[-3000:]}\n{res.err[-3000:]}"
    timeline = json.loads(res.out)
    assert timeline["learned_from_announcement"], timeline
    figure(f"`haguard lab run` from the package on {node}: exit 0 in {took:.0f} s, "
           f"outage {timeline.get('outage_ms', '?')} ms")


def test_doctor_catches_keepalived_killed_with_its_cgroup(cluster: Cluster) -> None:
    """Under systemd: with `hooks install`'s drop-in keepalived.service has
    KillMode=process and doctor is content; without it (Debian's unit as shipped) doctor
    reports the error that leaves a stopped director holding the VIPs."""
    node = _names(cluster, "director")[-1]
    # The package ships the drop-in under /lib and `hooks install` writes it under /etc:
    # without both, keepalived.service is Debian's as shipped.
    dropins = " ".join(f"{top}/systemd/system/keepalived.service.d/haguard.conf"
                       for top in ("/etc", "/lib"))

    def killmode_check() -> tuple[str, list[dict[str, Any]]]:
        res = cluster.haguard(node, "doctor", "-c", cluster.topology.NODE_CONFIG, "--json",
                              "--skip-wire", check=False)
        report = json.loads(res.out)
        result = {c["check"]: c["result"] for c in report["checks"]}["keepalived-killmode"]
        return result, [f for f in report["findings"] if f["check"] == "keepalived-killmode"]

    assert killmode_check() == ("ok", [])
    cluster.ssh(node, f"for f in {dropins}; do mv $f $f.saved; done; systemctl daemon-reload")
    try:
        result, found = killmode_check()
        assert result == "error" and "KillMode=control-group" in found[0]["what"], found
    finally:
        cluster.ssh(node, f"for f in {dropins}; do mv $f.saved $f; done; "
                          "systemctl daemon-reload")
    assert killmode_check() == ("ok", [])


def test_client_reaches_both_real_servers_through_the_master_dr(cluster: Cluster) -> None:
    vip, port = _service(cluster)
    master = _expected_master(cluster)
    backup = next(n for n in _names(cluster, "director") if n != master)
    wait_for(f"{master} MASTER holding {vip}", lambda: _master_with_vip(cluster, master), 180)
    assert not cluster.holds(backup, vip)
    routes = cluster.ssh(master, ["ipvsadm", "-L", "-n"]).out
    for rs in cluster.layout.services[0]["real_servers"]:
        assert any(rs in line and "Route" in line for line in routes.splitlines()), routes
    before = {n: cluster.ipvs_connections(n) for n in (master, backup)}
    result = cluster.fetch(vip, port, count=20)
    assert result["failed"] == 0, result["errors"]
    assert set(result["counts"]) == set(_names(cluster, "realserver")), result["counts"]
    # Every request was scheduled by the master's IPVS; none went through the backup.
    # (The kernel folds its per-CPU counters into what ipvsadm shows every 2 s.)
    after = wait_for("the master's IPVS counting the 20 connections",
                     lambda: (lambda a: a if a[master] - before[master] >= 20 else None)(
                         {n: cluster.ipvs_connections(n) for n in (master, backup)}), 30,
                     every=2)
    assert after[backup] == before[backup], (before, after)
    assert cluster.neighbour(vip) == cluster.mac(master)


def test_a_real_server_stopped_under_load_fails_no_request_once_it_is_out(
        cluster: Cluster) -> None:
    """rs1's HTTP service stopped while the client asks every 100 ms: the agents' checks
    take rs1 out of both directors' tables; requests fail only until then (counted), every
    later one is answered by rs2. Started again, rs1 rejoins."""
    vip, port = _service(cluster)
    master = _expected_master(cluster)
    backup = next(n for n in _names(cluster, "director") if n != master)
    if "agent" not in (cluster.layout.host(master).config or {}):
        pytest.fail("the topology's config has no `agent` section: nothing checks the "
                    "real servers (HAGUARD_VAGRANT_CONFIG names a config without one)")
    rs1, rs2 = _names(cluster, "realserver")
    rs1_at = f"{cluster.layout.host(rs1).address}:{port}"

    def in_table(node: str) -> bool:
        return rs1_at in cluster.ssh(node, ["ipvsadm", "-L", "-n"]).out

    wait_for(f"{master} MASTER holding {vip}", lambda: _master_with_vip(cluster, master), 180)
    wait_for(f"{rs1} in {master}'s table", lambda: in_table(master), 60)
    # A timeout long enough that only a refused or unanswered request fails, not a slow
    # answer from a VM under emulation.
    _start_probe(cluster, vip, port, timeout=3.0)
    time.sleep(2)
    cluster.ssh("client", ["touch", f"{PROBE_DIR}/mark"])
    cluster.ssh(rs1, ["systemctl", "stop", HTTP_UNIT])
    stopped = time.monotonic()
    wait_for(f"{rs1} out of {master}'s table", lambda: not in_table(master), 60, every=0.5)
    out_s = time.monotonic() - stopped
    # On the client's clock, a moment after the removal: the host saw it, then told it.
    cluster.ssh("client", ["touch", f"{PROBE_DIR}/seen"])
    time.sleep(5)
    report = _stop_probe(cluster)
    wait_for(f"{rs1} out of {backup}'s table too (checks run on the BACKUP)",
             lambda: not in_table(backup), 60)
    marks, requests = report["marks"], report["requests"]
    stop_t, seen_t = marks[f"{PROBE_DIR}/mark"], marks[f"{PROBE_DIR}/seen"]
    before = [r for r in requests if r["t"] < stop_t]
    between = [r for r in requests if stop_t <= r["t"] < seen_t]
    after = [r for r in requests if r["t"] >= seen_t]
    assert before and all("server" in r for r in before), before
    assert {r["server"] for r in before} == {rs1, rs2}, before
    assert len(after) >= 10, after
    assert all(r.get("server") == rs2 for r in after), [r for r in after if r.get("server") != rs2]
    failed = [r for r in between if "error" in r]
    figure(f"{rs1}'s HTTP stopped under the client's load (a request every 100 ms):")
    figure(f"  {rs1} out of {master}'s table {out_s:.1f} s after the stop (the host polling "
           f"over SSH); {len(failed)} of {len(between)} requests failed until the client "
           f"heard of it, 0 of {len(after)} after")
    cluster.ssh(rs1, ["systemctl", "start", HTTP_UNIT])
    wait_for(f"{rs1} back in {master}'s table", lambda: in_table(master), 60)
    result = cluster.fetch(vip, port, count=10)
    assert result["failed"] == 0 and set(result["counts"]) == {rs1, rs2}, result


def _start_probe(cluster: Cluster, vip: str, port: int, timeout: float = 0.5) -> None:
    """Requests every 100 ms from the client; `mark` and `seen` record when they appear."""
    cluster.ssh("client", f"rm -rf {PROBE_DIR} && mkdir -p {PROBE_DIR}")
    cluster.ssh("client", f"setsid python3 {PROBE} --vip {vip} --port {port} --interval 0.1 "
                          f"--timeout {timeout} --duration 300 --stop-file {PROBE_DIR}/stop "
                          f"--ready-file {PROBE_DIR}/ready --mark-file {PROBE_DIR}/mark "
                          f"--mark-file {PROBE_DIR}/seen --out {PROBE_DIR}/out.json "
                          f"</dev/null >{PROBE_DIR}/log 2>&1 &")
    wait_for("the client's first answered request",
             lambda: cluster.ssh("client", ["cat", f"{PROBE_DIR}/ready"],
                                 check=False).rc == 0, 60, every=0.5)


def _stop_probe(cluster: Cluster) -> dict[str, Any]:
    cluster.ssh("client", ["touch", f"{PROBE_DIR}/stop"])
    wait_for("the client probe's report",
             lambda: cluster.ssh("client", ["test", "-s", f"{PROBE_DIR}/out.json"],
                                 check=False).rc == 0, 60, every=0.5)
    return dict(json.loads(cluster.ssh("client", ["cat", f"{PROBE_DIR}/out.json"]).out))


def _outage(requests: list[dict[str, Any]]) -> tuple[int, float]:
    """Failed requests, and the longest time between two answered ones (ms)."""
    failed = sum(1 for r in requests if "error" in r)
    done = [r["done"] for r in requests if "server" in r]
    gap = max((b - a for a, b in zip(done, done[1:])), default=0.0)
    return failed, gap


def test_failover_by_stopping_keepalived(cluster: Cluster) -> None:
    """`systemctl stop keepalived` on the master: the backup takes the VIP, the client's
    neighbour entry follows to its MAC from haguard's gratuitous ARP (the client never
    asks), and the client's requests keep being answered by both real servers."""
    vip, port = _service(cluster)
    old = _expected_master(cluster)
    new = next(n for n in _names(cluster, "director") if n != old)
    old_mac, new_mac = cluster.mac(old), cluster.mac(new)
    assert old_mac != new_mac
    wait_for(f"{old} MASTER", lambda: _master_with_vip(cluster, old), 120)
    _start_probe(cluster, vip, port)
    time.sleep(2)  # some answered requests through the old master first
    new_before = cluster.ipvs_connections(new)
    # The trigger on the client's clock: the mark goes down just before the stop.
    cluster.ssh("client", ["touch", f"{PROBE_DIR}/mark"])
    cluster.ssh(old, ["systemctl", "stop", "keepalived"], timeout=120)
    trigger = time.monotonic()
    wait_for(f"{new} MASTER holding {vip}", lambda: _master_with_vip(cluster, new), 120,
             every=0.5)
    took_over_s = time.monotonic() - trigger
    # haguard's STOP transition removes the VIPs from the stopped director.
    wait_for(f"{vip} removed from {old}", lambda: not cluster.holds(old, vip), 60)
    wait_for(f"the client's neighbour entry for {vip} pointing at {new}",
             lambda: cluster.neighbour(vip) == new_mac, 60, every=0.5)
    time.sleep(5)  # answered requests through the new master
    report = _stop_probe(cluster)
    requests = report["requests"]

    switched = [n for n in report["neighbour"] if n["mac"] == new_mac]
    assert switched, report["neighbour"]
    switch_t = switched[0]["t"]
    garps = [a for a in report["arp"]
             if a["spa"] == vip and a["tpa"] == vip and a["sha"] == new_mac
             and not a["outgoing"]]
    assert garps, "the client received no gratuitous ARP for the VIP from the new master"
    assert garps[0]["t"] <= switch_t, (garps[0], switched[0])
    mark = report["marked_at"]
    assert mark is not None and report["ready_at"] is not None
    asked = [a for a in report["arp"] if a["outgoing"] and a["op"] == "request"
             and a["tpa"] == vip and report["ready_at"] < a["t"] <= switch_t]
    assert not asked, f"the client asked for {vip} itself before switching: {asked}"

    after = [r for r in requests if r["t"] > switch_t]
    answered_after = [r for r in after if "server" in r]
    assert len(answered_after) >= 10, after[-5:]
    assert {r["server"] for r in answered_after} == set(_names(cluster, "realserver"))
    # The client's requests after the switch reached the new master's IPVS.
    assert cluster.ipvs_connections(new) - new_before >= len(answered_after) // 2

    failed, outage = _outage(requests)
    answered = sum(1 for r in requests if "server" in r)
    figure(f"failover {old} -> {new} by `systemctl stop keepalived` (times from the stop, "
           "on the client's clock):")
    figure(f"  first gratuitous ARP from {new} at +{garps[0]['t'] - mark:.0f} ms; neighbour "
           f"entry {vip} -> {new_mac} at +{switch_t - mark:.0f} ms; the client never asked")
    figure(f"  client: {len(requests)} requests every 100 ms, {answered} answered, "
           f"{failed} failed; outage (longest gap between answers): {outage:.0f} ms")
    figure(f"  (the test saw {new} MASTER with the VIP {took_over_s:.1f} s after the stop "
           "returned, polling its recorded state and addresses over SSH)")
    # A failover that takes longer than this is broken, however slow the emulation.
    assert outage < 30000, f"outage {outage:.0f} ms"


def test_failover_test_on_the_live_master_stops_keepalived_and_puts_it_back(
        cluster: Cluster) -> None:
    """`haguard failover-test -c … --method stop` on the MASTER VM, as an operator runs it
    on a live pair: it stops keepalived through systemd, sees the peer take over on the
    wire, starts keepalived again, and times its own takeover back (preemption on)."""
    vip, _ = _service(cluster)
    old = _expected_master(cluster)
    new = next(n for n in _names(cluster, "director") if n != old)
    # The previous test left keepalived stopped on the old MASTER.
    cluster.ssh(old, ["systemctl", "start", "keepalived"], timeout=120)
    wait_for(f"{old} MASTER again", lambda: _master_with_vip(cluster, old), 120, every=0.5)
    wait_for(f"{new} BACKUP", lambda: _views_are(cluster, {new: ("BACKUP", False)}), 60)
    # --peer-wait: under software emulation a VM's keepalived takes seconds to hand over
    # (the default, 3 x advert_int + 1 s, is for real machines).
    res = cluster.haguard(old, "failover-test", "-c", cluster.topology.NODE_CONFIG,
                          "--method", "stop", "--peer-wait", "30", "--json", timeout=300)
    report = json.loads(res.out)
    new_address = cluster.layout.host(new).address
    assert report["new_master"] == new_address and \
        report["new_master_mac"] == cluster.mac(new), report
    assert report["first_announcement_ms"] is not None, report
    assert any(m["what"].startswith(f"removed {vip}") for m in report["milestones"]), report
    assert report["failback_ms"] > 0 and report["ipvs_before_vip"] is True, report
    assert cluster.ssh(old, ["systemctl", "is-active", "keepalived"]).out.strip() == "active"
    wait_for(f"{old} MASTER after the drill", lambda: _master_with_vip(cluster, old), 60)
    wait_for(f"{new} BACKUP after the drill",
             lambda: _views_are(cluster, {new: ("BACKUP", False)}), 60)
    figure(f"`haguard failover-test --method stop` on {old}: priority 0 sent at "
           f"+{report['left_master_ms']} ms, {new} advertising at +{report['new_master_ms']} "
           f"ms, its first announcement on the wire at +{report['first_announcement_ms']} ms; "
           f"{old} MASTER again {report['failback_ms']:.0f} ms after keepalived's start")


@pytest.fixture(scope="module")
def rebooted(cluster: Cluster) -> dict[str, float]:
    """lb1 (a director) and rs1 (a real server) rebooted at once; seconds to come back."""
    nodes = [_names(cluster, "director")[0], _names(cluster, "realserver")[0]]
    before = {n: cluster.boot_id(n) for n in nodes}
    took: dict[str, float] = {}
    errors: list[str] = []

    def reboot(node: str) -> None:
        start = time.monotonic()
        # The connection drops as the VM goes down: exit codes mean nothing here.
        cluster.ssh(node, "systemctl reboot", check=False, timeout=60)
        deadline = start + 900
        while time.monotonic() < deadline:
            try:
                if cluster.boot_id(node, timeout=30) != before[node]:
                    took[node] = time.monotonic() - start
                    return
            except Exception:  # noqa: BLE001 - unreachable while it reboots
                pass
            time.sleep(3)
        errors.append(f"{node} did not come back within 900 s")

    threads = [threading.Thread(target=reboot, args=(n,)) for n in nodes]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    for node, seconds in took.items():
        figure(f"reboot of {node}: back (new boot id over SSH) after {seconds:.0f} s")
    return took


def test_rebooted_director_comes_back_as_configured(cluster: Cluster,
                                                   rebooted: dict[str, float]) -> None:
    """After its reboot lb1 runs keepalived again (systemd), and takes the MASTER role
    back if its config preempts (higher priority, nopreempt off), else stays BACKUP."""
    vip, port = _service(cluster)
    lb1, lb2 = _names(cluster, "director")
    assert lb1 in rebooted
    # keepalived starts after network-online.target, which can be well after SSH is up.
    state = wait_for(f"keepalived started by systemd on {lb1}",
                     lambda: (lambda s: s if s in ("active", "failed") else None)(
                         cluster.ssh(lb1, ["systemctl", "is-active", "keepalived"],
                                     check=False).out.strip()), 300, every=3)
    assert state == "active"
    inst1, inst2 = _instance(cluster, lb1), _instance(cluster, lb2)
    preempts = not inst1.get("nopreempt", False) and int(inst1["priority"]) > int(inst2["priority"])
    master, backup = (lb1, lb2) if preempts else (lb2, lb1)
    wait_for(f"{master} MASTER holding {vip} and {backup} BACKUP without it",
             lambda: _views_are(cluster, {master: ("MASTER", True),
                                          backup: ("BACKUP", False)}), 300, every=2)
    for node in (lb1, lb2):
        rc, report = cluster.status(node)
        assert rc == 0, report
    # The client follows the VIP back (haguard's announcement on the preempting MASTER)
    # and is answered by both real servers through it.
    wait_for(f"the client's neighbour entry for {vip} pointing at {master}",
             lambda: cluster.neighbour(vip) == cluster.mac(master), 120, every=2)
    seen: set[str] = set()

    def both_answer() -> bool:
        result = cluster.fetch(vip, port, count=6)
        seen.update(result["counts"])
        assert seen >= set(_names(cluster, "realserver")), \
            f"answers so far {sorted(seen)}, errors {result['errors'][:2]}"
        return True

    wait_for("answers from both real servers through the VIP", both_answer, 300, every=3)
    figure(f"after its reboot {lb1} is {'MASTER (preempted)' if preempts else 'BACKUP'} "
           "as its config says; both real servers answer through the VIP")


def test_rebooted_real_server_keeps_its_setup(cluster: Cluster,
                                              rebooted: dict[str, float]) -> None:
    """rs1's VIP on lo and its ARP sysctls come back at boot from haguard's systemd unit
    (not rc.local), and it serves through the VIP again."""
    vip, port = _service(cluster)
    rs1 = _names(cluster, "realserver")[0]
    assert rs1 in rebooted
    unit = "haguard-realserver.service"
    assert cluster.ssh(rs1, ["systemctl", "is-enabled", unit]).out.strip() == "enabled"
    # RemainAfterExit: "active" means this boot ran `haguard realserver up` successfully.
    state = wait_for(f"{unit} done on {rs1}",
                     lambda: (lambda s: s if s in ("active", "failed") else None)(
                         cluster.ssh(rs1, ["systemctl", "is-active", unit],
                                     check=False).out.strip()), 300, every=3)
    assert state == "active"
    assert cluster.ssh(rs1, ["test", "-e", "/etc/rc.local"], check=False).rc != 0
    assert f"{vip}/32" in cluster.addresses(rs1, "lo")
    for key, value in (("net.ipv4.conf.all.arp_ignore", "1"),
                       ("net.ipv4.conf.all.arp_announce", "2")):
        assert cluster.ssh(rs1, ["sysctl", "-n", key]).out.strip() == value
    status = cluster.haguard(rs1, "realserver", "-c", cluster.topology.NODE_CONFIG, "status",
                             check=False)
    assert status.rc == 0 and status.out.strip().splitlines()[-1] == "healthy", status.out
    address = cluster.layout.host(rs1).address
    wait_for(f"{rs1}'s HTTP service back on {address}",
             lambda: cluster.fetch(address, port, count=1)["counts"] == {rs1: 1}, 120, every=3)
    def answers() -> bool:
        result = cluster.fetch(vip, port, count=6)
        assert rs1 in result["counts"], f"answers {result['counts']}, errors {result['errors'][:2]}"
        return True

    wait_for(f"{rs1} answering through {vip}", answers, 300, every=3)
