#!/usr/bin/env python3
"""Load benchmark of the agent, and the agent next to Alertmanager's own SNS receiver.

  agent-load.py --agent target/agent/alert-manager-agent [--null-sns target/debug/null-sns]
                [--results DIR] [--plots DIR] [--quick]

Part 1, the agent under load (agent pinned to core 0 with taskset, wrk and the
null SNS endpoint pinned to core 1, everything on 127.0.0.1):

  a. throughput against concurrency: wrk POSTs webhook notifications of 10
     alerts each (the real group fixture, every alert with its own labels and
     fingerprint, and no alert sent twice: the agent would skip it as a retry)
     for a few seconds per concurrency level; notifications/s and alerts/s;
     the null endpoint's counts must equal 10 x the accepted notifications
     (the agent answers 2xx only once SNS accepted them), and the agent must
     not have skipped any alert as already published. Saturation is the
     highest alerts/s.
  b. latency at half the saturation rate: wrk paced with its Lua delay() at a
     fixed rate; p50/p90/p99/p99.9 and the CDF; the same rate of
     PublishBatch-shaped requests straight to the null endpoint gives the
     endpoint's own latency, and the agent's p99 is reported over it. Five
     alternating pairs (agent, endpoint) of 5 s; the median pair is reported.
  c. CPU seconds (utime+stime from /proc) per 10,000 alerts at saturation.
  d. peak RSS (VmHWM) over the whole load run, and VmRSS every 100 ms.

Part 2, the same 10,000 alerts (1,000 groups of 10) through Debian's
Alertmanager twice: (A) its native sns_configs receiver publishing to the
null endpoint, (B) webhook_configs to the agent publishing to the null
endpoint; CPU seconds of Alertmanager and of the agent from just before the
alerts are posted until the null endpoint has counted every notification.
Three alternating pairs (A, B); the median pair's ratio is reported.

Writes DIR/agent-load.json (every raw number) and DIR/agent-load.md (a
markdown fragment for docs/benchmarks.md) with --results, SVGs with --plots.
Prints one summary line; exits non-zero only when the run is broken (counts
mismatch, errors, a process died, timeout), never for a missed goal.
Bounded: about 3 minutes (5.5 at most), --quick about 40 s. Use a release agent (and
ideally a release null-sns) for figures that mean anything.
"""
import argparse, json, math, os, platform, re, select, shutil, signal, subprocess, sys, tempfile, threading, time
import resource, statistics, urllib.error, urllib.parse, urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import Failure, check_alive, free_port, http, mib, remaining, rss, spawn, stop, tail, wait_http  # noqa: E402
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TOPIC = "arn:aws:sns:us-east-1:123456789012:alerts"
TOKEN = "bench-token-0123456789abcdef"
CLK = os.sysconf("SC_CLK_TCK")
GOAL_ALERTS_PER_S = 20000
GOAL_P99_OVER_MS = 2.0
GOAL_RSS_MIB = 32
GOAL_CPU_RATIO = 0.25
# wrk's percentile(100) answers 0; the maximum is latency.max
PERCENTILES = [0.1, 0.5] + list(range(1, 100)) + [99.5, 99.9, 99.95, 99.99]
# The wrk script: POSTs a file of bodies round robin, paced or not; see the file.
WRK_LUA_PATH = os.path.join(os.path.dirname(os.path.abspath(__file__)), "wrk-bench.lua")


def cpu_s(pid):
    """utime + stime of the whole process (all threads), in seconds."""
    with open(f"/proc/{pid}/stat") as f:
        s = f.read()
    fields = s[s.rindex(")") + 2:].split()
    return (int(fields[11]) + int(fields[12])) / CLK


def children_cpu_s():
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def metrics(port):
    """Sample name{labels} -> value of the agent's /metrics."""
    out = {}
    for line in http(f"http://127.0.0.1:{port}/metrics")[1].decode().splitlines():
        if line and not line.startswith("#"):
            k, _, v = line.rpartition(" ")
            try:
                out[k] = float(v)
            except ValueError:
                pass
    return out


def metric(m, name, labels=""):
    return m.get(f"{name}{{{labels}}}" if labels else name, 0.0)


# ---------------------------------------------------------------- payloads

def fixture():
    with open(os.path.join(ROOT, "envelope/fixtures/group.json")) as f:
        return json.load(f)


def alert_of(base, n, i, group=None):
    """Alert i of notification/group n: a fixture alert with its own instance, node, pod, fingerprint."""
    t = base["alerts"][i % len(base["alerts"])]
    ip = f"10.{(n // 250) % 250}.{n % 250}.{i + 1}"
    labels = dict(t["labels"], instance=f"{ip}:9100", node=f"ip-{ip.replace('.', '-')}.eu-west-1.compute.internal",
                  pod=f"node-exporter-{n:05x}{i}")
    if group is not None:
        labels["group"] = group
    ann = dict(t["annotations"], description=t["annotations"]["description"].replace(t["labels"]["instance"], f"{ip}:9100"))
    return dict(t, labels=labels, annotations=ann, fingerprint=f"{n:08x}{i:08x}")


FP_MARK = "FP_MARK"


def notifications(count):
    """Webhook bodies for wrk: each alert's fingerprint starts with FP_MARK, which the Lua replaces
    with 8 hex digits of its own per request (see the Lua), and ends with the alert's index."""
    base = fixture()
    out = []
    for n in range(count):
        b = dict(base, alerts=[dict(alert_of(base, n, i), fingerprint=f"{FP_MARK}{i:08x}") for i in range(10)])
        b["groupKey"] = f'{{}}/{{alertname="NodeFilesystemSpaceFillingUp"}}:{{n="{n}"}}'
        out.append(json.dumps(b, separators=(",", ":")))
    return out


def publish_batch_bodies(count, envelope_bytes):
    """Form bodies shaped like the agent's PublishBatch: 10 entries of an envelope's size, with attributes."""
    base = fixture()
    out = []
    for n in range(count):
        p = {"Action": "PublishBatch", "Version": "2010-03-31", "TopicArn": TOPIC}
        for i in range(10):
            a = alert_of(base, n, i)
            msg = json.dumps({"version": 1, "source": "alertmanager", "cluster": "bench", "alert": a})
            msg = msg[:-1] + ',"pad":"' + "x" * max(0, envelope_bytes - len(msg) - 10) + '"}'
            e = f"PublishBatchRequestEntries.member.{i + 1}."
            p[e + "Id"] = f"{n:08x}{i:08x}"
            p[e + "Message"] = msg
            for k, (name, value) in enumerate((("cluster", "bench"), ("severity", "warning"), ("status", "firing"),
                                                ("alertname", a["labels"]["alertname"])), 1):
                p[f"{e}MessageAttributes.entry.{k}.Name"] = name
                p[f"{e}MessageAttributes.entry.{k}.Value.DataType"] = "String"
                p[f"{e}MessageAttributes.entry.{k}.Value.StringValue"] = value
        out.append(urllib.parse.urlencode(p))
    return out


