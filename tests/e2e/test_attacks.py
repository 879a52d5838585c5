"""The security review's attacks, replayed against moto with authentication on (issue 14). Each
attacker can write and tag secrets under the prefix and nothing else; each test shows keyturn's
refusal and, read back with boto3, that no key was created, deactivated or deleted. Where both
apply, the CLI and the rotation function are attacked alike. This module has its own emulator, so
`rotate --all` and unnamed sweeps see only the secrets made here."""

from __future__ import annotations

import json
import subprocess
from datetime import datetime, timedelta, timezone

import pytest

from conftest import ALL_OUTPUT
from harness import allow, base_env
from test_rotation_function import key_statuses, make_user, start_rotation, unique, value

ADMIN_POLICY = allow("iam:*", "sts:*", "secretsmanager:*")
SECRETS_ONLY = allow("secretsmanager:*", "sts:GetCallerIdentity")


def cli(moto, binary, key, *args, env_extra=None):
    """keyturn run by `key`'s holder (an operator), output kept for the suite's secret hygiene."""
    env = base_env(moto.endpoint, key["AccessKeyId"], key["SecretAccessKey"])
    env.update(env_extra or {})
    proc = subprocess.run([str(binary), *args], capture_output=True, text=True, env=env, timeout=300)
    ALL_OUTPUT.append(proc.stdout + proc.stderr)
    return proc


def json_rows(proc) -> list[dict]:
    return json.loads(proc.stdout)


def last_used(moto, key_id: str):
    return moto.client("iam").get_access_key_last_used(AccessKeyId=key_id)["AccessKeyLastUsed"].get("LastUsedDate")


def iam_keys(moto, *users) -> dict:
    return {u: key_statuses(moto, u) for u in users}


def pending_key(moto, secret_id: str):
    sm = moto.client("secretsmanager")
    stages = sm.describe_secret(SecretId=secret_id).get("VersionIdsToStages", {})
    for version, labels in stages.items():
        if "AWSPENDING" in labels:
            try:
                text = sm.get_secret_value(SecretId=secret_id, VersionId=version).get("SecretString") or "{}"
            except Exception:
                return None
            return json.loads(text).get("AccessKeyId") or json.loads(text).get("accesskey")
    return None


@pytest.fixture(autouse=True)
def forget_secrets(moto):
    """After each test, its secrets go (their keys stay in the suite's hygiene set), so that an
    unnamed sweep or `rotate --all` in a later test sees only that test's secrets."""
    sm = moto.client("secretsmanager")
    before = {s["ARN"] for p in sm.get_paginator("list_secrets").paginate() for s in p["SecretList"]}
    yield
    from conftest import harvest_secrets

    harvest_secrets(moto)
    for page in sm.get_paginator("list_secrets").paginate():
        for secret in page["SecretList"]:
            if secret["ARN"] not in before:
                sm.delete_secret(SecretId=secret["ARN"], ForceDeleteWithoutRecovery=True)


@pytest.fixture
def operator(moto, secrets_seen):
    """Someone who may use Secrets Manager but has no IAM rights at all."""
    key = make_user(moto, unique("operator"), secrets_seen, policy=SECRETS_ONLY)
    with pytest.raises(Exception, match="AccessDenied"):
        moto.client("iam", key["AccessKeyId"], key["SecretAccessKey"]).list_users()
    return key


@pytest.fixture
def boss(moto, secrets_seen):
    """An administrator whose key sits in a secret (a master for other secrets, or just stored)."""
    user = unique("boss")
    key = make_user(moto, user, secrets_seen, policy=ADMIN_POLICY)
    secret = unique("keyturn/boss-admin")
    moto.client("secretsmanager").create_secret(
        Name=secret, SecretString=json.dumps({"UserName": user, "AccessKeyId": key["AccessKeyId"], "SecretAccessKey": key["SecretAccessKey"]})
    )
    assert last_used(moto, key["AccessKeyId"]) is None
    return {"user": user, "key": key, "secret": secret}


def borrowing_secret(moto, boss) -> str:
    """The attack: a secret naming boss, whose masterarn names boss's secret."""
    evil = unique("keyturn/evil")
    moto.client("secretsmanager").create_secret(
        Name=evil,
        SecretString=json.dumps({"masterarn": boss["secret"]}),
        Tags=[{"Key": "keyturn:user", "Value": boss["user"]}, {"Key": "keyturn:managed", "Value": "true"}],
    )
    return evil


