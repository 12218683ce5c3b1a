"""`make bench`: secretwire at N = 10, 100, 1000 services against moto, beside
the procedure AWS documents scripted with boto3 on the same emulator.
Prints a table and writes bench/results.json. A benchmark, not a test:
nothing here fails on a number.

Usage: bench.py [N ...]        (default 10 100 1000)
"""
import json
import os
import re
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import boto3

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(os.environ.get("SECRETWIRE_BIN", ROOT / "target/release/secretwire"))
OUT = ROOT / "bench"
ACCOUNT = "123456789012"

# Documented sustained rate (per second) and burst of the calls that dominate.
AWS_LIMITS = {
    "ECS:RegisterTaskDefinition": (1, 20), "ECS:UpdateService": (5, 20), "ECS:DescribeServices": (20, 50),
    "ECS:DescribeTaskDefinition": (20, 50), "SSM:PutParameter": (3, 3), "SSM:DescribeParameters": (40, 40),
    "SSM:ListTagsForResource": (40, 40), "SSM:AddTagsToResource": (3, 3), "Secrets Manager:CreateSecret": (50, 50),
    "Secrets Manager:ListSecrets": (50, 50), "Secrets Manager:DescribeSecret": (50, 50),
    "IAM:CreateRole": (10, 10), "IAM:PutRolePolicy": (10, 10), "IAM:GetRole": (20, 20), "IAM:GetRolePolicy": (20, 20),
    "IAM:ListAttachedRolePolicies": (20, 20), "IAM:GetAccountAuthorizationDetails": (2, 2), "KMS:DescribeKey": (100, 100),
}


def predicted_seconds(calls):
    """Lower bound (APIs in parallel) and upper bound (one after another) at the documented limits."""
    per_op = [max(0, n - AWS_LIMITS[op][1]) / AWS_LIMITS[op][0] for op, n in calls.items() if op in AWS_LIMITS]
    return (max(per_op, default=0.0), sum(per_op))


class Moto:
    def __init__(self):
        self.p = subprocess.Popen([str(ROOT / ".venv/bin/moto_server"), "-H", "127.0.0.1", "-p", "0"],
                                  stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                  env={**os.environ, "MOTO_IAM_LOAD_MANAGED_POLICIES": "true",
                                       # desiredCount 1 running: deployments COMPLETED, as on AWS once tasks run
                                       "MOTO_ECS_SERVICE_RUNNING": "1"})
        for line in self.p.stdout:
            m = re.search(r"(http://127\.0\.0\.1:\d+)", line)
            if m:
                self.url = m.group(1)
                break
        # Keep draining moto's request log so it never blocks.
        import threading
        threading.Thread(target=lambda: [None for _ in self.p.stdout], daemon=True).start()
        self.env = {**{k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "SECRETWIRE_"))},
                    "AWS_ENDPOINT_URL": self.url, "AWS_REGION": "us-east-1", "AWS_ACCESS_KEY_ID": "bench",
                    "AWS_SECRET_ACCESS_KEY": "bench", "AWS_EC2_METADATA_DISABLED": "true",
                    "REGISTRY_CREDENTIALS": '{"username":"bench","password":"bench-registry-password"}'}

    def client(self, name):
        return boto3.client(name, endpoint_url=self.url, region_name="us-east-1",
                            aws_access_key_id="bench", aws_secret_access_key="bench")

    def stop(self):
        self.p.kill()
        self.p.wait()


