"""IAM's eventual consistency at the wire: a proxy that, for a few seconds after CreateAccessKey,
leaves the new key out of ListAccessKeys and refuses it at STS. No step may fail, and no message
may advise cancelling, because a read lagged a write: the function's four steps back to back on a
first and on a second rotation, and `keyturn rotate` twice in a row."""

from __future__ import annotations

import json
import subprocess

from conftest import ALL_OUTPUT
from faultproxy import FaultProxy
from harness import base_env
from test_cli import managed_secret
from test_rotation_function import STEPS, key_statuses, start_rotation, value, whoami

STS_LAG = 1.5  # STS refuses a new key this long
LIST_LAG = 5.0  # ListAccessKeys leaves it out this long: past the end of its own rotation


def _check(moto, user, secret_id, before, secrets_seen):
    current = value(moto, secret_id, "AWSCURRENT")
    secrets_seen.add(current["SecretAccessKey"])
    assert current["AccessKeyId"] != before["AccessKeyId"]
    assert whoami(moto, current["AccessKeyId"], current["SecretAccessKey"]).endswith(f":user/{user}")
    assert value(moto, secret_id, "AWSPREVIOUS")["AccessKeyId"] == before["AccessKeyId"]
    assert set(key_statuses(moto, user)) == {before["AccessKeyId"], current["AccessKeyId"]}
    return current


def test_the_functions_steps_back_to_back_under_iam_lag(moto, function_factory, secrets_seen):
    user, secret_id, first = managed_secret(moto, secrets_seen, "lagfn")
    proxy = FaultProxy(moto.endpoint, lag=STS_LAG, list_lag=LIST_LAG)
    try:
        fn = function_factory(AWS_ENDPOINT_URL=proxy.endpoint)
        before = first
        for rotation in ("first", "second"):
            token = start_rotation(moto, secret_id)
            for step in STEPS:
                ok, body = fn.step(step, secret_id, token)
                assert ok, f"{rotation} rotation, {step}: {body}\n{fn.output()}"
            before = _check(moto, user, secret_id, before, secrets_seen)
        assert proxy.refused > 0, "STS never refused a new key: the lag was not played"
        assert proxy.hidden > 0, "ListAccessKeys never left a new key out: the lag was not played"
        assert "cancel" not in fn.output().lower()
    finally:
        proxy.close()


def test_keyturn_rotate_twice_in_a_row_under_iam_lag(moto, keyturn_binary, secrets_seen):
    user, secret_id, before = managed_secret(moto, secrets_seen, "lagcli")
    proxy = FaultProxy(moto.endpoint, lag=STS_LAG, list_lag=LIST_LAG)
    try:
        env = dict(base_env(moto.endpoint, *moto.admin), AWS_ENDPOINT_URL=proxy.endpoint)
        for attempt in ("first", "second"):
            proc = subprocess.run([str(keyturn_binary), "--output", "json", "rotate", secret_id], env=env, capture_output=True, text=True, timeout=180)
            ALL_OUTPUT.append(proc.stdout + proc.stderr)
            assert proc.returncode == 0, f"{attempt}: {proc.stdout}\n{proc.stderr}"
            assert json.loads(proc.stdout)[0]["outcome"] == "rotated"
            before = _check(moto, user, secret_id, before, secrets_seen)
        assert proxy.refused > 0 and proxy.hidden > 0, (proxy.refused, proxy.hidden)
    finally:
        proxy.close()
