#!/usr/bin/env python3
"""Benchmark of the enricher Lambda, run the way Lambda runs it: the binary
as a process against a minimal Runtime API stand-in on 127.0.0.1, its AWS
SDK pointed at moto (and CloudWatch at the CBOR bridge of the tests, which
forwards to moto, so GetMetricData is served and recorded by moto).

  lambda-bench.py BINARY [--bridge PATH] [--artifact-dir DIR]
                  [--results DIR] [--plots DIR] [--quick] [--runs N]

Run it with the venv python (boto3, moto, matplotlib):
  ~/.cache/alert-manager/venv/bin/python3 infra/bench/lambda-bench.py \\
      target/lambda/alert-manager-enricher/bootstrap \\
      --artifact-dir target/lambda/alert-manager-enricher \\
      --results bench-results --plots bench-plots

What it measures:
  init     process start -> first GET /runtime/invocation/next of the
           enricher, N cold starts (fresh process each); in the same run and
           interleaved, the Python baseline: a fresh `python3 -c` that imports
           boto3 and creates EC2, CloudWatch and SNS clients, process start ->
           clients created (CLOCK_MONOTONIC on both sides). One warm-up run of
           each is discarded (page cache, .pyc files).
  batch    SQS events of 1, 10 and 100 records (alerts over 10 instances),
           each in a fresh process: CPU time of the invocation (utime+stime
           delta of /proc/PID/stat, taken while the process is blocked on
           `next` and again when it posts the response; also the per-thread
           schedstat sum, nanosecond resolution), peak RSS (VmHWM), wall time
           (event sent -> response received), and the AWS calls moto's
           recorder saw, per action.
  calls    per 100 alerts over 10 instances: cold cache (first invocation of
           the fresh process) and warm cache (a second event of 100 new alerts
           served to the same process), EC2 + CloudWatch calls, against the
           naive approach (boto3, one DescribeInstances and one GetMetricData
           per alert) counted by the same recorder.
  artifact with --artifact-dir: sizes of bootstrap and bootstrap.zip, and
           whether an arm64 build exists.

Writes DIR/lambda.json (raw numbers) and DIR/lambda.md (`## Lambda`, each
figure next to its goal) with --results; lambda-init.svg and
lambda-aws-calls.svg with --plots. Exits non-zero only on a broken run
(a process died or never answered, the handler reported batch failures or
degraded enrichment while moto and the bridge were up), not on a missed goal.
"""
import argparse
import base64
import http.server
import json
import os
import platform
import queue
import random
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import free_port  # noqa: E402
import fleet_bench  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
REGION = "us-east-1"
ACCOUNT = "123456789012"
TOPIC_NAME = "alerts-enriched"
TOPIC_ARN = f"arn:aws:sns:{REGION}:{ACCOUNT}:{TOPIC_NAME}"
INSTANCES = 10
CLK_TCK = os.sysconf("SC_CLK_TCK")

# Goals of the issue. Never tuned here: a figure meets its goal or not.
GOAL_INIT_MS = 15.0
GOAL_INIT_RATIO = 10.0
GOAL_RSS_MIB_AT_100 = 32.0
GOAL_ZIP_MIB = 6.0
GOAL_STATE_CPU_RATIO = 1.5

STATE_TABLE = "alert-manager-state"
STATE_ENV = {"STATE_TABLE": STATE_TABLE}
STATE_ROUNDS = 3
FLEET_ROUNDS = 3

# What Python enrichment Lambdas do at init.
PYTHON_BASELINE = (
    "import boto3\n"
    "ec2 = boto3.client('ec2')\n"
    "cloudwatch = boto3.client('cloudwatch')\n"
    "sns = boto3.client('sns')\n"
    "import time, sys\n"
    "sys.stdout.write(repr(time.perf_counter()))\n"
)


class Broken(Exception):
    """The run is broken (not a missed goal): exit non-zero."""


# ---------------------------------------------------------------- processes

STARTED = []  # every Popen this script started; killed in `finally`


def spawn(args, **kw):
    p = subprocess.Popen(args, **kw)
    STARTED.append(p)
    return p


def stop(p):
    if p is None or p.poll() is not None:
        return
    try:
        p.kill()
        p.wait(timeout=10)
    except Exception:
        pass


def stop_all():
    for p in reversed(STARTED):
        stop(p)


def wait_http_ok(url, timeout, proc=None):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if proc is not None and proc.poll() is not None:
            raise Broken(f"{url}: the process exited with {proc.returncode} before answering")
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                if r.status == 200:
                    return
        except Exception:
            time.sleep(0.1)
    raise Broken(f"{url} did not answer within {timeout} s")