def forged_previous(moto, user: str, current_id: str, previous_id: str, extra: dict, tags=()) -> str:
    """A secret whose AWSPREVIOUS holds `previous_id` and AWSCURRENT `current_id` (both of `user`,
    with made-up secret keys), with a cut-over record a month old and zero-day policy tags."""
    sm = moto.client("secretsmanager")
    name = unique("keyturn/forged")
    shaped = lambda key_id: json.dumps({"UserName": user, "AccessKeyId": key_id, "SecretAccessKey": "x" * 40, **extra})
    sm.create_secret(Name=name, SecretString=shaped(previous_id))
    version = sm.put_secret_value(SecretId=name, SecretString=shaped(current_id))["VersionId"]
    month_ago = (datetime.now(timezone.utc) - timedelta(days=30)).strftime("%Y-%m-%dT%H:%M:%SZ")
    sm.tag_resource(
        SecretId=name,
        Tags=[
            {"Key": "keyturn:managed", "Value": "true"},
            {"Key": "keyturn:cutover-version", "Value": version},
            {"Key": "keyturn:cutover-at", "Value": month_ago},
            {"Key": "keyturn:grace-days", "Value": "0"},
            {"Key": "keyturn:delete-after-days", "Value": "0"},
            *tags,
        ],
    )
    assert value(moto, name, "AWSPREVIOUS")["AccessKeyId"] == previous_id
    return name


def test_masterarn_cannot_borrow_a_key_from_the_cli(moto, keyturn_binary, operator, boss, secrets_seen):
    evil = borrowing_secret(moto, boss)
    before = iam_keys(moto, boss["user"])
    for args in (["rotate", evil], ["rotate", "--all"]):
        proc = cli(moto, keyturn_binary, operator, "--output", "json", *args)
        rows = [r for r in json_rows(proc) if r["secret"] == evil]
        assert proc.returncode == 1 and rows and rows[0]["errorType"] == "MasterNotAllowed", proc.stdout + proc.stderr
        assert evil in rows[0]["error"] and boss["secret"] in rows[0]["error"] and "--master-secret" in rows[0]["error"]
    # The sweep through the same path: a victim's two keys, the borrowed key to retire one.
    victim = unique("victim")
    k1 = make_user(moto, victim, secrets_seen)
    k2 = moto.client("iam").create_access_key(UserName=victim)["AccessKey"]
    secrets_seen.add(k2["SecretAccessKey"])
    sweepable = forged_previous(moto, victim, k1["AccessKeyId"], k2["AccessKeyId"], {"masterarn": boss["secret"]})
    proc = cli(moto, keyturn_binary, operator, "--output", "json", "sweep", "--grace-days", "0", "--delete-after-days", "0", sweepable)
    row = json_rows(proc)[0]
    assert proc.returncode == 1 and row["errorType"] == "MasterNotAllowed", row
    assert key_statuses(moto, victim) == {k1["AccessKeyId"]: "Active", k2["AccessKeyId"]: "Active"}
    assert iam_keys(moto, boss["user"]) == before, "no key made for boss"
    assert last_used(moto, boss["key"]["AccessKeyId"]) is None, "boss's key signed nothing"
    assert pending_key(moto, evil) is None


def test_masterarn_cannot_borrow_a_key_from_the_function(moto, function_factory, secrets_seen, boss):
    fn_key = make_user(moto, unique("fnrole"), secrets_seen, policy=SECRETS_ONLY)
    evil = borrowing_secret(moto, boss)
    before = iam_keys(moto, boss["user"])
    fn = function_factory(fn_key["AccessKeyId"], fn_key["SecretAccessKey"])
    ok, body = fn.step("createSecret", evil, start_rotation(moto, evil))
    assert not ok and body["errorType"] == "MasterNotAllowed", body
    assert evil in body["errorMessage"] and "MasterSecretArns" in body["errorMessage"]
    assert iam_keys(moto, boss["user"]) == before
    assert last_used(moto, boss["key"]["AccessKeyId"]) is None
    assert pending_key(moto, evil) is None