def manifests(n, directory):
    docs = [f"""apiVersion: secretwire.dev/v1alpha1
kind: Secret
metadata: {{ name: bench/registry }}
spec:
  initialValue: {{ fromEnv: REGISTRY_CREDENTIALS }}
"""]
    for i in range(n):
        s = f"svc-{i}"
        docs.append(f"""apiVersion: secretwire.dev/v1alpha1
kind: Parameter
metadata: {{ name: /bench/{s}/db-password }}
spec: {{ initialValue: {{ generate: {{ length: 24 }} }} }}
---
apiVersion: secretwire.dev/v1alpha1
kind: Parameter
metadata: {{ name: /bench/{s}/api-key }}
spec: {{ initialValue: {{ generate: {{ length: 24 }} }} }}
---
apiVersion: secretwire.dev/v1alpha1
kind: Secret
metadata: {{ name: bench/{s}/token }}
spec: {{ initialValue: {{ generate: {{ length: 32, excludePunctuation: true }} }} }}
---
apiVersion: secretwire.dev/v1alpha1
kind: Service
metadata: {{ name: {s} }}
spec:
  cluster: bench
  containers:
    - name: app
      secrets:
        - {{ name: DB_PASSWORD, parameter: /bench/{s}/db-password }}
        - {{ name: API_KEY, parameter: /bench/{s}/api-key }}
        - {{ name: TOKEN, secret: bench/{s}/token }}
      repositoryCredentials: {{ secret: bench/registry }}
""")
    Path(directory).mkdir(parents=True, exist_ok=True)
    (Path(directory) / "bench.yaml").write_text("---\n".join(docs))


def fleet_manifests(targets, per, directory):
    """`targets` Targets (one account each, the controller's region) of `per`
    services each, every service wired as in `manifests` (its own registry
    secret per Target, so that no read crosses an account)."""
    docs = []
    for k in range(targets):
        account = f"{100000000000 + k}"
        docs.append(f"""apiVersion: secretwire.dev/v1alpha1
kind: Target
metadata: {{ name: t{k} }}
spec: {{ account: "{account}", region: us-east-1, roleArn: "arn:aws:iam::{account}:role/secretwire-target" }}
---
apiVersion: secretwire.dev/v1alpha1
kind: Secret
metadata: {{ name: bench/t{k}/registry }}
spec: {{ target: t{k}, initialValue: {{ fromEnv: REGISTRY_CREDENTIALS }} }}
""")
        for i in range(per):
            s = f"t{k}-svc-{i}"
            docs.append(f"""apiVersion: secretwire.dev/v1alpha1
kind: Parameter
metadata: {{ name: /bench/{s}/db-password }}
spec: {{ target: t{k}, initialValue: {{ generate: {{ length: 24 }} }} }}
---
apiVersion: secretwire.dev/v1alpha1
kind: Parameter
metadata: {{ name: /bench/{s}/api-key }}
spec: {{ target: t{k}, initialValue: {{ generate: {{ length: 24 }} }} }}
---
apiVersion: secretwire.dev/v1alpha1
kind: Secret
metadata: {{ name: bench/{s}/token }}
spec: {{ target: t{k}, initialValue: {{ generate: {{ length: 32, excludePunctuation: true }} }} }}
---
apiVersion: secretwire.dev/v1alpha1
kind: Service
metadata: {{ name: {s} }}
spec:
  target: t{k}
  cluster: bench
  serviceName: svc-{i}
  containers:
    - name: app
      secrets:
        - {{ name: DB_PASSWORD, parameter: /bench/{s}/db-password }}
        - {{ name: API_KEY, parameter: /bench/{s}/api-key }}
        - {{ name: TOKEN, secret: bench/{s}/token }}
      repositoryCredentials: {{ secret: bench/t{k}/registry }}
""")
    Path(directory).mkdir(parents=True, exist_ok=True)
    (Path(directory) / "fleet.yaml").write_text("---\n".join(docs))


def assumed(moto, account):
    """A boto3 session acting in `account` (moto switches accounts on AssumeRole)."""
    c = moto.client("sts").assume_role(RoleArn=f"arn:aws:iam::{account}:role/bench", RoleSessionName="bench")["Credentials"]
    return lambda name: boto3.client(name, endpoint_url=moto.url, region_name="us-east-1",
                                     aws_access_key_id=c["AccessKeyId"], aws_secret_access_key=c["SecretAccessKey"],
                                     aws_session_token=c["SessionToken"])


