#!/usr/bin/env python3
"""Measures the enricher Lambda binary the way Lambda runs it, against a
minimal Runtime API stand-in on 127.0.0.1:

  init   process start -> first GET /runtime/invocation/next, median of N cold starts
  batch  peak RSS (VmHWM) of the process after handling one SQS event of 100
         records over 10 moto EC2 instances, and the wall time of that invocation

  lambda-init.py BINARY [--runs 20] [--moto http://127.0.0.1:5000]

With --moto, the script seeds moto (boto3 from the venv) and points the
function's AWS SDK at it; CloudWatch goes to a closed port (moto has no CBOR,
the Rust bridge lives in the tests), so the batch records a cloudwatch
enrichment error per alert, which is the degraded path.
"""
import argparse
import http.server
import json
import os
import socket
import statistics
import subprocess
import threading
import time


class RuntimeApi(http.server.ThreadingHTTPServer):
    def __init__(self, event):
        super().__init__(("127.0.0.1", 0), Handler)
        self.event = event
        self.first_next = threading.Event()
        self.first_next_at = None
        self.served = False
        self.response = None
        self.done = threading.Event()


class Handler(http.server.BaseHTTPRequestHandler):
    def log_message(self, *a):
        pass

    def do_GET(self):
        s = self.server
        if self.path.endswith("/runtime/invocation/next"):
            if s.first_next_at is None:
                s.first_next_at = time.perf_counter()
                s.first_next.set()
            if s.event is None or s.served:
                time.sleep(30)  # park the runtime; the measurement kills it
                return
            s.served = True
            body = json.dumps(s.event).encode()
            self.send_response(200)
            self.send_header("Lambda-Runtime-Aws-Request-Id", "req-1")
            self.send_header("Lambda-Runtime-Deadline-Ms", str(int(time.time() * 1000) + 60000))
            self.send_header("Lambda-Runtime-Invoked-Function-Arn", "arn:aws:lambda:us-east-1:123456789012:function:enricher")
            self.send_header("Lambda-Runtime-Trace-Id", "Root=1-00000000-000000000000000000000000")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    def do_POST(self):
        s = self.server
        n = int(self.headers.get("Content-Length", 0))
        s.response = (self.path, self.rfile.read(n).decode())
        self.send_response(202)
        self.end_headers()
        s.done.set()


def env_for(api, moto):
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))
    dead = closed.getsockname()[1]
    closed.close()
    env = {
        "PATH": os.environ.get("PATH", ""),
        "AWS_LAMBDA_RUNTIME_API": f"127.0.0.1:{api.server_address[1]}",
        "AWS_LAMBDA_FUNCTION_NAME": "enricher",
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "256",
        "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
        "AWS_LAMBDA_LOG_GROUP_NAME": "/aws/lambda/enricher",
        "AWS_LAMBDA_LOG_STREAM_NAME": "bench",
        "AWS_REGION": "us-east-1",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_EC2_METADATA_DISABLED": "true",
        "ENRICHED_TOPIC_ARN": "arn:aws:sns:us-east-1:123456789012:alerts-enriched",
        "AWS_ENDPOINT_URL": moto or f"http://127.0.0.1:{dead}",
        "AWS_ENDPOINT_URL_CLOUDWATCH": f"http://127.0.0.1:{dead}",
        "RUST_LOG": "warn",
    }
    return env


def run_once(binary, event, moto):
    api = RuntimeApi(event)
    threading.Thread(target=api.serve_forever, daemon=True).start()
    start = time.perf_counter()
    proc = subprocess.Popen([binary], env=env_for(api, moto), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        if not api.first_next.wait(30):
            raise SystemExit("the function never asked for an invocation")
        init_ms = (api.first_next_at - start) * 1000
        result = None
        if event is not None:
            t0 = time.perf_counter()
            if not api.done.wait(60):
                raise SystemExit("no response within 60 s")
            wall = time.perf_counter() - t0
            with open(f"/proc/{proc.pid}/status") as f:
                hwm = next(int(l.split()[1]) for l in f if l.startswith("VmHWM"))
            result = {"invocation_ms": round(wall * 1000, 1), "peak_rss_kib": hwm, "response": json.loads(api.response[1])}
        return init_ms, result
    finally:
        proc.kill()
        proc.wait()
        api.shutdown()


def seed(moto):
    import boto3
    kw = dict(endpoint_url=moto, region_name="us-east-1", aws_access_key_id="testing", aws_secret_access_key="testing")
    ec2, sns = boto3.client("ec2", **kw), boto3.client("sns", **kw)
    sns.create_topic(Name="alerts-enriched")
    image = ec2.describe_images()["Images"][0]["ImageId"]
    ids = []
    for i in range(10):
        r = ec2.run_instances(ImageId=image, MinCount=1, MaxCount=1, InstanceType="m6i.large",
                              TagSpecifications=[{"ResourceType": "instance", "Tags": [{"Key": "team", "Value": "payments"}, {"Key": "Name", "Value": f"node-{i}"}]}])
        ids.append(r["Instances"][0]["InstanceId"])
    return ids


def sqs_event(ids):
    now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() - 300))
    records = []
    for i in range(100):
        env = {"schema": "alert-manager/v1", "id": f"{i:032x}", "source": "alertmanager", "cluster": "prod",
               "status": "firing", "alertname": f"HighCpu{i}", "severity": "critical", "fingerprint": f"{i:016x}",
               "starts_at": now, "labels": {"alertname": f"HighCpu{i}", "severity": "critical", "namespace": "payments"},
               "annotations": {"summary": "CPU above 90% for 10 minutes", "description": "x" * 400},
               "aws": {"instance_id": ids[i % 10], "region": "us-east-1"}, "truncated": False}
        records.append({"messageId": f"msg-{i}", "receiptHandle": "h", "body": json.dumps(env), "attributes": {},
                        "messageAttributes": {}, "md5OfBody": "", "eventSource": "aws:sqs",
                        "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:q", "awsRegion": "us-east-1"})
    return {"Records": records}


def main():
    p = argparse.ArgumentParser()
    p.add_argument("binary")
    p.add_argument("--runs", type=int, default=20)
    p.add_argument("--moto")
    a = p.parse_args()
    inits = [run_once(a.binary, None, a.moto)[0] for _ in range(a.runs)]
    out = {"binary": a.binary, "binary_bytes": os.path.getsize(a.binary), "init_ms_median": round(statistics.median(inits), 2),
           "init_ms_min": round(min(inits), 2), "init_ms_max": round(max(inits), 2), "runs": a.runs}
    if a.moto:
        _, batch = run_once(a.binary, sqs_event(seed(a.moto)), a.moto)
        out["batch_100_records"] = {k: v for k, v in batch.items() if k != "response"}
        out["batch_100_records"]["batch_item_failures"] = len(batch["response"].get("batchItemFailures", []))
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