def proc_stat(pid):
    """(utime+stime ticks, schedstat ns summed over live threads, VmHWM KiB, VmRSS KiB)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    ticks = int(fields[11]) + int(fields[12])
    ns = 0
    try:
        for tid in os.listdir(f"/proc/{pid}/task"):
            try:
                with open(f"/proc/{pid}/task/{tid}/schedstat") as f:
                    ns += int(f.read().split()[0])
            except OSError:
                pass
    except OSError:
        pass
    hwm = rss = None
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM"):
                hwm = int(line.split()[1])
            elif line.startswith("VmRSS"):
                rss = int(line.split()[1])
    return {"ticks": ticks, "sched_ns": ns, "hwm_kib": hwm, "rss_kib": rss}


# ------------------------------------------------------ Runtime API stand-in


class RuntimeApi(http.server.ThreadingHTTPServer):
    """Serves the events the main thread releases, one per GET next, and
    records when the function asked, and what it answered."""

    daemon_threads = True
    block_on_close = False

    def __init__(self):
        super().__init__(("127.0.0.1", 0), Handler)
        self.pid = None
        self.pid_set = threading.Event()
        self.cond = threading.Condition()
        self.nexts = []  # perf_counter of each GET next
        self.invocations = []  # dicts, one per released event
        self.events = queue.Queue()
        self.init_error = None

    def wait_next(self, k, timeout, proc):
        """Waits until the function made its k-th GET next (1-based)."""
        end = time.monotonic() + timeout
        with self.cond:
            while len(self.nexts) < k:
                if self.init_error is not None:
                    raise Broken(f"the function reported an init error: {self.init_error}")
                if proc.poll() is not None:
                    raise Broken(f"the function exited with {proc.returncode} before asking for invocation {k}")
                left = end - time.monotonic()
                if left <= 0:
                    raise Broken(f"the function did not ask for invocation {k} within {timeout} s")
                self.cond.wait(min(left, 0.05))
            return self.nexts[k - 1]

    def wait_response(self, k, timeout, proc):
        end = time.monotonic() + timeout
        with self.cond:
            while len(self.invocations) < k or "done_at" not in self.invocations[k - 1]:
                if proc.poll() is not None:
                    raise Broken(f"the function exited with {proc.returncode} during invocation {k}")
                left = end - time.monotonic()
                if left <= 0:
                    raise Broken(f"no response to invocation {k} within {timeout} s")
                self.cond.wait(min(left, 0.05))
            return self.invocations[k - 1]

    def release(self, event):
        self.events.put(event)

    def close_all(self):
        self.events.put(None)
        self.shutdown()
        self.server_close()


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *a):
        pass

    def do_GET(self):
        s = self.server
        if not self.path.endswith("/runtime/invocation/next"):
            self.send_error(404)
            return
        with s.cond:
            s.nexts.append(time.perf_counter())
            s.cond.notify_all()
        try:
            event = s.events.get(timeout=120)
        except queue.Empty:
            event = None
        if event is None:
            self.close_connection = True
            return  # the measurement is over; the process gets killed
        s.pid_set.wait(5)
        before = proc_stat(s.pid)
        n = len(s.invocations) + 1
        body = json.dumps(event).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Lambda-Runtime-Aws-Request-Id", f"req-{n}")
        self.send_header("Lambda-Runtime-Deadline-Ms", str(int(time.time() * 1000) + 60000))
        self.send_header("Lambda-Runtime-Invoked-Function-Arn", f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:enricher")
        self.send_header("Lambda-Runtime-Trace-Id", "Root=1-00000000-000000000000000000000000")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
        self.wfile.flush()
        with s.cond:
            s.invocations.append({"request_id": f"req-{n}", "sent_at": time.perf_counter(), "before": before})
            s.cond.notify_all()

    def do_POST(self):
        s = self.server
        n = int(self.headers.get("Content-Length", 0))
        body = self.rfile.read(n).decode(errors="replace")
        if "/runtime/init/error" in self.path:
            with s.cond:
                s.init_error = body
                s.cond.notify_all()
        else:
            # The function waits for this answer: its CPU and memory are still.
            after = proc_stat(s.pid) if s.pid_set.is_set() else None
            done = time.perf_counter()
            with s.cond:
                for inv in s.invocations:
                    if inv["request_id"] in self.path and "done_at" not in inv:
                        inv.update(done_at=done, after=after, path=self.path, body=body)
                s.cond.notify_all()
        self.send_response(202)
        self.send_header("Content-Length", "0")
        self.end_headers()


def enricher_env(api, moto, bridge, extra=None):
    return (extra or {}) | {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "AWS_LAMBDA_RUNTIME_API": f"127.0.0.1:{api.server_address[1]}",
        "AWS_LAMBDA_FUNCTION_NAME": "enricher",
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "256",
        "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
        "AWS_LAMBDA_LOG_GROUP_NAME": "/aws/lambda/enricher",
        "AWS_LAMBDA_LOG_STREAM_NAME": "bench",
        "AWS_REGION": REGION,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_EC2_METADATA_DISABLED": "true",
        "ENRICHED_TOPIC_ARN": TOPIC_ARN,
        "AWS_ENDPOINT_URL": moto,
        "AWS_ENDPOINT_URL_CLOUDWATCH": bridge,
        "RUST_LOG": "warn",
    }


class Function:
    """One enricher process with its own Runtime API stand-in."""

    def __init__(self, binary, moto, bridge, logdir, tag, extra_env=None):
        self.api = RuntimeApi()
        threading.Thread(target=self.api.serve_forever, daemon=True).start()
        self.stdout_path = os.path.join(logdir, f"enricher-{tag}.stdout")
        self.stderr_path = os.path.join(logdir, f"enricher-{tag}.stderr")
        self.out = open(self.stdout_path, "wb")
        self.err = open(self.stderr_path, "wb")
        self.started_at = time.perf_counter()
        self.proc = spawn([binary], env=enricher_env(self.api, moto, bridge, extra_env), stdout=self.out, stderr=self.err,
                          stdin=subprocess.DEVNULL)
        self.api.pid = self.proc.pid
        self.api.pid_set.set()

    def init_ms(self, timeout=30):
        return (self.api.wait_next(1, timeout, self.proc) - self.started_at) * 1000

    def close(self):
        stop(self.proc)
        self.api.close_all()
        self.out.close()
        self.err.close()

    def stderr_tail(self):
        try:
            with open(self.stderr_path, errors="replace") as f:
                return f.read()[-2000:]
        except OSError:
            return ""

    def emf(self):
        """The EMF documents the function printed, in order."""
        docs = []
        with open(self.stdout_path, errors="replace") as f:
            for line in f:
                try:
                    d = json.loads(line)
                except ValueError:
                    continue
                if isinstance(d, dict) and "_aws" in d and "Records" in d:
                    docs.append(d)
        return docs


# ------------------------------------------------------------------- moto


class Moto:
    def __init__(self, workdir):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = open(os.path.join(workdir, "moto.log"), "wb")
        env = dict(os.environ, MOTO_RECORDER_FILEPATH=os.path.join(workdir, "moto-recording"))
        self.proc = spawn([sys.executable, os.path.join(ROOT, "infra", "local", "moto_server.py"), "-H", "127.0.0.1", "-p", str(self.port)],
                          env=env, cwd=workdir, stdout=self.log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        wait_http_ok(f"{self.url}/moto-api/data.json", 60, self.proc)

    def post(self, path):
        req = urllib.request.Request(f"{self.url}{path}", data=b"", method="POST")
        with urllib.request.urlopen(req, timeout=10) as r:
            r.read()

    def start_recording(self):
        self.post("/moto-api/recorder/stop-recording")
        self.post("/moto-api/recorder/reset-recording")
        self.post("/moto-api/recorder/start-recording")

    def stop_recording(self):
        self.post("/moto-api/recorder/stop-recording")

    def recorded(self):
        """(action, access key, region) of each recorded request: the
        X-Amz-Target operation (JSON protocols, what the bridge forwards), else
        Action= of query requests; the key and region of its SigV4 scope."""
        with urllib.request.urlopen(f"{self.url}/moto-api/recorder/download-recording", timeout=10) as r:
            text = r.read().decode(errors="replace")
        calls = []
        for line in text.splitlines():
            try:
                rec = json.loads(line)
            except ValueError:
                continue
            headers = {k.lower(): v for k, v in (rec.get("headers") or {}).items()}
            scope = headers.get("authorization", "").split("Credential=", 1)[-1].split(",", 1)[0].split("/")
            key, region = (scope[0], scope[2]) if len(scope) >= 3 else ("", "")
            calls.append((self._action(rec, headers), key, region))
        return calls

    @staticmethod
    def _action(rec, headers):
        target = headers.get("x-amz-target")
        if target:
            return target.rsplit(".", 1)[-1]
        body = rec.get("body") or ""
        if rec.get("body_encoded"):
            try:
                body = base64.b64decode(body).decode(errors="replace")
            except ValueError:
                body = ""
        url = rec.get("url") or ""
        query = url.split("?", 1)[1] if "?" in url else ""
        action = None
        for part in (body, query):
            for k, v in urllib.parse.parse_qsl(part):
                if k == "Action":
                    action = v
                    break
            if action:
                break
        return action or f"{rec.get('method')} {urllib.parse.urlsplit(url).path}"

    def recorded_actions(self):
        return [action for action, _, _ in self.recorded()]


def count(actions):
    out = {}
    for a in actions:
        out[a] = out.get(a, 0) + 1
    return dict(sorted(out.items()))


def ec2_cw(counts):
    return counts.get("DescribeInstances", 0) + counts.get("GetMetricData", 0)


class Bridge:
    def __init__(self, binary, moto_url, workdir):
        self.err = open(os.path.join(workdir, "bridge.stderr"), "wb")
        self.proc = spawn([binary, "--moto", moto_url], stdout=subprocess.PIPE, stderr=self.err,
                          stdin=subprocess.DEVNULL, text=True)
        line = [None]

        def read():
            line[0] = self.proc.stdout.readline()

        t = threading.Thread(target=read, daemon=True)
        t.start()
        t.join(30)
        text = (line[0] or "").strip()
        if not text.startswith("listening on "):
            raise Broken(f"cloudwatch-bridge did not start (said {text!r}; exit {self.proc.poll()})")
        self.url = text.split("listening on ", 1)[1].strip()


def boto(service, moto_url):
    import boto3
    return boto3.client(service, endpoint_url=moto_url, region_name=REGION,
                        aws_access_key_id="testing", aws_secret_access_key="testing")


def seed(moto_url):
    """10 instances with team/owner tags and CPU points, the enriched topic,
    and a queue subscribed to it (to check what the function published)."""
    ec2, cw, sns, sqs = (boto(s, moto_url) for s in ("ec2", "cloudwatch", "sns", "sqs"))
    sns.create_topic(Name=TOPIC_NAME)
    q = sqs.create_queue(QueueName="bench-enriched")["QueueUrl"]
    qarn = sqs.get_queue_attributes(QueueUrl=q, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    sns.subscribe(TopicArn=TOPIC_ARN, Protocol="sqs", Endpoint=qarn, Attributes={"RawMessageDelivery": "true"})
    image = ec2.describe_images()["Images"][0]["ImageId"]
    teams = ["payments", "search", "checkout", "platform", "data"]
    ids = []
    for i in range(INSTANCES):
        tags = [{"Key": "team", "Value": teams[i % len(teams)]}, {"Key": "owner", "Value": f"owner-{i}"},
                {"Key": "Name", "Value": f"node-{i}"}, {"Key": "eks:nodegroup-name", "Value": "general"}]
        r = ec2.run_instances(ImageId=image, MinCount=1, MaxCount=1, InstanceType="m6i.large",
                              TagSpecifications=[{"ResourceType": "instance", "Tags": tags}])
        ids.append(r["Instances"][0]["InstanceId"])
    now = time.time()
    for n, iid in enumerate(ids):
        data = [{"MetricName": "CPUUtilization", "Dimensions": [{"Name": "InstanceId", "Value": iid}],
                 "Timestamp": now - 900 + 120 * k, "Value": float(30 + 7 * k + n), "Unit": "Percent"} for k in range(7)]
        cw.put_metric_data(Namespace="AWS/EC2", MetricData=data)
    return ids, q


def envelope(i, ids, batch_tag, starts_at, fingerprint_tag=0):
    return {"schema": "alert-manager/v1", "id": f"{batch_tag:08x}{i:024x}", "source": "alertmanager", "cluster": "prod",
            "status": "firing", "alertname": f"HighCpu{i}", "severity": "critical",
            "fingerprint": f"{fingerprint_tag:04x}{i:012x}",
            "starts_at": starts_at,
            "labels": {"alertname": f"HighCpu{i}", "severity": "critical", "namespace": "payments",
                       "instance": f"node-{i % INSTANCES}"},
            "annotations": {"summary": "CPU above 90% for 10 minutes", "description": "x" * 400},
            "aws": {"instance_id": ids[i % len(ids)], "region": REGION}, "truncated": False}


def sqs_event(n, ids, batch_tag, fingerprint_tag=0, placement=None):
    """`n` records of one alert each; `placement(i)`, when given, is alert i's `aws` object."""
    starts_at = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() - 300))
    records = []
    for i in range(n):
        body = envelope(i, ids, batch_tag, starts_at, fingerprint_tag)
        if placement:
            body["aws"] = placement(i)
        records.append({"messageId": f"msg-{batch_tag}-{i}", "receiptHandle": "h",
                        "body": json.dumps(body),
                        "attributes": {"ApproximateReceiveCount": "1", "SentTimestamp": str(int(time.time() * 1000))},
                        "messageAttributes": {}, "md5OfBody": "", "eventSource": "aws:sqs",
                        "eventSourceARN": f"arn:aws:sqs:{REGION}:{ACCOUNT}:alerts-raw", "awsRegion": REGION})
    return {"Records": records}


