"""Account-wide CLI runs (--all, --due, sweep of every managed secret) on a moto server of their own,
and the options every command shares."""

import json
import time
from datetime import datetime, timedelta, timezone

from test_cli import managed_secret
from test_rotation_function import key_statuses, make_user, unique, value


def days_ago(n: float) -> str:
    return (datetime.now(timezone.utc) - timedelta(days=n)).strftime("%Y-%m-%dT%H:%M:%SZ")


def test_rotate_all_and_due_pick_the_right_secrets(moto, keyturn, secrets_seen):
    sm = moto.client("secretsmanager")
    overdue = managed_secret(moto, secrets_seen, "overdue", tags=[{"Key": "keyturn:enrolled-at", "Value": days_ago(40)}])
    fresh = managed_secret(moto, secrets_seen, "fresh", tags=[{"Key": "keyturn:enrolled-at", "Value": days_ago(1)}])
    weekly = managed_secret(moto, secrets_seen, "weekly", tags=[{"Key": "keyturn:enrolled-at", "Value": days_ago(8)},
                                                                 {"Key": "keyturn:rotation-days", "Value": "7"}])
    six = managed_secret(moto, secrets_seen, "six", tags=[{"Key": "keyturn:enrolled-at", "Value": days_ago(6)}])
    # Not managed: never touched by --all or --due.
    loner_user, loner = unique("loner"), unique("keyturn/loner")
    k = make_user(moto, loner_user, secrets_seen)
    sm.create_secret(Name=loner, SecretString=json.dumps({"UserName": loner_user, "AccessKeyId": k["AccessKeyId"], "SecretAccessKey": k["SecretAccessKey"]}))

    due = {r["secret"]: r["outcome"] for r in json.loads(keyturn("--output", "json", "rotate", "--due").stdout)}
    assert due == {overdue[1]: "rotated", fresh[1]: "not-due", weekly[1]: "rotated", six[1]: "not-due"}
    # The default period comes from KEYTURN_ROTATION_DAYS too; the rotated ones are now fresh.
    again = {r["secret"]: r["outcome"] for r in json.loads(
        keyturn("--output", "json", "rotate", "--due", env_extra={"KEYTURN_ROTATION_DAYS": "5"}).stdout)}
    assert again == {overdue[1]: "not-due", fresh[1]: "not-due", weekly[1]: "not-due", six[1]: "rotated"}

    everything = json.loads(keyturn("--output", "json", "rotate", "--all", "--concurrency", "2").stdout)
    assert sorted(r["secret"] for r in everything) == sorted(s for _, s, _ in (overdue, fresh, weekly, six))
    assert all(r["outcome"] == "rotated" for r in everything)
    assert key_statuses(moto, loner_user) == {k["AccessKeyId"]: "Active"}
    for _, secret_id, _ in (overdue, fresh, weekly, six):
        secrets_seen.add(value(moto, secret_id, "AWSCURRENT")["SecretAccessKey"])


def test_sweep_policy_from_the_environment_and_per_secret_tags(moto, keyturn, secrets_seen):
    user_a, secret_a, old_a = managed_secret(moto, secrets_seen, "swa")
    user_b, secret_b, old_b = managed_secret(moto, secrets_seen, "swb", tags=[{"Key": "keyturn:grace-days", "Value": "30"}])
    keyturn("rotate", secret_a, secret_b)
    for s in (secret_a, secret_b):
        secrets_seen.add(value(moto, s, "AWSCURRENT")["SecretAccessKey"])
    out = {r["secret"]: r["action"] for r in json.loads(
        keyturn("--output", "json", "sweep", secret_a, secret_b, env_extra={"KEYTURN_GRACE_DAYS": "0"}).stdout)}
    assert out == {secret_a: "deactivated", secret_b: "waiting"}, "the tag's 30 days beat the environment's 0"
    assert key_statuses(moto, user_a)[old_a["AccessKeyId"]] == "Inactive"
    assert key_statuses(moto, user_b)[old_b["AccessKeyId"]] == "Active"
    table = keyturn("sweep", "--dry-run", secret_b).stdout
    assert "stays active until" in table and "1 secret(s), 0 failed" in table


def test_region_is_required_and_taken_from_the_flag(moto, keyturn, secrets_seen):
    _, secret_id, _ = managed_secret(moto, secrets_seen, "region")
    no_region = keyturn("status", secret_id, check=False, env_extra={"AWS_REGION": "", "AWS_DEFAULT_REGION": ""})
    assert no_region.returncode == 2 and "no AWS region" in no_region.stderr
    flagged = keyturn("--region", "us-east-1", "--output", "json", "status", secret_id, env_extra={"AWS_REGION": "", "AWS_DEFAULT_REGION": ""})
    assert json.loads(flagged.stdout)["secret"] == secret_id


def test_credential_process_expiration_follows_refresh_minutes(moto, keyturn, secrets_seen):
    _, secret_id, key = managed_secret(moto, secrets_seen, "expiry")
    def left(*args):
        out = json.loads(keyturn("credential-process", "--secret-id", secret_id, *args).stdout)
        expires = datetime.strptime(out["Expiration"][:19], "%Y-%m-%dT%H:%M:%S").replace(tzinfo=timezone.utc)
        return out, (expires - datetime.now(timezone.utc)).total_seconds()

    out, seconds = left("--refresh-minutes", "25")
    assert 25 * 60 - 60 < seconds <= 25 * 60, seconds
    # The default lies well outside botocore's 15-minute refresh window.
    _, seconds = left()
    assert 60 * 60 - 60 < seconds <= 60 * 60, seconds
    assert out["AccessKeyId"] == key["AccessKeyId"]
    missing = keyturn("credential-process", "--secret-id", "keyturn/none", check=False)
    assert missing.returncode == 2 and "keyturn/none" in missing.stderr