def bench_targets(targets, per, work):
    """One controller, `targets` accounts of `per` services: calls per service
    beside one account of the same total (issue: the same calls per service)."""
    moto = Moto()
    try:
        d = work / f"fleet-{targets}x{per}"
        fleet_manifests(targets, per, d)
        for k in range(targets):
            bootstrap(assumed(moto, f"{100000000000 + k}"), per)
        args = ["apply", "-m", str(d), "--output", "json", "-q", "--concurrency", "16", "--no-rate-limit"]
        t_apply, out = timed(args, moto.env)
        first = json.loads(out)
        t_noop, out = timed(args, moto.env)
        noop = json.loads(out)
        n = targets * per
        return {"targets": targets, "services_per_target": per,
                "apply": {"seconds": t_apply, "calls": first["awsCallCount"], "writes": first["awsWriteCount"],
                          "calls_per_service": first["awsCallCount"] / n,
                          "assume_role_calls": first["awsCalls"].get("STS:AssumeRole", 0)},
                "noop_apply": {"seconds": t_noop, "calls": noop["awsCallCount"], "writes": noop["awsWriteCount"],
                               "calls_per_service": noop["awsCallCount"] / n, "by_operation": noop["awsCalls"]}}
    finally:
        moto.stop()


def bootstrap(client, n):
    """Cluster `bench` with services svc-0..n-1, through `client` (a name -> boto3 client)."""
    ecs = client("ecs")
    ecs.create_cluster(clusterName="bench")
    for i in range(n):
        ecs.register_task_definition(family=f"svc-{i}", containerDefinitions=[
            {"name": "app", "image": f"registry.example.com/bench/app:{i}", "memory": 256, "essential": True}])
        ecs.create_service(cluster="bench", serviceName=f"svc-{i}", taskDefinition=f"svc-{i}", desiredCount=1)


def timed(args, env):
    """Runs secretwire; returns (seconds, stdout)."""
    start = time.perf_counter()
    p = subprocess.Popen([str(BIN), *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, text=True)
    out, err = p.communicate()
    elapsed = time.perf_counter() - start
    if p.returncode not in (0, 2):
        sys.exit(f"secretwire {' '.join(args)} failed ({p.returncode}):\n{err[-3000:]}")
    return elapsed, out


def rss_of(cmd_args, env):
    """Peak RSS (MiB) of one secretwire invocation: VmHWM sampled every 5 ms
    until it exits. (wait4's ru_maxrss is no good here: it also counts the
    forked Python process before exec.)"""
    p = subprocess.Popen([str(BIN), *cmd_args], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    peak = 0.0
    while p.poll() is None:
        try:
            peak = max(peak, peak_rss(p.pid) or 0.0)
        except OSError:
            pass
        time.sleep(0.005)
    return peak


def http(url):
    with urllib.request.urlopen(url, timeout=10) as r:
        return r.read().decode()


def metric_sum(port, prefix):
    total = 0.0
    for line in http(f"http://127.0.0.1:{port}/metrics").splitlines():
        if line.startswith(prefix):
            total += float(line.rsplit(" ", 1)[1])
    return total


def aws_calls(port, writes_only=False):
    total = 0.0
    for line in http(f"http://127.0.0.1:{port}/metrics").splitlines():
        m = re.match(r'secretwire_aws_calls_total\{service="([^"]+)",operation="([^"]+)"\} (\S+)', line)
        if m and (not writes_only or not m.group(2).startswith(("Describe", "List", "Get", "Receive"))):
            total += float(m.group(3))
    return total


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def percentile(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))]