def create_state_table(moto_url):
    """The alert state table, with the key schema, billing mode and TTL of the
    CloudFormation stack's StateTable (read from the template, as the tests do)."""
    import yaml

    class Template(yaml.SafeLoader):
        pass

    # !GetAtt, !Sub, ...: kept as plain values, only StateTable's properties are read.
    Template.add_multi_constructor("!", lambda loader, suffix, node: None)
    with open(os.path.join(ROOT, "infra", "cloudformation", "alert-manager.yaml")) as f:
        props = yaml.load(f, Loader=Template)["Resources"]["StateTable"]["Properties"]
    ddb = boto("dynamodb", moto_url)
    indexes = {"GlobalSecondaryIndexes": props["GlobalSecondaryIndexes"]} if props.get("GlobalSecondaryIndexes") else {}
    ddb.create_table(TableName=STATE_TABLE, BillingMode=props["BillingMode"], KeySchema=props["KeySchema"],
                     AttributeDefinitions=props["AttributeDefinitions"], **indexes)
    ttl = props["TimeToLiveSpecification"]
    ddb.update_time_to_live(TableName=STATE_TABLE, TimeToLiveSpecification={
        "AttributeName": ttl["AttributeName"], "Enabled": bool(ttl["Enabled"])})


def measure_state(binary, moto, bridge, logdir, ids, rounds):
    """100-record batches with and without the state store, interleaved in
    `rounds` pairs of fresh processes: a cold batch, a warm one of 100 new
    alerts, and (with the store) that warm batch again, as SQS redelivers it.
    Each state batch's alerts are new to the table."""
    plain, state = [], []
    for k in range(rounds):
        tag = 1000 + 10 * k
        a, b = run_function(binary, moto, bridge, logdir, f"plain-{k}",
                            [(100, sqs_event(100, ids, tag)), (100, sqs_event(100, ids, tag + 1))])
        plain.append({"cold": a, "warm": b})
        fresh = [sqs_event(100, ids, tag + 2, fingerprint_tag=tag + 2),
                 sqs_event(100, ids, tag + 3, fingerprint_tag=tag + 3)]
        c, d, e = run_function(binary, moto, bridge, logdir, f"state-{k}",
                               [(100, fresh[0]), (100, fresh[1]), (100, fresh[1])], STATE_ENV)
        state.append({"cold": c, "warm": d, "redelivered": e})

    def median(runs, label, key="cpu_ms_schedstat"):
        return round(statistics.median(r[label][key] for r in runs), 2)

    out = {"rounds": rounds, "plain": plain, "state": state}
    for label in ("cold", "warm"):
        p, q = median(plain, label), median(state, label)
        out[f"{label}_plain_cpu_ms"], out[f"{label}_state_cpu_ms"] = p, q
        out[f"{label}_ratio"] = round(q / p, 2) if p else None
    out["redelivered_state_cpu_ms"] = median(state, "redelivered")
    first = state[0]
    out["calls"] = {label: {a: first[label]["aws_calls"].get(a, 0)
                            for a in ("BatchGetItem", "TransactWriteItems", "PutItem", "GetItem", "UpdateItem",
                                      "PublishBatch")}
                    for label in ("cold", "warm", "redelivered")}
    return out


# ------------------------------------------------------------------ init


def python_baseline_once(python):
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": os.environ.get("HOME", "/root"),
           "AWS_REGION": REGION, "AWS_DEFAULT_REGION": REGION, "AWS_ACCESS_KEY_ID": "testing",
           "AWS_SECRET_ACCESS_KEY": "testing", "AWS_EC2_METADATA_DISABLED": "true"}
    start = time.perf_counter()
    r = subprocess.run([python, "-c", PYTHON_BASELINE], env=env, capture_output=True, text=True, timeout=60)
    end = time.perf_counter()
    if r.returncode != 0:
        raise Broken(f"python baseline failed: {r.stderr[-500:]}")
    # CLOCK_MONOTONIC in both processes (Linux perf_counter).
    return (float(r.stdout.strip()) - start) * 1000, (end - start) * 1000


def rust_init_once(binary, moto, bridge, logdir, tag, extra_env=None):
    f = Function(binary, moto, bridge, logdir, tag, extra_env)
    try:
        ms = f.init_ms()
        rss = proc_stat(f.proc.pid)["rss_kib"]
        return ms, rss
    except Broken as e:
        raise Broken(f"{e}\n{f.stderr_tail()}")
    finally:
        f.close()


