"""The fleet part of the enricher benchmark: what a batch costs when its
alerts come from 3 accounts × 2 regions instead of one, in moto (which keeps
each account's resources apart and maps the credentials AssumeRole returns to
the role's account).

lambda-bench.py imports it and hands it its way of running the function:

    fleet = fleet_bench.Fleet(moto_url, boto)   # seeds the 6 pairs + one pair of the same size
    result = fleet.measure(run, rounds)         # run(tag, events, extra_env) -> per-invocation numbers
    lines = fleet_bench.markdown(result)

Both sides of the comparison send the same 100 alerts over the same number
of instances (30); only their placement differs: all in the enricher's own
account and region, or 5 in each of the 6 (account, region) pairs. Each round
is a fresh process of each, interleaved: a cold batch (AssumeRole, EC2 and
CloudWatch for every pair) and a warm one of 100 new alerts (EC2 cached).
"""
import statistics
import time

CENTRAL = "123456789012"  # moto's default account: the enricher's own
MEMBERS = ("111111111111", "222222222222")
REGIONS = ("us-east-1", "eu-west-1")
READ_ROLE = "alert-manager-enricher-read"  # CROSS_ACCOUNT_ROLE_NAME's default
ENRICHER_ROLE = f"arn:aws:iam::{CENTRAL}:role/alert-manager-enricher"
PER_PAIR = 5
INSTANCES = PER_PAIR * len(REGIONS) * (1 + len(MEMBERS))

# What makes the enricher read other accounts: the allow-list.
ENV = {"ALLOWED_ACCOUNTS": ",".join(MEMBERS)}

GOAL_CPU_RATIO = 2.0
# "Unchanged": the fleet's median is no further from the enricher's than the
# same enricher started again (lambda-bench's `again` arm, interleaved with
# both) is, or within 5%. A fixed bound alone misjudged: three runs on one
# machine gave 1.08-1.24x for code paths that differ by parsing one string.
GOAL_INIT_FLOOR = 0.05


def init_unchanged(init):
    base = init["rust_median_ms"]
    noise = max(abs(init["again_median_ms"] - base), GOAL_INIT_FLOOR * base)
    return abs(init["fleet_median_ms"] - base) <= noise