def bench_secretwire(n, work):
    moto = Moto()
    try:
        d = work / f"manifests-{n}"
        manifests(n, d)
        bootstrap(moto.client, n)
        env = moto.env
        t_apply, out = timed(["apply", "-m", str(d), "--output", "json", "-q", "--concurrency", "16", "--no-rate-limit"], env)
        first = json.loads(out)
        t_noop, out = timed(["apply", "-m", str(d), "--output", "json", "-q", "--concurrency", "16", "--no-rate-limit"], env)
        noop = json.loads(out)
        rss_apply = rss_of(["apply", "-m", str(d), "-q", "--concurrency", "16", "--no-rate-limit"], env)
        # What ECS does on AWS after UpdateService(taskDefinition): a deployment (moto needs the nudge).
        ecs = moto.client("ecs")
        time.sleep(1.1)  # deploy strictly after the values were written (1 s timestamps)
        for i in range(n):
            ecs.update_service(cluster="bench", service=f"svc-{i}", forceNewDeployment=True)
        time.sleep(1.1)

        port = free_port()
        log = open(work / f"run-{n}.log", "w")
        run = subprocess.Popen([str(BIN), "run", "-m", str(d), "--listen", f"127.0.0.1:{port}", "--debounce", "0s",
                                "--resync-interval", "3s", "--log-format", "json", "--concurrency", "16", "--no-rate-limit"],
                               stdout=subprocess.DEVNULL, stderr=log, env=env)
        for _ in range(600):
            try:
                if http(f"http://127.0.0.1:{port}/readyz").startswith("ready"):
                    break
            except Exception:
                pass
            time.sleep(0.1)
        # One no-op resync: calls between two pass completions.
        def passes():
            return metric_sum(port, 'secretwire_reconciles_total{result="ok"}')
        p0 = passes()
        while passes() < p0 + 1:
            time.sleep(0.05)
        c0, w0, t0 = aws_calls(port), aws_calls(port, True), passes()
        while passes() < t0 + 1:
            time.sleep(0.05)
        resync_calls, resync_writes = aws_calls(port) - c0, aws_calls(port, True) - w0
        resync_seconds = json_duration(work / f"run-{n}.log")

        # Rotation latency with --debounce 0: 50 events, one service each.
        sm, ev = moto.client("secretsmanager"), moto.client("events")
        targets = [i % n for i in range(50)]
        published = {}
        for i in targets:
            arn = sm.describe_secret(SecretId=f"bench/svc-{i}/token")["ARN"]
            published[f"svc-{i}"] = published.get(f"svc-{i}", [])
            published[f"svc-{i}"].append(time.time())
            ev.put_events(Entries=[{"Source": "aws.secretsmanager", "DetailType": "AWS Service Event via CloudTrail",
                                    "Detail": json.dumps({"eventName": "RotationSucceeded",
                                                          "additionalEventData": {"SecretId": arn}})}])
            time.sleep(1.05 if n < 50 else 0.02)  # a repeat for the same service needs a newer second
        deadline = time.time() + 120
        while metric_sum(port, 'secretwire_events_total') < 50 and time.time() < deadline:
            time.sleep(0.1)
        time.sleep(0.5)
        rss_run = peak_rss(run.pid)
        run.send_signal(signal.SIGTERM)
        run.wait(timeout=60)
        log.close()
        after_receive, end_to_end = latencies(work / f"run-{n}.log", published)
        return {
            "n": n,
            "apply": {"seconds": t_apply, "calls": first["awsCallCount"], "writes": first["awsWriteCount"],
                      "by_operation": first["awsCalls"], "predicted_aws_seconds": predicted_seconds(first["awsCalls"])},
            "noop_apply": {"seconds": t_noop, "calls": noop["awsCallCount"], "writes": noop["awsWriteCount"],
                           "calls_per_service": noop["awsCallCount"] / n, "by_operation": noop["awsCalls"]},
            "noop_resync": {"calls": resync_calls, "writes": resync_writes, "calls_per_service": resync_calls / n,
                            "seconds": resync_seconds},
            "rotation_ms": {"after_receive_p50": pct(after_receive, 50), "after_receive_p99": pct(after_receive, 99),
                            "end_to_end_p50": pct(end_to_end, 50), "end_to_end_p99": pct(end_to_end, 99),
                            "samples": len(after_receive)},
            "rss_mib": {"apply": rss_apply, "run": rss_run},
        }
    finally:
        moto.stop()


def pct(xs, p):
    return round(percentile(xs, p), 1) if xs else None


