"""Real-server checks in `haguard agent`, against real servers in network namespaces.

A director namespace runs the agent (no keepalived: checks run whatever the VRRP state)
and a real-server namespace holds the servers: an HTTP server whose answer a file
decides, a TCP listener, a script, and an address nobody answers. Each transition is
read from the agent's log and `haguard status --json`; the kernel here has no IPVS, so
the agent's write of each change fails and is logged (the VM tier proves the table).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from haguard.adapters.files import read_jsonl
from haguard.lab import netns
from tests.conftest import wait_until
from tests.lab.conftest import lab_name

SERVER = textwrap.dedent("""\
    import http.server, sys, time
    status_file, port = sys.argv[1], int(sys.argv[2])
    class H(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            words = open(status_file).read().split()
            if len(words) > 1:
                time.sleep(float(words[1]))
            body = b"ok\\n" if words[0] == "200" else b"not ready\\n"
            self.send_response(int(words[0]))
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        def log_message(self, *args):
            pass
    s = http.server.HTTPServer(("198.51.100.21", port), H)
    print("serving", flush=True)
    s.serve_forever()
""")

CONFIG = """\
node: {{name: lb1, state_dir: {root}/state, lever_dir: {root}/levers, log_file: {root}/log.jsonl}}
keepalived: {{pid_file: {root}/keepalived.pid, vrrp_pid_file: {root}/vrrp.pid,
             hooks_dir: {root}/hooks, config: {root}/keepalived.conf}}
agent: {{fifo: {root}/notify.fifo, metrics: {{listen: "198.51.100.1:9650"}}}}
instances:
  - {{name: VI_1, interface: eth0, virtual_router_id: 51, priority: 150,
     vips: [198.51.100.100/32]}}
ipvs:
  on_backup: {on_backup}
  services:
{services}"""

SERVICES = """\
    - vip: 198.51.100.100
      port: 8080
      health: {{check: http, http: {{path: /healthz}}, interval_s: {interval}, timeout_s: 0.5,
               retries: 1, retry_interval_s: 0.2}}
      real_servers:
        - {{address: 198.51.100.21, forwarding: nat}}
        - {{address: 198.51.100.21, port: 9090, forwarding: nat, health: {{check: tcp}}}}
        - {{address: 198.51.100.29, forwarding: nat, health: {{check: tcp}}}}
        - {{address: 198.51.100.21, port: 7070, forwarding: nat,
           health: {{check: script, script: {{command: [{script}, "{{address}}", "{{port}}"],
                                               user: nobody}}}}}}
"""

INTERVAL_S = 1.0
HTTP_RS, TCP_RS, SILENT_RS, SCRIPT_RS = ("198.51.100.21:8080", "198.51.100.21:9090",
                                         "198.51.100.29:8080", "198.51.100.21:7070")


class Pair:
    """A director namespace and a real-server namespace joined by a veth."""

    def __init__(self, tmp_path: Path, on_backup: str = "keep",
                 services: str = SERVICES) -> None:
        tag = lab_name()
        self.lb, self.rs = f"hg-{tag}-lb", f"hg-{tag}-rs"
        self.root = f"/run/haguard-lab/{self.lb}"
        os.makedirs(self.root, exist_ok=True)
        self.procs: list[subprocess.Popen[bytes]] = []
        for ns in (self.lb, self.rs):
            netns.create(ns)
            netns.link_up(ns, "lo")
        netns.run(["ip", "-n", self.lb, "link", "add", "eth0", "type", "veth", "peer", "name",
                   "eth0", "netns", self.rs])
        netns.add_address(self.lb, "eth0", "198.51.100.1/24")
        netns.add_address(self.rs, "eth0", "198.51.100.21/24")
        netns.link_up(self.lb, "eth0")
        netns.link_up(self.rs, "eth0")
        self.status = tmp_path / "status"
        self.status.write_text("200\n")
        self.status.chmod(0o644)
        server = tmp_path / "server.py"
        server.write_text(SERVER)
        # The script runs as nobody: it and its answer live where nobody can read them
        # (pytest's own directories are root's alone).
        self.script_answer = Path(self.root) / "answer"
        self.script_answer.write_text("0\n")
        self.script_answer.chmod(0o644)
        script = Path(self.root) / "check.sh"
        script.write_text(f"#!/bin/sh\nread code < {self.script_answer}\n"
                          "[ \"$code\" = 0 ] || echo \"not ready ($1:$2)\" >&2\nexit $code\n")
        script.chmod(0o755)
        self.config = tmp_path / "lb1.yaml"
        values = {"root": self.root, "interval": INTERVAL_S, "script": script}
        self.config.write_text(CONFIG.format(on_backup=on_backup, root=self.root,
                                             services=services.format(**values)))
        self.http = self.spawn(self.rs, sys.executable, str(server), str(self.status), "8080")
        self.tcp = self.spawn(self.rs, sys.executable, "-c",
                              "import socket,time;s=socket.create_server(('198.51.100.21',9090));"
                              "time.sleep(3600)")
        self.agent: subprocess.Popen[bytes] | None = None

    def spawn(self, ns: str, *args: str) -> subprocess.Popen[bytes]:
        proc = subprocess.Popen(netns.ns_exec(ns, *args), stdin=subprocess.DEVNULL,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                start_new_session=True)
        self.procs.append(proc)
        return proc

    def start_agent(self) -> None:
        self.agent = self.spawn(self.lb, sys.executable, "-m", "haguard", "agent", "-c",
                                str(self.config))
        wait_until(lambda: self.events("agent_resync"), 30, "the agent to start")

    def events(self, name: str) -> list[dict]:
        return [e for e in read_jsonl(f"{self.root}/log.jsonl") if e.get("event") == name]

    def health(self) -> dict[str, dict]:
        try:
            with open(f"{self.root}/state/health.json", encoding="utf-8") as fh:
                data = json.load(fh)
        except (FileNotFoundError, ValueError):
            return {}
        return {rs["realserver"]: rs for svc in data["services"] for rs in svc["realservers"]}

    def state_of(self, rs: str) -> str | None:
        return self.health().get(rs, {}).get("state")

    def checked_once(self) -> bool:
        rs = self.health()
        return len(rs) == 4 and all(r["checks"][0]["checks"] >= 1 for r in rs.values())

    def service(self, name: str) -> dict:
        with open(f"{self.root}/state/health.json", encoding="utf-8") as fh:
            return next(s for s in json.load(fh)["services"] if s["service"] == name)

    def close(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.procs:
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)
        for ns in (self.lb, self.rs):
            netns.kill_all_in(ns)
            netns.delete(ns)
        shutil.rmtree(self.root, ignore_errors=True)


@pytest.fixture
def pair(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Pair]:
    p = Pair(tmp_path, **getattr(request, "param", {}))
    try:
        yield p
    finally:
        p.close()
    assert not netns.exists(p.lb) and not netns.exists(p.rs)


def _down_within(pair: Pair, rs: str, since: float) -> float:
    wait_until(lambda: any(e.get("realserver") == rs and e["ts"] >= since
                           for e in pair.events("realserver_down")), 15, f"{rs} down")
    return min(e["ts"] for e in pair.events("realserver_down")
               if e.get("realserver") == rs and e["ts"] >= since) - since


# First failure, one retry 0.2 s later, then down; a probe is at most one interval away
# and each waits at most its timeout.
DETECT_BOUND_S = INTERVAL_S + 2 * 0.5 + 0.2 + 0.5


def test_each_kind_of_check_sees_its_real_server_up_and_the_silent_one_time_out(pair) -> None:
    pair.start_agent()
    wait_until(pair.checked_once, 15, "every real server checked once")
    rs = pair.health()
    assert {k: v["state"] for k, v in rs.items()} == {
        HTTP_RS: "up", TCP_RS: "up", SILENT_RS: "down", SCRIPT_RS: "up"}
    assert rs[HTTP_RS]["checks"][0]["detail"] == "HTTP 200 from /healthz"
    assert rs[TCP_RS]["checks"][0]["detail"] == "connected to 198.51.100.21:9090"
    assert rs[SCRIPT_RS]["checks"][0]["detail"] == "check.sh exit 0"
    # nobody answers ARP for .29: the connect times out (a started-up check's first
    # failure is final, as keepalived's is)
    assert rs[SILENT_RS]["checks"][0]["detail"] in ("connect timeout after 0.5 s",
                                                    "connect failed: No route to host")
    # the kernel here has no IPVS: every change was computed and its write reported
    assert pair.events("health_apply_failed")
    status = subprocess.run(netns.ns_exec(pair.lb, sys.executable, "-m", "haguard", "status",
                                          "-c", str(pair.config), "--json", "--no-wire"),
                            capture_output=True, text=True, timeout=60)
    report = json.loads(status.stdout)
    listed = {r["realserver"]: r["state"] for s in report["realservers"]
              for r in s["realservers"]}
    assert listed[SILENT_RS] == "down" and listed[HTTP_RS] == "up"
    labels = 'node="lb1",service="tcp 198.51.100.100:8080",realserver='
    wait_until(lambda: os.path.exists(f"{pair.root}/state/metrics.prom"), 5, "metrics")
    metrics = Path(f"{pair.root}/state/metrics.prom").read_text().splitlines()
    assert f'haguard_realserver_up{{{labels}"{SILENT_RS}"}} 0' in metrics
    assert f'haguard_realserver_up{{{labels}"{HTTP_RS}"}} 1' in metrics


def test_the_agent_serves_what_the_textfile_says_and_its_own_health_over_http(pair) -> None:
    pair.start_agent()
    wait_until(pair.checked_once, 15, "every real server checked once")
    wait_until(lambda: pair.events("metrics_listening"), 10, "the metrics listener")

    def scrape(path: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(netns.ns_exec(
            pair.lb, sys.executable, "-c", "import sys, urllib.request, urllib.error\n"
            "try:\n"
            f"    print(urllib.request.urlopen('http://198.51.100.1:9650{path}', "
            "timeout=10).read().decode(), end='')\n"
            "except urllib.error.HTTPError as e:\n"
            "    sys.exit(e.code - 400)"), capture_output=True, text=True, timeout=60)
    # The loop's lateness is measured once a second: the second scrape has it.
    wait_until(lambda: "haguard_agent_loop_lag_seconds" in scrape("/metrics").stdout, 10,
               "the loop lag in /metrics")
    served = {(s.name, tuple(sorted(s.labels.items()))): s.value
              for f in text_string_to_metric_families(scrape("/metrics").stdout)
              for s in f.samples}
    rs = (("node", "lb1"), ("realserver", SILENT_RS), ("service", "tcp 198.51.100.100:8080"))
    assert served[("haguard_realserver_up", rs)] == 0
    assert served[("haguard_realserver_up", (("node", "lb1"), ("realserver", HTTP_RS),
                                             ("service", "tcp 198.51.100.100:8080")))] == 1
    assert served[("haguard_agent_events_applied_total", (("node", "lb1"),))] >= 0
    assert 0 <= served[("haguard_agent_loop_lag_seconds", (("node", "lb1"),))] < 5
    # Every family of the textfile is served too.
    textfile = Path(f"{pair.root}/state/metrics.prom").read_text()
    assert {f.name for f in text_string_to_metric_families(textfile)} <= \
        {f.name for f in text_string_to_metric_families(scrape("/metrics").stdout)}
    assert scrape("/").returncode == 4          # 404: the metrics are at /metrics


def test_http_503_takes_a_server_down_within_the_bound_and_200_brings_it_back(pair) -> None:
    pair.start_agent()
    wait_until(lambda: pair.state_of(HTTP_RS) == "up", 15, "the HTTP real server up")
    since = time.time()
    pair.status.write_text("503\n")
    took = _down_within(pair, HTTP_RS, since)
    assert took <= DETECT_BOUND_S, f"detected after {took:.2f} s"
    wait_until(lambda: pair.state_of(HTTP_RS) == "down", 5, "health.json to say down")
    assert pair.health()[HTTP_RS]["checks"][0]["detail"] == "HTTP 503 from /healthz"
    since = time.time()
    pair.status.write_text("200\n")
    wait_until(lambda: any(e.get("realserver") == HTTP_RS and e["ts"] >= since
                           for e in pair.events("realserver_up")), 10, "back up")


def test_a_slow_answer_is_a_timeout_and_a_closed_port_a_refusal(pair) -> None:
    pair.start_agent()
    wait_until(lambda: pair.state_of(HTTP_RS) == "up" and pair.state_of(TCP_RS) == "up", 15,
               "both up")
    since = time.time()
    pair.status.write_text("200 2\n")          # answers after 2 s: past the 0.5 s timeout
    pair.tcp.send_signal(signal.SIGTERM)       # nothing listens on 9090: RST
    _down_within(pair, HTTP_RS, since)
    _down_within(pair, TCP_RS, since)
    wait_until(lambda: pair.state_of(TCP_RS) == "down" and pair.state_of(HTTP_RS) == "down",
               5, "health.json to say both down")
    rs = pair.health()
    assert rs[HTTP_RS]["checks"][0]["detail"] == "HTTP timeout after 0.5 s on /healthz"
    assert rs[TCP_RS]["checks"][0]["detail"] == "connect refused"


def test_a_script_check_runs_as_its_user_and_reports_its_first_stderr_line(pair) -> None:
    pair.start_agent()
    wait_until(lambda: pair.state_of(SCRIPT_RS) == "up", 15, "the script's real server up")
    pair.script_answer.write_text("1\n")
    wait_until(lambda: pair.state_of(SCRIPT_RS) == "down", 10, "the script's server down")
    assert pair.health()[SCRIPT_RS]["checks"][0]["detail"] == \
        "check.sh exit 1: not ready (198.51.100.21:7070)"


def test_a_restarted_agent_keeps_a_dead_server_down_until_it_answers(pair) -> None:
    pair.start_agent()
    wait_until(lambda: pair.state_of(HTTP_RS) == "up", 15, "the HTTP real server up")
    pair.status.write_text("503\n")
    wait_until(lambda: pair.state_of(HTTP_RS) == "down", 10, "down")
    assert pair.agent is not None
    pair.agent.send_signal(signal.SIGTERM)
    pair.agent.wait(10)
    restarted = time.time()
    pair.start_agent()
    # Its first table, written before any probe, already leaves the dead server out.
    wait_until(lambda: [e for e in pair.events("health_apply_failed")
                        if e["ts"] >= restarted], 10, "the restarted agent's first table")
    first = min((e for e in pair.events("health_apply_failed") if e["ts"] >= restarted),
                key=lambda e: e["ts"])
    assert first["reason"] == "agent start"
    assert f"{HTTP_RS}:1" not in first["realservers"] and f"{TCP_RS}:1" in first["realservers"]
    assert pair.state_of(HTTP_RS) == "down"
    assert not [e for e in pair.events("realserver_up")
                if e["ts"] >= restarted and e.get("realserver") == HTTP_RS]


@pytest.mark.parametrize("pair", [{"on_backup": "remove"}], indirect=True)
def test_the_agent_follows_an_operators_disable_at_once_and_health_never_undoes_it(
        pair) -> None:
    # on_backup: remove and no MASTER here: the lever is recorded without a kernel write
    pair.start_agent()
    wait_until(lambda: pair.state_of(TCP_RS) == "up", 15, "the TCP real server up")
    ipvs = [sys.executable, "-m", "haguard", "ipvs"]
    done = subprocess.run(netns.ns_exec(pair.lb, *ipvs, "disable", "-c", str(pair.config),
                                        "tcp 198.51.100.100:8080", TCP_RS, "--reason",
                                        "disk swap"), capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0, done.stderr
    wait_until(lambda: pair.health()[TCP_RS]["lever"] == "disabled", 5,
               "the agent to take the lever")
    rs = pair.health()[TCP_RS]
    assert rs["state"] == "up" and not rs["in_kernel"]
    time.sleep(2 * INTERVAL_S)             # checks keep succeeding: it stays out
    assert not pair.health()[TCP_RS]["in_kernel"]
    done = subprocess.run(netns.ns_exec(pair.lb, *ipvs, "enable", "-c", str(pair.config),
                                        "tcp 198.51.100.100:8080", TCP_RS),
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    wait_until(lambda: pair.health()[TCP_RS]["in_kernel"], 5, "the lever lifted")
    refused = subprocess.run(netns.ns_exec(pair.lb, *ipvs, "disable", "-c", str(pair.config),
                                           "tcp 198.51.100.100:8080", "198.51.100.77:8080",
                                           "--reason", "x"), capture_output=True, text=True,
                             timeout=60)
    assert refused.returncode == 2 and "is not a real server of" in refused.stderr


MORE = """\
    - vip: 198.51.100.100
      port: 8443
      health: {{check: https, http: {{path: /healthz}}, interval_s: {interval}, timeout_s: 0.5,
               retries: 0}}
      real_servers:
        - {{address: 198.51.100.21, forwarding: nat}}
        - {{address: 198.51.100.21, port: 8444, forwarding: nat, health: {{tls: {{verify: true}}}}}}
    - vip: 198.51.100.100
      port: 53
      protocol: udp
      health: {{check: dns, dns: {{name: example.org}}, interval_s: {interval}, timeout_s: 0.5,
               retries: 0}}
      real_servers:
        - {{address: 198.51.100.21, forwarding: nat}}
    - vip: 198.51.100.100
      port: 9191
      health: {{check: tcp, interval_s: {interval}, timeout_s: 0.5, retries: 0,
               notify: {{up: [/bin/sh, -c, "echo up $0 >> {root}/notify.log", rs],
                        down: [/bin/sh, -c, "echo down $0 >> {root}/notify.log", rs]}}}}
      quorum: {{weight: 2, up: [/bin/sh, -c, "echo quorum-up >> {root}/notify.log"],
               down: [/bin/sh, -c, "echo quorum-down >> {root}/notify.log"]}}
      sorry_server: {{address: 198.51.100.30, forwarding: nat}}
      real_servers:
        - {{address: 198.51.100.21, forwarding: nat}}
        - {{address: 198.51.100.22, forwarding: nat}}
"""

# The real servers' HTTPS and DNS (run as scripts in the real server's namespace).
HTTPS_SERVER = os.path.join(os.path.dirname(os.path.dirname(__file__)), "https_server.py")
DNS_SERVER = os.path.join(os.path.dirname(os.path.dirname(__file__)), "dns_server.py")


def _more(pair: Pair, tmp_path: Path) -> Path:
    """Start the HTTPS servers, the DNS responder and .22's listener for MORE."""
    cert = tmp_path / "cert.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-subj", "/CN=rs.example.org", "-keyout", str(cert), "-out", str(cert)],
                   check=True, capture_output=True, timeout=60)
    for port in ("8443", "8444"):
        pair.spawn(pair.rs, sys.executable, HTTPS_SERVER, str(cert), "198.51.100.21", port)
    rcode = tmp_path / "rcode"
    rcode.write_text("0")
    pair.spawn(pair.rs, sys.executable, DNS_SERVER, "198.51.100.21", str(rcode))
    netns.add_address(pair.rs, "eth0", "198.51.100.22/24")
    for address in ("198.51.100.21", "198.51.100.22"):
        pair.spawn(pair.rs, sys.executable, "-c",
                   f"import socket,time;s=socket.create_server(('{address}',9191));"
                   "time.sleep(3600)")
    return rcode