# ---------------------------------------------------------------- processes

def start_null_sns(binary, workdir, deadline):
    log = os.path.join(workdir, "null-sns.log")
    proc = spawn(["taskset", "-c", "1", binary, "--port", "0", "--delay-ms", "0"], log, stdout=subprocess.PIPE)
    line = b""
    while not line.endswith(b"\n"):
        check_alive(proc, "null-sns", log)
        ready, _, _ = select.select([proc.stdout], [], [], min(0.5, remaining(deadline)))
        if ready:
            chunk = os.read(proc.stdout.fileno(), 256)
            if not chunk:
                check_alive(proc, "null-sns", log)
                time.sleep(0.05)
            line += chunk
    m = re.match(rb"listening on http://127\.0\.0\.1:(\d+)", line)
    if not m:
        raise Failure(f"null-sns said {line!r}")
    return proc, int(m.group(1)), log


def counts(port):
    return json.loads(http(f"http://127.0.0.1:{port}/counts")[1])


def reset(port):
    http(f"http://127.0.0.1:{port}/counts/reset", data=b"", method="POST")


def settle(port, want, key, deadline, limit=5.0):
    """Counts once `key` reached `want` or stopped moving for 0.3 s (at most `limit` s)."""
    end, last, since = time.time() + limit, None, time.time()
    while True:
        c = counts(port)
        if c[key] == want:
            return c
        if c[key] != last:
            last, since = c[key], time.time()
        if time.time() - since > 0.3 or time.time() > end:
            return c
        remaining(deadline)
        time.sleep(0.05)


# The first fingerprint digits of the next wrk run (see FP_MARK in the Lua): every run starts past
# the requests of the runs before it, so no two requests of one agent's life carry the same alert.
next_fp_base = 1


def run_wrk(lua, url, bodies, path, ctype, auth, conns, active, rate, grace, deadline):
    global next_fp_base
    dur = int(math.ceil(active + grace))
    if dur + 15 > remaining(deadline):
        raise Failure("total time bound reached before a wrk run")
    base = next_fp_base
    cmd = ["taskset", "-c", "1", "wrk", "-t1", f"-c{conns}", f"-d{dur}s", "--timeout", "10s", "-s", lua, url,
           "--", bodies, path, ctype, auth or "-", str(active), str(rate), str(base)]
    cpu0 = children_cpu_s()
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=dur + 15, stdin=subprocess.DEVNULL)
    line = next((l for l in p.stdout.splitlines() if l.startswith("WRKJSON ")), None)
    if p.returncode != 0 or line is None:
        raise Failure(f"wrk failed ({p.returncode}): {p.stdout[-1500:]}{p.stderr[-1500:]}")
    r = json.loads(line[len("WRKJSON "):])
    # `sent` leaves out the request wrk asks for before the run; the margin covers it.
    next_fp_base = base + r["sent"] + 16
    r["cpu_s"] = round(children_cpu_s() - cpu0, 3)
    r["connections"], r["active_s"], r["target_rate"] = conns, active, rate
    r["ok"] = r["requests"] - r["errors"]["status"]
    r["in_flight_at_stop"] = r["sent"] - r["requests"]
    r["rate"] = r["requests"] / active
    r["pct"] = {str(p): v for p, v in r.pop("percentiles")}
    return r


