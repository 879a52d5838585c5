"""Faults at the wire for enroll, enroll --adopt and the sweep (its deactivating and its deleting
run): every AWS call k broken in each of the proxy's six ways (faultproxy.py), then the same
command run again as an operator (or cron) would, at most twice. After each, checked with boto3:
no secret holds a deleted key, AWSCURRENT authenticates as the user, no key was lost, and any key no
secret holds was never used (an orphan of a stopped run, which the next rotation's rules free).

The outcomes are added to $KEYTURN_FAULT_MATRIX (JSON) when set, for RELIABILITY.md.
"""

from __future__ import annotations

import json
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from conftest import ALL_OUTPUT
from faultproxy import KINDS, FaultProxy
from harness import base_env
from test_cli import managed_secret
from test_faults import RESULTS, _write
from test_rotation_function import key_statuses, make_user, unique, value, whoami

MAX_RERUNS = 2
WORKERS = 8


def run(binary, env, args, proxy, printed) -> int:
    proc = subprocess.Popen([str(binary), "--output", "json", *args], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while proc.poll() is None and time.monotonic() < deadline:
        if proxy.stopped.wait(0.05):
            proc.kill()
            break
    out, err = proc.communicate(timeout=60)
    printed.append(out + err)
    return proc.returncode


def last_used(moto, key_id):
    return moto.client("iam").get_access_key_last_used(AccessKeyId=key_id)["AccessKeyLastUsed"].get("LastUsedDate")


def held_keys(moto, secret_id):
    sm = moto.client("secretsmanager")
    stages = sm.describe_secret(SecretId=secret_id).get("VersionIdsToStages", {})
    held = {}
    for version, labels in stages.items():
        text = sm.get_secret_value(SecretId=secret_id, VersionId=version).get("SecretString") or "{}"
        body = json.loads(text)
        key_id = body.get("AccessKeyId") or body.get("accessKey") or body.get("accesskey")
        if key_id:
            held[key_id] = labels
    return held


def common_checks(moto, user, secret_id, label, secrets_seen):
    current = value(moto, secret_id, "AWSCURRENT")
    secret = current.get("SecretAccessKey") or current.get("secretkey") or current.get("secretKey")
    key_id = current.get("AccessKeyId") or current.get("accesskey") or current.get("accessKey")
    secrets_seen.add(secret)
    assert whoami(moto, key_id, secret).endswith(f":user/{user}"), f"{label}: AWSCURRENT does not authenticate"
    keys = key_statuses(moto, user)
    held = held_keys(moto, secret_id)
    for held_id, labels in held.items():
        if {"AWSCURRENT", "AWSPENDING"} & set(labels):
            assert held_id in keys, f"{label}: {labels} holds {held_id}, which IAM no longer has"
    for k in keys:
        if k not in held:
            assert last_used(moto, k) is None, f"{label}: {k} is held by no version and was used"
    return key_id, keys, held


class Enroll:
    name = "enroll"

    def setup(self, moto, secrets_seen):
        user = unique("enf")
        moto.client("iam").create_user(UserName=user)
        return {"user": user, "secret": f"keyturn/{user}", "args": ["enroll", user]}

    def check(self, moto, ctx, secrets_seen, label):
        key_id, keys, _ = common_checks(moto, ctx["user"], ctx["secret"], label, secrets_seen)
        tags = {t["Key"]: t["Value"] for t in moto.client("secretsmanager").describe_secret(SecretId=ctx["secret"])["Tags"]}
        assert tags.get("keyturn:managed") == "true" and tags.get("keyturn:user") == ctx["user"], f"{label}: {tags}"
        assert keys.get(key_id) == "Active" and len(keys) <= 2, f"{label}: {keys}"


class Adopt:
    name = "adopt"

    def setup(self, moto, secrets_seen):
        user, secret_id = unique("adf"), unique("legacy/adf")
        key = make_user(moto, user, secrets_seen)
        body = {"username": user, "accesskey": key["AccessKeyId"], "secretkey": key["SecretAccessKey"]}
        moto.client("secretsmanager").create_secret(Name=secret_id, SecretString=json.dumps(body))
        return {"user": user, "secret": secret_id, "args": ["enroll", "--adopt", secret_id], "key": key, "body": body}

    def check(self, moto, ctx, secrets_seen, label):
        _, keys, _ = common_checks(moto, ctx["user"], ctx["secret"], label, secrets_seen)
        assert value(moto, ctx["secret"], "AWSCURRENT") == ctx["body"], f"{label}: the value changed"
        assert keys == {ctx["key"]["AccessKeyId"]: "Active"}, f"{label}: {keys}"
        tags = {t["Key"]: t["Value"] for t in moto.client("secretsmanager").describe_secret(SecretId=ctx["secret"]).get("Tags", [])}
        assert tags.get("keyturn:managed") == "true" and tags.get("keyturn:user") == ctx["user"], f"{label}: {tags}"


def _rotated_once(moto, keyturn_binary, secrets_seen, prefix):
    user, secret_id, a = managed_secret(moto, secrets_seen, prefix)
    env = base_env(moto.endpoint, *moto.admin)
    subprocess.run([str(keyturn_binary), "rotate", secret_id], env=env, check=True, capture_output=True, timeout=120)
    b = value(moto, secret_id, "AWSCURRENT")
    secrets_seen.add(b["SecretAccessKey"])
    return user, secret_id, a, b, env


class SweepDeactivate:
    name = "sweep-deactivate"

    def __init__(self, binary):
        self.binary = binary

    def setup(self, moto, secrets_seen):
        user, secret_id, a, b, _ = _rotated_once(moto, self.binary, secrets_seen, "swd")
        return {"user": user, "secret": secret_id, "a": a, "b": b, "args": ["sweep", "--grace-days", "0", secret_id]}

    def done(self, moto, ctx):
        return key_statuses(moto, ctx["user"]).get(ctx["a"]["AccessKeyId"]) == "Inactive"

    def check(self, moto, ctx, secrets_seen, label):
        key_id, keys, _ = common_checks(moto, ctx["user"], ctx["secret"], label, secrets_seen)
        assert key_id == ctx["b"]["AccessKeyId"], f"{label}: AWSCURRENT moved"
        assert keys == {ctx["a"]["AccessKeyId"]: "Inactive", ctx["b"]["AccessKeyId"]: "Active"}, f"{label}: {keys}"
        assert value(moto, ctx["secret"], "AWSPREVIOUS")["AccessKeyId"] == ctx["a"]["AccessKeyId"]
        tags = {t["Key"]: t["Value"] for t in moto.client("secretsmanager").describe_secret(SecretId=ctx["secret"])["Tags"]}
        assert tags.get("keyturn:deactivated-key") == ctx["a"]["AccessKeyId"], f"{label}: no deactivation record"


class SweepDelete(SweepDeactivate):
    name = "sweep-delete"

    def setup(self, moto, secrets_seen):
        user, secret_id, a, b, env = _rotated_once(moto, self.binary, secrets_seen, "swx")
        subprocess.run([str(self.binary), "sweep", "--grace-days", "0", secret_id], env=env, check=True, capture_output=True, timeout=120)
        return {"user": user, "secret": secret_id, "a": a, "b": b, "args": ["sweep", "--grace-days", "0", "--delete-after-days", "0", secret_id]}

    def done(self, moto, ctx):
        stages = moto.client("secretsmanager").describe_secret(SecretId=ctx["secret"])["VersionIdsToStages"]
        return ctx["a"]["AccessKeyId"] not in key_statuses(moto, ctx["user"]) and not any("AWSPREVIOUS" in l for l in stages.values())

    def check(self, moto, ctx, secrets_seen, label):
        key_id, keys, held = common_checks(moto, ctx["user"], ctx["secret"], label, secrets_seen)
        assert key_id == ctx["b"]["AccessKeyId"], f"{label}: AWSCURRENT moved"
        assert keys == {ctx["b"]["AccessKeyId"]: "Active"}, f"{label}: {keys}"
        assert "AWSPREVIOUS" not in held.get(ctx["a"]["AccessKeyId"], []), f"{label}: AWSPREVIOUS still names the deleted key"


# The six kinds break a call's first attempt; `reset-every` forwards every attempt of the call and
# resets each answer, so the SDK's retries fail too after the server acted each time.
LIFECYCLE_KINDS = (*KINDS, "reset-every")


def cell(moto, binary, secrets_seen, scenario, kind, k, printed):
    ctx = scenario.setup(moto, secrets_seen)
    proxy = FaultProxy(moto.endpoint, "reset", k, every=True) if kind == "reset-every" else FaultProxy(moto.endpoint, kind, k)
    try:
        env = dict(base_env(moto.endpoint, *moto.admin), AWS_ENDPOINT_URL=proxy.endpoint)
        rc = run(binary, env, ctx["args"], proxy, printed)
        first_rc = rc
        proxy.disarm()
        reruns = 0
        done = getattr(scenario, "done", lambda m, c: True)
        while rc != 0 or not done(moto, ctx):
            reruns += 1
            assert reruns <= MAX_RERUNS, f"{scenario.name} {kind}@{k}: not done after {MAX_RERUNS} re-runs\n" + "\n".join(printed[-3:])
            rc = run(binary, env, ctx["args"], proxy, printed)
        scenario.check(moto, ctx, secrets_seen, f"{scenario.name} {kind}@{k}")
        return {"injected": proxy.injected, "reruns": reruns, "first_rc": first_rc}
    finally:
        proxy.close()


def baseline(moto, binary, secrets_seen, scenario):
    ctx = scenario.setup(moto, secrets_seen)
    proxy = FaultProxy(moto.endpoint)
    try:
        env = dict(base_env(moto.endpoint, *moto.admin), AWS_ENDPOINT_URL=proxy.endpoint)
        printed: list = []
        assert run(binary, env, ctx["args"], proxy, printed) == 0, printed
        ALL_OUTPUT.extend(printed)
        scenario.check(moto, ctx, secrets_seen, f"{scenario.name} baseline")
        return list(proxy.calls)
    finally:
        proxy.close()


@pytest.mark.parametrize("which", ["enroll", "adopt", "sweep-deactivate", "sweep-delete"])
def test_lifecycle_commands_survive_a_fault_at_every_call(moto, keyturn_binary, secrets_seen, which):
    scenario = {"enroll": Enroll(), "adopt": Adopt(), "sweep-deactivate": SweepDeactivate(keyturn_binary), "sweep-delete": SweepDelete(keyturn_binary)}[which]
    calls = baseline(moto, keyturn_binary, secrets_seen, scenario)
    RESULTS.setdefault("baseline", {})[which] = calls
    printed: list = []
    outcomes: dict = {}
    with ThreadPoolExecutor(WORKERS) as pool:
        futures = {(kind, k): pool.submit(cell, moto, keyturn_binary, secrets_seen, scenario, kind, k, printed)
                   for kind in LIFECYCLE_KINDS for k in range(1, len(calls) + 1)}
        for (kind, k), f in futures.items():
            out = f.result()
            assert out["injected"] == f"{k}:{calls[k - 1]}", f"{which} {kind}@{k}: {out}"
            outcomes.setdefault(kind, {})[k] = out
    ALL_OUTPUT.extend(printed)
    text = "\n".join(printed)
    assert not [s for s in secrets_seen if s and s in text], "a secret access key appeared in keyturn's output"
    RESULTS.setdefault(which, {}).update(outcomes)
    _write()
