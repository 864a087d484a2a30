#!/usr/bin/env python3
"""RSS of the agent binary holding the node and namespace stores of a large cluster.

  agent-stores-rss.py AGENT_BINARY MOCK_APISERVER_BINARY [--nodes 5000] [--namespaces 2000]
                      [--notifications 50] [--timeout 120]

Starts moto (from the venv) with a topic, the mock Kubernetes API server
(`mock-kube-apiserver`, built by `cargo test --workspace`) with a synthetic
cluster of N EKS nodes (the real managed-node fixture: managedFields, images,
conditions) and M annotated namespaces, and the agent with KUBECONFIG pointing
at it. Samples VmRSS/VmHWM of the agent every 100 ms from its start, waits
until its /metrics shows both stores full
(`..._kubernetes_store_objects{kind="node"} N`), then posts notifications of
10 alerts each whose labels name synthetic nodes (by name and by InternalIP)
and namespaces, so the hot path reads the stores too. Prints one JSON object:
time until the stores were full, RSS when they were, peak and final RSS (MiB).

Everything runs on 127.0.0.1 and is killed at the end, on error, on Ctrl-C,
and after --timeout seconds at the latest.
"""
import argparse, copy, json, os, re, select, signal, subprocess, sys, tempfile, threading, time
import urllib.error, urllib.parse, urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import Failure, check_alive, free_port, http, mib, remaining, rss, spawn, stop, tail, wait_http  # noqa: E402
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
VENV = os.path.join(os.environ.get("ALERT_MANAGER_CACHE") or os.path.expanduser("~/.cache/alert-manager"), "venv")
MOCK_TOKEN = "mock-token"


def create_topic(endpoint):
    # moto routes by the credential scope; it does not check the signature.
    auth = "AWS4-HMAC-SHA256 Credential=testing/20260101/us-east-1/sns/aws4_request, SignedHeaders=host, Signature=0"
    _, body = http(endpoint + "/", data=b"Action=CreateTopic&Name=alerts&Version=2010-03-31",
                   headers={"Content-Type": "application/x-www-form-urlencoded", "Authorization": auth})
    m = re.search(rb"<TopicArn>([^<]+)</TopicArn>", body)
    if not m:
        raise Failure(f"moto CreateTopic: {body[:300]!r}")
    return m.group(1).decode()


def start_mock(binary, args, workdir, deadline):
    kubeconfig = os.path.join(workdir, "kubeconfig")
    log = os.path.join(workdir, "mock-apiserver.log")
    proc = spawn([binary, "--synthetic-nodes", str(args.nodes), "--synthetic-namespaces", str(args.namespaces),
                  "--kubeconfig", kubeconfig], log, stdout=subprocess.PIPE)
    line = b""
    while not line.endswith(b"\n"):
        check_alive(proc, "mock-kube-apiserver", log)
        ready, _, _ = select.select([proc.stdout], [], [], min(0.5, remaining(deadline)))
        if ready:
            chunk = os.read(proc.stdout.fileno(), 256)
            if not chunk:
                check_alive(proc, "mock-kube-apiserver", log)
                time.sleep(0.05)
            line += chunk
    m = re.match(rb"listening on (http://127\.0\.0\.1:\d+)", line)
    if not m or not os.path.exists(kubeconfig):
        raise Failure(f"mock-kube-apiserver said {line!r}")
    return proc, m.group(1).decode(), kubeconfig, log


def kube_get(url, path):
    _, body = http(url + path, headers={"Authorization": f"Bearer {MOCK_TOKEN}"}, timeout=30)
    return json.loads(body)


def store_counts(metrics_text):
    counts = {}
    for kind in ("node", "namespace"):
        m = re.search(r'kubernetes_store_objects\{[^}]*kind="' + kind + r'"[^}]*\}\s+([0-9.eE+]+)', metrics_text)
        if m:
            counts[kind] = float(m.group(1))
    return counts


def notifications(count, nodes, namespaces):
    """Notifications of 10 alerts, each naming a synthetic node (by name, or by
    InternalIP only so that the agent searches by address) and namespace."""
    base = json.load(open(os.path.join(ROOT, "envelope/fixtures/group.json")))
    template = base["alerts"][0]
    bodies = []
    for n in range(count):
        b = copy.deepcopy(base); b["alerts"] = []
        for i in range(10):
            k = n * 10 + i
            name, ip = nodes[k % len(nodes)]
            al = copy.deepcopy(template)
            labels = al["labels"]
            labels.pop("pod", None)
            labels["namespace"] = namespaces[k % len(namespaces)]
            labels["instance"] = f"{ip}:9100"
            if k % 2:
                labels.pop("node", None)
            else:
                labels["node"] = name
            al["fingerprint"] = f"{n:08x}{i:08x}"
            b["alerts"].append(al)
        bodies.append(json.dumps(b).encode())
    return bodies