@pytest.mark.parametrize("pair", [{"services": MORE}], indirect=True)
def test_https_checks_handshake_and_verify_only_when_asked_and_dns_reads_the_rcode(
        pair, tmp_path: Path) -> None:
    rcode = _more(pair, tmp_path)
    pair.start_agent()
    tls_ok, tls_verify, dns = ("198.51.100.21:8443", "198.51.100.21:8444", "198.51.100.21:53")
    wait_until(lambda: all(pair.health().get(rs, {}).get("checks", [{}])[0].get("checks")
                           for rs in (tls_ok, tls_verify, dns)), 15, "every check run once")
    rs = pair.health()
    assert (rs[tls_ok]["state"], rs[tls_ok]["checks"][0]["detail"]) == (
        "up", "HTTPS 200 from /healthz")
    assert rs[tls_verify]["state"] == "down"
    assert "CERTIFICATE_VERIFY_FAILED" in rs[tls_verify]["checks"][0]["detail"]
    assert (rs[dns]["state"], rs[dns]["checks"][0]["detail"]) == (
        "up", "DNS NOERROR for example.org A (0 answers)")
    rcode.write_text("5")
    wait_until(lambda: pair.state_of(dns) == "down", 10, "REFUSED to take the DNS server down")
    assert pair.health()[dns]["checks"][0]["detail"] == "DNS rcode 5 for example.org A"