def json_duration(path):
    """Duration of the last completed pass is not logged; report None (the calls are the point)."""
    return None


def peak_rss(pid):
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return None


def latencies(log_path, published):
    """Per redeploy: ms from 'Value changed' (message received and parsed) to UpdateService
    answered, and from PutEvents to UpdateService answered."""
    received, after, e2e = {}, [], []
    for line in Path(log_path).read_text().splitlines():
        try:
            rec = json.loads(line)
        except ValueError:
            continue
        fields, ts = rec.get("fields", {}), parse_ts(rec.get("timestamp", ""))
        msg = fields.get("message", "")
        if msg == "Value changed":
            for s in re.findall(r'"(svc-\d+)"', fields.get("services", "")):
                received.setdefault(s, []).append(ts)
        elif msg == "Forced a new deployment" and fields.get("reason") == "rotation":
            s = fields.get("service")
            if received.get(s):
                after.append((ts - received[s].pop(0)) * 1000)
            if published.get(s):
                e2e.append((ts - published[s].pop(0)) * 1000)
    return after, e2e


def parse_ts(s):
    m = re.match(r"(\d{4})-(\d\d)-(\d\d)T(\d\d):(\d\d):(\d\d)(\.\d+)?Z", s)
    if not m:
        return 0.0
    import calendar
    y, mo, d, h, mi, se = map(int, m.groups()[:6])
    return calendar.timegm((y, mo, d, h, mi, se)) + float(m.group(7) or 0)


def bench_boto3(n):
    """The procedure AWS documents, one service after another."""
    moto = Moto()
    try:
        bootstrap(moto.client, n)
        ssm, sm, iam, ecs = (moto.client(x) for x in ("ssm", "secretsmanager", "iam", "ecs"))
        calls = 0
        start = time.perf_counter()
        reg = sm.create_secret(Name="bench/registry", SecretString="x" * 24)["ARN"]
        calls += 1
        trust = json.dumps({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "sts:AssumeRole",
                            "Principal": {"Service": "ecs-tasks.amazonaws.com"}}]})
        for i in range(n):
            s = f"svc-{i}"
            for p in ("db-password", "api-key"):
                ssm.put_parameter(Name=f"/bench/{s}/{p}", Value="v" * 24, Type="SecureString")
            tok = sm.create_secret(Name=f"bench/{s}/token", SecretString="t" * 32)["ARN"]
            iam.create_role(RoleName=f"{s}-execution", AssumeRolePolicyDocument=trust)
            iam.put_role_policy(RoleName=f"{s}-execution", PolicyName="secrets", PolicyDocument=json.dumps({
                "Version": "2012-10-17", "Statement": [
                    {"Effect": "Allow", "Action": "ssm:GetParameters", "Resource": f"arn:aws:ssm:us-east-1:{ACCOUNT}:parameter/bench/{s}/*"},
                    {"Effect": "Allow", "Action": "secretsmanager:GetSecretValue", "Resource": [tok, reg]}]}))
            td = ecs.register_task_definition(family=s, executionRoleArn=f"arn:aws:iam::{ACCOUNT}:role/{s}-execution",
                                              containerDefinitions=[{"name": "app", "image": f"registry.example.com/bench/app:{i}",
                                                                     "memory": 256, "repositoryCredentials": {"credentialsParameter": reg},
                                                                     "secrets": [{"name": "TOKEN", "valueFrom": tok}]}])
            ecs.update_service(cluster="bench", service=s, taskDefinition=td["taskDefinition"]["taskDefinitionArn"])
            calls += 7
        return {"seconds": time.perf_counter() - start, "calls": calls}
    finally:
        moto.stop()


