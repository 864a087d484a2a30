#!/usr/bin/env python3
"""Benchmark of a storm through the enricher Lambda: 10,000 firing alerts
over 500 instances, in SQS batches of 10 (the stack's BatchSize), served to
one enricher process through the Runtime API stand-in of lambda-bench.py,
against moto (SNS, EC2, Secrets Manager, SSM, DynamoDB with the stack's
state table) and Slack Web API, PagerDuty and webhook stand-ins on
127.0.0.1. The route has a storm rule (threshold 20, window 5m, group_by
cluster and alertname: 2 clusters x 5 alert names = 10 groups), and the tick
runs every 60 s of the run, as the stack's schedule does.

  storm-bench.py BINARY --bridge PATH [--results DIR] [--quick]

What it reports, per alert: the calls people's sinks received (Slack,
PagerDuty, webhook), the DynamoDB requests moto recorded, and the Lambda's
CPU (per-thread schedstat, summed over the invocations); and the time from
releasing the first alert to the first summary reaching Slack. The
baseline, in the same run and the same process setup: 1,000 alerts (100 in
--quick) through the same route without its storm rule, every alert its
own message.

Writes DIR/storm.json and DIR/storm.md (`## Storm`). Exits non-zero only on
a broken run (a process died, an invocation failed, a stand-in refused a
call), not on a missed goal.
"""
import argparse
import hashlib
import hmac
import http.server
import importlib.util
import json
import os
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
spec = importlib.util.spec_from_file_location("lambda_bench", os.path.join(HERE, "lambda-bench.py"))
lb = importlib.util.module_from_spec(spec)
spec.loader.exec_module(lb)

BOT_TOKEN = "xoxb-1234-5678-benchbenchbench"
CHANNEL = ("C0123456789", "oncall")
HMAC_KEY = "whsec_bench"
CLUSTERS = ["prod-eu", "prod-us"]
NAMES = ["PodCrashLooping", "KubePodNotReady", "KubeContainerWaiting", "TargetDown", "KubeNodeNotReady"]
NODEGROUPS = ["ng-a", "ng-b", "ng-c", "ng-d", "ng-e"]
BATCH = 10
TICK_EVERY_S = 60.0
DYNAMODB = ("BatchGetItem", "TransactWriteItems", "PutItem", "GetItem", "Query", "UpdateItem")


class Calls:
    """What the people's sinks received: (perf_counter, sink, summary?)."""

    def __init__(self):
        self.lock = threading.Lock()
        self.calls = []
        self.refused = []

    def add(self, sink, summary):
        with self.lock:
            self.calls.append((time.perf_counter(), sink, summary))

    def refuse(self, why):
        with self.lock:
            self.refused.append(why)

    def snapshot(self):
        with self.lock:
            return list(self.calls), list(self.refused)