@pytest.mark.parametrize("pair", [{"services": MORE}], indirect=True)
def test_dropped_syns_lose_quorum_swap_in_the_sorry_server_and_run_the_commands(
        pair, tmp_path: Path) -> None:
    _more(pair, tmp_path)
    pair.start_agent()
    name = "tcp 198.51.100.100:9191"
    wait_until(lambda: pair.state_of("198.51.100.21:9191") == "up"
               and pair.state_of("198.51.100.22:9191") == "up", 15, "both up")
    assert pair.service(name)["quorum"] is True
    drop = ["iptables", "-w", "-I", "INPUT", "-p", "tcp", "-d", "198.51.100.21", "--dport",
            "9191", "--syn", "-j", "DROP"]
    netns.run(netns.ns_exec(pair.rs, *drop))
    wait_until(lambda: pair.state_of("198.51.100.21:9191") == "down", 10, ".21 down")
    assert pair.health()["198.51.100.21:9191"]["checks"][0]["detail"] == \
        "connect timeout after 0.5 s"
    # live weight 1 of a quorum of 2: the sorry server stands in alone
    wait_until(lambda: pair.service(name)["sorry_server_active"], 5, "the sorry server in")
    lost = pair.events("quorum_lost")
    assert lost and lost[-1]["service"] == name and lost[-1]["live_weight"] == 1
    applied = [e for e in pair.events("health_apply_failed") if e["service"] == name]
    assert applied[-1]["realservers"] == ["198.51.100.30:9191:1"]
    netns.run(netns.ns_exec(pair.rs, *[w if w != "-I" else "-D" for w in drop]))
    wait_until(lambda: not pair.service(name)["sorry_server_active"], 10, "the sorry server out")
    notify = Path(f"{pair.root}/notify.log")
    wait_until(lambda: notify.exists() and notify.read_text().count("quorum-up") == 2, 10,
               "commands")
    # As keepalived: quorum_up at the service's start (it starts with quorum). Then each
    # pair runs side by side (neither waits for the other); the pairs in order.
    lines = notify.read_text().split("\n")
    assert lines[0] == "quorum-up"
    assert sorted(lines[1:3]) == ["down rs", "quorum-down"]
    assert sorted(lines[3:5]) == ["quorum-up", "up rs"]