def measure_init(binary, python, moto, bridge, logdir, runs, variants):
    """Cold starts of the enricher, of each variant (name -> extra env) and of
    the Python baseline, interleaved, in an order that rotates each round."""
    rust_init_once(binary, moto, bridge, logdir, "init-warmup")
    for name, env in variants.items():
        rust_init_once(binary, moto, bridge, logdir, f"init-{name}-warmup", env)
    python_baseline_once(python)
    rust, rust_rss, py, py_exit = [], [], [], []
    of_variant = {name: [] for name in variants}
    # A new order every round, from a fixed seed. A rotation keeps each arm's
    # predecessor (the plain enricher always ran right after the Python
    # baseline, and was the fastest arm in every run: 16.47 ms against 17.61
    # for the same binary again, over 60 rounds); shuffled, every arm follows
    # every other about equally often.
    order = [None] + list(variants) + ["python"]
    shuffle = random.Random(20261204).shuffle
    for i in range(runs):
        shuffle(order)
        for name in order:
            if name is None:
                ms, rss = rust_init_once(binary, moto, bridge, logdir, f"init-{i}")
                rust.append(round(ms, 3))
                rust_rss.append(rss)
            elif name == "python":
                ready, exited = python_baseline_once(python)
                py.append(round(ready, 3))
                py_exit.append(round(exited, 3))
            else:
                ms, _ = rust_init_once(binary, moto, bridge, logdir, f"init-{name}-{i}", variants[name])
                of_variant[name].append(round(ms, 3))
    out = {
        "runs": runs, "warmup_discarded": 1,
        "rust_ms": rust, "rust_rss_after_init_kib": rust_rss,
        "python_ms": py, "python_exit_ms": py_exit,
        "python_code": PYTHON_BASELINE, "python": python,
        "rust_median_ms": round(statistics.median(rust), 3), "rust_min_ms": min(rust), "rust_max_ms": max(rust),
        "python_median_ms": round(statistics.median(py), 3), "python_min_ms": min(py), "python_max_ms": max(py),
        "ratio_python_over_rust": round(statistics.median(py) / statistics.median(rust), 2),
    }
    for name, ms in of_variant.items():
        out |= {f"{name}_ms": ms, f"{name}_median_ms": round(statistics.median(ms), 3),
                f"{name}_min_ms": min(ms), f"{name}_max_ms": max(ms)}
    return out


# ----------------------------------------------------------------- batches


def invocation_numbers(inv, records, calls, emf, response):
    b, a = inv["before"], inv["after"]
    actions = [action for action, _, _ in calls]
    scopes = count(f"{action}\t{key}\t{region}" for action, key, region in calls)
    failures = response.get("batchItemFailures", []) if isinstance(response, dict) else None
    out = {
        "records": records,
        "wall_ms": round((inv["done_at"] - inv["sent_at"]) * 1000, 2),
        "cpu_ms": round((a["ticks"] - b["ticks"]) * 1000 / CLK_TCK, 1),
        "cpu_ms_resolution": round(1000 / CLK_TCK, 1),
        "cpu_ms_schedstat": round((a["sched_ns"] - b["sched_ns"]) / 1e6, 2),
        "peak_rss_kib": a["hwm_kib"],
        "peak_rss_mib": round(a["hwm_kib"] / 1024, 2),
        "rss_before_kib": b["rss_kib"],
        "aws_calls": count(actions),
        "aws_scopes": [k.split("\t") + [n] for k, n in scopes.items()],
        "ec2_cloudwatch_calls": ec2_cw(count(actions)),
        "response_path": inv["path"].rsplit("/", 1)[-1],
        "batch_item_failures": None if failures is None else len(failures),
        "emf": {k: v for k, v in (emf or {}).items() if k != "_aws"},
    }
    return out


def run_function(binary, moto, bridge, logdir, tag, events, extra_env=None):
    """A fresh process serving `events` in order; numbers per invocation."""
    f = Function(binary, moto.url, bridge, logdir, tag, extra_env)
    results = []
    try:
        f.init_ms()
        for k, (n, event) in enumerate(events, start=1):
            f.api.wait_next(k, 30, f.proc)
            moto.start_recording()
            f.api.release(event)
            inv = f.api.wait_response(k, 60, f.proc)
            actions = moto.recorded()
            moto.stop_recording()
            try:
                response = json.loads(inv["body"])
            except ValueError:
                response = inv["body"]
            results.append((inv, n, actions, response))
        # the EMF line of the last invocation is printed before the response
        time.sleep(0.05)
        emf = f.emf()
        out = []
        for idx, (inv, n, actions, response) in enumerate(results):
            out.append(invocation_numbers(inv, n, actions, emf[idx] if idx < len(emf) else None, response))
            out[-1]["response"] = response if not isinstance(response, dict) or len(json.dumps(response)) < 2000 else "(long)"
        return out
    except Broken as e:
        raise Broken(f"{tag}: {e}\nstderr: {f.stderr_tail()}")
    finally:
        f.close()


def check_invocation(name, r, problems):
    if r["response_path"] != "response":
        problems.append(f"{name}: the handler returned an error ({r['response']})")
    elif r["batch_item_failures"]:
        problems.append(f"{name}: {r['batch_item_failures']} batch item failures")
    emf = r["emf"]
    if not emf:
        problems.append(f"{name}: no EMF line in the function's output")
        return
    if emf.get("Records") != r["records"] or emf.get("Delivered") != r["records"]:
        problems.append(f"{name}: {emf.get('Delivered')} of {r['records']} records delivered")
    if emf.get("Degraded"):
        problems.append(f"{name}: {emf['Degraded']} envelopes with enrichment errors although moto and the bridge were up")
    if emf.get("Enriched") != r["records"]:
        problems.append(f"{name}: {emf.get('Enriched')} of {r['records']} envelopes got EC2 data")


def check_output(moto_url, queue_url):
    """A sample of what reached the enriched topic: EC2 data, team, CPU points."""
    sqs = boto("sqs", moto_url)
    msgs = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=1).get("Messages", [])
    sample = []
    for m in msgs:
        env = json.loads(m["Body"])
        e = env.get("enrichment") or {}
        cpu = [x for x in ((e.get("cloudwatch") or {}).get("metrics") or []) if x.get("metric") == "CPUUtilization"]
        sample.append({"id": env.get("id"), "team": e.get("team"),
                       "ec2_tags": sorted(((e.get("ec2") or {}).get("tags") or {}).keys()),
                       "cpu_points": max((len(x.get("points") or []) for x in cpu), default=0),
                       "errors": e.get("errors") or []})
    ok = bool(sample) and all(s["team"] and s["ec2_tags"] and s["cpu_points"] > 0 and not s["errors"] for s in sample)
    return {"messages_sampled": len(sample), "ok": ok, "sample": sample[:3]}


# ------------------------------------------------------------------ naive


def naive(moto, ids, n=100):
    """One DescribeInstances and one GetMetricData (the default metric set of
    the enricher for that instance) per alert, boto3 against the same moto."""
    import botocore.session
    ec2, cw = boto("ec2", moto.url), boto("cloudwatch", moto.url)
    protocol = botocore.session.get_session().get_service_model("cloudwatch").resolved_protocol
    metrics = [("CPUUtilization", "Average"), ("CPUUtilization", "Maximum"), ("StatusCheckFailed", "Maximum"),
               ("NetworkIn", "Sum"), ("NetworkOut", "Sum")]
    attempted = {"DescribeInstances": 0, "GetMetricData": 0}
    errors = []
    moto.start_recording()
    t0 = time.perf_counter()
    now = time.time()
    for i in range(n):
        iid = ids[i % len(ids)]
        attempted["DescribeInstances"] += 1
        try:
            ec2.describe_instances(InstanceIds=[iid])
        except Exception as e:  # counted, reported
            errors.append(f"DescribeInstances: {e}")
        attempted["GetMetricData"] += 1
        try:
            cw.get_metric_data(
                MetricDataQueries=[{"Id": f"m{k}", "ReturnData": True, "MetricStat": {
                    "Metric": {"Namespace": "AWS/EC2", "MetricName": m, "Dimensions": [{"Name": "InstanceId", "Value": iid}]},
                    "Period": 60, "Stat": s}} for k, (m, s) in enumerate(metrics)],
                StartTime=now - 2100, EndTime=now, ScanBy="TimestampAscending")
        except Exception as e:
            errors.append(f"GetMetricData: {e}")
    wall = time.perf_counter() - t0
    recorded = count(moto.recorded_actions())
    moto.stop_recording()
    return {"alerts": n, "instances": len(set(ids[i % len(ids)] for i in range(n))), "attempted": attempted,
            "recorded": recorded, "ec2_cloudwatch_calls": ec2_cw(recorded), "errors": len(errors),
            "first_errors": errors[:3], "wall_ms": round(wall * 1000, 1), "boto3_cloudwatch_protocol": protocol}


