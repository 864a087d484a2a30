#!/usr/bin/env python3
"""Captures real Alertmanager webhook payloads as test fixtures.

Starts a throwaway Alertmanager (Debian's `prometheus-alertmanager`, or the
binary named by $ALERTMANAGER) whose webhook receivers point at a tiny HTTP
server in this script, fires and resolves alerts through the v2 API, records
exactly what Alertmanager POSTs, and writes each body, pretty-printed, to
envelope/fixtures/:

  firing.json     one firing KubePodCrashLooping alert
  resolved.json   the same alert, resolved
  group.json      three NodeFilesystemSpaceFillingUp alerts in one group
  truncated.json  five KubePodNotReady alerts to a receiver with max_alerts: 2

Everything binds 127.0.0.1 only. Alertmanager runs with clustering disabled
and storage in a temp dir, and is stopped (and the temp dir removed) on every
exit path, including errors, timeouts and SIGTERM/SIGINT.

  infra/local/capture-fixtures.py                 # writes envelope/fixtures/
  infra/local/capture-fixtures.py --out DIR       # writes elsewhere
"""

import argparse
import http.server
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from datetime import datetime, timedelta, timezone
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
DEFAULT_OUT = REPO / "envelope" / "fixtures"
# The whole run must finish well within a minute.
DEADLINE = time.monotonic() + 55
# What Alertmanager puts in externalURL; only used for links, never contacted.
EXTERNAL_URL = "http://alertmanager-main.monitoring.svc:9093"
PROMETHEUS_URL = "http://prometheus-k8s-0:9090"


def log(msg):
    print(f"capture-fixtures: {msg}", file=sys.stderr, flush=True)


class Failure(Exception):
    pass


def remaining():
    left = DEADLINE - time.monotonic()
    if left <= 0:
        raise Failure("overall deadline exceeded")
    return left


# ---------------------------------------------------------------- receiver


class Recorder:
    """Every POST body received, in order, with the path it was sent to."""

    def __init__(self):
        self.cond = threading.Condition()
        self.received = []  # (path, raw bytes)

    def add(self, path, body):
        with self.cond:
            self.received.append((path, body))
            self.cond.notify_all()

    def wait_for(self, path, predicate, what, timeout=15):
        """Waits for the first not yet consumed body on `path` matching `predicate`."""
        end = time.monotonic() + min(timeout, remaining())
        with self.cond:
            while True:
                for i, (p, body) in enumerate(self.received):
                    if p == path and predicate(json.loads(body)):
                        del self.received[i]
                        return body
                left = end - time.monotonic()
                if left <= 0:
                    seen = [(p, json.loads(b).get("status")) for p, b in self.received]
                    raise Failure(f"timed out waiting for {what} on {path}; unconsumed: {seen}")
                self.cond.wait(left)


def start_receiver(recorder):
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self):
            length = int(self.headers.get("Content-Length", 0))
            body = self.rfile.read(length)
            recorder.add(self.path, body)
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, fmt, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


# ------------------------------------------------------------ alertmanager


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def am_config(hook):
    # One receiver per fixture, chosen by alertname, so every notification
    # carries exactly the alerts of one fixture.
    return f"""\
global:
  resolve_timeout: 1m
route:
  receiver: blackhole
  group_by: [alertname, namespace]
  group_wait: 1s
  group_interval: 1s
  repeat_interval: 4h
  routes:
    - receiver: payments-oncall
      matchers: ['alertname="KubePodCrashLooping"']
    - receiver: platform-storage
      group_by: [alertname]
      matchers: ['alertname="NodeFilesystemSpaceFillingUp"']
    - receiver: payments-digest
      matchers: ['alertname="KubePodNotReady"']
receivers:
  - name: blackhole
  - name: payments-oncall
    webhook_configs:
      - url: {hook}/firing
        send_resolved: true
  - name: platform-storage
    webhook_configs:
      - url: {hook}/group
        send_resolved: false
  - name: payments-digest
    webhook_configs:
      - url: {hook}/truncated
        send_resolved: false
        max_alerts: 2
"""


def http_json(method, url, payload=None, timeout=5):
    data = None if payload is None else json.dumps(payload).encode()
    req = urllib.request.Request(url, data=data, method=method)
    if data is not None:
        req.add_header("Content-Type", "application/json")
    with urllib.request.urlopen(req, timeout=min(timeout, remaining())) as resp:
        return resp.status, resp.read()


def wait_ready(api, proc, log_path):
    while True:
        if proc.poll() is not None:
            raise Failure(f"alertmanager exited with {proc.returncode}:\n{log_path.read_text()}")
        try:
            status, _ = http_json("GET", f"{api}/-/ready", timeout=1)
            if status == 200:
                return
        except (urllib.error.URLError, ConnectionError, OSError):
            pass
        if remaining() < 45:
            raise Failure(f"alertmanager not ready after 10 s:\n{log_path.read_text()}")
        time.sleep(0.1)


