#!/usr/bin/env python3
"""Steady-state RSS of the agent binary while it publishes to moto.

  agent-rss.py BINARY [--notifications 300] [--concurrency 8]

Starts moto (from the venv), a topic, and the agent on 127.0.0.1; posts
notifications of 10 alerts each (the real group fixture, widened) from
several threads; samples VmRSS every 100 ms and prints peak and final RSS.
moto is the bottleneck here, so this measures memory, not throughput
(throughput is `cargo bench --workspace --bench hot_path`).
"""
import argparse, copy, json, os, socket, subprocess, sys, threading, time, urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def free_port():
    s = socket.socket(); s.bind(("127.0.0.1", 0)); p = s.getsockname()[1]; s.close(); return p


def wait(url, timeout=30):
    end = time.time() + timeout
    while time.time() < end:
        try:
            if urllib.request.urlopen(url, timeout=1).status == 200:
                return
        except Exception:
            time.sleep(0.1)
    sys.exit(f"{url} not ready")


def rss(pid, field):
    with open(f"/proc/{pid}/status") as f:
        return next(int(l.split()[1]) for l in f if l.startswith(field))


def main():
    a = argparse.ArgumentParser()
    a.add_argument("binary"); a.add_argument("--notifications", type=int, default=300); a.add_argument("--concurrency", type=int, default=8)
    args = a.parse_args()
    moto_port, listen, metrics = free_port(), free_port(), free_port()
    moto = subprocess.Popen([sys.executable, os.path.join(ROOT, "infra", "local", "moto_server.py"), "-H", "127.0.0.1", "-p", str(moto_port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    agent = None
    try:
        wait(f"http://127.0.0.1:{moto_port}/moto-api/data.json")
        import boto3
        topic = boto3.client("sns", endpoint_url=f"http://127.0.0.1:{moto_port}", region_name="us-east-1",
                             aws_access_key_id="testing", aws_secret_access_key="testing").create_topic(Name="alerts")["TopicArn"]
        env = {"PATH": os.environ["PATH"], "AWS_REGION": "us-east-1", "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
               "AWS_ENDPOINT_URL": f"http://127.0.0.1:{moto_port}", "AWS_EC2_METADATA_DISABLED": "true", "RUST_LOG": "warn"}
        agent = subprocess.Popen([args.binary, "--topic-arn", topic, "--cluster", "bench", "--listen", f"127.0.0.1:{listen}",
                                  "--metrics-listen", f"127.0.0.1:{metrics}", "--kubernetes", "off"], env=env,
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait(f"http://127.0.0.1:{metrics}/readyz")
        idle = rss(agent.pid, "VmRSS")
        base = json.load(open(os.path.join(ROOT, "envelope/fixtures/group.json")))
        bodies = []
        for n in range(args.notifications):
            b = copy.deepcopy(base); t = base["alerts"][0]; b["alerts"] = []
            for i in range(10):
                al = copy.deepcopy(t); al["labels"]["instance"] = f"10.{n % 250}.{i}.1:9100"; al["fingerprint"] = f"{n:08x}{i:08x}"; b["alerts"].append(al)
            bodies.append(json.dumps(b).encode())
        peak, stop, errors = [idle], threading.Event(), []

        def sample():
            while not stop.is_set():
                peak.append(rss(agent.pid, "VmRSS")); time.sleep(0.1)

        def post(chunk):
            for body in chunk:
                r = urllib.request.urlopen(urllib.request.Request(f"http://127.0.0.1:{listen}/webhook", data=body, headers={"Content-Type": "application/json"}), timeout=60)
                if r.status != 200:
                    errors.append(r.status)

        sampler = threading.Thread(target=sample); sampler.start()
        t0 = time.time()
        threads = [threading.Thread(target=post, args=(bodies[i::args.concurrency],)) for i in range(args.concurrency)]
        [t.start() for t in threads]; [t.join() for t in threads]
        elapsed = time.time() - t0
        stop.set(); sampler.join()
        print(json.dumps({"binary": args.binary, "alerts": 10 * args.notifications, "seconds": round(elapsed, 1),
                          "non_200": len(errors), "rss_idle_kib": idle, "rss_peak_kib": max(peak),
                          "rss_final_kib": rss(agent.pid, "VmRSS"), "hwm_kib": rss(agent.pid, "VmHWM")}, indent=2))
    finally:
        if agent: agent.kill(); agent.wait()
        moto.kill(); moto.wait()


if __name__ == "__main__":
    main()