def median_pair(pairs, key):
    """The pair with the median `key` (the upper one of an even count)."""
    return sorted(pairs, key=lambda x: x[key])[len(pairs) // 2]


def pct_ms(r, p):
    return r["pct"][str(p)] / 1000.0


# ---------------------------------------------------------------- Alertmanager

AM_CONFIG = """global:
  resolve_timeout: 1h
route:
  receiver: bench
  group_by: [group]
  group_wait: 1s
  group_interval: 1h
  repeat_interval: 1h
receivers:
- name: bench
{receiver}"""

AM_SNS = """  sns_configs:
  - api_url: http://127.0.0.1:{null_port}
    topic_arn: {topic}
    # Alertmanager 0.25 does not shorten the subject to SNS's 100 characters, and its
    # default subject for these groups is 130; real SNS would refuse every Publish.
    subject: '[{{{{ .Status | toUpper }}}}:{{{{ .Alerts.Firing | len }}}}] {{{{ .GroupLabels.group }}}} {{{{ .CommonLabels.alertname }}}}'
    send_resolved: false
    sigv4:
      region: us-east-1
      access_key: x
      secret_key: y
"""

AM_WEBHOOK = """  webhook_configs:
  - url: http://127.0.0.1:{listen}/webhook
    send_resolved: false
    http_config:
      authorization:
        type: Bearer
        credentials: {token}
"""


def am_alerts(groups):
    base = fixture()
    return [[{"labels": a["labels"], "annotations": a["annotations"], "generatorURL": a["generatorURL"]}
             for a in (alert_of(base, g, i, group=f"g{g:05d}") for i in range(10))] for g in range(groups)]


def am_run(name, am_bin, receiver, groups, null_port, key, want, workdir, deadline, timeout, agent=None, mport=None):
    """One Alertmanager run: post groups x 10 alerts, wait for the null endpoint to count `want` of `key`."""
    port = free_port()
    d = os.path.join(workdir, f"am-{name}")
    os.makedirs(d)
    cfg = os.path.join(d, "alertmanager.yml")
    with open(cfg, "w") as f:
        f.write(AM_CONFIG.format(receiver=receiver))
    log = os.path.join(d, "alertmanager.log")
    env = {"PATH": os.environ["PATH"], "HOME": d, "AWS_EC2_METADATA_DISABLED": "true"}
    am = spawn([am_bin, f"--config.file={cfg}", f"--storage.path={os.path.join(d, 'data')}",
                f"--web.listen-address=127.0.0.1:{port}", "--cluster.listen-address=", "--log.level=info"], log, env=env)
    try:
        wait_http(f"http://127.0.0.1:{port}/-/ready", deadline, "alertmanager", am, log)
        batches = am_alerts(groups)
        chunks = [sum(batches[i:i + 50], []) for i in range(0, groups, 50)]
        bodies = [json.dumps(c).encode() for c in chunks]
        reset(null_port)
        time.sleep(0.2)
        codes0 = metrics(mport) if mport else {}
        am0, ag0, t0 = cpu_s(am.pid), cpu_s(agent.pid) if agent else 0.0, time.time()
        for b in bodies:
            s, _ = http(f"http://127.0.0.1:{port}/api/v2/alerts", data=b, headers={"Content-Type": "application/json"},
                        timeout=min(30.0, remaining(deadline)))
            if s != 200:
                raise Failure(f"alertmanager answered {s} to POST /api/v2/alerts")
        posted = time.time() - t0
        end, c = t0 + timeout, {}
        while True:
            check_alive(am, "alertmanager", log)
            c = counts(null_port)
            if c[key] >= want or time.time() > end:
                break
            remaining(deadline)
            time.sleep(0.02)
        am1, ag1, t1 = cpu_s(am.pid), cpu_s(agent.pid) if agent else 0.0, time.time()
        time.sleep(0.5)  # anything beyond `want` (a duplicate or a retry) shows here
        after = counts(null_port)
        with open(log, errors="replace") as f:
            errors = [l.strip() for l in f if "level=error" in l or "level=warn" in l]
        retries = sum("Notify attempt failed" in l for l in errors)
        codes1 = metrics(mport) if mport else {}
        agent_codes, refused, waited = {}, {}, 0
        for k, v in codes1.items():
            m = re.match(r'alert_manager_agent_webhook_responses_total\{code="(\d+)"\}', k)
            if m and v - codes0.get(k, 0.0):
                agent_codes[m.group(1)] = int(v - codes0.get(k, 0.0))
            # Connections the webhook listener closed unserved (its caps): Alertmanager retries each.
            m = re.match(r'alert_manager_agent_connections_refused_total\{listener="webhook",reason="(\w+)"\}', k)
            if m and v - codes0.get(k, 0.0):
                refused[m.group(1)] = int(v - codes0.get(k, 0.0))
            # Connections beyond MAX_CONNECTIONS_PER_CLIENT that waited for a place instead.
            if k == 'alert_manager_agent_connections_waited_total{listener="webhook"}':
                waited = int(v - codes0.get(k, 0.0))
        return {
            "receiver": name, "groups": groups, "alerts": groups * 10, "posted_s": round(posted, 2),
            "wall_s": round(t1 - t0, 2), "complete": c[key] >= want, "counts_at_complete": c, "counts_after": after,
            "want": {key: want}, "am_cpu_s": round(am1 - am0, 3), "agent_cpu_s": round(ag1 - ag0, 3) if agent else None,
            "am_hwm_mib": mib(rss(am.pid, "VmHWM")), "am_log_errors": len(errors), "am_log_error_sample": errors[:3],
            "am_failed_attempts": retries, "agent_responses": agent_codes, "agent_refused_connections": refused,
            "agent_waited_connections": waited,
            "timeout_s": timeout,
        }
    finally:
        stop(am)


# ---------------------------------------------------------------- output

def verdict(met):
    return "met" if met else "missed"


def plots(d, R):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    os.makedirs(d, exist_ok=True)
    runs = R["throughput"]["runs"]

    fig, ax = plt.subplots(figsize=(7, 4))
    ax.plot([r["connections"] for r in runs], [r["alerts_per_s"] for r in runs], "o-", label="agent (1 core)")
    ax.axhline(GOAL_ALERTS_PER_S, color="tab:red", ls="--", lw=1, label=f"goal {GOAL_ALERTS_PER_S:,} alerts/s")
    ax.set_xscale("log", base=2); ax.set_xticks([r["connections"] for r in runs], [str(r["connections"]) for r in runs])
    ax.set_xlabel("concurrent connections (wrk)"); ax.set_ylabel("alerts/s (10 per notification)")
    ax.set_ylim(bottom=0); ax.grid(alpha=.3); ax.legend(); ax.set_title("Agent throughput against concurrency")
    fig.tight_layout(); fig.savefig(os.path.join(d, "agent-throughput.svg")); plt.close(fig)

    fig, ax = plt.subplots(figsize=(7, 4))
    for key, label in (("agent", "agent → null SNS"), ("endpoint", "null SNS alone (PublishBatch)")):
        label += f" (median pair {R['latency']['median_pair']})"
        r = R["latency"][key]
        ps = sorted((float(p), v / 1000.0) for p, v in r["pct"].items()) + [(100.0, r["latency_us"]["max"] / 1000.0)]
        ax.plot([v for _, v in ps], [p for p, _ in ps], label=f"{label}, p99 {pct_ms(r, 99):.2f} ms")
    ax.set_xscale("log"); ax.set_xlabel("latency (ms)"); ax.set_ylabel("percentile"); ax.grid(alpha=.3, which="both")
    ax.set_title(f"Latency CDF at {R['latency']['agent']['rate'] * 10:,.0f} alerts/s (50% of saturation)")
    ax.legend(loc="lower right"); fig.tight_layout(); fig.savefig(os.path.join(d, "agent-latency-cdf.svg")); plt.close(fig)

    fig, ax = plt.subplots(figsize=(7, 4))
    s = R["rss"]["samples"]
    ax.plot([x[0] for x in s], [x[1] / 1024 for x in s], lw=1, label="VmRSS")
    ax.axhline(GOAL_RSS_MIB, color="tab:red", ls="--", lw=1, label=f"goal {GOAL_RSS_MIB} MiB")
    for i, (name, a, b) in enumerate(R["rss"]["phases"]):
        ax.axvspan(a, b, color="tab:gray", alpha=.08 if i % 2 else .16, lw=0)
        ax.text((a + b) / 2, 1, name, ha="center", va="bottom", fontsize=6, rotation=90)
    ax.set_xlabel("seconds since the agent started"); ax.set_ylabel("MiB"); ax.set_ylim(0, max(GOAL_RSS_MIB, max(x[1] for x in s) / 1024) * 1.35)
    ax.grid(alpha=.3); ax.legend(loc="upper left"); ax.set_title("Agent RSS over the load run (every 100 ms)")
    fig.tight_layout(); fig.savefig(os.path.join(d, "agent-rss.svg")); plt.close(fig)

    fig, ax = plt.subplots(figsize=(7, 4))
    c = R["alertmanager"]
    names = ["Alertmanager\n(sns_configs)", "Alertmanager\n(webhook → agent)", "agent"]
    vals = [c["sns"]["am_cpu_s_per_10k"], c["webhook"]["am_cpu_s_per_10k"], c["webhook"]["agent_cpu_s_per_10k"]]
    bars = ax.bar(names, vals, color=["tab:gray", "tab:gray", "tab:blue"])
    ax.bar_label(bars, fmt="%.3f s")
    ax.set_ylabel("CPU seconds per 10,000 alerts"); ax.set_title(f"CPU per 10,000 alerts to SNS (agent / Alertmanager sns: {c['agent_over_am_sns']:.0%})")
    fig.tight_layout(); fig.savefig(os.path.join(d, "am-vs-agent-cpu.svg")); plt.close(fig)


def markdown(R):
    t, lat, am, g = R["throughput"], R["latency"], R["alertmanager"], R["goals"]
    debug = R["setup"]["debug_build"]
    why_debug = " This was an unoptimised debug build; only a release build's figures count." if debug else ""
    sat = t["saturation"]
    out = ["## Agent", ""]
    out += [f"`infra/bench/agent-load.py{' --quick' if R['setup']['quick'] else ''}` on {R['setup']['cpu']} "
            f"({R['setup']['cores']} cores), {R['setup']['date']}. Agent `{R['setup']['agent']}` pinned to core 0 "
            "(`taskset -c 0`); wrk and the null SNS endpoint (`null-sns`, answers Publish/PublishBatch at once) "
            "pinned to core 1; all on 127.0.0.1. Every notification is a real Alertmanager webhook of 10 alerts "
            f"({R['setup']['notification_bytes']:,} bytes on average, every alert with its own labels and fingerprint); "
            f"the agent published envelopes of {R['setup']['envelope_bytes']:,} bytes on average.", ""]
    if R.get("agent_env"):
        out[-2] += f" Settings other than the defaults: `{' '.join(R['agent_env'])}`."
    if not R["setup"]["agent_ready"]:
        out[-2] += (" The null endpoint does not answer `GetTopicAttributes`, so the agent's `/readyz` stayed 503 "
                    "(it retries that check with backoff, at most one request every 10 s); the webhook does not wait "
                    "for readiness.")
    if debug:
        out += ["**Debug build: these numbers say nothing about the agent's real cost.**", ""]
    out += ["| measure | result | goal | verdict |", "|---|---|---|---|"]
    for k in ("throughput", "p99_over_endpoint", "rss", "cpu_ratio"):
        x = g[k]
        out.append(f"| {x['what']} | {x['result']} | {x['goal']} | {verdict(x['met'])}"
                   + ("" if x["met"] else f": {x['why']}{why_debug}") + " |")
    out.append(f"| CPU per 10,000 alerts at saturation | {sat['cpu_s_per_10k']:.3f} s | — | — |")
    out += ["", "### Throughput against concurrency", "",
            f"wrk, one connection per concurrent client, {t['runs'][0]['active_s']:g} s per level (each connection sends "
            "its next notification when the last one was answered). Every run was checked against the null endpoint's "
            "counts: " + ("it counted exactly 10 PublishBatch entries per notification the agent accepted (2xx), and the "
                          "agent's own `webhook_responses_total{code=\"200\"}` agreed." if all(
                              r["in_flight_at_stop"] == 0 and r["counts_ok"] for r in t["runs"]) else
                          "see the last column (a run with requests in flight when wrk stopped can only be bounded)."), "",
            "| connections | notifications/s | alerts/s | p50 ms | p99 ms | agent CPU (core 0) | wrk + null-sns CPU (core 1) | SNS entries = 10 × accepted |",
            "|---|---|---|---|---|---|---|---|"]
    for r in t["runs"]:
        out.append(f"| {r['connections']} | {r['notifications_per_s']:,.0f} | {r['alerts_per_s']:,.0f} | {pct_ms(r, 50):.2f} | "
                   f"{pct_ms(r, 99):.2f} | {r['agent_cpu_util']:.0%} | {r['core1_cpu_util']:.0%} | "
                   f"{'yes' if r['counts_ok'] else 'NO'} ({r['batch_entries']:,}) |")
    out += ["", f"Saturation: **{sat['alerts_per_s']:,.0f} alerts/s** ({sat['notifications_per_s']:,.0f} notifications/s) "
            f"at {sat['connections']} connections, {sat['cpu_s_per_10k']:.3f} CPU s per 10,000 alerts.", "",
            "![throughput](bench/agent-throughput.svg)", "",
            "### Latency at 50% of saturation", "",
            f"wrk paced by its Lua `delay()`: {lat['agent']['connections']} connections take turns on one fixed schedule "
            f"of {lat['target_notifications_per_s']:,.0f} notifications/s (half the saturation rate) for "
            f"{lat['agent']['active_s']:g} s; the achieved rate is below. Percentiles are wrk's (wrk 4 adds coordinated-"
            "omission samples only for requests slower than twice a connection's mean interval). "
            "Each agent run is followed by the same rate of PublishBatch-shaped requests (10 entries of the agent's "
            "envelope size) sent by wrk straight to the null endpoint: the endpoint's own latency, wrk's included. "
            f"{len(lat['pairs'])} such pairs ran back to back, because one run's p99 moves by milliseconds with this "
            "VM's stalls, which hit the endpoint alone as well; the verdict takes the median pair "
            f"(pair {lat['median_pair']}) and every pair is listed.", "",
            "| pair | run | notifications/s achieved | p50 ms | p90 ms | p99 ms | p99.9 ms | max ms | p99 over the endpoint |",
            "|---|---|---|---|---|---|---|---|---|"]
    for k, pair in enumerate(lat["pairs"], 1):
        for key, label in (("agent", "agent → null SNS"), ("endpoint", "null SNS alone")):
            r = pair[key]
            over = (f"**{pair['p99_over_ms']:.2f} ms**" if k == lat["median_pair"] else f"{pair['p99_over_ms']:.2f} ms") \
                if key == "agent" else ""
            out.append(f"| {k} | {label} | {r['rate']:,.0f} | {pct_ms(r, 50):.2f} | {pct_ms(r, 90):.2f} | "
                       f"{pct_ms(r, 99):.2f} | {pct_ms(r, 99.9):.2f} | {r['latency_us']['max'] / 1000:.2f} | {over} |")
    overs = sorted(x["p99_over_ms"] for x in lat["pairs"])
    out += ["", f"Agent over the endpoint, median of the pairs: p50 {lat['p50_over_ms']:.2f} ms, "
            f"p99 **{lat['p99_over_ms']:.2f} ms** (pairs ranged from {overs[0]:.2f} to {overs[-1]:.2f} ms).", "",
            "![latency CDF](bench/agent-latency-cdf.svg)", "",
            "### Memory", "",
            f"VmRSS sampled every 100 ms from the agent's start through every run above: idle {R['rss']['idle_mib']} MiB, "
            f"peak (VmHWM) **{R['rss']['hwm_mib']} MiB**, at the end {R['rss']['final_mib']} MiB. After the Alertmanager "
            f"runs below (up to {am['webhook']['groups']:,} notifications arriving at once) VmHWM was "
            f"{R['setup']['agent_hwm_mib_after_alertmanager']} MiB.", "",
            "![RSS](bench/agent-rss.svg)", "",
            "### Next to Alertmanager's own SNS receiver", "",
            f"The same {am['sns']['alerts']:,} alerts ({am['sns']['groups']:,} groups of 10, `group_by: [group]`, "
            "`group_wait: 1s`, one notification per group) posted to Debian's Alertmanager "
            f"{R['setup']['alertmanager_version']} twice: (A) its `sns_configs` receiver publishing to the null endpoint "
            "(one Publish per group, as it does), (B) `webhook_configs` to the agent (bearer token), which publishes one "
            "envelope per alert with PublishBatch. CPU is utime+stime from /proc, from just before the alerts were posted "
            "until the null endpoint had counted every notification.", "",
            f"The two runs alternate, {len(am['pairs'])} pair{'s' if len(am['pairs']) != 1 else ''} back to back, because "
            f"one pair's ratio moves by several points from run to run; the verdict takes the median pair "
            f"(pair {am['median_pair']}).", "",
            "| pair | run | delivered to SNS | wall s | Alertmanager CPU s | agent CPU s | CPU s per 10,000 alerts | agent / Alertmanager `sns_configs` |",
            "|---|---|---|---|---|---|---|---|"]
    def delivered(r, key, unit):
        n = r["counts_after"][key]
        if r["complete"] and n == r["want"][key]:
            return f"{n:,} {unit}"
        return f"**{n:,} of {r['want'][key]:,} {unit} within {r['timeout_s']:.0f} s**"
    for k, pair in enumerate(am["pairs"], 1):
        a, b = pair["sns"], pair["webhook"]
        ratio = f"{pair['agent_over_am_sns']:.0%}"
        out.append(f"| {k} | A: Alertmanager `sns_configs` | {delivered(a, 'publish', 'Publish')} | {a['wall_s']} | "
                   f"{a['am_cpu_s']:.3f} | — | {a['am_cpu_s_per_10k']:.3f} | |")
        out.append(f"| {k} | B: Alertmanager `webhook_configs` → agent | "
                   f"{delivered(b, 'batch_entries', 'PublishBatch entries')} | {b['wall_s']} | {b['am_cpu_s']:.3f} | "
                   f"{b['agent_cpu_s']:.3f} | {b['am_cpu_s_per_10k']:.3f} + {b['agent_cpu_s_per_10k']:.3f} (agent) | "
                   f"{'**' + ratio + '**' if k == am['median_pair'] else ratio} |")
        for r in (a, b):
            if r["am_failed_attempts"] or (r.get("agent_responses") and set(r["agent_responses"]) != {"200"}):
                out += ["", f"Pair {k}, run {'A' if r is a else 'B'}: Alertmanager logged {r['am_failed_attempts']} failed "
                        "notify attempts (it retries them)" + (f"; the agent answered {', '.join(f'{v:,} × {k2}' for k2, v in sorted(r['agent_responses'].items()))}"
                                                                if r.get("agent_responses") else "")
                        + (f"; the agent closed {', '.join(f'{v:,} connections unserved ({k2})' for k2, v in sorted(r['agent_refused_connections'].items()))}"
                           if r.get("agent_refused_connections") else "") + ".", ""]
        if b.get("agent_waited_connections"):
            out += ["", f"Pair {k}, run B: {b['agent_waited_connections']:,} of Alertmanager's connections waited for a "
                    "place (beyond `MAX_CONNECTIONS_PER_CLIENT`) instead of being closed.", ""]
    ratios = sorted(x["agent_over_am_sns"] for x in am["pairs"])
    out += ["", f"Agent / Alertmanager's SNS receiver, median pair: **{am['agent_over_am_sns']:.0%}** of the CPU "
            f"(the pairs ranged from {ratios[0]:.0%} to {ratios[-1]:.0%}; "
            f"goal ≤ {GOAL_CPU_RATIO:.0%}); Alertmanager with the webhook plus the agent, end to end: "
            f"{am['pipeline_over_am_sns']:.0%} of Alertmanager alone with `sns_configs`.", "",
            "![CPU per 10,000 alerts](bench/am-vs-agent-cpu.svg)", "",
            "Notes on Alertmanager's SNS receiver (0.25): it accepted `api_url: http://127.0.0.1:PORT` and static "
            "`sigv4` keys as they are (it builds a new AWS session and client for every notification), and sends one "
            "Publish per group with the whole group rendered as text. It does not shorten the subject to SNS's "
            "100-character limit (prometheus/alertmanager#2829 is still open): its default subject for these groups is "
            "about 130 characters, which real SNS refuses with InvalidParameter while the null endpoint takes "
            "anything, so run A sets a short `subject` template. The message is its default template.", ""]
    return "\n".join(out)


# ---------------------------------------------------------------- main

def main():
    a = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    a.add_argument("--agent", required=True, help="alert-manager-agent binary (use target/release for real numbers)")
    a.add_argument("--null-sns", default=os.path.join(ROOT, "target/debug/null-sns"))
    a.add_argument("--alertmanager", default="prometheus-alertmanager")
    a.add_argument("--results", help="write agent-load.json and agent-load.md here")
    a.add_argument("--plots", help="write the SVGs here (matplotlib)")
    a.add_argument("--quick", action="store_true", help="a short smoke run (about 40 s)")
    a.add_argument("--agent-env", action="append", default=[], metavar="NAME=VALUE",
                   help="an extra setting for the agent (repeatable), e.g. MAX_CONNECTIONS_PER_CLIENT=1024 to see "
                        "what a cap costs; make bench passes none, so it measures the defaults")
    args = a.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    q = args.quick
    deadline = time.time() + (100 if q else 330)
    conc = [1, 4, 16, 64] if q else [1, 2, 4, 8, 16, 32, 64]
    active = 2 if q else 6
    lat_active, lat_pairs = (2, 2) if q else (5, 5)
    n_am_pairs = 1 if q else 3
    groups = 100 if q else 1000
    for tool in ("wrk", "taskset", args.alertmanager):
        if not shutil.which(tool):
            print(f"agent-load: {tool} not found", file=sys.stderr); return 2
    for b in (args.agent, args.null_sns):
        if not os.access(b, os.X_OK):
            print(f"agent-load: {b} is not an executable", file=sys.stderr); return 2
    if os.cpu_count() < 2:
        print("agent-load: needs 2 cores (agent on 0, load on 1)", file=sys.stderr); return 2

    null = agent = sampler = None
    stop_sampling, samples, phases = threading.Event(), [], []
    R = {"setup": {}, "broken": []}
    with tempfile.TemporaryDirectory(prefix="agent-load-") as workdir:
        agent_log = os.path.join(workdir, "agent.log")
        try:
            lua = os.path.join(workdir, "bench.lua")
            with open(lua, "w") as f:
                with open(WRK_LUA_PATH) as template:
                    script = template.read()
                f.write(script.replace("{PERCENTILES}", "{" + ", ".join(str(p) for p in PERCENTILES) + "}"))
            null, null_port, null_log = start_null_sns(args.null_sns, workdir, deadline)
            token_file = os.path.join(workdir, "token")
            with open(token_file, "w") as f:
                f.write(TOKEN + "\n")
            listen, mport = free_port(), free_port()
            env = {"PATH": os.environ["PATH"], "HOME": workdir, "AWS_REGION": "us-east-1", "AWS_ACCESS_KEY_ID": "x",
                   "AWS_SECRET_ACCESS_KEY": "y", "AWS_ENDPOINT_URL": f"http://127.0.0.1:{null_port}",
                   "AWS_EC2_METADATA_DISABLED": "true", "RUST_LOG": "warn"}
            env.update(kv.split("=", 1) for kv in args.agent_env)
            R["agent_env"] = args.agent_env
            t_start = time.time()
            agent = spawn(["taskset", "-c", "0", args.agent, "--topic-arn", TOPIC, "--cluster", "bench",
                           "--listen", f"127.0.0.1:{listen}", "--metrics-listen", f"127.0.0.1:{mport}",
                           "--kubernetes", "off", "--auth-token-file", token_file], agent_log, env=env)

            def sample():
                while not stop_sampling.is_set():
                    try:
                        samples.append((round(time.time() - t_start, 2), rss(agent.pid, "VmRSS")))
                    except (OSError, StopIteration):
                        return
                    time.sleep(0.1)

            sampler = threading.Thread(target=sample, daemon=True); sampler.start()
            wait_http(f"http://127.0.0.1:{mport}/healthz", deadline, "the agent", agent, agent_log)
            # /readyz needs sns:GetTopicAttributes; a null endpoint that does not answer it leaves the
            # agent unready, which does not stop the webhook. Wait briefly, note which it was.
            ready = wait_http(f"http://127.0.0.1:{mport}/readyz", deadline, "the agent", agent, agent_log, limit=2.0)
            time.sleep(0.3)
            idle_kib = rss(agent.pid, "VmRSS")

            bodies = notifications(256)
            body_file = os.path.join(workdir, "notifications.txt")
            with open(body_file, "w") as f:
                f.write("\n".join(bodies) + "\n")
            url = f"http://127.0.0.1:{listen}/webhook"
            auth = f"Bearer {TOKEN}"
            # one request by hand first: a wrong token or body shows here plainly
            # (the first fingerprint digits 00000000 are not used by any wrk run: those start at 1)
            s, body = http(url, data=bodies[0].replace(FP_MARK, "00000000").encode(), headers={"Content-Type": "application/json", "Authorization": auth},
                           timeout=30)
            if s != 200:
                raise Failure(f"agent answered {s} {body[:300]!r}")
            with open("/proc/cpuinfo") as f:
                cpu = next((l.split(":", 1)[1].strip() for l in f if l.startswith("model name")), platform.machine())
            am_version = subprocess.run([args.alertmanager, "--version"], capture_output=True, text=True, timeout=10)
            m = re.search(r"version (\S+)", am_version.stdout + am_version.stderr)
            R["setup"] = {"agent": args.agent, "debug_build": "/debug/" in os.path.abspath(args.agent),
                          "null_sns": args.null_sns, "quick": q, "cpu": cpu, "cores": os.cpu_count(),
                          "kernel": platform.release(), "date": time.strftime("%Y-%m-%d"),
                          "alertmanager_version": m.group(1) if m else "?", "agent_ready": ready,
                          "notification_bytes": round(sum(len(b.replace(FP_MARK, "0" * 8)) for b in bodies) / len(bodies)),
                          "alerts_per_notification": 10}

            # warm-up, not recorded
            ph = time.time() - t_start
            run_wrk(lua, url, body_file, "/webhook", "application/json", auth, 8, 1, 0, 1, deadline)
            phases.append(("warm-up", ph, time.time() - t_start))
            time.sleep(0.3)

            # 1a throughput against concurrency, 1c CPU
            runs = []
            grace = 1.0
            for c in conc:
                check_alive(agent, "the agent", agent_log); check_alive(null, "null-sns", null_log)
                settle(null_port, -1, "batch_entries", deadline, limit=2.0)
                reset(null_port)
                m0 = metrics(mport)
                ph = time.time() - t_start
                a0, n0 = cpu_s(agent.pid), cpu_s(null.pid)
                r = run_wrk(lua, url, body_file, "/webhook", "application/json", auth, c, active, 0, grace, deadline)
                a1, n1 = cpu_s(agent.pid), cpu_s(null.pid)
                phases.append((f"c={c}", ph, time.time() - t_start))
                cnt = settle(null_port, 10 * r["ok"], "batch_entries", deadline)
                m1 = metrics(mport)
                r["batch_entries"] = cnt["batch_entries"]
                r["agent_200"] = metric(m1, "alert_manager_agent_webhook_responses_total", 'code="200"') - \
                    metric(m0, "alert_manager_agent_webhook_responses_total", 'code="200"')
                # Should stay 0: every request carries new alerts. Anything else means the load repeats
                # ids, and the agent answered those without publishing (a retry, to it).
                r["already_published"] = metric(m1, "alert_manager_agent_alerts_already_published_total") - \
                    metric(m0, "alert_manager_agent_alerts_already_published_total")
                if r["already_published"]:
                    R["broken"].append(f"c={c}: the agent skipped {r['already_published']:.0f} alerts as already "
                                       "published: the load repeated alert ids")
                r["agent_cpu_s"] = round(a1 - a0, 3)
                r["null_cpu_s"] = round(n1 - n0, 3)
                r["agent_cpu_util"] = (a1 - a0) / active
                r["core1_cpu_util"] = (n1 - n0 + r["cpu_s"]) / active
                r["notifications_per_s"] = r["ok"] / active
                r["alerts_per_s"] = 10 * r["ok"] / active
                r["cpu_s_per_10k"] = (a1 - a0) / (10 * r["ok"]) * 10000 if r["ok"] else None
                errs = sum(r["errors"][k] for k in ("connect", "read", "write", "status"))
                if r["in_flight_at_stop"] == 0:
                    r["counts_ok"] = r["batch_entries"] == 10 * r["ok"] and r["agent_200"] == r["ok"]
                else:  # wrk stopped with requests in flight: what they did is unknown to wrk
                    r["counts_ok"] = 10 * r["ok"] <= r["batch_entries"] <= 10 * (r["ok"] + r["in_flight_at_stop"])
                if not r["counts_ok"]:
                    R["broken"].append(f"c={c}: null endpoint counted {r['batch_entries']} entries, agent answered 200 "
                                       f"{r['agent_200']:.0f} times, wrk saw {r['ok']} 2xx ({r['in_flight_at_stop']} in flight)")
                if errs or r["ok"] == 0:
                    R["broken"].append(f"c={c}: errors {r['errors']} of {r['requests']} requests")
                runs.append(r)
                # give the next run time for its last responses
                grace = min(5.0, max(1.0, 3 * r["latency_us"]["max"] / 1e6))
                print(f"  c={c:3d}: {r['alerts_per_s']:9,.0f} alerts/s  p99 {pct_ms(r, 99):7.2f} ms  "
                      f"agent CPU {r['agent_cpu_util']:4.0%}  core 1 {r['core1_cpu_util']:4.0%}  "
                      f"entries {r['batch_entries']} = 10 x {r['ok']}: {r['counts_ok']}", file=sys.stderr)
            sat = max(runs, key=lambda r: r["alerts_per_s"])
            m = metrics(mport)
            env_count = metric(m, "alert_manager_agent_envelope_size_bytes_count")
            R["setup"]["envelope_bytes"] = round(metric(m, "alert_manager_agent_envelope_size_bytes_sum") / env_count) if env_count else 2500
            R["throughput"] = {"runs": runs, "saturation": {k: sat[k] for k in (
                "connections", "notifications_per_s", "alerts_per_s", "cpu_s_per_10k", "agent_cpu_util", "core1_cpu_util")}}

            # 1b latency at 50% of saturation, agent and endpoint alone
            target = sat["notifications_per_s"] / 2
            # enough connections that one is free at every slot of the schedule (idle ones cost nothing)
            conns = max(2, min(64, math.ceil(target * (10 * pct_ms(runs[0], 99) + 5) / 1000)))
            endpoint_bodies = publish_batch_bodies(64, R["setup"]["envelope_bytes"])
            ep_file = os.path.join(workdir, "publish-batch.txt")
            with open(ep_file, "w") as f:
                f.write("\n".join(endpoint_bodies) + "\n")
            # Alternating pairs (agent, then the endpoint alone), because a single run's p99 moves by
            # milliseconds with this VM's stalls, which hit the endpoint alone just as well; the
            # median pair is reported and every pair is shown.
            pairs = []
            for k in range(lat_pairs):
                reset(null_port)
                ph = time.time() - t_start
                la = run_wrk(lua, url, body_file, "/webhook", "application/json", auth, conns, lat_active, target, 1,
                             deadline)
                phases.append((f"50% rate ({k + 1})", ph, time.time() - t_start))
                cnt = settle(null_port, 10 * la["ok"], "batch_entries", deadline)
                la["batch_entries"] = cnt["batch_entries"]
                if la["in_flight_at_stop"] == 0 and cnt["batch_entries"] != 10 * la["ok"]:
                    R["broken"].append(f"latency run {k + 1}: null endpoint counted {cnt['batch_entries']}, "
                                       f"want {10 * la['ok']}")
                if sum(la["errors"][e] for e in ("connect", "read", "write", "status")):
                    R["broken"].append(f"latency run {k + 1}: errors {la['errors']}")
                reset(null_port)
                ph = time.time() - t_start
                le = run_wrk(lua, f"http://127.0.0.1:{null_port}/", ep_file, "/", "application/x-www-form-urlencoded",
                             None, conns, lat_active, target, 1, deadline)
                phases.append((f"null SNS alone ({k + 1})", ph, time.time() - t_start))
                cnt = settle(null_port, 10 * le["ok"], "batch_entries", deadline)
                if sum(le["errors"][e] for e in ("connect", "read", "write", "status")) or cnt["batch_entries"] != 10 * le["ok"]:
                    R["broken"].append(f"endpoint latency run {k + 1}: errors {le['errors']}, entries "
                                       f"{cnt['batch_entries']} for {le['ok']}")
                pairs.append({"agent": la, "endpoint": le, "p50_over_ms": pct_ms(la, 50) - pct_ms(le, 50),
                              "p99_over_ms": pct_ms(la, 99) - pct_ms(le, 99)})
                print(f"  50% pair {k + 1}: agent {la['rate']:,.0f}/s p99 {pct_ms(la, 99):.2f} ms, endpoint "
                      f"{le['rate']:,.0f}/s p99 {pct_ms(le, 99):.2f} ms (target {target:,.0f}/s, {conns} connections)",
                      file=sys.stderr)
            med = median_pair(pairs, "p99_over_ms")
            R["latency"] = {"target_notifications_per_s": target, "pairs": pairs, "agent": med["agent"],
                            "endpoint": med["endpoint"], "median_pair": pairs.index(med) + 1,
                            "p50_over_ms": statistics.median(x["p50_over_ms"] for x in pairs),
                            "p99_over_ms": med["p99_over_ms"]}

            # 1d memory
            time.sleep(0.3)
            stop_sampling.set(); sampler.join(timeout=2)
            R["rss"] = {"idle_mib": mib(idle_kib), "hwm_mib": mib(rss(agent.pid, "VmHWM")),
                        "final_mib": mib(rss(agent.pid, "VmRSS")),
                        "peak_sampled_mib": mib(max(s[1] for s in samples)), "samples": samples,
                        "phases": phases, "interval_s": 0.1}

            # 2 Alertmanager's SNS receiver against webhook -> agent, in alternating pairs (one pair's
            # ratio moves by several points from run to run); the median pair is reported.
            am_pairs = []
            for k in range(n_am_pairs):
                check_alive(agent, "the agent", agent_log)
                am_a = am_run(f"sns-{k + 1}", args.alertmanager, AM_SNS.format(null_port=null_port, topic=TOPIC), groups,
                              null_port, "publish", groups, workdir, deadline, max(20.0, min(60.0, remaining(deadline) - 60)))
                am_b = am_run(f"webhook-{k + 1}", args.alertmanager, AM_WEBHOOK.format(listen=listen, token=TOKEN), groups,
                              null_port, "batch_entries", groups * 10, workdir, deadline,
                              max(20.0, min(90.0, remaining(deadline) - 20)), agent=agent, mport=mport)
                for r, key, want in ((am_a, "publish", groups), (am_b, "batch_entries", groups * 10)):
                    r["am_cpu_s_per_10k"] = r["am_cpu_s"] / r["alerts"] * 10000
                    if r["agent_cpu_s"] is not None:
                        r["agent_cpu_s_per_10k"] = r["agent_cpu_s"] / r["alerts"] * 10000
                    if not r["complete"] or r["counts_after"][key] != want:
                        R["broken"].append(f"alertmanager {r['receiver']}: null endpoint counted {r['counts_after']}, want "
                                           f"{key} = {want} (log: {r['am_log_error_sample']})")
                    print(f"  alertmanager {r['receiver']}: {r['wall_s']} s, AM CPU {r['am_cpu_s']:.3f} s"
                          + (f", agent CPU {r['agent_cpu_s']:.3f} s" if r["agent_cpu_s"] is not None else "")
                          + f", counts {r['counts_after']}, failed notify attempts {r['am_failed_attempts']}"
                          + (f", agent answered {r['agent_responses']}" if r["agent_responses"] else "")
                          + (f", agent closed connections unserved {r['agent_refused_connections']}"
                             if r.get("agent_refused_connections") else "")
                          + (f", {r['agent_waited_connections']} connections waited for a place"
                             if r.get("agent_waited_connections") else ""), file=sys.stderr)
                am_pairs.append({"sns": am_a, "webhook": am_b,
                                 "agent_over_am_sns": am_b["agent_cpu_s"] / am_a["am_cpu_s"] if am_a["am_cpu_s"] else float("inf"),
                                 "pipeline_over_am_sns": (am_b["agent_cpu_s"] + am_b["am_cpu_s"]) / am_a["am_cpu_s"]
                                 if am_a["am_cpu_s"] else float("inf")})
            check_alive(agent, "the agent", agent_log); check_alive(null, "null-sns", null_log)
            med = median_pair(am_pairs, "agent_over_am_sns")
            R["alertmanager"] = dict(med, pairs=am_pairs, median_pair=am_pairs.index(med) + 1)
            R["setup"]["agent_hwm_mib_after_alertmanager"] = mib(rss(agent.pid, "VmHWM"))
        except Failure as e:
            R["broken"].append(str(e).strip())
        finally:
            stop_sampling.set()
            for p in (agent, null):
                stop(p)
            if sampler is not None:
                sampler.join(timeout=1)
            if R["broken"]:
                R["agent_log_tail"] = tail(agent_log)

        complete = all(k in R for k in ("throughput", "latency", "rss", "alertmanager"))
        if complete:
            sat, lat, am = R["throughput"]["saturation"], R["latency"], R["alertmanager"]
            bound = "the agent's core" if sat["agent_cpu_util"] >= 0.85 else (
                "the load generator's core" if sat["core1_cpu_util"] >= 0.85 else "neither core")
            R["goals"] = {
                "throughput": {"what": "alerts/s on one core (saturation)", "result": f"{sat['alerts_per_s']:,.0f}",
                               "goal": f"≥ {GOAL_ALERTS_PER_S:,}", "met": sat["alerts_per_s"] >= GOAL_ALERTS_PER_S,
                               "why": f"the agent reached {sat['alerts_per_s']:,.0f} alerts/s with {bound} saturated "
                                      f"(agent {sat['agent_cpu_util']:.0%} of core 0, wrk + null-sns {sat['core1_cpu_util']:.0%} "
                                      f"of core 1), {sat['cpu_s_per_10k'] * 1000:,.0f} CPU ms per 10,000 alerts."},
                "p99_over_endpoint": {"what": "p99 latency over the endpoint's own, at 50% of saturation",
                                      "result": f"{lat['p99_over_ms']:.2f} ms", "goal": f"≤ {GOAL_P99_OVER_MS:g} ms",
                                      "met": lat["p99_over_ms"] <= GOAL_P99_OVER_MS,
                                      "why": f"in the median of {len(lat['pairs'])} pairs the agent's p99 was "
                                             f"{pct_ms(lat['agent'], 99):.2f} ms against the endpoint's "
                                             f"{pct_ms(lat['endpoint'], 99):.2f} ms at {lat['agent']['rate']:,.0f} notifications/s "
                                             f"(pairs: {', '.join(format(x['p99_over_ms'], '.2f') for x in lat['pairs'])} ms over)."},
                "rss": {"what": "peak RSS (VmHWM) over the load run", "result": f"{R['rss']['hwm_mib']} MiB",
                        "goal": f"≤ {GOAL_RSS_MIB} MiB", "met": R["rss"]["hwm_mib"] <= GOAL_RSS_MIB,
                        "why": f"the agent's resident memory peaked at {R['rss']['hwm_mib']} MiB (idle {R['rss']['idle_mib']} MiB)."},
                "cpu_ratio": {"what": f"agent CPU / Alertmanager `sns_configs` CPU, same {am['sns']['alerts']:,} alerts",
                              "result": f"{am['agent_over_am_sns']:.0%}", "goal": f"≤ {GOAL_CPU_RATIO:.0%}",
                              "met": am["agent_over_am_sns"] <= GOAL_CPU_RATIO,
                              "why": f"in the median of {len(am['pairs'])} pairs the agent spent "
                                     f"{am['webhook']['agent_cpu_s_per_10k']:.3f} CPU s per 10,000 alerts against "
                                     f"Alertmanager's {am['sns']['am_cpu_s_per_10k']:.3f} s (pairs: "
                                     f"{', '.join(format(x['agent_over_am_sns'], '.0%') for x in am['pairs'])})."},
            }
        if args.results:
            os.makedirs(args.results, exist_ok=True)
            with open(os.path.join(args.results, "agent-load.json"), "w") as f:
                json.dump(R, f, indent=1, default=str)
            if complete:
                with open(os.path.join(args.results, "agent-load.md"), "w") as f:
                    f.write(markdown(R))
        if args.plots and complete:
            plots(args.plots, R)

    if R["broken"]:
        print("agent-load: BROKEN: " + " | ".join(R["broken"]), file=sys.stderr)
        if R.get("agent_log_tail"):
            print(R["agent_log_tail"], file=sys.stderr)
    if complete:
        g = R["goals"]
        print("agent-load: " + "; ".join(f"{x['what'].split(' (')[0].split(',')[0]} {x['result']} ({x['goal']}: {verdict(x['met'])})"
                                         for x in g.values())
              + (" [debug build]" if R["setup"]["debug_build"] else "") + ("" if not R["broken"] else " [BROKEN]"))
    return 1 if R["broken"] or not complete else 0


if __name__ == "__main__":
    sys.exit(main())