class StandIn(http.server.ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False

    def __init__(self, calls):
        super().__init__(("127.0.0.1", 0), PeopleHandler)
        self.calls = calls
        self.messages = set()  # Slack ts of this channel
        self.seq = 0
        self.lock = threading.Lock()

    @property
    def url(self):
        return f"http://127.0.0.1:{self.server_address[1]}"


class PeopleHandler(http.server.BaseHTTPRequestHandler):
    """Slack's Web API (/api/chat.*), PagerDuty's Events API (/v2/enqueue)
    and a signed webhook (/hook), refusing what each refuses."""

    protocol_version = "HTTP/1.1"

    def log_message(self, *a):
        pass

    def answer(self, status, body):
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_POST(self):
        s = self.server
        raw = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        try:
            body = json.loads(raw)
        except ValueError:
            s.calls.refuse(f"{self.path}: not JSON")
            return self.answer(400, {"ok": False, "error": "invalid_json"})
        if self.path.startswith("/api/"):
            return self.slack(self.path.rsplit("/", 1)[-1], body)
        if self.path == "/v2/enqueue":
            if not body.get("routing_key") or body.get("event_action") not in ("trigger", "resolve", "acknowledge"):
                s.calls.refuse(f"pagerduty: {body}")
                return self.answer(400, {"status": "invalid event"})
            s.calls.add("pagerduty", str(body.get("dedup_key", "")).startswith("#storm/"))
            return self.answer(202, {"status": "success", "dedup_key": body.get("dedup_key")})
        if self.path == "/hook":
            sig = dict(p.split("=", 1) for p in self.headers.get("X-Alert-Manager-Signature", "").split(",") if "=" in p)
            want = hmac.new(HMAC_KEY.encode(), f"{sig.get('t')}.".encode() + raw, hashlib.sha256).hexdigest()
            if not hmac.compare_digest(want, sig.get("v1", "")):
                s.calls.refuse("webhook: bad signature")
                return self.answer(401, {"error": "bad signature"})
            s.calls.add("webhook", body.get("type") == "storm")
            return self.answer(200, {})
        return self.answer(404, {})

    def slack(self, method, body):
        s = self.server
        if self.headers.get("Authorization") != f"Bearer {BOT_TOKEN}":
            s.calls.refuse("slack: invalid_auth")
            return self.answer(200, {"ok": False, "error": "invalid_auth"})
        if body.get("channel") not in CHANNEL:
            s.calls.refuse(f"slack: channel_not_found {body.get('channel')}")
            return self.answer(200, {"ok": False, "error": "channel_not_found"})
        if not (body.get("text") or body.get("blocks") or body.get("attachments")):
            s.calls.refuse("slack: no_text")
            return self.answer(200, {"ok": False, "error": "no_text"})
        with s.lock:
            if method == "chat.update" and body.get("ts") not in s.messages:
                s.calls.refuse("slack: message_not_found")
                return self.answer(200, {"ok": False, "error": "message_not_found"})
            if body.get("thread_ts") and body["thread_ts"] not in s.messages:
                s.calls.refuse("slack: thread_not_found")
                return self.answer(200, {"ok": False, "error": "thread_not_found"})
            if method == "chat.postMessage":
                s.seq += 1
                ts = f"1796000000.{s.seq:06d}"
                s.messages.add(ts)
            elif method == "chat.update":
                ts = body["ts"]
            else:
                return self.answer(200, {"ok": False, "error": "unknown_method"})
        s.calls.add("slack_app", "Storm" in json.dumps(body, ensure_ascii=False))
        return self.answer(200, {"ok": True, "channel": CHANNEL[0], "ts": ts})


def routes(people, storm):
    rule = "    storm: {threshold: 20, window: 5m, group_by: [cluster, alertname]}\n" if storm else ""
    return f"""version: 1
sinks:
  oncall-slack:
    type: slack_app
    bot_token: {{secret: alert-manager/slack-bot}}
    channel: oncall
  oncall-pd:
    type: pagerduty
    routing_key: {{secret: alert-manager/pagerduty, key: oncall}}
    url: {people.url}/v2/enqueue
    allow_http: true
  audit:
    type: webhook
    url: {people.url}/hook
    hmac_key: {{ssm: /alert-manager/webhook-hmac}}
    allow_http: true
routes:
  - name: topic
    sinks: [enriched]
    continue: true
  - name: oncall
    match: {{labels.team: payments}}
    sinks: [oncall-slack, oncall-pd, audit]
{rule}"""


def seed(moto_url, instances):
    ec2, sm, ssm, sns = (lb.boto(s, moto_url) for s in ("ec2", "secretsmanager", "ssm", "sns"))
    sns.create_topic(Name=lb.TOPIC_NAME)
    sm.create_secret(Name="alert-manager/slack-bot", SecretString=BOT_TOKEN)
    sm.create_secret(Name="alert-manager/pagerduty", SecretString=json.dumps({"oncall": "R0UTINGKEY0123456789012345678901"}))
    ssm.put_parameter(Name="/alert-manager/webhook-hmac", Value=HMAC_KEY, Type="SecureString")
    image = ec2.describe_images()["Images"][0]["ImageId"]
    ids = []
    per = instances // len(NODEGROUPS)
    for ng in NODEGROUPS:
        tags = [{"Key": "eks:nodegroup-name", "Value": ng}, {"Key": "team", "Value": "payments"}]
        r = ec2.run_instances(ImageId=image, MinCount=per, MaxCount=per, InstanceType="m6i.large",
                              TagSpecifications=[{"ResourceType": "instance", "Tags": tags}])
        ids += [i["InstanceId"] for i in r["Instances"]]
    return ids


def envelope(i, ids, tag, starts_at):
    cluster, name = CLUSTERS[i % 2], NAMES[(i // 2) % len(NAMES)]
    ns = f"payments-{i % 20}"
    return {"schema": "alert-manager/v1", "id": f"{tag:08x}{i:024x}", "source": "alertmanager", "cluster": cluster,
            "status": "firing", "alertname": name, "severity": "critical", "fingerprint": f"{tag:04x}{i:012x}",
            "starts_at": starts_at,
            "labels": {"alertname": name, "severity": "critical", "namespace": ns, "team": "payments",
                       "pod": f"api-{i}"},
            "annotations": {"summary": f"pod api-{i} in {ns} is not ready"},
            "kubernetes": {"namespace": ns, "pod": f"api-{i}"},
            "aws": {"instance_id": ids[i % len(ids)], "region": lb.REGION}, "truncated": False}


def events(n, ids, tag):
    starts_at = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() - 60))
    out = []
    for b in range(0, n, BATCH):
        records = [{"messageId": f"msg-{tag}-{i}", "receiptHandle": "h",
                    "body": json.dumps(envelope(i, ids, tag, starts_at)),
                    "attributes": {"ApproximateReceiveCount": "1", "SentTimestamp": str(int(time.time() * 1000))},
                    "messageAttributes": {}, "md5OfBody": "", "eventSource": "aws:sqs",
                    "eventSourceARN": f"arn:aws:sqs:{lb.REGION}:{lb.ACCOUNT}:alerts-raw", "awsRegion": lb.REGION}
                   for i in range(b, min(b + BATCH, n))]
        out.append({"Records": records})
    return out


def run(binary, moto, bridge, workdir, people, calls, n, ids, tag, storm):
    """One fresh process served `n` alerts in batches of 10, and a tick every
    60 s and at the end; numbers for the run."""
    ddb = lb.boto("dynamodb", moto.url)
    for t in ddb.list_tables()["TableNames"]:
        ddb.delete_table(TableName=t)
    lb.create_state_table(moto.url)
    env = {"STATE_TABLE": lb.STATE_TABLE, "ROUTES": routes(people, storm), "SLACK_API_URL": f"{people.url}/api",
           "STATE_FAILURE": "retry", "AWS_LAMBDA_FUNCTION_TIMEOUT": "30"}
    f = lb.Function(binary, moto.url, bridge.url, workdir, f"storm-{tag}", env)
    calls_before = len(calls.snapshot()[0])
    invocations, problems = [], []
    try:
        f.init_ms()
        moto.start_recording()
        started = time.perf_counter()
        last_tick = started
        queue = events(n, ids, tag)
        k = 0
        while queue or k == 0 or invocations[-1]["event"] != "tick":
            if queue and time.perf_counter() - last_tick < TICK_EVERY_S:
                event, kind = queue.pop(0), "sqs"
            else:
                event, kind, last_tick = {"alert-manager": "tick"}, "tick", time.perf_counter()
            k += 1
            f.api.wait_next(k, 30, f.proc)
            f.api.release(event)
            inv = f.api.wait_response(k, 120, f.proc)
            try:
                answer = json.loads(inv["body"])
            except ValueError:
                answer = inv["body"]
            if "/error" in inv["path"] or (isinstance(answer, dict) and answer.get("batchItemFailures")):
                problems.append(f"invocation {k} ({kind}): {str(answer)[:300]}")
            invocations.append({"event": kind, "cpu_ns": inv["after"]["sched_ns"] - inv["before"]["sched_ns"],
                                "wall_s": inv["done_at"] - inv["sent_at"]})
        wall = time.perf_counter() - started
        actions = lb.count(moto.recorded_actions())
        moto.stop_recording()
        time.sleep(0.05)
        emf = f.emf()
    except lb.Broken as e:
        raise lb.Broken(f"storm run {tag}: {e}\nstderr: {f.stderr_tail()}")
    finally:
        f.close()
    got, refused = calls.snapshot()
    got = got[calls_before:]
    if refused:
        problems.append(f"the stand-ins refused {len(refused)} calls, first: {refused[0]}")
    per_sink = {}
    for _, sink, summary in got:
        key = f"{sink} ({'summary' if summary else 'alert'})"
        per_sink[key] = per_sink.get(key, 0) + 1
    first_summary = next((t for t, sink, summary in got if summary and sink == "slack_app"), None)
    delivered = sum(d.get("Delivered", 0) for d in emf)
    if delivered != n:
        problems.append(f"EMF Delivered {delivered} of {n} alerts")
    return {
        "alerts": n, "storm_rule": storm, "invocations": len(invocations),
        "ticks": sum(1 for i in invocations if i["event"] == "tick"),
        "wall_s": round(wall, 1),
        "people_calls": len(got), "people_calls_per_alert": round(len(got) / n, 4), "people_calls_by_sink": per_sink,
        "dynamodb_requests": {a: actions.get(a, 0) for a in DYNAMODB if actions.get(a)},
        "dynamodb_requests_per_alert": round(sum(actions.get(a, 0) for a in DYNAMODB) / n, 4),
        "aws_calls": actions,
        "cpu_ms": round(sum(i["cpu_ns"] for i in invocations) / 1e6, 1),
        "cpu_us_per_alert": round(sum(i["cpu_ns"] for i in invocations) / 1e3 / n, 1),
        "first_summary_s": None if first_summary is None else round(first_summary - started, 2),
        "emf": {k: sum(d.get(k, 0) for d in emf) for k in ("Delivered", "InStorm", "StormUpdates",
                                                          "StormUpdateFailures", "Failed", "StateErrors")},
        "problems": problems,
    }


def markdown(r):
    s, b = r["storm"], r["baseline"]
    ratio = lambda x, y: f"{x / y:.2f}×" if y else "n/a"
    dd = ", ".join(f"{k} {v}" for k, v in s["dynamodb_requests"].items())
    sinks = ", ".join(f"{k}: {v}" for k, v in sorted(s["people_calls_by_sink"].items()))
    return f"""## Storm

`infra/bench/storm-bench.py`: {s['alerts']:,} firing alerts over {r['instances']} instances from 2 clusters,
5 alert names (10 groups of `[cluster, alertname]`), in SQS batches of {BATCH} (the stack's `BatchSize`),
through one release enricher process with the state store, against moto and the Slack Web API,
PagerDuty and signed-webhook stand-ins; the storm rule is `{{threshold: 20, window: 5m}}`, the tick
runs every {TICK_EVERY_S:.0f} s of the run. Baseline, same run: {b['alerts']:,} alerts through the same route
without its storm rule. {s['invocations']} invocations ({s['ticks']} ticks) in {s['wall_s']} s.

| figure | storm | baseline (no storm rule) | ratio |
|---|---|---|---|
| people's-sink calls per alert | {s['people_calls_per_alert']} ({s['people_calls']:,} calls) | {b['people_calls_per_alert']} | {ratio(s['people_calls_per_alert'], b['people_calls_per_alert'])} |
| DynamoDB requests per alert | {s['dynamodb_requests_per_alert']} | {b['dynamodb_requests_per_alert']} | {ratio(s['dynamodb_requests_per_alert'], b['dynamodb_requests_per_alert'])} |
| Lambda CPU per alert | {s['cpu_us_per_alert']} µs | {b['cpu_us_per_alert']} µs | {ratio(s['cpu_us_per_alert'], b['cpu_us_per_alert'])} |
| first alert → first summary in Slack | {s['first_summary_s']} s | | |

Calls by sink in the storm: {sinks}. DynamoDB requests in the storm: {dd}.
EMF over the storm: {json.dumps(s['emf'])}. The first 20 alerts of each group reach people one by
one (200 here, 3 calls each); every later one is absorbed, and each group's summary is updated at most
every 10 s per sink. The time to the first summary is the time the first group takes to pass its
threshold at this arrival rate, plus that invocation.
"""


def main():
    a = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    a.add_argument("binary")
    a.add_argument("--bridge", required=True)
    a.add_argument("--results")
    a.add_argument("--plots", help="accepted for run.py's common arguments; this benchmark draws none")
    a.add_argument("--quick", action="store_true")
    args = a.parse_args()
    alerts, baseline, instances = (1000, 100, 50) if args.quick else (10_000, 1000, 500)
    workdir = tempfile.mkdtemp(prefix="storm-bench-")
    calls = Calls()
    people = StandIn(calls)
    threading.Thread(target=people.serve_forever, daemon=True).start()
    try:
        moto = lb.Moto(workdir)
        bridge = lb.Bridge(args.bridge, moto.url, workdir)
        ids = seed(moto.url, instances)
        base = run(args.binary, moto, bridge, workdir, people, calls, baseline, ids, 1, storm=False)
        storm = run(args.binary, moto, bridge, workdir, people, calls, alerts, ids, 2, storm=True)
    except lb.Broken as e:
        print(f"storm-bench: broken run: {e}", file=sys.stderr)
        return 2
    finally:
        lb.stop_all()
        people.shutdown()
    r = {"instances": instances, "storm": storm, "baseline": base}
    print(json.dumps(r, indent=2))
    if args.results:
        os.makedirs(args.results, exist_ok=True)
        with open(os.path.join(args.results, "storm.json"), "w") as f:
            json.dump(r, f, indent=2)
        with open(os.path.join(args.results, "storm.md"), "w") as f:
            f.write(markdown(r))
    problems = storm["problems"] + base["problems"]
    for p in problems:
        print(f"storm-bench: {p}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
