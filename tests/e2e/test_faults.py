"""Faults at the wire: a full rotation through a fault-injecting proxy in front of moto, with every
AWS call k broken in each way the proxy knows (see faultproxy.py), then resumed as Secrets Manager
would: the whole rotation run again with the same token, each step from createSecret on, by a new
function process where the old one was stopped. The same for `keyturn rotate` and `--resume`.

After each run, with boto3 straight to moto: AWSCURRENT authenticates as the user and is the
token's version; AWSPREVIOUS holds the key that was current before (the key the spec protects),
active and still working; the user has at most two keys and each is held by AWSCURRENT or
AWSPREVIOUS; the rotation completed within a bounded number of re-runs.

The matrix is written to $KEYTURN_FAULT_MATRIX (JSON) when set, for RELIABILITY.md.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from faultproxy import KINDS, FaultProxy
from harness import base_env
from test_rotation_function import STEPS, key_statuses, make_user, run_steps, start_rotation, unique, value, whoami

MAX_RERUNS = 2
WORKERS = 8
RESULTS: dict = {}


def _second_rotation_ready(moto, function_factory, secrets_seen):
    """A user whose secret was rotated once (AWSCURRENT = B, AWSPREVIOUS = A, A unused since), with a
    second rotation started: createSecret must delete A to make room, the 18-call path."""
    user, secret_id = unique("fault"), unique("keyturn/fault")
    first = make_user(moto, user, secrets_seen)
    moto.client("secretsmanager").create_secret(
        Name=secret_id,
        SecretString=json.dumps({"UserName": user, "AccessKeyId": first["AccessKeyId"], "SecretAccessKey": first["SecretAccessKey"]}),
    )
    fn = function_factory()
    run_steps(fn, secret_id, start_rotation(moto, secret_id))
    before = value(moto, secret_id, "AWSCURRENT")
    secrets_seen.add(before["SecretAccessKey"])
    return user, secret_id, before, start_rotation(moto, secret_id)


def _invoke(fn, proxy, step, secret_id, token):
    """One step; returns (ok, body), or None when the proxy stopped the process mid-step."""
    request_id = f"{step}-{time.monotonic_ns()}"
    results = fn.runtime.results.setdefault(request_id, __import__("queue").Queue())
    fn.runtime.pending.put((request_id, {"Step": step, "SecretId": secret_id, "ClientRequestToken": token}))
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if proxy.stopped.is_set():
            fn.proc.kill()
            fn.proc.wait()
            return None
        try:
            return results.get(timeout=0.05)
        except Exception:
            continue
    raise AssertionError(f"{step} did not answer within 120 s\n{fn.output()}")


def check_outcome(moto, user, secret_id, before, token, secrets_seen, label):
    sm = moto.client("secretsmanager")
    current = value(moto, secret_id, "AWSCURRENT")
    secrets_seen.add(current["SecretAccessKey"])
    stages = sm.describe_secret(SecretId=secret_id)["VersionIdsToStages"]
    assert token is None or "AWSCURRENT" in stages.get(token, []), f"{label}: the token's version is not AWSCURRENT: {stages}"
    assert current["AccessKeyId"] != before["AccessKeyId"], f"{label}: no new key"
    assert whoami(moto, current["AccessKeyId"], current["SecretAccessKey"]).endswith(f":user/{user}"), label
    previous = value(moto, secret_id, "AWSPREVIOUS")
    assert previous["AccessKeyId"] == before["AccessKeyId"], f"{label}: AWSPREVIOUS is not the key that was current"
    keys = key_statuses(moto, user)
    assert keys == {before["AccessKeyId"]: "Active", current["AccessKeyId"]: "Active"}, f"{label}: keys {keys}"
    assert whoami(moto, before["AccessKeyId"], before["SecretAccessKey"]).endswith(f":user/{user}"), label


def function_run(moto, function_factory, secrets_seen, kind, k):
    """One cell of the matrix for the rotation function; returns what happened, for the table."""
    user, secret_id, before, token = _second_rotation_ready(moto, function_factory, secrets_seen)
    proxy = FaultProxy(moto.endpoint, kind, k)
    try:
        fn = function_factory(AWS_ENDPOINT_URL=proxy.endpoint)
        failed_steps = []
        reruns = -1
        done = False
        while not done:
            reruns += 1
            assert reruns <= MAX_RERUNS, f"{kind}@{k}: not done after {MAX_RERUNS} re-runs: {failed_steps}\n{fn.output()}"
            for step in STEPS:
                result = _invoke(fn, proxy, step, secret_id, token)
                if result is None:  # the process was stopped: Secrets Manager's retry meets a new one
                    failed_steps.append(f"{step}: stopped")
                    proxy.disarm()
                    fn = function_factory(AWS_ENDPOINT_URL=proxy.endpoint)
                    break
                ok, body = result
                if not ok:
                    failed_steps.append(f"{step}: {body.get('errorType')}")
                    break
            else:
                done = True
        check_outcome(moto, user, secret_id, before, token, secrets_seen, f"function {kind}@{k}")
        return {"injected": proxy.injected, "reruns": reruns, "failed": failed_steps, "attempts": proxy.attempts, "calls": len(proxy.calls)}
    finally:
        proxy.close()


def baseline_calls(moto, function_factory, secrets_seen):
    if "function" not in RESULTS.setdefault("baseline", {}):
        user, secret_id, before, token = _second_rotation_ready(moto, function_factory, secrets_seen)
        proxy = FaultProxy(moto.endpoint)
        try:
            fn = function_factory(AWS_ENDPOINT_URL=proxy.endpoint)
            run_steps(fn, secret_id, token)
            check_outcome(moto, user, secret_id, before, token, secrets_seen, "baseline")
            RESULTS["baseline"]["function"] = list(proxy.calls)
        finally:
            proxy.close()
    return RESULTS["baseline"]["function"]


@pytest.mark.parametrize("kind", KINDS)
def test_function_survives_a_fault_at_every_call(moto, function_factory, secrets_seen, kind):
    calls = baseline_calls(moto, function_factory, secrets_seen)
    assert len(calls) == 19, f"the second rotation's calls changed: {calls}"
    with ThreadPoolExecutor(WORKERS) as pool:
        futures = {k: pool.submit(function_run, moto, function_factory, secrets_seen, kind, k) for k in range(1, len(calls) + 1)}
        outcomes = {k: f.result() for k, f in futures.items()}
    for k, out in outcomes.items():
        assert out["injected"] == f"{k}:{calls[k - 1]}", f"{kind}@{k}: the fault was not injected where planned: {out}"
    RESULTS.setdefault("function", {})[kind] = outcomes
    _write()


def cli_rotated_once(moto, keyturn_binary, secrets_seen, prefix):
    """A user and secret already rotated once by `keyturn rotate`, so the next rotation takes the
    two-key path; with the environment that reaches moto directly."""
    user, secret_id = unique(prefix), unique(f"keyturn/{prefix}")
    first = make_user(moto, user, secrets_seen)
    moto.client("secretsmanager").create_secret(
        Name=secret_id,
        SecretString=json.dumps({"UserName": user, "AccessKeyId": first["AccessKeyId"], "SecretAccessKey": first["SecretAccessKey"]}),
    )
    env = base_env(moto.endpoint, *moto.admin)
    subprocess.run([str(keyturn_binary), "rotate", secret_id], env=env, check=True, capture_output=True, timeout=120)
    return user, secret_id, env


def cli_run(moto, keyturn_binary, secrets_seen, kind, k, printed):
    user, secret_id, env = cli_rotated_once(moto, keyturn_binary, secrets_seen, "clifault")
    before = value(moto, secret_id, "AWSCURRENT")
    secrets_seen.add(before["SecretAccessKey"])
    proxy = FaultProxy(moto.endpoint, kind, k)
    try:
        env_proxy = dict(env, AWS_ENDPOINT_URL=proxy.endpoint)
        proc = subprocess.Popen([str(keyturn_binary), "rotate", secret_id], env=env_proxy, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 120
        while proc.poll() is None and time.monotonic() < deadline:
            if proxy.stopped.wait(0.05):
                proc.kill()
                break
        out, err = proc.communicate(timeout=60)
        printed.append(out + err)
        rc = proc.returncode
        proxy.disarm()
        reruns = 0
        resumed: list = []
        while rc != 0:
            # After a failure or a stop, as an operator (or cron) would: --resume finishes what is
            # in flight or what stopped between making its key and storing it; when it finds nothing, the
            # rotation either completed or never started, and a plain rotate starts one.
            reruns += 1
            assert reruns <= MAX_RERUNS, f"cli {kind}@{k}: not done after {MAX_RERUNS} re-runs\n" + "\n".join(printed[-3:])
            again = subprocess.run(
                [str(keyturn_binary), "--output", "json", "rotate", "--resume", secret_id],
                env=env_proxy, capture_output=True, text=True, timeout=120,
            )
            printed.append(again.stdout + again.stderr)
            rc = again.returncode
            if rc == 0 and json.loads(again.stdout)[0]["outcome"] == "nothing-in-flight":
                if value(moto, secret_id, "AWSCURRENT")["AccessKeyId"] == before["AccessKeyId"]:
                    rc = 1
                    resumed.append("nothing in flight: rotate")
                    again = subprocess.run([str(keyturn_binary), "rotate", secret_id], env=env_proxy, capture_output=True, text=True, timeout=120)
                    printed.append(again.stdout + again.stderr)
                    rc = again.returncode
                else:
                    resumed.append("nothing in flight: done")
            elif rc == 0:
                resumed.append("resumed")
        check_outcome(moto, user, secret_id, before, None, secrets_seen, f"cli {kind}@{k}")
        stages = moto.client("secretsmanager").describe_secret(SecretId=secret_id)["VersionIdsToStages"]
        stray = [v for v, s in stages.items() if "AWSPENDING" in s and "AWSCURRENT" not in s]
        assert not stray, f"cli {kind}@{k}: AWSPENDING left on a version that is not AWSCURRENT: {stages}"
        return {"injected": proxy.injected, "reruns": reruns, "resume": resumed, "first_rc": proc.returncode}
    finally:
        proxy.close()


@pytest.mark.parametrize("kind", KINDS)
def test_cli_rotation_survives_a_fault_at_every_call_and_resumes(moto, keyturn_binary, secrets_seen, kind):
    # The CLI's own call list, from one clean run through the proxy.
    _, secret_id, env = cli_rotated_once(moto, keyturn_binary, secrets_seen, "clibase")
    proxy = FaultProxy(moto.endpoint)
    try:
        subprocess.run([str(keyturn_binary), "rotate", secret_id], env=dict(env, AWS_ENDPOINT_URL=proxy.endpoint), check=True, capture_output=True, timeout=120)
        calls = list(proxy.calls)
    finally:
        proxy.close()
    RESULTS.setdefault("baseline", {})["cli"] = calls
    printed: list = []
    with ThreadPoolExecutor(WORKERS) as pool:
        futures = {k: pool.submit(cli_run, moto, keyturn_binary, secrets_seen, kind, k, printed) for k in range(1, len(calls) + 1)}
        outcomes = {k: f.result() for k, f in futures.items()}
    for k, out in outcomes.items():
        assert out["injected"] == f"{k}:{calls[k - 1]}", f"cli {kind}@{k}: {out}"
    from conftest import ALL_OUTPUT

    ALL_OUTPUT.extend(printed)
    text = "\n".join(printed)
    assert not [s for s in secrets_seen if s and s in text], "a secret access key appeared in keyturn's output"
    RESULTS.setdefault("cli", {})[kind] = outcomes
    _write()


def _write():
    path = os.environ.get("KEYTURN_FAULT_MATRIX")
    if path:
        with open(path, "w") as f:
            json.dump(RESULTS, f, indent=1, sort_keys=True)