def post_alerts(api, alerts):
    status, body = http_json("POST", f"{api}/api/v2/alerts", alerts)
    if status != 200:
        raise Failure(f"POST /api/v2/alerts answered {status}: {body!r}")


def stop(proc):
    if proc is None or proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout=5)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=5)


# ------------------------------------------------------------------ alerts


def ts(dt):
    """RFC 3339 with nanoseconds, the way Prometheus (Go) sends times."""
    return dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{dt.microsecond:06d}123Z"


def generator(expr):
    return f"{PROMETHEUS_URL}/graph?" + urllib.parse.urlencode({"g0.expr": expr, "g0.tab": "1"})


def crash_looping(now):
    ns, pod, container = "payments", "api-7d9f8b6c5-x2x8q", "api"
    expr = (
        'max_over_time(kube_pod_container_status_waiting_reason{job="kube-state-metrics",'
        'reason="CrashLoopBackOff"}[5m]) >= 1'
    )
    return {
        "labels": {
            "alertname": "KubePodCrashLooping",
            "severity": "critical",
            "namespace": ns,
            "pod": pod,
            "container": container,
            "job": "kube-state-metrics",
            "instance": "10.0.1.23:8080",
            "reason": "CrashLoopBackOff",
            "prometheus": "monitoring/k8s",
        },
        "annotations": {
            "summary": "Pod is crash looping.",
            "description": (
                f'Pod {ns}/{pod} ({container}) is in waiting state (reason: "CrashLoopBackOff").'
            ),
            "runbook_url": "https://runbooks.prometheus-operator.dev/runbooks/kubernetes/kubepodcrashlooping",
        },
        "startsAt": ts(now - timedelta(minutes=15, seconds=7)),
        "generatorURL": generator(expr),
    }


def filesystem_filling(now):
    nodes = [
        ("ip-10-0-1-17.eu-west-1.compute.internal", "10.0.1.17:9100", "node-exporter-4xk2p", "14.62"),
        ("ip-10-0-2-41.eu-west-1.compute.internal", "10.0.2.41:9100", "node-exporter-9bq7m", "11.08"),
        ("ip-10-0-3-88.eu-west-1.compute.internal", "10.0.3.88:9100", "node-exporter-tz5wd", "9.73"),
    ]
    expr = (
        '(node_filesystem_avail_bytes{fstype!="",job="node-exporter"} / '
        'node_filesystem_size_bytes{fstype!="",job="node-exporter"} * 100 < 15 and '
        'predict_linear(node_filesystem_avail_bytes{fstype!="",job="node-exporter"}[6h], 4 * 60 * 60) < 0 and '
        'node_filesystem_readonly{fstype!="",job="node-exporter"} == 0)'
    )
    alerts = []
    for i, (node, instance, pod, pct) in enumerate(nodes):
        alerts.append({
            "labels": {
                "alertname": "NodeFilesystemSpaceFillingUp",
                "severity": "warning",
                "namespace": "monitoring",
                "job": "node-exporter",
                "instance": instance,
                "node": node,
                "pod": pod,
                "container": "node-exporter",
                "device": "/dev/nvme0n1p1",
                "fstype": "xfs",
                "mountpoint": "/",
                "prometheus": "monitoring/k8s",
            },
            "annotations": {
                "summary": "Filesystem is predicted to run out of space within the next 4 hours.",
                "description": (
                    f"Filesystem on /dev/nvme0n1p1, mounted on /, at {instance} has only "
                    f"{pct}% available space left and is filling up fast."
                ),
                "runbook_url": "https://runbooks.prometheus-operator.dev/runbooks/node/nodefilesystemspacefillingup",
            },
            "startsAt": ts(now - timedelta(minutes=42 - 9 * i, seconds=31)),
            "generatorURL": generator(expr),
        })
    return alerts


def pods_not_ready(now):
    pods = [
        "worker-5c8d7f9b4-2lqzn",
        "worker-5c8d7f9b4-7wj4c",
        "worker-5c8d7f9b4-b9xkd",
        "worker-5c8d7f9b4-hn6rt",
        "worker-5c8d7f9b4-vm3sp",
    ]
    expr = (
        'sum by (namespace, pod, cluster) (max by (namespace, pod, cluster) '
        '(kube_pod_status_phase{job="kube-state-metrics",namespace=~".*",phase=~"Pending|Unknown|Failed"}) '
        '* on (namespace, pod, cluster) group_left (owner_kind) topk by (namespace, pod, cluster) '
        '(1, max by (namespace, pod, owner_kind, cluster) (kube_pod_owner{owner_kind!="Job"}))) > 0'
    )
    return [
        {
            "labels": {
                "alertname": "KubePodNotReady",
                "severity": "warning",
                "namespace": "payments",
                "pod": pod,
                "job": "kube-state-metrics",
                "prometheus": "monitoring/k8s",
            },
            "annotations": {
                "summary": "Pod has been in a non-ready state for more than 15 minutes.",
                "description": f"Pod payments/{pod} has been in a non-ready state for longer than 15 minutes.",
                "runbook_url": "https://runbooks.prometheus-operator.dev/runbooks/kubernetes/kubepodnotready",
            },
            "startsAt": ts(now - timedelta(minutes=20 + i, seconds=3)),
            "generatorURL": generator(expr),
        }
        for i, pod in enumerate(pods)
    ]