def test_a_reload_keeps_each_real_servers_state_drops_the_removed_and_checks_the_new(
        pair) -> None:
    pair.start_agent()
    wait_until(lambda: pair.state_of(HTTP_RS) == "up" and pair.state_of(SILENT_RS) == "down",
               15, "the first results")
    # An edit of the checks' interval, the TCP real server gone, a new one on port 9191.
    text = pair.config.read_text()
    edited = text.replace(f"interval_s: {INTERVAL_S}", "interval_s: 1.5").replace(
        "        - {address: 198.51.100.21, port: 9090, forwarding: nat, health: {check: tcp}}\n",
        "        - {address: 198.51.100.21, port: 9191, forwarding: nat, health: {check: tcp}}\n")
    assert edited.count("9191") == 1 and "interval_s: 1.5" in edited
    pair.config.write_text(edited)
    reloaded = time.time()
    assert pair.agent is not None
    pair.agent.send_signal(signal.SIGHUP)
    wait_until(lambda: [e for e in pair.events("reloaded") if e["ts"] >= reloaded], 10,
               "the agent to reload")
    wait_until(lambda: "198.51.100.21:9191" in pair.health()
               and TCP_RS not in pair.health(), 5, "the new table published")
    # Nothing listens on 9191: a new real server starts up and its first failure is final.
    wait_until(lambda: pair.state_of("198.51.100.21:9191") == "down", 10, "9191 checked")
    # The silent one stayed down through the reload, without a moment back up.
    assert pair.state_of(SILENT_RS) == "down"
    assert not [e for e in pair.events("realserver_up")
                if e["ts"] >= reloaded and e.get("realserver") == SILENT_RS]
    assert pair.state_of(HTTP_RS) == "up"
    # A config that does not load is refused, and the running one kept.
    pair.config.write_text(edited.replace("port: 8080", "port: 80800"))
    broken = time.time()
    pair.agent.send_signal(signal.SIGHUP)
    wait_until(lambda: [e for e in pair.events("reload_failed") if e["ts"] >= broken], 10,
               "the refusal")
    assert pair.state_of(HTTP_RS) == "up"