# --------------------------------------------------------------- artifact


def elf_arch(path):
    try:
        with open(path, "rb") as f:
            h = f.read(20)
    except OSError:
        return None
    return elf_header_arch(h)


def elf_header_arch(h):
    if h[:4] != b"\x7fELF":
        return None
    machine = int.from_bytes(h[18:20], "little" if h[5] == 1 else "big")
    return {62: "x86_64", 183: "aarch64"}.get(machine, f"e_machine {machine}")


def aarch64_target_installed():
    home = os.environ.get("RUSTUP_HOME", os.path.expanduser("~/.rustup"))
    tc = os.path.join(home, "toolchains")
    try:
        return any(os.path.isdir(os.path.join(tc, t, "lib/rustlib/aarch64-unknown-linux-gnu")) for t in os.listdir(tc))
    except OSError:
        return False


def artifact(dirpath):
    mib = lambda p: round(os.path.getsize(p) / 1048576, 2)
    out = {"dir": dirpath}
    boot, zipf = os.path.join(dirpath, "bootstrap"), os.path.join(dirpath, "bootstrap.zip")
    arch = elf_arch(boot)
    out["bootstrap_mib"] = mib(boot) if os.path.exists(boot) else None
    if out["bootstrap_mib"] is None and os.path.exists(zipf):
        # `--output-format zip` leaves only the zip: read the binary's size and header from it.
        import zipfile
        with zipfile.ZipFile(zipf) as z:
            info = z.getinfo("bootstrap")
            out["bootstrap_mib"] = round(info.file_size / 1048576, 2)
            with z.open(info) as f:
                arch = elf_header_arch(f.read(20))
    out["bootstrap_arch"] = arch
    out["zip_mib"] = mib(zipf) if os.path.exists(zipf) else None
    # arm64: cargo lambda --arm64 writes the same paths; tell them apart by the ELF header.
    arm = None
    lambda_dir = os.path.join(ROOT, "target/lambda")
    candidates = [boot]
    if os.path.isdir(lambda_dir):
        candidates += [os.path.join(lambda_dir, d, "bootstrap") for d in sorted(os.listdir(lambda_dir))]
    candidates.append(os.path.join(ROOT, "target/aarch64-unknown-linux-gnu/release/alert-manager-enricher"))
    for c in candidates:
        if elf_arch(c) == "aarch64":
            z = os.path.join(os.path.dirname(c), "bootstrap.zip")
            arm = {"bootstrap": c, "bootstrap_mib": mib(c), "zip_mib": mib(z) if os.path.exists(z) else None}
            break
    if arm is None:
        arm = {"status": "not built: aarch64 target not installed on this machine" if not aarch64_target_installed()
               else "not built: no aarch64 bootstrap under target/ (cargo lambda build --release --arm64 --output-format zip)"}
    out["arm64"] = arm
    return out


# ------------------------------------------------------------------ report


def verdict(met):
    return "met" if met else "missed"


