"""Throttling: `keyturn rotate --all` over 200 secrets at once while the proxy throttles the first
attempt of a quarter of all calls (chosen by a hash of the SDK's invocation id, so not by timing).
The SDK's bounded retries must absorb every one: all rotations complete, and none runs twice (one
CreateAccessKey per secret, each user left with exactly the old and the new key)."""

from __future__ import annotations

import json
import os
import subprocess
import time

from conftest import ALL_OUTPUT
from faultproxy import FaultProxy
from harness import base_env
from test_cli import managed_secret
from test_rotation_function import key_statuses, value

SECRETS = 200
SHARE = 0.25
CONCURRENCY = 32


def test_two_hundred_rotations_under_throttling_all_complete_once(moto, keyturn_binary, secrets_seen):
    made = [managed_secret(moto, secrets_seen, "thr") for _ in range(SECRETS)]
    proxy = FaultProxy(moto.endpoint, throttle_share=SHARE)
    env = dict(base_env(moto.endpoint, *moto.admin), AWS_ENDPOINT_URL=proxy.endpoint)
    try:
        started = time.monotonic()
        proc = subprocess.run(
            [str(keyturn_binary), "--output", "json", "rotate", "--all", "--concurrency", str(CONCURRENCY)],
            env=env, capture_output=True, text=True, timeout=900,
        )
        elapsed = time.monotonic() - started
        ALL_OUTPUT.append(proc.stdout + proc.stderr)
        results = json.loads(proc.stdout)
        failed = [r for r in results if r.get("outcome") != "rotated"]
        assert proc.returncode == 0 and not failed, f"{len(failed)} failed: {failed[:3]}\n{proc.stderr[-2000:]}"
        assert len(results) == SECRETS
        creates = proxy.calls.count("CreateAccessKey")
        assert creates == SECRETS, f"{creates} CreateAccessKey calls for {SECRETS} secrets"
        assert proxy.throttled > 0.15 * len(proxy.calls), (proxy.throttled, len(proxy.calls))
        for user, secret_id, old in made:
            current = value(moto, secret_id, "AWSCURRENT")
            secrets_seen.add(current["SecretAccessKey"])
            assert value(moto, secret_id, "AWSPREVIOUS")["AccessKeyId"] == old["AccessKeyId"]
            assert key_statuses(moto, user) == {old["AccessKeyId"]: "Active", current["AccessKeyId"]: "Active"}
        figures = {
            "secrets": SECRETS, "concurrency": CONCURRENCY, "share": SHARE, "calls": len(proxy.calls),
            "attempts": proxy.attempts, "throttled": proxy.throttled, "seconds": round(elapsed, 1),
        }
        print(f"throttling run: {figures}")
        if os.environ.get("KEYTURN_THROTTLE_FIGURES"):
            with open(os.environ["KEYTURN_THROTTLE_FIGURES"], "w") as f:
                json.dump(figures, f)
    finally:
        proxy.close()