def test_an_allow_listed_master_signs_but_only_for_users_under_the_user_path(moto, keyturn_binary, operator, boss, secrets_seen):
    """The allow-list is a real switch (the refusals above are not a broken masterarn), and the
    user path still bounds what an allowed master's key may touch."""
    app = unique("app")
    app_key = make_user(moto, app, secrets_seen)
    moto.client("iam").update_user(UserName=app, NewPath="/apps/")
    app_secret = unique("keyturn/app")
    moto.client("secretsmanager").create_secret(
        Name=app_secret,
        SecretString=json.dumps({"UserName": app, "AccessKeyId": app_key["AccessKeyId"], "SecretAccessKey": app_key["SecretAccessKey"], "masterarn": boss["secret"]}),
    )
    evil = borrowing_secret(moto, boss)
    master = ["--master-secret", boss["secret"], "--user-path", "/apps/"]
    refused = cli(moto, keyturn_binary, operator, "--output", "json", *master, "rotate", evil)
    row = json_rows(refused)[0]
    assert row["errorType"] == "UserOutsidePath" and boss["user"] in row["error"] and "/apps/" in row["error"], row
    assert len(key_statuses(moto, boss["user"])) == 1

    done = cli(moto, keyturn_binary, operator, "--output", "json", *master, "rotate", app_secret)
    assert json_rows(done)[0]["outcome"] == "rotated", done.stdout + done.stderr
    secrets_seen.add(value(moto, app_secret, "AWSCURRENT")["SecretAccessKey"])
    assert len(key_statuses(moto, app)) == 2
    assert last_used(moto, boss["key"]["AccessKeyId"]) is not None, "the allowed master signed the IAM calls"


def claimed_user(moto, keyturn, secrets_seen) -> dict:
    """alice, managed by keyturn/alice-…, rotated once (so the secret carries keyturn:user)."""
    user, secret = unique("alice"), unique("keyturn/alice")
    key = make_user(moto, user, secrets_seen)
    moto.client("secretsmanager").create_secret(
        Name=secret,
        SecretString=json.dumps({"UserName": user, "AccessKeyId": key["AccessKeyId"], "SecretAccessKey": key["SecretAccessKey"]}),
        Tags=[{"Key": "keyturn:managed", "Value": "true"}],
    )
    keyturn("rotate", secret)
    current = value(moto, secret, "AWSCURRENT")
    secrets_seen.add(current["SecretAccessKey"])
    tags = {t["Key"]: t["Value"] for t in moto.client("secretsmanager").describe_secret(SecretId=secret)["Tags"]}
    assert tags["keyturn:user"] == user
    return {"user": user, "secret": secret, "old": key["AccessKeyId"], "current": current["AccessKeyId"]}


def test_a_second_secret_cannot_claim_a_managed_user(moto, keyturn, keyturn_binary, function_factory, operator, secrets_seen):
    alice = claimed_user(moto, keyturn, secrets_seen)
    claim = unique("keyturn/claim")
    moto.client("secretsmanager").create_secret(
        Name=claim, SecretString="{}", Tags=[{"Key": "keyturn:user", "Value": alice["user"]}, {"Key": "keyturn:managed", "Value": "true"}]
    )
    before = iam_keys(moto, alice["user"])
    row = json_rows(keyturn("--output", "json", "rotate", claim, check=False))[0]
    assert row["errorType"] == "UserHasOtherSecret" and alice["secret"] in row["error"], row
    ok, body = function_factory().step("createSecret", claim, start_rotation(moto, claim))
    assert not ok and body["errorType"] == "UserHasOtherSecret" and alice["secret"] in body["errorMessage"], body
    assert iam_keys(moto, alice["user"]) == before, "no key minted into the claiming secret"
    assert pending_key(moto, claim) is None