def build_md(r):
    L = []
    init, batches, calls = r["init"], r["batches"], r["aws_calls_per_100"]
    debug = r["binary_profile"] == "debug"
    L.append("## Lambda")
    L.append("")
    L.append(f"Measured by `infra/bench/lambda-bench.py{' --quick' if r['quick'] else ''}` on {r['date']}: "
             f"`{r['binary_rel']}` ({r['binary_mib']} MiB, {r['binary_profile']} build) as a process against a "
             f"Runtime API stand-in on 127.0.0.1, AWS calls served by moto {r['moto_version']} (CloudWatch through the "
             f"CBOR bridge of the tests). {r['machine']['cpus']} CPUs, 1-minute load average "
             f"{r['machine']['loadavg_start'][0]} at start, {r['machine']['loadavg_end'][0]} at the end.")
    if debug:
        L.append("")
        L.append("**Debug build: these numbers only show that the benchmark runs; they say nothing about the release "
                 "binary, and every goal below is judged on them as they are.**")
    L.append("")
    L.append("### Init")
    L.append("")
    L.append(f"Process start → first `GET /runtime/invocation/next`, {init['runs']} cold starts (a fresh process each, "
             f"one warm-up discarded). Baseline in the same run, interleaved: a fresh `python3 -c` that imports boto3 "
             f"and creates EC2, CloudWatch and SNS clients, process start → clients created.")
    L.append("")
    L.append("| figure | median | min | max | goal | |")
    L.append("|---|---:|---:|---:|---|---|")
    rm, rmin, rmax = init["rust_median_ms"], init["rust_min_ms"], init["rust_max_ms"]
    init_ok = rm <= GOAL_INIT_MS
    why = ""
    if not init_ok:
        within = sum(1 for x in init["rust_ms"] if x <= GOAL_INIT_MS)
        why = (f" — {'debug build, unoptimized; ' if debug else ''}median {rm - GOAL_INIT_MS:.1f} ms over the goal, "
               f"{within} of {init['runs']} starts within it, load average {r['machine']['loadavg_start'][0]} "
               f"on {r['machine']['cpus']} CPUs")
    L.append(f"| enricher init | {rm:.1f} ms | {rmin:.1f} ms | {rmax:.1f} ms | ≤ {GOAL_INIT_MS:g} ms | {verdict(init_ok)}{why} |")
    L.append(f"| Python baseline (boto3 + 3 clients) | {init['python_median_ms']:.0f} ms | {init['python_min_ms']:.0f} ms | "
             f"{init['python_max_ms']:.0f} ms | | |")
    ratio = init["ratio_python_over_rust"]
    ratio_ok = ratio >= GOAL_INIT_RATIO
    why = "" if ratio_ok else (f" — the enricher's median is {rm:.1f} ms against the baseline's "
                               f"{init['python_median_ms']:.0f} ms{' (debug build)' if debug else ''}")
    L.append(f"| Python / enricher (medians) | {ratio:.1f}× | | | ≥ {GOAL_INIT_RATIO:g}× | {verdict(ratio_ok)}{why} |")
    L.append("")
    L.append("![Init: enricher cold starts next to the Python baseline](bench/lambda-init.svg)")
    L.append("")
    L.append("### Per batch")
    L.append("")
    L.append(f"One SQS event per fresh process, alerts over {INSTANCES} EC2 instances (one for the 1-record batch), "
             "5 metrics per instance (the default set). CPU: utime+stime of the process for the invocation "
             f"(/proc/PID/stat, {1000 / CLK_TCK:g} ms ticks; in brackets the per-thread schedstat sum, ns resolution). "
             "Wall: event sent → response received, moto (Python) answering every call. Calls: moto's recorder.")
    L.append("")
    L.append("| records | CPU | wall | peak RSS (VmHWM) | DescribeInstances | GetMetricData | PublishBatch | goal | |")
    L.append("|---|---:|---:|---:|---:|---:|---:|---|---|")
    for b in batches:
        c = b["aws_calls"]
        goal = verdict_s = ""
        if b["records"] == 100 and b["label"] == "cold":
            rss_ok = b["peak_rss_mib"] <= GOAL_RSS_MIB_AT_100
            goal = f"RSS ≤ {GOAL_RSS_MIB_AT_100:g} MiB"
            verdict_s = verdict(rss_ok)
            if not rss_ok:
                verdict_s += (f" — peak RSS {b['peak_rss_mib'] - GOAL_RSS_MIB_AT_100:.1f} MiB over the goal"
                              f"{' (debug build)' if debug else ''}")
        label = f"{b['records']}" + (" (warm, same process)" if b["label"] == "warm" else "")
        L.append(f"| {label} | {b['cpu_ms']:g} ms ({b['cpu_ms_schedstat']:.1f} ms) | {b['wall_ms']:.0f} ms | "
                 f"{b['peak_rss_mib']:.1f} MiB | {c.get('DescribeInstances', 0)} | {c.get('GetMetricData', 0)} | "
                 f"{c.get('PublishBatch', 0)} | {goal} | {verdict_s} |")
    L.append("")
    L.append("### AWS calls per 100 alerts over 10 instances")
    L.append("")
    n = calls["naive"]
    L.append("EC2 + CloudWatch calls counted by moto's recorder. Cold: the first invocation of a fresh process; warm: a "
             "second event of 100 new alerts in the same process (EC2 data cached for EC2_CACHE_TTL_SECONDS, metrics "
             "fetched again for the new window). Naive: boto3, one DescribeInstances and one GetMetricData per alert "
             f"(boto3 {n['boto3_version']} speaks CloudWatch's {n['boto3_cloudwatch_protocol']} protocol, which moto serves"
             f"{'; ' + str(n['errors']) + ' calls failed, counted as attempted' if n['errors'] else ''}). "
             "The bound is the enricher's design (lambda/src/lib.rs, cloudwatch.rs): one DescribeInstances per 200 "
             "distinct uncached instances, one GetMetricData per 500 metric queries.")
    L.append("")
    L.append("| approach | DescribeInstances | GetMetricData | EC2 + CloudWatch | vs naive | bound | |")
    L.append("|---|---:|---:|---:|---:|---|---|")
    naive_total = n["ec2_cloudwatch_calls"] if not n["errors"] else sum(n["attempted"].values())
    for key, name, bound in (("cold", "enricher, cold cache", 2), ("warm", "enricher, warm cache", 1)):
        x = calls[key]
        total = x["ec2_cloudwatch_calls"]
        ok = total <= bound
        why = "" if ok else f" — {total - bound} call(s) more than the design allows"
        factor = f"{naive_total / total:.0f}× fewer" if total else "—"
        L.append(f"| {name} | {x['DescribeInstances']} | {x['GetMetricData']} | {total} | {factor} | ≤ {bound} | {verdict(ok)}{why} |")
    nd = n["recorded"].get("DescribeInstances", 0) if not n["errors"] else n["attempted"]["DescribeInstances"]
    ng = n["recorded"].get("GetMetricData", 0) if not n["errors"] else n["attempted"]["GetMetricData"]
    L.append(f"| naive (boto3 loop) | {nd} | {ng} | {naive_total} | | | |")
    L.append("")
    L.append("![AWS calls per 100 alerts](bench/lambda-aws-calls.svg)")
    L.append("")
    L.extend(state_md(r, debug))
    L.extend(fleet_bench.markdown(r["fleet"], r["init"], debug))
    L.append("### Artifact")
    L.append("")
    L.append("| figure | value | goal | |")
    L.append("|---|---:|---|---|")
    a = r.get("artifact")
    if not a:
        L.append(f"| bootstrap.zip | not measured (no --artifact-dir) | ≤ {GOAL_ZIP_MIB:g} MiB | not measured |")
    else:
        arch = a.get("bootstrap_arch") or "?"
        L.append(f"| bootstrap ({arch}) | {a['bootstrap_mib'] if a['bootstrap_mib'] is not None else 'missing'}"
                 f"{' MiB' if a['bootstrap_mib'] is not None else ''} | | |")
        if a["zip_mib"] is None:
            L.append(f"| bootstrap.zip ({arch}) | missing (cargo lambda build --release --output-format zip) | "
                     f"≤ {GOAL_ZIP_MIB:g} MiB | not measured |")
        else:
            ok = a["zip_mib"] <= GOAL_ZIP_MIB
            why = "" if ok else f" — {a['zip_mib'] - GOAL_ZIP_MIB:.2f} MiB over"
            L.append(f"| bootstrap.zip ({arch}) | {a['zip_mib']} MiB | ≤ {GOAL_ZIP_MIB:g} MiB | {verdict(ok)}{why} |")
    if a and arch != "aarch64":
        arm = a["arm64"]
        if "status" in arm:
            L.append(f"| bootstrap.zip (arm64) | {arm['status']} | ≤ {GOAL_ZIP_MIB:g} MiB | not measured |")
        else:
            z = arm["zip_mib"]
            ok = z is not None and z <= GOAL_ZIP_MIB
            L.append(f"| bootstrap (arm64) | {arm['bootstrap_mib']} MiB | | |")
            L.append(f"| bootstrap.zip (arm64) | {z if z is not None else 'missing'}{' MiB' if z is not None else ''} | "
                     f"≤ {GOAL_ZIP_MIB:g} MiB | {verdict(ok) if z is not None else 'not measured'} |")
    L.append("")
    if r["notes"]:
        L.append("Notes:")
        L.append("")
        for note in r["notes"]:
            L.append(f"- {note}")
        L.append("")
    return "\n".join(L)


def state_md(r, debug):
    """The section on the alert state store: init, CPU and calls next to the
    stateless enricher of the same run."""
    st, init = r["state"], r["init"]
    L = ["### With the alert state store", ""]
    L.append(f"`STATE_TABLE` set (moto's DynamoDB, the table made from the stack's definition), the DynamoDB client "
             f"built at init. Init: the same interleaved cold starts as above. CPU: {st['rounds']} pairs of fresh "
             "processes, interleaved, each a cold batch of 100 alerts and a warm one of 100 new alerts; with the store "
             "also the warm batch again (an SQS redelivery). Medians of the per-thread schedstat CPU. Calls: moto's "
             "recorder, first round.")
    L.append("")
    L.append("| figure | without the store | with the store | ratio | goal | |")
    L.append("|---|---:|---:|---:|---|---|")
    sm = init["state_median_ms"]
    ok = sm <= GOAL_INIT_MS
    why = "" if ok else f" — {'debug build; ' if debug else ''}median {sm - GOAL_INIT_MS:.1f} ms over"
    L.append(f"| init (median of {init['runs']}) | {init['rust_median_ms']:.1f} ms | {sm:.1f} ms | "
             f"{sm / init['rust_median_ms']:.2f}× | ≤ {GOAL_INIT_MS:g} ms | {verdict(ok)}{why} |")
    for label, name in (("cold", "CPU, 100-record batch, cold"), ("warm", "CPU, 100-record batch, warm")):
        ratio = st[f"{label}_ratio"]
        ok = ratio is not None and ratio <= GOAL_STATE_CPU_RATIO
        why = "" if ok else f" — {ratio}× the stateless batch{' (debug build)' if debug else ''}"
        L.append(f"| {name} | {st[f'{label}_plain_cpu_ms']:.1f} ms | {st[f'{label}_state_cpu_ms']:.1f} ms | "
                 f"{ratio}× | ≤ {GOAL_STATE_CPU_RATIO:g}× | {verdict(ok)}{why} |")
    L.append(f"| CPU, the warm batch redelivered | | {st['redelivered_state_cpu_ms']:.1f} ms | | | |")
    L.append("")
    L.append("Each alert's state is one conditional write; the writes of one part of the batch (`ALERTS_PER_PART` alerts) go in one "
             "`TransactWriteItems`, a part of one alert in a `PutItem`.")
    L.append("")
    L.append("| 100 alerts (100 records) | BatchGetItem | TransactWriteItems | PutItem | GetItem | PublishBatch | goal | |")
    L.append("|---|---:|---:|---:|---:|---:|---|---|")
    for label, name, reads, writes in (("cold", "new alerts, cold process", 1, 100),
                                       ("warm", "new alerts, warm process", 1, 100),
                                       ("redelivered", "the same batch again", 1, 0)):
        c = st["calls"][label]
        write_calls = c["PutItem"] + c["UpdateItem"] + c["TransactWriteItems"]
        ok = c["BatchGetItem"] <= reads and write_calls <= writes
        L.append(f"| {name} | {c['BatchGetItem']} | {c['TransactWriteItems']} | {c['PutItem']} | {c['GetItem']} | "
                 f"{c['PublishBatch']} | ≤ {reads} read, ≤ {writes} write calls | {verdict(ok)} |")
    L.append("")
    return L


