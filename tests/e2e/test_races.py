"""Races between keyturn's own runs on one secret: two `keyturn rotate`, and a rotation against a
sweep. A gate in the proxy holds each run's ListAccessKeys until both have made it, so the two runs
decide on the same state and race for real. Nothing is written to coordinate them: IAM's two-key
limit lets only one rotation make a key (the proxy passes CreateAccessKey to moto one call at a
time, since moto's check of that limit is not atomic and IAM's is), and the sweep and a rotation
retire the same key for the same reasons. The secret and the user's keys must stay consistent, and a loser makes no key."""

from __future__ import annotations

import json
import subprocess
import time

from conftest import ALL_OUTPUT
from faultproxy import FaultProxy
from harness import base_env
from test_cli import managed_secret
from test_rotation_function import key_statuses, value, whoami

TRIALS = 4


def race(moto, keyturn_binary, *argvs):
    proxy = FaultProxy(moto.endpoint, gate=("Action=ListAccessKeys", len(argvs)), serialize={"CreateAccessKey"})
    env = dict(base_env(moto.endpoint, *moto.admin), AWS_ENDPOINT_URL=proxy.endpoint)
    try:
        procs = [
            subprocess.Popen([str(keyturn_binary), "--output", "json", *argv], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            for argv in argvs
        ]
        results = []
        for p in procs:
            out, err = p.communicate(timeout=120)
            ALL_OUTPUT.append(out + err)
            results.append((p.returncode, json.loads(out)[0], err))
        assert proxy.gated == len(argvs), f"the runs did not meet at ListAccessKeys: {proxy.gated}"
        return results
    finally:
        proxy.close()


def test_two_rotations_of_one_secret_exactly_one_proceeds(moto, keyturn_binary, secrets_seen):
    for trial in range(TRIALS):
        user, secret_id, old = managed_secret(moto, secrets_seen, "race")
        results = race(moto, keyturn_binary, ["rotate", secret_id], ["rotate", secret_id])
        won = [r for r in results if r[0] == 0]
        lost = [r for r in results if r[0] != 0]
        assert len(won) == 1 and len(lost) == 1, f"trial {trial}: {results}"
        assert won[0][1]["outcome"] == "rotated"
        # The loser says another rotation is under way, never IAM's bare "quota" message.
        assert lost[0][1]["errorType"] in ("AnotherRun", "RotationInFlight", "KeyInUse"), lost[0]
        assert secret_id in lost[0][1]["error"]
        if lost[0][1]["errorType"] == "AnotherRun":
            assert "another rotation of user" in lost[0][1]["error"] and "let that run finish" in lost[0][1]["error"], lost[0]
            assert "quota" not in lost[0][1]["error"], lost[0]
        current = value(moto, secret_id, "AWSCURRENT")
        secrets_seen.add(current["SecretAccessKey"])
        assert current["AccessKeyId"] == won[0][1]["newKeyId"]
        assert value(moto, secret_id, "AWSPREVIOUS")["AccessKeyId"] == old["AccessKeyId"]
        assert key_statuses(moto, user) == {old["AccessKeyId"]: "Active", current["AccessKeyId"]: "Active"}, "the loser made no key"
        assert whoami(moto, current["AccessKeyId"], current["SecretAccessKey"]).endswith(f":user/{user}")


def test_a_rotation_racing_a_sweep_both_retire_the_same_key_consistently(moto, keyturn_binary, keyturn, secrets_seen):
    for trial in range(TRIALS):
        # Rotated once: AWSPREVIOUS holds A, unused since. The sweep (grace 0) deactivates A; the
        # rotation needs A's slot and deletes it. Either order ends the same.
        user, secret_id, a = managed_secret(moto, secrets_seen, "racesweep")
        keyturn("rotate", secret_id)
        b = value(moto, secret_id, "AWSCURRENT")
        secrets_seen.add(b["SecretAccessKey"])
        time.sleep(0.05)
        rotate, sweep = race(moto, keyturn_binary, ["rotate", secret_id], ["sweep", "--grace-days", "0", secret_id])
        assert rotate[0] == 0 and rotate[1]["outcome"] == "rotated", f"trial {trial}: {rotate}"
        # The sweep deactivated A, or found on its re-read that the rotation had deleted it.
        assert sweep[0] == 0 and sweep[1]["action"] in ("deactivated", "changed"), f"trial {trial}: {sweep}"
        current = value(moto, secret_id, "AWSCURRENT")
        secrets_seen.add(current["SecretAccessKey"])
        assert current["AccessKeyId"] == rotate[1]["newKeyId"] and rotate[1]["deletedKeyId"] == a["AccessKeyId"]
        assert key_statuses(moto, user) == {b["AccessKeyId"]: "Active", current["AccessKeyId"]: "Active"}
        assert value(moto, secret_id, "AWSPREVIOUS")["AccessKeyId"] == b["AccessKeyId"]
        assert whoami(moto, current["AccessKeyId"], current["SecretAccessKey"]).endswith(f":user/{user}")