def test_a_forged_history_cannot_make_the_sweep_retire_a_live_key(moto, keyturn, function_factory, secrets_seen):
    """carol's real secret is keyturn/carol-…; the forgery's AWSPREVIOUS holds carol's live
    (current) key, its AWSCURRENT her previous key's id, with a cut-over record a month old and
    keyturn:grace-days=0. Two sweeps (deactivate, then delete) by the CLI and by the function."""
    carol = claimed_user(moto, keyturn, secrets_seen)
    forged = forged_previous(moto, carol["user"], carol["old"], carol["current"], {})
    live = {carol["old"]: "Active", carol["current"]: "Active"}
    assert key_statuses(moto, carol["user"]) == live

    for _ in range(2):
        row = json_rows(keyturn("--output", "json", "sweep", "--grace-days", "0", "--delete-after-days", "0", forged, check=False))[0]
        assert row["action"] == "blocked" and row["failed"] is True and names_the_real_secret(row, carol), row
    # The function's sweep covers carol's real secret too: with the deployment's 7 days it waits.
    fn = function_factory()
    for _ in range(2):
        ok, body = fn.runtime.invoke({"keyturn": "sweep"})
        assert not ok and body["errorType"] == "SweepFailed" and forged in body["errorMessage"], body
    assert key_statuses(moto, carol["user"]) == live, "carol's keys untouched"


def names_the_real_secret(row: dict, victim: dict) -> bool:
    return victim["secret"] in row["detail"] and victim["user"] in row["detail"]


def test_policy_tags_cannot_shorten_the_deployments_grace_period(moto, keyturn, function_factory, secrets_seen):
    dana = claimed_user(moto, keyturn, secrets_seen)
    moto.client("secretsmanager").tag_resource(
        SecretId=dana["secret"], Tags=[{"Key": "keyturn:grace-days", "Value": "0"}, {"Key": "keyturn:in-use", "Value": "report"}]
    )
    row = json_rows(keyturn("--output", "json", "sweep", dana["secret"]))[0]
    assert row["action"] == "waiting", row
    ok, body = function_factory().runtime.invoke({"keyturn": "sweep"})
    assert ok and "deactivated" not in body["outcomes"], body
    assert key_statuses(moto, dana["user"]) == {dana["old"]: "Active", dana["current"]: "Active"}


def test_what_keyturn_selects_by_itself_stays_under_the_prefix(moto, keyturn, function_factory, secrets_seen):
    """Managed-tagged secrets outside keyturn/: one whose user would get a key from rotate --all,
    one whose broken value would fail the daily sweep (and alarm) every day."""
    stray_user = unique("stray")
    stray_key = make_user(moto, stray_user, secrets_seen)
    sm = moto.client("secretsmanager")
    outside = unique("keyturn-prod-admin")
    sm.create_secret(
        Name=outside,
        SecretString=json.dumps({"UserName": stray_user, "AccessKeyId": stray_key["AccessKeyId"], "SecretAccessKey": stray_key["SecretAccessKey"]}),
        Tags=[{"Key": "keyturn:managed", "Value": "true"}],
    )
    broken = unique("legacy/broken")
    sm.create_secret(Name=broken, SecretString="not json", Tags=[{"Key": "keyturn:managed", "Value": "true"}])
    sm.put_secret_value(SecretId=broken, SecretString="still not json")  # an AWSPREVIOUS to sweep

    rotated = keyturn("--output", "json", "rotate", "--all", check=False)
    names = {r["secret"] for r in json_rows(rotated)}
    assert outside not in names and broken not in names
    assert f"skipped {outside}" in rotated.stderr and "outside the prefix keyturn/" in rotated.stderr, rotated.stderr
    assert key_statuses(moto, stray_user) == {stray_key["AccessKeyId"]: "Active"}, "no key for a user outside the scope"
    for r in json_rows(rotated):
        if r.get("outcome") == "rotated":
            secrets_seen.add(value(moto, r["secret"], "AWSCURRENT")["SecretAccessKey"])

    swept = keyturn("--output", "json", "sweep", check=False)
    assert broken not in {r["secret"] for r in json_rows(swept)} and f"skipped {broken}" in swept.stderr
    ok, body = function_factory().runtime.invoke({"keyturn": "sweep"})
    assert ok and body["skipped"] == 2, body

    named = keyturn("--output", "json", "rotate", outside)
    assert json_rows(named)[0]["outcome"] == "rotated", "a secret named explicitly is acted on wherever it is"
    secrets_seen.add(value(moto, outside, "AWSCURRENT")["SecretAccessKey"])
    narrowed = keyturn("--output", "json", "--prefix", "keyturn", "sweep", check=False)
    assert narrowed.returncode == 2 and "must end in '/'" in narrowed.stderr