def plots(r, d):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    os.makedirs(d, exist_ok=True)
    init = r["init"]
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    series = [init["rust_ms"], init["python_ms"]]
    labels = [f"Rust enricher\n({r['binary_profile']})", "Python baseline\n(boto3 + 3 clients)"]
    ax.boxplot(series, positions=[1, 2], widths=0.45, showfliers=False,
               medianprops={"color": "black"}, boxprops={"color": "0.4"})
    rng = random.Random(1)
    for pos, s, color in ((1, series[0], "#d95f02"), (2, series[1], "#1b9e77")):
        ax.scatter([pos + rng.uniform(-0.12, 0.12) for _ in s], s, s=14, alpha=0.75, color=color, zorder=3)
        ax.annotate(f"median {statistics.median(s):.1f} ms", (pos + 0.27, statistics.median(s)), va="center", fontsize=8)
    ax.axhline(GOAL_INIT_MS, color="#d95f02", linestyle="--", linewidth=1)
    ax.annotate(f"goal ≤ {GOAL_INIT_MS:g} ms", (0.55, GOAL_INIT_MS), va="bottom", fontsize=8, color="#d95f02")
    ax.set_yscale("log")
    from matplotlib.ticker import FixedLocator, NullFormatter
    lo = min(min(series[0]), min(series[1]), GOAL_INIT_MS) / 1.4
    hi = max(max(series[0]), max(series[1])) * 1.4
    ax.set_ylim(lo, hi)
    ticks = [t for t in (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000) if lo <= t <= hi]
    ax.yaxis.set_major_locator(FixedLocator(ticks))
    ax.yaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda v, _: f"{v:g}"))
    ax.yaxis.set_minor_formatter(NullFormatter())
    ax.set_xticks([1, 2])
    ax.set_xticklabels(labels)
    ax.set_xlim(0.4, 2.9)
    ax.set_ylabel("process start → ready (ms, log scale)")
    ax.set_title(f"Lambda init, {init['runs']} cold starts each (×{init['ratio_python_over_rust']:.1f})")
    ax.grid(axis="y", which="both", alpha=0.25)
    fig.tight_layout()
    fig.savefig(os.path.join(d, "lambda-init.svg"))
    plt.close(fig)

    calls = r["aws_calls_per_100"]
    n = calls["naive"]
    names = ["enricher\ncold cache", "enricher\nwarm cache", "naive\n(per alert)"]
    di = [calls["cold"]["DescribeInstances"], calls["warm"]["DescribeInstances"],
          n["recorded"].get("DescribeInstances", 0) if not n["errors"] else n["attempted"]["DescribeInstances"]]
    gm = [calls["cold"]["GetMetricData"], calls["warm"]["GetMetricData"],
          n["recorded"].get("GetMetricData", 0) if not n["errors"] else n["attempted"]["GetMetricData"]]
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    x = range(3)
    ax.bar(x, di, color="#7570b3", label="DescribeInstances")
    ax.bar(x, gm, bottom=di, color="#e7298a", label="GetMetricData")
    for i in x:
        ax.annotate(str(di[i] + gm[i]), (i, di[i] + gm[i]), ha="center", va="bottom", fontsize=10)
    ax.set_xticks(list(x))
    ax.set_xticklabels(names)
    ax.set_ylabel("EC2 + CloudWatch calls per 100 alerts")
    ax.set_title("AWS calls, 100 alerts over 10 instances (moto recorder)")
    ax.set_ylim(0, max(di[i] + gm[i] for i in x) * 1.15 + 1)
    ax.legend()
    ax.grid(axis="y", alpha=0.25)
    fig.tight_layout()
    fig.savefig(os.path.join(d, "lambda-aws-calls.svg"))
    plt.close(fig)


# -------------------------------------------------------------------- main


def find_bridge(arg):
    if arg:
        return arg
    for c in ("target/release/cloudwatch-bridge", "target/debug/cloudwatch-bridge"):
        p = os.path.join(ROOT, c)
        if os.access(p, os.X_OK):
            return p
    raise Broken("no cloudwatch-bridge binary (cargo build -p alert-manager-tests --bin cloudwatch-bridge); pass --bridge")


def profile_of(binary):
    p = os.path.realpath(binary)
    if "/debug/" in p:
        return "debug"
    if "/release/" in p or "/lambda/" in p:
        return "release"
    return "unknown"


def on_alarm(signum, frame):
    raise Broken("the benchmark ran out of its time budget")