# -------------------------------------------------------------------- main


def check(cond, msg):
    if not cond:
        raise Failure(msg)


def capture(api, recorder):
    now = datetime.now(timezone.utc)
    out = {}

    alert = crash_looping(now)
    post_alerts(api, [alert])
    body = recorder.wait_for("/firing", lambda m: m["status"] == "firing", "firing notification")
    msg = json.loads(body)
    check(len(msg["alerts"]) == 1, f"firing: expected 1 alert, got {len(msg['alerts'])}")
    out["firing.json"] = body

    resolved = dict(alert, endsAt=ts(datetime.now(timezone.utc)))
    post_alerts(api, [resolved])
    body = recorder.wait_for("/firing", lambda m: m["status"] == "resolved", "resolved notification")
    msg = json.loads(body)
    check(len(msg["alerts"]) == 1, f"resolved: expected 1 alert, got {len(msg['alerts'])}")
    check(msg["alerts"][0]["status"] == "resolved", "resolved: alert is not resolved")
    out["resolved.json"] = body

    post_alerts(api, filesystem_filling(now))
    body = recorder.wait_for("/group", lambda m: True, "group notification")
    msg = json.loads(body)
    check(len(msg["alerts"]) == 3, f"group: expected 3 alerts in one notification, got {len(msg['alerts'])}")
    out["group.json"] = body

    post_alerts(api, pods_not_ready(now))
    body = recorder.wait_for("/truncated", lambda m: True, "truncated notification")
    msg = json.loads(body)
    check(msg.get("truncatedAlerts") == 3, f"truncated: truncatedAlerts is {msg.get('truncatedAlerts')!r}, expected 3")
    check(len(msg["alerts"]) == 2, f"truncated: expected 2 alerts, got {len(msg['alerts'])}")
    out["truncated.json"] = body

    for name, body in out.items():
        version = json.loads(body).get("version")
        check(version == "4", f"{name}: version is {version!r}, expected the string \"4\"")
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"fixture directory (default {DEFAULT_OUT})")
    args = parser.parse_args()

    binary = os.environ.get("ALERTMANAGER") or shutil.which("prometheus-alertmanager") or shutil.which("alertmanager")
    if not binary:
        log("no alertmanager binary found (apt-get install prometheus-alertmanager, or set $ALERTMANAGER)")
        return 2

    def on_signal(signum, _frame):
        raise Failure(f"interrupted by signal {signum}")

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)

    tmp = Path(tempfile.mkdtemp(prefix="am-capture-"))
    recorder = Recorder()
    server = None
    proc = None
    log_file = None
    try:
        server = start_receiver(recorder)
        hook = f"http://127.0.0.1:{server.server_address[1]}"
        config = tmp / "alertmanager.yml"
        config.write_text(am_config(hook))
        (tmp / "data").mkdir()
        port = free_port()
        api = f"http://127.0.0.1:{port}"
        log_path = tmp / "alertmanager.log"
        log_file = open(log_path, "wb")
        version = subprocess.run([binary, "--version"], capture_output=True, text=True, timeout=10)
        log(((version.stdout or version.stderr).splitlines() or ["unknown version"])[0])
        proc = subprocess.Popen(
            [
                binary,
                f"--config.file={config}",
                f"--storage.path={tmp / 'data'}",
                f"--web.listen-address=127.0.0.1:{port}",
                f"--web.external-url={EXTERNAL_URL}",
                "--web.route-prefix=/",
                "--cluster.listen-address=",
                "--log.level=debug",
            ],
            stdin=subprocess.DEVNULL,
            stdout=log_file,
            stderr=subprocess.STDOUT,
        )
        wait_ready(api, proc, log_path)
        log(f"alertmanager (pid {proc.pid}) ready on {api}, webhooks to {hook}")
        out = capture(api, recorder)
        args.out.mkdir(parents=True, exist_ok=True)
        for name, body in out.items():
            pretty = json.dumps(json.loads(body), indent=2, ensure_ascii=False) + "\n"
            (args.out / name).write_text(pretty)
            log(f"wrote {args.out / name}")
        return 0
    except Failure as e:
        log(f"FAILED: {e}")
        if proc is not None and log_file is not None:
            log_file.flush()
            tail = (tmp / "alertmanager.log").read_text(errors="replace").splitlines()[-40:]
            log("alertmanager log (last 40 lines):\n" + "\n".join(tail))
        return 1
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        stop(proc)
        if server is not None:
            server.shutdown()
            server.server_close()
        if log_file is not None:
            log_file.close()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
