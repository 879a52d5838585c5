#!/usr/bin/env python3
"""keyturn's benchmarks, one command: `python3 bench/run.py` (see BENCHMARKS.md).

Everything runs against moto on 127.0.0.1 with authentication on, in one run, so that the figures
that matter are ratios measured side by side rather than absolute times on a shared machine:

1. the rotation function, cold and warm, and its peak RSS, driven through the Lambda runtime API,
   beside the boto3 reference function in bench/reference run by AWS's Python runtime client
   (awslambdaric), alternating between the two;
2. AWS calls per rotation and per step (counted by a loopback proxy), per sweep of a secret and per
   audited user;
3. `keyturn rotate --all` over many secrets at several concurrencies, beside moto's ceiling for the
   same calls (1 / moto's CPU seconds per rotation: moto serves requests under one GIL);
4. the audit's parse and join at 1,000, 10,000 and 100,000 users, time and peak RSS;
5. the sizes of the release binaries and the deployable zip;
6. `keyturn audit --org` over 50 member accounts of 40 users each (a moto server of its own), at
   account concurrency 1, 8 and 32, beside the sum and the maximum of the same accounts audited
   one by one (`--account`), with the calls per account and keyturn's peak RSS.

Writes bench/results.json and prints a summary. `--quick` runs a small version of each part;
`--org-only` runs part 6 alone and replaces its figures in results.json.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "e2e"))

from faultproxy import FaultProxy  # noqa: E402
from harness import Function, Moto, RuntimeApi, base_env  # noqa: E402
from test_rotation_function import STEPS, start_rotation, unique  # noqa: E402

# The one release build (scripts/build), which the tests and scripts/release use too.
RELEASE = ROOT / "target" / "x86_64-unknown-linux-gnu" / "release"
# `--before BIN`: an earlier build of keyturn-rotation, measured beside this one in the same run.
BEFORE: Path | None = None


def new_secret(moto, prefix="bench", managed=False, iam=None, sm=None, recorded=False):
    """A hand-made secret for a new user with one key; `recorded`: tagged as enroll tags it (the
    user and AWSCURRENT's key id), so an audit needs no secret value."""
    iam = iam or moto.client("iam")
    sm = sm or moto.client("secretsmanager")
    user, name = unique(prefix), unique(f"keyturn/{prefix}")
    iam.create_user(UserName=user)
    key = iam.create_access_key(UserName=user)["AccessKey"]
    tags = [{"Key": "keyturn:managed", "Value": "true"}] if managed else []
    if recorded:
        tags += [{"Key": "keyturn:user", "Value": user}, {"Key": "keyturn:current-key", "Value": key["AccessKeyId"]}]
    sm.create_secret(
        Name=name,
        SecretString=json.dumps({"UserName": user, "AccessKeyId": key["AccessKeyId"], "SecretAccessKey": key["SecretAccessKey"]}),
        Tags=tags,
    )
    return user, name


class Runner(Function):
    """One function process, keyturn's binary or Python under awslambdaric, behind its own runtime
    API, with the benchmark's helpers."""

    def __init__(self, kind: str, env: dict, log: Path):
        if kind == "keyturn":
            command, cwd = RELEASE / "keyturn-rotation", None
        elif kind == "before":
            command, cwd = BEFORE, None
        else:
            reference = ROOT / "bench" / "reference"
            env = dict(env, LAMBDA_TASK_ROOT=str(reference), PYTHONPATH=str(reference))
            command, cwd = [sys.executable, "-m", "awslambdaric", "lambda_function.lambda_handler"], reference
        super().__init__(command, RuntimeApi(), env, log, cwd=cwd)

    def step(self, step: str, name: str, token: str) -> None:
        ok, body = super().step(step, name, token)
        if not ok:
            raise RuntimeError(f"{step} failed: {body}")

    def rotate(self, name: str, token: str) -> None:
        for step in STEPS:
            self.step(step, name, token)

    def peak_rss_kib(self) -> int:
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
        raise RuntimeError("no VmHWM")

    def close(self) -> None:
        super().close()
        self.runtime.close()


def function_bench(moto, env, rounds: int, warm: int, logs: Path) -> dict:
    """Cold start: spawn to the fourth step's answer, for a first rotation. Warm: the four steps of
    a further first rotation on the same process. Alternates keyturn and the reference."""
    kinds = ("keyturn", "python") + (("before",) if BEFORE else ())
    out = {k: {"cold_ms": [], "warm_ms": [], "second_ms": [], "peak_rss_kib": []} for k in kinds}
    for r in range(rounds):
        for kind in kinds if r % 2 == 0 else tuple(reversed(kinds)):
            secrets = [new_secret(moto) for _ in range(warm + 1)]
            tokens = [start_rotation(moto, name) for _, name in secrets]
            runner = Runner(kind, env, logs / f"{kind}-{r}.log")
            try:
                runner.rotate(secrets[0][1], tokens[0])
                out[kind]["cold_ms"].append((time.perf_counter() - runner.started) * 1e3)
                for i, ((_, name), token) in enumerate(zip(secrets[1:], tokens[1:])):
                    t0 = time.perf_counter()
                    runner.rotate(name, token)
                    out[kind]["warm_ms"].append((time.perf_counter() - t0) * 1e3)
                    if i == 0:  # the process's second rotation
                        out[kind]["second_ms"].append(out[kind]["warm_ms"][-1])
                out[kind]["peak_rss_kib"].append(runner.peak_rss_kib())
            finally:
                runner.close()
    summary = {}
    for kind, m in out.items():
        summary[kind] = {
            "cold_ms_median": round(statistics.median(m["cold_ms"]), 1),
            "warm_ms_median": round(statistics.median(m["warm_ms"]), 1),
            "second_rotation_ms_median": round(statistics.median(m["second_ms"]), 1),
            "peak_rss_mib_max": round(max(m["peak_rss_kib"]) / 1024, 1),
            "samples": {"cold": len(m["cold_ms"]), "warm": len(m["warm_ms"])},
        }
    k, p = summary["keyturn"], summary["python"]
    summary["ratios"] = {
        "cold": round(k["cold_ms_median"] / p["cold_ms_median"], 3),
        "warm": round(k["warm_ms_median"] / p["warm_ms_median"], 3),
        "peak_rss": round(k["peak_rss_mib_max"] / p["peak_rss_mib_max"], 3),
    }
    return summary


def counted(moto, env, kind: str, logs: Path, two_keys: bool) -> dict:
    """Calls per step of one rotation, counted at a proxy; `two_keys`: the second rotation, whose
    createSecret must free the AWSPREVIOUS key's slot."""
    user, name = new_secret(moto, "calls")
    if two_keys:
        runner = Runner(kind, env, logs / f"calls-pre-{kind}.log")
        runner.rotate(name, start_rotation(moto, name))
        runner.close()
    token = start_rotation(moto, name)
    proxy = FaultProxy(moto.endpoint)
    runner = Runner(kind, dict(env, AWS_ENDPOINT_URL=proxy.endpoint), logs / f"calls-{kind}.log")
    try:
        per_step = {}
        for step in STEPS:
            before = len(proxy.calls)
            runner.step(step, name, token)
            per_step[step] = proxy.calls[before:]
        return {"total": len(proxy.calls), "per_step": {s: len(c) for s, c in per_step.items()}, "calls": per_step}
    finally:
        runner.close()
        proxy.close()


def cli(env, *args, check=True) -> subprocess.CompletedProcess:
    proc = subprocess.run([str(RELEASE / "keyturn"), *args], env=env, capture_output=True, text=True, timeout=3600)
    if check and proc.returncode not in (0, 1):
        raise RuntimeError(f"keyturn {' '.join(args)}: {proc.returncode}\n{proc.stderr[-2000:]}")
    return proc


def sweep_and_audit_calls(moto, env) -> dict:
    # Sweep of one secret whose previous key is due for deactivation, and one with nothing to do.
    _, due = new_secret(moto, "sweep", managed=True)
    _, idle = new_secret(moto, "idle", managed=True)
    cli(env, "rotate", due)
    _, fresh = new_secret(moto, "clirot", managed=True)
    proxy = FaultProxy(moto.endpoint)

    def calls_of(*args):
        before = len(proxy.calls)
        cli(penv, *args)
        return proxy.calls[before:]

    try:
        penv = dict(env, AWS_ENDPOINT_URL=proxy.endpoint)
        waiting = calls_of("sweep", due)
        acting = calls_of("sweep", "--grace-days", "0", due)
        deleting = calls_of("sweep", "--delete-after-days", "0", due)
        idle_calls = calls_of("sweep", idle)
        cli_one_key = calls_of("rotate", fresh)
        cli_two_keys = calls_of("rotate", fresh)
        # Audit: N users, half of them managed; the per-user cost is the slope between two sizes.
        counts = {}
        for n in (10, 20):
            for i in range(n // 2):
                new_secret(moto, "aud", managed=True)
                iam = moto.client("iam")
                u = unique("plain")
                iam.create_user(UserName=u)
                iam.create_access_key(UserName=u)
            before = len(proxy.calls)
            cli(penv, "--output", "json", "audit")
            counts[n] = proxy.calls[before:]
        users_now = len(moto.client("iam").list_users(MaxItems=1000)["Users"])
    finally:
        proxy.close()
    return {
        "cli_rotate_one_key": {"total": len(cli_one_key), "calls": cli_one_key},
        "cli_rotate_two_keys": {"total": len(cli_two_keys), "calls": cli_two_keys},
        "sweep_waiting": {"total": len(waiting), "calls": waiting},
        "sweep_deleting": {"total": len(deleting), "calls": deleting},
        "sweep_acting": {"total": len(acting), "calls": acting},
        "sweep_nothing_to_do": {"total": len(idle_calls), "calls": idle_calls},
        "audit": {"calls_with_10_more_users": len(counts[20]) - len(counts[10]), "calls_at_last": len(counts[20]),
                  "users_in_account": users_now, "calls": counts[20]},
    }


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def moto_capacity(moto, seconds: float = 6.0, threads: int = 16) -> float:
    """The most CPU moto can use (in cores), measured apart from keyturn. One DescribeSecret is
    signed once with botocore, then its bytes are sent again and again on keep-alive connections by
    many threads: the client costs next to nothing, so moto, not the client, is the bottleneck.
    moto serves requests in one Python process: about one core, a little more for the work done
    outside the GIL."""
    import http.client

    import botocore.auth
    import botocore.awsrequest
    import botocore.credentials

    _, name = new_secret(moto, "probe")
    host = moto.endpoint.split("//", 1)[1]
    body = json.dumps({"SecretId": name}).encode()
    request = botocore.awsrequest.AWSRequest(
        method="POST", url=moto.endpoint + "/", data=body,
        headers={"Content-Type": "application/x-amz-json-1.1", "X-Amz-Target": "secretsmanager.DescribeSecret"},
    )
    botocore.auth.SigV4Auth(botocore.credentials.Credentials(*moto.admin), "secretsmanager", "us-east-1").add_auth(request)
    headers = dict(request.headers.items())
    stop = time.monotonic() + seconds
    counts = []

    def run():
        n = 0
        conn = http.client.HTTPConnection(host, timeout=30)
        while time.monotonic() < stop:
            conn.request("POST", "/", body=body, headers=headers)
            resp = conn.getresponse()
            resp.read()
            if resp.status != 200:
                raise RuntimeError(f"probe call failed: {resp.status}")
            n += 1
        counts.append(n)

    import threading

    cpu0, t0 = cpu_seconds(moto.proc.pid), time.perf_counter()
    ts = [threading.Thread(target=run) for _ in range(threads)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    wall = time.perf_counter() - t0
    used = (cpu_seconds(moto.proc.pid) - cpu0) / wall
    print(f"  probe: {sum(counts) / wall:.0f} DescribeSecret/s, moto at {used:.2f} cores", flush=True)
    return used


def bulk_bench(moto, env, secrets: int, concurrencies: list[int]) -> dict:
    iam, sm = moto.client("iam"), moto.client("secretsmanager")
    for _ in range(secrets):
        new_secret(moto, "bulk", managed=True, iam=iam, sm=sm)
    # One unmeasured pass, so that every measured pass takes the same path (two keys: the previous
    # key, unused since the cut-over, is deleted to make room).
    cli(env, "rotate", "--all", "--concurrency", "16")
    capacity = moto_capacity(moto)
    print(f"  moto's CPU capacity (probe): {capacity:.2f} cores", flush=True)
    rows = []
    for c in concurrencies:
        cpu0, t0 = cpu_seconds(moto.proc.pid), time.perf_counter()
        proc = subprocess.Popen([str(RELEASE / "keyturn"), "--output", "json", "rotate", "--all", "--concurrency", str(c)],
                                env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        stdout = proc.stdout.read()
        _, _, usage = os.wait4(proc.pid, 0)
        wall, cpu = time.perf_counter() - t0, cpu_seconds(moto.proc.pid) - cpu0
        done = sum(1 for r in json.loads(stdout) if r.get("outcome") == "rotated")
        rate = done / wall
        ceiling = capacity * done / cpu
        rows.append({
            "concurrency": c, "rotated": done, "seconds": round(wall, 2), "per_second": round(rate, 1),
            "moto_cpu_ms_per_rotation": round(cpu * 1e3 / done, 2),
            "keyturn_cpu_ms_per_rotation": round((usage.ru_utime + usage.ru_stime) * 1e3 / done, 2),
            "moto_ceiling_per_second": round(ceiling, 1), "share_of_ceiling": round(rate / ceiling, 3),
        })
        print(f"  c={c}: {rate:.1f}/s; moto's ceiling {ceiling:.1f}/s; {rate / ceiling:.0%} of it", flush=True)
    return {"secrets": secrets, "moto_capacity_cores": round(capacity, 2), "runs": rows}


def audit_bench(sizes: list[int]) -> list[dict]:
    example = ROOT / "target" / "release" / "examples" / "audit_scale"
    subprocess.run(["cargo", "build", "--release", "--locked", "--quiet", "-p", "keyturn-core", "--example", "audit_scale"], cwd=ROOT, check=True)
    rows = []
    for n in [0, *sizes]:  # one process per size, so each peak RSS is that size's own
        out = subprocess.run([str(example), str(n)], capture_output=True, text=True, check=True).stdout
        f = out.strip().splitlines()[-1].split(",")
        row = {"users": n, "peak_rss_mib": round(int(f[7]) / 1024, 1)}
        if n:
            row.update(report_bytes=int(f[1]), parse_ms=float(f[2]), join_ms=float(f[3]), total_ms=float(f[4]), ns_per_user=int(f[6]))
        rows.append(row)
    return rows


def timed(env, *args) -> tuple[float, int, subprocess.CompletedProcess]:
    """keyturn's wall time (s), its peak RSS (KiB) and what it printed. The peak is VmHWM read from
    /proc every 5 ms while it runs (wait4's ru_maxrss would count the Python process it was forked
    from); the last reading comes at most 5 ms before the end."""
    import threading

    peak = [0]
    with open(os.devnull, "w") as sink:
        t0 = time.perf_counter()
        proc = subprocess.Popen([str(RELEASE / "keyturn"), *args], env=env, stdout=subprocess.PIPE, stderr=sink, text=True)

        def watch():
            status = Path(f"/proc/{proc.pid}/status")
            while proc.poll() is None:
                try:
                    for line in status.read_text().splitlines():
                        if line.startswith("VmHWM:"):
                            peak[0] = max(peak[0], int(line.split()[1]))
                except (OSError, ValueError):
                    pass
                time.sleep(0.005)

        watcher = threading.Thread(target=watch, daemon=True)
        watcher.start()
        out = proc.stdout.read() if proc.stdout else ""
        code = proc.wait()
        elapsed = time.perf_counter() - t0
        watcher.join()
    if code not in (0, 1):
        raise RuntimeError(f"keyturn {' '.join(args)} exited {code}")
    return elapsed, peak[0], subprocess.CompletedProcess(args, code, out, "")


def org_bench(logs: Path, accounts: int, users: int, managed: int, concurrencies: list[int]) -> dict:
    """An organization in a moto server of its own: `accounts` member accounts, each with
    `users` users with one key, `managed` of them held by managed secrets, and the member role with
    the auditor policy of deploy/org/member-role.yaml (created directly: a StackSet of 50 stacks
    would measure moto's CloudFormation, not keyturn)."""
    from cfnlint.decode import decode_str
    from harness import allow, auth_off

    template, problems = decode_str((ROOT / "deploy" / "org" / "member-role.yaml").read_text())
    assert not problems, problems
    auditor = json.loads(json.dumps(template["Resources"]["AuditorPolicy"]["Properties"]["PolicyDocument"], default=str))
    org_logs = logs / "org"
    org_logs.mkdir(exist_ok=True)
    moto = Moto(org_logs)
    try:
        t0 = time.perf_counter()
        ids = []
        with auth_off(moto):
            org = moto.client("organizations")
            org.create_organization(FeatureSet="ALL")
            for i in range(accounts):
                account = org.create_account(Email=f"bench{i}@example.test", AccountName=f"bench-{i:02d}")["CreateAccountStatus"]["AccountId"]
                ids.append(account)
                c = moto.client("sts").assume_role(RoleArn=f"arn:aws:iam::{account}:role/OrganizationAccountAccessRole", RoleSessionName="setup")["Credentials"]
                creds = dict(aws_access_key_id=c["AccessKeyId"], aws_secret_access_key=c["SecretAccessKey"], aws_session_token=c["SessionToken"])
                import boto3
                iam = boto3.client("iam", endpoint_url=moto.endpoint, region_name="us-east-1", **creds)
                sm = boto3.client("secretsmanager", endpoint_url=moto.endpoint, region_name="us-east-1", **creds)
                iam.create_role(RoleName="keyturn-org-access", AssumeRolePolicyDocument=allow("sts:AssumeRole"))
                iam.put_role_policy(RoleName="keyturn-org-access", PolicyName="keyturn-auditor", PolicyDocument=json.dumps(auditor))
                for u in range(users):
                    if u < managed:
                        new_secret(moto, f"org{i}u{u}", managed=True, iam=iam, sm=sm, recorded=True)
                    else:
                        iam.create_user(UserName=f"plain-{i}-{u}")
                        iam.create_access_key(UserName=f"plain-{i}-{u}")
        setup_s = time.perf_counter() - t0
        env = base_env(moto.endpoint, *moto.admin)
        # Calls per account, counted at a proxy: one account alone, and the whole organization.
        proxy = FaultProxy(moto.endpoint)
        penv = dict(env, AWS_ENDPOINT_URL=proxy.endpoint)
        timed(penv, "--output", "json", "audit", "--account", ids[0])
        one = list(proxy.calls)
        before = len(proxy.calls)
        timed(penv, "--output", "json", "audit", "--org", "--exclude-account", "123456789012")
        whole = proxy.calls[before:]
        proxy.close()
        singles = []
        for account in ids:
            elapsed, rss, _ = timed(env, "--output", "json", "audit", "--account", account)
            singles.append(elapsed)
        runs = []
        for n in concurrencies:
            cpu0 = cpu_seconds(moto.proc.pid)
            elapsed, rss, proc = timed(env, "--output", "json", "audit", "--org", "--exclude-account", "123456789012", "--account-concurrency", str(n))
            keys = json.loads(proc.stdout)["keys"]
            held = sum(1 for k in keys if k["secret"])
            if held != accounts * managed:
                raise RuntimeError(f"{held} keys held by managed secrets, expected {accounts * managed}")
            runs.append({
                "account_concurrency": n, "seconds": round(elapsed, 2), "peak_rss_mib": round(rss / 1024, 1),
                "keys": len(keys), "accounts": len({k["account"] for k in keys}),
                "moto_cpu_seconds": round(cpu_seconds(moto.proc.pid) - cpu0, 2),
            })
            print(f"  audit --org, concurrency {n}: {runs[-1]}", flush=True)
        by_op: dict[str, int] = {}
        for op in one:
            by_op[op] = by_op.get(op, 0) + 1
        return {
            "accounts": accounts, "users_per_account": users, "managed_per_account": managed,
            "setup_seconds": round(setup_s, 1),
            "single_account_seconds": {"sum": round(sum(singles), 2), "max": round(max(singles), 2),
                                       "median": round(statistics.median(singles), 2)},
            "calls_one_account": {"total": len(one), "by_operation": by_op},
            "calls_org": {"total": len(whole), "per_account": round(len(whole) / accounts, 1),
                          "organizations_calls": sum(1 for op in whole if op.startswith("List") and "Account" in op)},
            "runs": runs,
        }
    finally:
        moto.close()


def sizes() -> dict:
    out = {name: (RELEASE / name).stat().st_size for name in ("keyturn-rotation", "keyturn")}
    zip_path = ROOT / "target" / "lambda" / "keyturn-rotation" / "bootstrap.zip"
    out["bootstrap.zip"] = zip_path.stat().st_size if zip_path.exists() else None
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="a small run of every part (a smoke test)")
    ap.add_argument("--out", default=str(ROOT / "bench" / "results.json"))
    ap.add_argument("--org-only", action="store_true", help="only the organization audit (part 6), merged into --out")
    ap.add_argument("--function-only", action="store_true", help="only the function's cold start, warm rotation and RSS (part 1), merged into --out")
    ap.add_argument("--before", type=Path, help="an earlier keyturn-rotation binary, measured beside this build in part 1")
    a = ap.parse_args()
    global BEFORE
    BEFORE = a.before
    org_size = (5, 8, 2, [1, 8]) if a.quick else (50, 40, 10, [1, 8, 32])
    rounds, warm, secrets, conc, audit_sizes = (6, 10, 1000, [1, 4, 16, 64], [1000, 10000, 100000])
    if a.quick:
        rounds, warm, secrets, conc, audit_sizes = (2, 2, 20, [1, 4], [1000])

    subprocess.run([str(ROOT / "scripts" / "build")], cwd=ROOT, check=True)
    logs = ROOT / "target" / "bench-logs"
    logs.mkdir(parents=True, exist_ok=True)
    for k in ("AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_SESSION_TOKEN"):
        os.environ.pop(k, None)
    os.environ.update(AWS_EC2_METADATA_DISABLED="true")
    if a.org_only:
        results = json.loads(Path(a.out).read_text()) if Path(a.out).exists() else {}
        print(f"audit --org: {org_size[0]} accounts of {org_size[1]} users", flush=True)
        results["org"] = org_bench(logs, *org_size)
        results["org"]["started"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        Path(a.out).write_text(json.dumps(results, indent=1) + "\n")
        print(json.dumps(results["org"], indent=1))
        return
    if a.function_only:
        results = json.loads(Path(a.out).read_text()) if Path(a.out).exists() else {}
        moto = Moto(logs)
        try:
            env = base_env(moto.endpoint, *moto.admin)
            results["function"] = function_bench(moto, env, rounds, warm, logs)
            results["function"]["started"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        finally:
            moto.close()
        Path(a.out).write_text(json.dumps(results, indent=1) + "\n")
        print(json.dumps(results["function"], indent=1))
        return
    moto = Moto(logs)
    results = {"machine": {"cpus": os.cpu_count(), "python": sys.version.split()[0]}, "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    try:
        env = base_env(moto.endpoint, *moto.admin)
        print("function: cold start, warm rotation, peak RSS (keyturn vs the boto3 reference)", flush=True)
        results["function"] = function_bench(moto, env, rounds, warm, logs)
        print(json.dumps(results["function"], indent=1), flush=True)
        print("AWS calls per rotation and step", flush=True)
        results["calls"] = {
            "keyturn_one_key": counted(moto, env, "keyturn", logs, False),
            "keyturn_two_keys": counted(moto, env, "keyturn", logs, True),
            "python_one_key": counted(moto, env, "python", logs, False),
        }
        results["calls"].update(sweep_and_audit_calls(moto, env))
        for k, v in results["calls"].items():
            print(f"  {k}: {v.get('total', v)} {v.get('per_step', '')}", flush=True)
        print(f"bulk rotate --all over {secrets} secrets", flush=True)
        results["bulk"] = bulk_bench(moto, env, secrets, conc)
    finally:
        moto.close()
    print("audit parse and join", flush=True)
    results["audit"] = audit_bench(audit_sizes)
    for row in results["audit"]:
        print(f"  {row}", flush=True)
    print("audit --org across an organization", flush=True)
    results["org"] = org_bench(logs, *org_size)
    results["sizes"] = sizes()
    print(f"sizes: {results['sizes']}", flush=True)
    Path(a.out).write_text(json.dumps(results, indent=1) + "\n")
    print(f"written to {a.out}")


if __name__ == "__main__":
    main()