def plot(path, samples, full_s, webhook_at, args):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(7, 3.5))
    ax.plot([s[0] for s in samples], [s[1] / 1024 for s in samples], label="VmRSS")
    ax.axhline(48, color="red", linestyle="--", linewidth=1, label="goal: 48 MiB")
    ax.axvline(full_s, color="grey", linestyle=":", label="stores full")
    ax.axvline(webhook_at, color="green", linestyle=":", label="notifications start")
    ax.set_xlabel("seconds since the agent started")
    ax.set_ylabel("MiB")
    ax.set_ylim(bottom=0)
    ax.set_title(f"Agent RSS with {args.nodes:,} nodes and {args.namespaces:,} namespaces in its stores")
    ax.legend(loc="lower right", fontsize="small")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def main():
    a = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    a.add_argument("agent"); a.add_argument("mock_apiserver")
    a.add_argument("--nodes", type=int, default=5000); a.add_argument("--namespaces", type=int, default=2000)
    a.add_argument("--notifications", type=int, default=50); a.add_argument("--timeout", type=float, default=120)
    a.add_argument("--plot", help="write an SVG of RSS over the run here (needs matplotlib)")
    args = a.parse_args()
    deadline = time.time() + args.timeout
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    moto = mock = agent = None
    stop_sampling, samples = threading.Event(), []
    sampler = None
    with tempfile.TemporaryDirectory(prefix="agent-stores-rss-") as workdir:
        agent_log = os.path.join(workdir, "agent.log")
        try:
            moto_port, listen, metrics = free_port(), free_port(), free_port()
            moto_log = os.path.join(workdir, "moto.log")
            moto = spawn([os.path.join(VENV, "bin", "python3"), os.path.join(ROOT, "infra", "local", "moto_server.py"), "-H", "127.0.0.1", "-p", str(moto_port)], moto_log)
            mock, kube_url, kubeconfig, mock_log = start_mock(args.mock_apiserver, args, workdir, deadline)
            endpoint = f"http://127.0.0.1:{moto_port}"
            wait_http(f"{endpoint}/moto-api/data.json", deadline, "moto", moto, moto_log)
            topic = create_topic(endpoint)

            # Names and addresses for the notifications, from the mock itself.
            page = kube_get(kube_url, "/api/v1/nodes?limit=500")["items"]
            nodes = [(n["metadata"]["name"], next(x["address"] for x in n["status"]["addresses"] if x["type"] == "InternalIP"))
                     for n in page]
            namespaces = [n["metadata"]["name"] for n in kube_get(kube_url, "/api/v1/namespaces?limit=500")["items"]]
            if not nodes or not namespaces:
                raise Failure("the mock serves no nodes or no namespaces")
            bodies = notifications(args.notifications, nodes, namespaces)

            env = {"PATH": os.environ["PATH"], "AWS_REGION": "us-east-1", "AWS_ACCESS_KEY_ID": "testing",
                   "AWS_SECRET_ACCESS_KEY": "testing", "AWS_ENDPOINT_URL": endpoint, "AWS_EC2_METADATA_DISABLED": "true",
                   "RUST_LOG": "warn", "ALERT_TOPIC_ARN": topic, "CLUSTER_NAME": "bench",
                   "LISTEN_ADDR": f"127.0.0.1:{listen}", "METRICS_ADDR": f"127.0.0.1:{metrics}",
                   "KUBECONFIG": kubeconfig, "KUBERNETES_CONTEXT": "auto"}
            t0 = time.time()
            agent = spawn([args.agent], agent_log, env=env)

            def sample():
                while not stop_sampling.is_set():
                    try:
                        samples.append((time.time() - t0, rss(agent.pid, "VmRSS"), rss(agent.pid, "VmHWM")))
                    except (OSError, StopIteration):
                        return
                    time.sleep(0.1)

            sampler = threading.Thread(target=sample, daemon=True); sampler.start()

            want = {"node": float(args.nodes), "namespace": float(args.namespaces)}
            counts, text = {}, ""
            while True:
                check_alive(agent, "the agent", agent_log)
                left = deadline - time.time()
                if left <= 0:
                    shown = "\n".join(l for l in text.splitlines() if "kubernetes" in l) or "(no kubernetes metrics)"
                    raise Failure(f"stores not full within {args.timeout:.0f} s: {counts}, want {want}\n{shown}\n{tail(agent_log)}")
                try:
                    text = http(f"http://127.0.0.1:{metrics}/metrics", timeout=min(2.0, left))[1].decode()
                    counts = store_counts(text)
                except Exception:
                    pass
                if all(counts.get(k, -1) >= v for k, v in want.items()):
                    break
                time.sleep(0.1)
            full_s = time.time() - t0
            rss_full = rss(agent.pid, "VmRSS")

            wait_http(f"http://127.0.0.1:{metrics}/readyz", deadline, "the agent", agent, agent_log)
            non_200 = 0
            t1 = time.time()
            for body in bodies:
                req = urllib.request.Request(f"http://127.0.0.1:{listen}/webhook", data=body,
                                             headers={"Content-Type": "application/json"})
                try:
                    with urllib.request.urlopen(req, timeout=min(30.0, remaining(deadline))) as r:
                        non_200 += r.status != 200
                except urllib.error.HTTPError:
                    non_200 += 1
            webhook_s = time.time() - t1
            time.sleep(0.3)  # one more sample after the last notification
            stop_sampling.set(); sampler.join()
            final, hwm = rss(agent.pid, "VmRSS"), rss(agent.pid, "VmHWM")
            if args.plot:
                plot(args.plot, samples, full_s, t1 - t0, args)
            print(json.dumps({
                "binary": args.agent, "nodes": args.nodes, "namespaces": args.namespaces,
                "stores_full_seconds": round(full_s, 2), "rss_at_stores_full_mib": mib(rss_full),
                "notifications": len(bodies), "alerts": 10 * len(bodies), "non_200": non_200,
                "webhook_seconds": round(webhook_s, 2),
                "rss_peak_mib": mib(max([s[1] for s in samples] + [final])), "hwm_mib": mib(hwm),
                "rss_final_mib": mib(final), "samples": len(samples),
            }, indent=2))
            return 0 if non_200 == 0 else 1
        except Failure as e:
            print(f"agent-stores-rss: {e}", file=sys.stderr)
            return 1
        finally:
            stop_sampling.set()
            for p in (agent, mock, moto):
                stop(p)
            if sampler is not None:
                sampler.join(timeout=1)


if __name__ == "__main__":
    sys.exit(main())