def on_term(signum, frame):
    raise SystemExit(f"stopped by signal {signum}")


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("binary", help="the enricher: target/lambda/alert-manager-enricher/bootstrap, or a target/*/alert-manager-enricher")
    p.add_argument("--bridge", help="cloudwatch-bridge binary (default: target/release or target/debug)")
    p.add_argument("--artifact-dir", help="target/lambda/alert-manager-enricher: report bootstrap and bootstrap.zip sizes")
    p.add_argument("--results", help="write lambda.json and lambda.md here")
    p.add_argument("--plots", help="write lambda-init.svg and lambda-aws-calls.svg here")
    p.add_argument("--quick", action="store_true", help="smoke run: 5 cold starts of each instead of 25")
    p.add_argument("--runs", type=int, help="cold starts of each (≥ 20 for a report)")
    p.add_argument("--python", default=sys.executable, help="python with boto3 for the baseline (default: this one)")
    a = p.parse_args()
    runs = a.runs or (5 if a.quick else 25)
    budget = 200 if a.quick else 300
    signal.signal(signal.SIGALRM, on_alarm)
    signal.signal(signal.SIGTERM, on_term)
    signal.alarm(budget)
    t_start = time.monotonic()
    binary = os.path.abspath(a.binary)
    problems, notes = [], []
    workdir = tempfile.mkdtemp(prefix="lambda-bench-")
    try:
        if not os.access(binary, os.X_OK):
            raise Broken(f"{a.binary}: not an executable")
        import boto3
        import moto as moto_pkg
        bridge_bin = find_bridge(a.bridge)
        loadavg_start = [round(x, 2) for x in os.getloadavg()]
        print(f"moto and the CloudWatch bridge on 127.0.0.1 (work dir {workdir})", file=sys.stderr)
        moto = Moto(workdir)
        bridge = Bridge(bridge_bin, moto.url, workdir)
        ids, queue_url = seed(moto.url)
        create_state_table(moto.url)
        fleet = fleet_bench.Fleet(moto.url, boto)

        print(f"init: {runs} cold starts of the enricher and of the Python baseline, interleaved", file=sys.stderr)
        init = measure_init(binary, a.python, moto.url, bridge.url, workdir, runs,
                            {"state": STATE_ENV, "fleet": fleet_bench.ENV, "again": {}})
        print(f"  enricher median {init['rust_median_ms']} ms, Python {init['python_median_ms']} ms", file=sys.stderr)

        print("batches: 1, 10, 100 records (+ a warm 100) against moto", file=sys.stderr)
        batches = []
        for n in (1, 10):
            (r,) = run_function(binary, moto, bridge.url, workdir, f"batch-{n}", [(n, sqs_event(n, ids, n))])
            r["label"] = "cold"
            batches.append(r)
        cold, warm = run_function(binary, moto, bridge.url, workdir, "batch-100",
                                  [(100, sqs_event(100, ids, 100)), (100, sqs_event(100, ids, 101))])
        cold["label"], warm["label"] = "cold", "warm"
        batches += [cold, warm]
        for b in batches:
            check_invocation(f"{b['records']}-record batch ({b['label']})", b, problems)
            print(f"  {b['records']:>3} {b['label']}: cpu {b['cpu_ms']} ms ({b['cpu_ms_schedstat']} ms), "
                  f"wall {b['wall_ms']} ms, VmHWM {b['peak_rss_mib']} MiB, calls {b['aws_calls']}", file=sys.stderr)
        print(f"state store: {STATE_ROUNDS} rounds of 100-record batches with and without STATE_TABLE, interleaved",
              file=sys.stderr)
        state = measure_state(binary, moto, bridge.url, workdir, ids, STATE_ROUNDS)
        for k, rnd in enumerate(state["state"]):
            for label, b in rnd.items():
                check_invocation(f"state round {k} {label}", b, problems)
        for k, rnd in enumerate(state["plain"]):
            for label, b in rnd.items():
                check_invocation(f"plain round {k} {label}", b, problems)
        print(f"  CPU cold {state['cold_plain_cpu_ms']} → {state['cold_state_cpu_ms']} ms ({state['cold_ratio']}×), "
              f"warm {state['warm_plain_cpu_ms']} → {state['warm_state_cpu_ms']} ms ({state['warm_ratio']}×), "
              f"calls {state['calls']}", file=sys.stderr)
        print(f"fleet: {FLEET_ROUNDS} rounds of 100-record batches, one (account, region) pair against 6, "
              "interleaved", file=sys.stderr)

        def run(tag, events, env):
            return run_function(binary, moto, bridge.url, workdir, tag, events, env)

        def event(n, tag, placement):
            return sqs_event(n, ids, tag, fingerprint_tag=tag, placement=placement)

        fleet_result = fleet.measure(run, event, FLEET_ROUNDS)
        for side in ("single", "fleet"):
            for k, rnd in enumerate(fleet_result[side]):
                for label, b in rnd.items():
                    check_invocation(f"{side} round {k} {label}", b, problems)
        problems.extend(fleet_bench.problems(fleet_result))
        print(f"  CPU cold {fleet_result['cold_single_cpu_ms']} → {fleet_result['cold_fleet_cpu_ms']} ms "
              f"({fleet_result['cold_ratio']}×), warm {fleet_result['warm_single_cpu_ms']} → "
              f"{fleet_result['warm_fleet_cpu_ms']} ms ({fleet_result['warm_ratio']}×); "
              f"init {init['rust_median_ms']} → {init['fleet_median_ms']} ms", file=sys.stderr)
        output = check_output(moto.url, queue_url)
        if not output["ok"]:
            problems.append(f"the enriched envelopes lack EC2 data, team or CPU points: {output['sample']}")

        print("naive: boto3, one DescribeInstances and one GetMetricData per alert", file=sys.stderr)
        nv = naive(moto, ids, 100)
        nv["boto3_version"] = boto3.__version__
        if nv["errors"]:
            notes.append(f"naive baseline: {nv['errors']} boto3 calls failed against moto "
                         f"({nv['first_errors'][0]}); the table counts attempted calls")
        calls = {}
        for key, b in (("cold", cold), ("warm", warm)):
            calls[key] = {"DescribeInstances": b["aws_calls"].get("DescribeInstances", 0),
                          "GetMetricData": b["aws_calls"].get("GetMetricData", 0),
                          "ec2_cloudwatch_calls": b["ec2_cloudwatch_calls"], "all": b["aws_calls"]}
        calls["naive"] = nv
        for key in ("cold", "warm"):
            emf = next(b["emf"] for b in batches if b["records"] == 100 and b["label"] == key)
            if emf and (emf.get("AwsCalls.DescribeInstances") != calls[key]["DescribeInstances"]
                        or emf.get("AwsCalls.GetMetricData") != calls[key]["GetMetricData"]):
                notes.append(f"{key}: the function's own EMF counts (DescribeInstances "
                             f"{emf.get('AwsCalls.DescribeInstances')}, GetMetricData {emf.get('AwsCalls.GetMetricData')}) "
                             f"differ from moto's recorder")

        art = artifact(os.path.abspath(a.artifact_dir)) if a.artifact_dir else None
        loadavg_end = [round(x, 2) for x in os.getloadavg()]
        if max(loadavg_start[0], loadavg_end[0]) > 0.5 * (os.cpu_count() or 1):
            notes.append(f"the machine was busy (load average {loadavg_start[0]} → {loadavg_end[0]} on "
                         f"{os.cpu_count()} CPUs): timings are pessimistic")
        notes.append("moto is a single Python process: wall times are dominated by it, not by the function")
        notes.append(f"CPU from /proc/PID/stat has {1000 / CLK_TCK:g} ms resolution; the schedstat figure sums live "
                     "threads only")
        result = {
            "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
            "quick": a.quick,
            "binary": binary,
            "binary_rel": os.path.relpath(binary, ROOT) if binary.startswith(ROOT) else binary,
            "binary_bytes": os.path.getsize(binary),
            "binary_mib": round(os.path.getsize(binary) / 1048576, 2),
            "binary_arch": elf_arch(binary),
            "binary_profile": profile_of(binary),
            "bridge": bridge_bin,
            "moto_version": moto_pkg.__version__,
            "boto3_version": boto3.__version__,
            "machine": {"cpus": os.cpu_count(), "kernel": platform.release(), "loadavg_start": loadavg_start,
                        "loadavg_end": loadavg_end, "clk_tck": CLK_TCK},
            "goals": {"init_ms": GOAL_INIT_MS, "init_ratio": GOAL_INIT_RATIO, "rss_mib_at_100": GOAL_RSS_MIB_AT_100,
                      "zip_mib": GOAL_ZIP_MIB, "state_cpu_ratio": GOAL_STATE_CPU_RATIO,
                      "fleet_cpu_ratio": fleet_bench.GOAL_CPU_RATIO, "fleet_init_floor": fleet_bench.GOAL_INIT_FLOOR},
            "init": init,
            "batches": batches,
            "enriched_output_check": output,
            "aws_calls_per_100": calls,
            "state": state,
            "fleet": fleet_result,
            "artifact": art,
            "notes": notes,
            "problems": problems,
            "duration_s": round(time.monotonic() - t_start, 1),
        }
        result["met"] = {
            "init_ms": init["rust_median_ms"] <= GOAL_INIT_MS,
            "init_ratio": init["ratio_python_over_rust"] >= GOAL_INIT_RATIO,
            "rss_at_100": cold["peak_rss_mib"] <= GOAL_RSS_MIB_AT_100,
            "zip": (art["zip_mib"] <= GOAL_ZIP_MIB) if art and art.get("zip_mib") is not None else None,
            "state_init_ms": init["state_median_ms"] <= GOAL_INIT_MS,
            "state_cpu": max(state["cold_ratio"] or 0, state["warm_ratio"] or 0) <= GOAL_STATE_CPU_RATIO,
            "fleet_cpu": max(fleet_result["cold_ratio"] or 0, fleet_result["warm_ratio"] or 0) <= fleet_bench.GOAL_CPU_RATIO,
            "fleet_init": fleet_bench.init_unchanged(init),
        }
        signal.alarm(0)
        if a.plots:
            plots(result, a.plots)
        md = build_md(result)
        if a.results:
            os.makedirs(a.results, exist_ok=True)
            with open(os.path.join(a.results, "lambda.json"), "w") as f:
                json.dump(result, f, indent=2)
                f.write("\n")
            with open(os.path.join(a.results, "lambda.md"), "w") as f:
                f.write(md + "\n")
        print(md)
        print(f"done in {result['duration_s']} s", file=sys.stderr)
        if problems:
            print("BROKEN RUN:\n  " + "\n  ".join(problems), file=sys.stderr)
            print(f"logs of moto, the bridge and each enricher process: {workdir}", file=sys.stderr)
            return 1
        shutil.rmtree(workdir, ignore_errors=True)
        return 0
    except Broken as e:
        print(f"BROKEN RUN: {e}", file=sys.stderr)
        print(f"logs of moto, the bridge and each enricher process: {workdir}", file=sys.stderr)
        return 1
    finally:
        signal.alarm(0)
        stop_all()


if __name__ == "__main__":
    sys.exit(main())