class Fleet:
    def __init__(self, moto_url, boto):
        """`boto(service, url)`: a boto3 client of the central account."""
        import boto3

        self.moto_url = moto_url
        self.boto = boto
        self.boto3 = boto3
        self.fleet = []  # (account, region, instance id): 5 per pair
        self.single = []  # the same number of instances, all in the central pair
        for account in (CENTRAL,) + MEMBERS:
            if account != CENTRAL:
                self._read_role(account)
            for region in REGIONS:
                self.fleet += [(account, region, i) for i in self._instances(account, region, PER_PAIR)]
        self.single = [(CENTRAL, REGIONS[0], i) for i in self._instances(CENTRAL, REGIONS[0], INSTANCES, "single")]

    def _session(self, account, region):
        """boto3 clients acting in `account`, as an organisation's administrator
        does: through OrganizationAccountAccessRole in a member account."""
        keys = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}
        if account != CENTRAL:
            c = self.boto("sts", self.moto_url).assume_role(
                RoleArn=f"arn:aws:iam::{account}:role/OrganizationAccountAccessRole",
                RoleSessionName="fleet-bench-admin")["Credentials"]
            keys = {"aws_access_key_id": c["AccessKeyId"], "aws_secret_access_key": c["SecretAccessKey"],
                    "aws_session_token": c["SessionToken"]}
        return lambda service: self.boto3.client(service, endpoint_url=self.moto_url, region_name=region, **keys)

    def _read_role(self, account):
        """The read role of infra/cloudformation/member-account.yaml, trusted by the enricher's role."""
        import json

        trust = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": {"AWS": ENRICHER_ROLE},
                                                         "Action": "sts:AssumeRole"}]}
        self._session(account, REGIONS[0])("iam").create_role(RoleName=READ_ROLE,
                                                              AssumeRolePolicyDocument=json.dumps(trust))

    def _instances(self, account, region, n, label="fleet"):
        """`n` instances with a team tag of their pair and CPU points."""
        client = self._session(account, region)
        ec2, cw = client("ec2"), client("cloudwatch")
        image = ec2.describe_images()["Images"][0]["ImageId"]
        tags = [{"Key": "team", "Value": f"team-{account}-{region}"}, {"Key": "Name", "Value": f"{label}-node"}]
        out = ec2.run_instances(ImageId=image, MinCount=n, MaxCount=n, InstanceType="m6i.large",
                                TagSpecifications=[{"ResourceType": "instance", "Tags": tags}])
        ids = [x["InstanceId"] for x in out["Instances"]]
        now = time.time()
        for iid in ids:
            cw.put_metric_data(Namespace="AWS/EC2", MetricData=[
                {"MetricName": "CPUUtilization", "Dimensions": [{"Name": "InstanceId", "Value": iid}],
                 "Timestamp": now - 900 + 120 * k, "Value": float(30 + 7 * k), "Unit": "Percent"} for k in range(7)])
        return ids

    @staticmethod
    def placement(machines):
        """The envelope's `aws` object of alert i: machines round-robin."""
        def aws(i):
            account, region, iid = machines[i % len(machines)]
            return {"instance_id": iid, "region": region, "account_id": account}
        return aws

    def measure(self, run, event, rounds):
        """`rounds` interleaved pairs of fresh processes (single, then fleet),
        each a cold and a warm batch of 100. `event(n, tag, placement)` builds
        an SQS event; `run(tag, events, extra_env)` returns per-invocation numbers."""
        single, fleet = [], []
        for k in range(rounds):
            tag = 2000 + 10 * k
            a, b = run(f"single-{k}", [(100, event(100, tag, self.placement(self.single))),
                                       (100, event(100, tag + 1, self.placement(self.single)))], ENV)
            single.append({"cold": a, "warm": b})
            c, d = run(f"fleet-{k}", [(100, event(100, tag + 2, self.placement(self.fleet))),
                                      (100, event(100, tag + 3, self.placement(self.fleet)))], ENV)
            fleet.append({"cold": c, "warm": d})

        def median(runs, label):
            return round(statistics.median(r[label]["cpu_ms_schedstat"] for r in runs), 2)

        out = {"rounds": rounds, "instances": INSTANCES, "pairs": len(REGIONS) * (1 + len(MEMBERS)),
               "single": single, "fleet": fleet}
        for label in ("cold", "warm"):
            s, f = median(single, label), median(fleet, label)
            out[f"{label}_single_cpu_ms"], out[f"{label}_fleet_cpu_ms"] = s, f
            out[f"{label}_ratio"] = round(f / s, 2) if s else None
        out["calls"] = {label: self.calls(fleet[0][label]) for label in ("cold", "warm")}
        out["single_calls"] = {label: self.calls(single[0][label]) for label in ("cold", "warm")}
        return out

    def calls(self, invocation):
        """EC2, CloudWatch and STS calls of one invocation, per (account, region):
        the region from each request's SigV4 scope, the account from what moto
        answers GetCallerIdentity with for its access key."""
        accounts = {}
        per_scope = {}
        for action, key, region, n in invocation["aws_scopes"]:
            if action not in ("DescribeInstances", "GetMetricData", "AssumeRole"):
                continue
            if key not in accounts:
                accounts[key] = self._account_of(key)
            scope = f"{accounts[key]} {region}"
            per_scope.setdefault(scope, {}).setdefault(action, 0)
            per_scope[scope][action] += n
        return dict(sorted(per_scope.items()))

    def _account_of(self, key):
        if not key:
            return "?"
        sts = self.boto3.client("sts", endpoint_url=self.moto_url, region_name=REGIONS[0], aws_access_key_id=key,
                                aws_secret_access_key="unchecked")
        return sts.get_caller_identity()["Account"]