def bench_validate(work, objects=10_000):
    d = work / "validate-10k"
    manifests(objects // 4, d)   # 4 objects per service (2 parameters, 1 secret, 1 service)
    runs = []
    for _ in range(3):
        start = time.perf_counter()
        subprocess.run([str(BIN), "validate", "-m", str(d), "-q"], check=True, stdout=subprocess.DEVNULL)
        runs.append(time.perf_counter() - start)
    return {"objects": objects + 1, "seconds_median": statistics.median(runs)}


def main():
    sizes = [int(a) for a in sys.argv[1:]] or [10, 100, 1000]
    work = Path(tempfile.mkdtemp(prefix="secretwire-bench-"))
    results = {"machine": f"{os.cpu_count()} cores", "sizes": [], "validate": bench_validate(work)}
    for n in sizes:
        print(f"... N={n}", file=sys.stderr, flush=True)
        r = bench_secretwire(n, work)
        r["boto3"] = bench_boto3(n)
        r["ratio_boto3_over_secretwire"] = r["boto3"]["seconds"] / r["apply"]["seconds"]
        results["sizes"].append(r)
    # BENCH_TARGETS=TxP (default 10x100; 0 skips): one controller, T accounts of P services.
    spec = os.environ.get("BENCH_TARGETS", "10x100")
    if spec != "0":
        t, p = (int(x) for x in spec.split("x"))
        print(f"... {t} targets x {p} services", file=sys.stderr, flush=True)
        results["targets"] = bench_targets(t, p, work)
    OUT.mkdir(exist_ok=True)
    (OUT / "results.json").write_text(json.dumps(results, indent=2))
    table(results)


def table(results):
    f = lambda x, d=2: "-" if x is None else (f"{x:.{d}f}" if isinstance(x, float) else str(x))
    print("\nsecretwire benchmark (moto on loopback; AWS rate limits not applied, see 'predicted')")
    print(f"{'N':>5} | {'apply s':>8} {'calls':>6} {'pred. AWS s':>12} | {'boto3 s':>8} {'ratio':>6} | "
          f"{'no-op apply calls/svc':>21} {'writes':>6} | {'resync calls/svc':>16} {'writes':>6} | "
          f"{'rot. p50/p99 ms (after recv)':>28} | {'e2e p50/p99 ms':>15} | {'RSS run/apply MiB':>17}")
    for r in results["sizes"]:
        lo, hi = r["apply"]["predicted_aws_seconds"]
        rot = r["rotation_ms"]
        print(f"{r['n']:>5} | {f(r['apply']['seconds']):>8} {r['apply']['calls']:>6} {f'{lo:.0f}-{hi:.0f}':>12} | "
              f"{f(r['boto3']['seconds']):>8} {f(r['ratio_boto3_over_secretwire'], 1):>6} | "
              f"{f(r['noop_apply']['calls_per_service']):>21} {r['noop_apply']['writes']:>6} | "
              f"{f(r['noop_resync']['calls_per_service']):>16} {int(r['noop_resync']['writes']):>6} | "
              f"{f(rot['after_receive_p50'], 1) + ' / ' + f(rot['after_receive_p99'], 1):>28} | "
              f"{f(rot['end_to_end_p50'], 0) + ' / ' + f(rot['end_to_end_p99'], 0):>15} | "
              f"{f(r['rss_mib']['run'], 1) + ' / ' + f(r['rss_mib']['apply'], 1):>17}")
    if "targets" in results:
        t = results["targets"]
        n = t["targets"] * t["services_per_target"]
        same = next((r for r in results["sizes"] if r["n"] == n), None)
        print(f"\n{t['targets']} targets x {t['services_per_target']} services: first apply {t['apply']['seconds']:.1f} s, "
              f"{t['apply']['calls_per_service']:.2f} calls/svc ({t['apply']['assume_role_calls']} AssumeRole); "
              f"no-op apply {t['noop_apply']['calls_per_service']:.2f} calls/svc, {t['noop_apply']['writes']} writes"
              + (f"; one account of {n}: {same['apply']['calls'] / n:.2f} and {same['noop_apply']['calls_per_service']:.2f}"
                 if same else ""))
    v = results["validate"]
    print(f"\nvalidate: {v['objects']} objects in {v['seconds_median']:.3f} s (median of 3)")
    print(f"results: {OUT / 'results.json'}")


if __name__ == "__main__":
    main()