def problems(result):
    """What makes the run broken rather than a missed goal: the fleet batches
    must reach every pair, each pair within its call budget."""
    out = []
    pairs = {f"{a} {r}" for a in (CENTRAL,) + MEMBERS for r in REGIONS}
    for label in ("cold", "warm"):
        calls = result["calls"][label]
        ec2_scopes = {s for s, c in calls.items() if c.get("GetMetricData")}
        if ec2_scopes != pairs:
            out.append(f"fleet {label}: GetMetricData reached {sorted(ec2_scopes)}, not the 6 pairs")
        for scope, c in calls.items():
            if c.get("DescribeInstances", 0) > 1 or c.get("GetMetricData", 0) > 1:
                out.append(f"fleet {label}: {scope} took {c} (budget: one of each per pair)")
    assumed = sum(c.get("AssumeRole", 0) for c in result["calls"]["cold"].values())
    if assumed != len(MEMBERS):
        out.append(f"fleet cold: {assumed} AssumeRole calls, one per member account expected")
    if any(c.get("AssumeRole") or c.get("DescribeInstances") for c in result["calls"]["warm"].values()):
        out.append(f"fleet warm: AssumeRole or DescribeInstances again within the cache TTL: {result['calls']['warm']}")
    return out


def verdict(ok):
    return "met" if ok else "missed"


def markdown(result, init, debug):
    """The section of lambda.md: CPU per batch and calls per pair, next to
    the single-account batch of the same run; init with the allow-list set."""
    r = result
    L = ["### Many accounts and regions", ""]
    L.append(f"100 alerts over {r['instances']} instances, either all in the enricher's own account and region or "
             f"{PER_PAIR} in each of {r['pairs']} (account, region) pairs: 3 accounts ({CENTRAL}, the enricher's own, "
             f"and {', '.join(MEMBERS)} through `{READ_ROLE}`) × {', '.join(REGIONS)}, in moto. `ALLOWED_ACCOUNTS` is "
             f"set on both. {r['rounds']} pairs of fresh processes, interleaved, each a cold batch (AssumeRole, EC2 "
             "and CloudWatch for every pair) and a warm one of 100 new alerts (EC2 cached). Medians of the per-thread "
             "schedstat CPU.")
    L.append("")
    L.append("| figure | one pair | 6 pairs | ratio | goal | |")
    L.append("|---|---:|---:|---:|---|---|")
    base, with_fleet, again = init["rust_median_ms"], init["fleet_median_ms"], init["again_median_ms"]
    ratio = round(with_fleet / base, 2) if base else None
    L.append(f"| init (median of {init['runs']}; without / with `ALLOWED_ACCOUNTS`) | {base:.1f} ms | "
             f"{with_fleet:.1f} ms | {ratio}× | unchanged: within the same binary started again "
             f"({again:.1f} ms, {again / base:.2f}×) or 5% | {verdict(init_unchanged(init))} |")
    for label in ("cold", "warm"):
        ratio = r[f"{label}_ratio"]
        ok = ratio is not None and ratio <= GOAL_CPU_RATIO
        why = "" if ok or not debug else " (debug build)"
        L.append(f"| CPU, 100-record batch, {label} | {r[f'{label}_single_cpu_ms']:.1f} ms | "
                 f"{r[f'{label}_fleet_cpu_ms']:.1f} ms | {ratio}× | ≤ {GOAL_CPU_RATIO:g}× | {verdict(ok)}{why} |")
    L.append("")
    L.append("Calls of the first round's fleet process, per (account, region), from moto's recorder. Budget per "
             "batch: one DescribeInstances per 200 uncached ids and one GetMetricData per 500 queries per pair, one "
             "AssumeRole per member account per credential lifetime.")
    L.append("")
    L.append("| batch | account region | AssumeRole | DescribeInstances | GetMetricData |")
    L.append("|---|---|---:|---:|---:|")
    for label in ("cold", "warm"):
        for scope, c in r["calls"][label].items():
            L.append(f"| {label} | {scope} | {c.get('AssumeRole', 0)} | {c.get('DescribeInstances', 0)} | "
                     f"{c.get('GetMetricData', 0)} |")
    L.append("")
    return L
