"""The keyturn CLI against moto with authentication on; outcomes checked with boto3 and the AWS CLI."""

import json
import shutil
import subprocess
import sys
import time

import pytest

from harness import base_env
from test_rotation_function import key_statuses, make_user, start_rotation, unique, value, whoami


def managed_secret(moto, secrets_seen, prefix="cli", tags=()):
    user, secret_id = unique(prefix), unique(f"keyturn/{prefix}")
    key = make_user(moto, user, secrets_seen, policy='{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"iam:ListUsers","Resource":"*"}]}')
    moto.client("secretsmanager").create_secret(
        Name=secret_id,
        SecretString=json.dumps({"UserName": user, "AccessKeyId": key["AccessKeyId"], "SecretAccessKey": key["SecretAccessKey"]}),
        Tags=[{"Key": "keyturn:managed", "Value": "true"}, *tags],
    )
    return user, secret_id, key


def test_rotate_makes_a_new_current_key_and_keeps_the_old_one(moto, keyturn, secrets_seen):
    user, secret_id, old = managed_secret(moto, secrets_seen)
    out = json.loads(keyturn("--output", "json", "rotate", secret_id).stdout)
    assert out[0]["outcome"] == "rotated" and out[0]["secret"] == secret_id
    current = value(moto, secret_id, "AWSCURRENT")
    secrets_seen.add(current["SecretAccessKey"])
    assert current["AccessKeyId"] == out[0]["newKeyId"] != old["AccessKeyId"]
    assert whoami(moto, current["AccessKeyId"], current["SecretAccessKey"]).endswith(f":user/{user}")
    assert value(moto, secret_id, "AWSPREVIOUS")["AccessKeyId"] == old["AccessKeyId"]
    assert key_statuses(moto, user) == {old["AccessKeyId"]: "Active", current["AccessKeyId"]: "Active"}


def test_dry_run_changes_nothing(moto, keyturn, secrets_seen):
    user, secret_id, old = managed_secret(moto, secrets_seen)
    before = moto.client("secretsmanager").describe_secret(SecretId=secret_id)["VersionIdsToStages"]
    proc = keyturn("rotate", "--dry-run", secret_id)
    assert "create a key" in proc.stdout and "would" in proc.stdout
    assert moto.client("secretsmanager").describe_secret(SecretId=secret_id)["VersionIdsToStages"] == before
    assert key_statuses(moto, user) == {old["AccessKeyId"]: "Active"}


def test_a_rotation_in_flight_is_refused_then_resumed_or_cancelled(moto, keyturn, function_factory, secrets_seen):
    # Interrupted rotations: Secrets Manager created the pending version and createSecret ran, then
    # nothing more (the function was stopped).
    fn = function_factory()
    user_a, secret_a, old_a = managed_secret(moto, secrets_seen)
    user_b, secret_b, old_b = managed_secret(moto, secrets_seen)
    for secret in (secret_a, secret_b):
        token = start_rotation(moto, secret)
        ok, body = fn.step("createSecret", secret, token)
        assert ok, body
        secrets_seen.add(value(moto, secret, "AWSPENDING")["SecretAccessKey"])

    refused = keyturn("--output", "json", "rotate", secret_a, secret_b, check=False)
    assert refused.returncode == 1
    assert [r["errorType"] for r in json.loads(refused.stdout)] == ["RotationInFlight", "RotationInFlight"]
    assert len(key_statuses(moto, user_a)) == 2 and value(moto, secret_a, "AWSCURRENT")["AccessKeyId"] == old_a["AccessKeyId"]

    resumed = json.loads(keyturn("--output", "json", "rotate", "--resume", secret_a).stdout)[0]
    assert resumed["outcome"] == "resumed"
    current = value(moto, secret_a, "AWSCURRENT")
    assert current["AccessKeyId"] != old_a["AccessKeyId"]
    assert whoami(moto, current["AccessKeyId"], current["SecretAccessKey"]).endswith(f":user/{user_a}")

    pending_b = value(moto, secret_b, "AWSPENDING")["AccessKeyId"]
    cancelled = json.loads(keyturn("--output", "json", "rotate", "--cancel", secret_b).stdout)[0]
    assert cancelled["outcome"] == "cancelled" and cancelled["deletedKeyId"] == pending_b
    assert key_statuses(moto, user_b) == {old_b["AccessKeyId"]: "Active"}
    stages = moto.client("secretsmanager").describe_secret(SecretId=secret_b)["VersionIdsToStages"]
    assert not any("AWSPENDING" in labels for labels in stages.values())
    # After the cancel, a plain rotation goes through.
    assert json.loads(keyturn("--output", "json", "rotate", secret_b).stdout)[0]["outcome"] == "rotated"


def test_bulk_rotation_of_fifty_secrets_concurrently(moto, keyturn, secrets_seen):
    batch = [managed_secret(moto, secrets_seen, prefix="bulk", tags=[{"Key": "batch", "Value": "b50"}]) for _ in range(50)]
    proc = keyturn("--output", "json", "rotate", "--concurrency", "16", *[s for _, s, _ in batch])
    results = json.loads(proc.stdout)
    assert [r["outcome"] for r in results] == ["rotated"] * 50
    for (user, secret_id, old), r in zip(batch, results):
        assert r["secret"] == secret_id
        current = value(moto, secret_id, "AWSCURRENT")
        assert current["AccessKeyId"] == r["newKeyId"] != old["AccessKeyId"]
        assert len(key_statuses(moto, user)) == 2, "exactly one new key each"


def test_one_failure_does_not_stop_a_bulk_run(moto, keyturn, secrets_seen):
    _, good, _ = managed_secret(moto, secrets_seen)
    proc = keyturn("--output", "json", "rotate", "keyturn/does-not-exist", good, check=False)
    assert proc.returncode == 1
    results = json.loads(proc.stdout)
    assert results[0]["outcome"] == "failed" and results[0]["errorType"] == "NotFound"
    assert results[1]["outcome"] == "rotated"


def test_status_shows_versions_keys_and_problems(moto, keyturn, secrets_seen):
    user, secret_id, old = managed_secret(moto, secrets_seen)
    keyturn("rotate", secret_id)
    clean = json.loads(keyturn("--output", "json", "status", secret_id).stdout)
    assert clean["problems"] == [] and clean["user"] == user
    assert {k["keyId"] for k in clean["keys"]} == set(key_statuses(moto, user))
    labels = {l for v in clean["versions"] for l in v["labels"]}
    assert {"AWSCURRENT", "AWSPREVIOUS"} <= labels
    # An unmanaged key and a stuck rotation are reported, with exit 1.
    current = value(moto, secret_id, "AWSCURRENT")
    moto.client("iam").delete_access_key(UserName=user, AccessKeyId=old["AccessKeyId"])
    extra = moto.client("iam").create_access_key(UserName=user)["AccessKey"]
    secrets_seen.add(extra["SecretAccessKey"])
    start_rotation(moto, secret_id)
    proc = keyturn("status", secret_id, check=False)
    assert proc.returncode == 1
    assert "in flight" in proc.stdout and f"key {extra['AccessKeyId']} is held by no version" in proc.stdout
    assert f"holds key {old['AccessKeyId']}, which no longer exists" in proc.stdout
    assert current["AccessKeyId"] in proc.stdout


def test_sweep_deactivates_an_unused_previous_key_and_reports_one_in_use(moto, keyturn, secrets_seen):
    user_a, secret_a, old_a = managed_secret(moto, secrets_seen)
    user_b, secret_b, old_b = managed_secret(moto, secrets_seen)
    keyturn("rotate", secret_a, secret_b)
    time.sleep(1.1)
    whoami(moto, old_b["AccessKeyId"], old_b["SecretAccessKey"])  # b's old key is still in use

    in_use = keyturn("status", secret_b, check=False)
    assert in_use.returncode == 1 and f"previous key {old_b['AccessKeyId']} is still in use" in in_use.stdout
    waiting = json.loads(keyturn("--output", "json", "sweep", secret_a, secret_b).stdout)
    assert [r["action"] for r in waiting] == ["waiting", "in-use"]
    plan = json.loads(keyturn("--output", "json", "sweep", "--dry-run", "--grace-days", "0", secret_a).stdout)
    assert plan[0]["action"] == "deactivated" and plan[0]["dryRun"] is True
    assert key_statuses(moto, user_a)[old_a["AccessKeyId"]] == "Active"

    done = json.loads(keyturn("--output", "json", "sweep", "--grace-days", "0", secret_a, secret_b).stdout)
    assert [r["action"] for r in done] == ["deactivated", "in-use"]
    assert key_statuses(moto, user_a)[old_a["AccessKeyId"]] == "Inactive"
    assert key_statuses(moto, user_b)[old_b["AccessKeyId"]] == "Active", "a key in use is never deactivated"
    strict = keyturn("sweep", "--grace-days", "0", "--in-use", "fail", secret_b, check=False)
    assert strict.returncode == 1

    # With the same grace period as the deactivation: a deactivation recorded before the grace
    # period in force ended is not believed (a forged one could be), and the wait starts over.
    deleted = json.loads(keyturn("--output", "json", "sweep", "--grace-days", "0", "--delete-after-days", "0", secret_a).stdout)
    assert deleted[0]["action"] == "deleted"
    assert old_a["AccessKeyId"] not in key_statuses(moto, user_a)


def test_require_switch_keeps_the_previous_key_until_the_new_key_is_used(moto, keyturn, secrets_seen):
    user, secret_id, old = managed_secret(moto, secrets_seen, tags=[{"Key": "keyturn:require-switch", "Value": "true"}])
    keyturn("rotate", secret_id)
    new = value(moto, secret_id, "AWSCURRENT")
    secrets_seen.add(new["SecretAccessKey"])
    # Grace over, the old key unused since the cut-over, but nothing has used the new key yet.
    waiting = json.loads(keyturn("--output", "json", "sweep", "--grace-days", "0", secret_id).stdout)
    assert waiting[0]["action"] == "awaiting-switch" and waiting[0]["failed"] is False, waiting
    assert new["AccessKeyId"] in waiting[0]["detail"], waiting
    assert key_statuses(moto, user)[old["AccessKeyId"]] == "Active"
    switch = json.loads(keyturn("--output", "json", "status", secret_id).stdout)["switch"]
    assert switch["currentKeyId"] == new["AccessKeyId"] and switch["currentUsedSinceCutover"] is False, switch
    assert switch["previousKeyId"] == old["AccessKeyId"], switch
    assert "no evidence yet" in keyturn("status", secret_id).stdout
    # testSecret's own STS call with the new key is no evidence, nor is another STS call within
    # minutes of the rotation (it could be testSecret's).
    whoami(moto, new["AccessKeyId"], new["SecretAccessKey"])
    switch = json.loads(keyturn("--output", "json", "status", secret_id).stdout)["switch"]
    assert switch["currentUsedSinceCutover"] is False, switch
    # The flag asks the same of a secret without the tag; a consumer then uses the new key (moto
    # records the use even of a call the key may not make).
    time.sleep(1.1)
    with pytest.raises(Exception):
        moto.client("secretsmanager", new["AccessKeyId"], new["SecretAccessKey"]).list_secrets()
    switch = json.loads(keyturn("--output", "json", "status", secret_id).stdout)["switch"]
    assert switch["currentUsedSinceCutover"] is True and switch["currentLastUsed"]["service"] == "secretsmanager", switch
    assert "consumers moved" in keyturn("status", secret_id).stdout
    audited = json.loads(keyturn("--output", "json", "audit", check=False).stdout)["keys"]
    row = next(r for r in audited if r["keyId"] == new["AccessKeyId"])
    assert row["label"] == "AWSCURRENT" and row["usedSinceCutover"] is True, row
    done = json.loads(keyturn("--output", "json", "sweep", "--grace-days", "0", "--require-switch", secret_id).stdout)
    assert done[0]["action"] == "deactivated", done
    assert key_statuses(moto, user)[old["AccessKeyId"]] == "Inactive"


@pytest.mark.skipif(shutil.which("aws") is None, reason="the AWS CLI is not installed")
def test_credential_process_feeds_the_aws_cli_before_and_after_a_rotation(moto, keyturn, keyturn_binary, secrets_seen, tmp_path):
    user, secret_id, _ = managed_secret(moto, secrets_seen)
    config, credentials = tmp_path / "config", tmp_path / "credentials"
    credentials.write_text(f"[admin]\naws_access_key_id = {moto.admin[0]}\naws_secret_access_key = {moto.admin[1]}\n")
    config.write_text(
        f"[profile admin]\nregion = us-east-1\n"
        f"[profile app]\nregion = us-east-1\n"
        f"credential_process = {keyturn_binary} --profile admin --endpoint-url {moto.endpoint} credential-process --secret-id {secret_id}\n"
    )
    env = base_env(moto.endpoint, "unused", "unused")
    for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        env.pop(k)
    env.update(AWS_CONFIG_FILE=str(config), AWS_SHARED_CREDENTIALS_FILE=str(credentials))

    def caller():
        proc = subprocess.run(["aws", "--endpoint-url", moto.endpoint, "--profile", "app", "--output", "json", "sts", "get-caller-identity"],
                              capture_output=True, text=True, env=env, timeout=120)
        assert proc.returncode == 0, proc.stderr
        return json.loads(proc.stdout)["Arn"]

    assert caller().endswith(f":user/{user}")
    out = json.loads(keyturn("credential-process", "--secret-id", secret_id).stdout)
    assert out["Version"] == 1 and out["AccessKeyId"] == value(moto, secret_id, "AWSCURRENT")["AccessKeyId"] and "Expiration" in out
    keyturn("rotate", secret_id)
    new = value(moto, secret_id, "AWSCURRENT")
    secrets_seen.add(new["SecretAccessKey"])
    moto.client("iam").update_access_key(UserName=user, AccessKeyId=value(moto, secret_id, "AWSPREVIOUS")["AccessKeyId"], Status="Inactive")
    assert caller().endswith(f":user/{user}"), "a fresh process picks up the new key; the old one is off"


def counting_profile(moto, keyturn_binary, secret_id, tmp_path, *extra):
    """An AWS config whose profile `app` runs keyturn through a wrapper that counts its runs."""
    tmp_path.mkdir()
    runs = tmp_path / "runs"
    wrapper = tmp_path / "counting-keyturn"
    wrapper.write_text(f'#!/bin/sh\necho run >> "{runs}"\nexec "{keyturn_binary}" "$@"\n')
    wrapper.chmod(0o755)
    config, credentials = tmp_path / "config", tmp_path / "credentials"
    credentials.write_text(f"[admin]\naws_access_key_id = {moto.admin[0]}\naws_secret_access_key = {moto.admin[1]}\n")
    config.write_text(
        f"[profile admin]\nregion = us-east-1\n"
        f"[profile app]\nregion = us-east-1\n"
        f"credential_process = {wrapper} --profile admin --endpoint-url {moto.endpoint} credential-process --secret-id {secret_id} {' '.join(extra)}\n"
    )
    env = base_env(moto.endpoint, "unused", "unused")
    for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        env.pop(k)
    env.update(AWS_CONFIG_FILE=str(config), AWS_SHARED_CREDENTIALS_FILE=str(credentials), AWS_PROFILE="app")
    return env, lambda: len(runs.read_text().splitlines()) if runs.exists() else 0


BOTO3_TWENTY_CALLS = """
import boto3, os
sts = boto3.Session().client("sts", endpoint_url=os.environ["AWS_ENDPOINT_URL"])
arns = {sts.get_caller_identity()["Arn"] for _ in range(20)}
print(len(arns), arns.pop())
"""


@pytest.mark.skipif(shutil.which("aws") is None, reason="the AWS CLI is not installed")
def test_credential_process_runs_once_for_twenty_calls_under_boto3_and_the_aws_cli(moto, keyturn, keyturn_binary, secrets_seen, tmp_path):
    user, secret_id = unique("refresh"), unique("keyturn/refresh")
    key = make_user(moto, user, secrets_seen, policy='{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"secretsmanager:ListSecrets","Resource":"*"}]}')
    for n in range(21):  # this secret and enough others for twenty pages of one
        tags = [{"Key": "keyturn:managed", "Value": "true"}] if n == 0 else []
        moto.client("secretsmanager").create_secret(
            Name=secret_id if n == 0 else unique("page/refresh"), Tags=tags,
            SecretString=json.dumps({"UserName": user, "AccessKeyId": key["AccessKeyId"], "SecretAccessKey": key["SecretAccessKey"]} if n == 0 else {"page": n}))
    env, runs = counting_profile(moto, keyturn_binary, secret_id, tmp_path / "boto3")
    proc = subprocess.run([sys.executable, "-c", BOTO3_TWENTY_CALLS], capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["1", f"arn:aws:iam::123456789012:user/{user}"], proc.stdout
    assert runs() == 1, f"boto3 ran keyturn {runs()} times for 20 calls"

    env, runs = counting_profile(moto, keyturn_binary, secret_id, tmp_path / "cli")
    proc = subprocess.run(["aws", "--output", "json", "--debug", "secretsmanager", "list-secrets", "--page-size", "1", "--max-items", "20"],
                          capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert len(json.loads(proc.stdout)["SecretList"]) == 20
    calls = proc.stderr.count("Making request for OperationModel(name=ListSecrets)")
    assert calls == 20, f"the AWS CLI made {calls} ListSecrets calls"
    assert runs() == 1, f"the AWS CLI ran keyturn {runs()} times for 20 calls"

    # A value inside botocore's refresh window is refused: it would run keyturn on every call.
    short = keyturn("credential-process", "--secret-id", secret_id, "--refresh-minutes", "15", check=False)
    assert short.returncode == 2 and "20..=720" in short.stderr, short.stderr


def test_enroll_creates_a_managed_secret_with_a_working_key(moto, keyturn, secrets_seen):
    user = unique("enrolled")
    moto.client("iam").create_user(UserName=user)
    out = json.loads(keyturn("--output", "json", "enroll", user, "--tag", "team=payments").stdout)
    assert out["outcome"] == "enrolled" and out["secret"] == f"keyturn/{user}" and out["scheduled"] is False
    current = value(moto, out["secret"], "AWSCURRENT")
    secrets_seen.add(current["SecretAccessKey"])
    assert list(current) == ["UserName", "AccessKeyId", "SecretAccessKey"] and current["AccessKeyId"] == out["keyId"]
    assert whoami(moto, current["AccessKeyId"], current["SecretAccessKey"]).endswith(f":user/{user}")
    tags = {t["Key"]: t["Value"] for t in moto.client("secretsmanager").describe_secret(SecretId=out["secret"])["Tags"]}
    enrolled_at = tags.pop("keyturn:enrolled-at")
    assert tags == {"keyturn:managed": "true", "keyturn:user": user, "keyturn:current-key": out["keyId"], "team": "payments"}
    assert enrolled_at.startswith(time.strftime("%Y-%m-%dT", time.gmtime()))
    # The enrolled secret rotates.
    assert json.loads(keyturn("--output", "json", "rotate", out["secret"]).stdout)[0]["outcome"] == "rotated"


def test_enroll_refuses_a_user_with_two_keys_and_schedules_with_a_function(moto, keyturn, secrets_seen):
    user = unique("full")
    make_user(moto, user, secrets_seen)
    make_user_key = moto.client("iam").create_access_key(UserName=user)["AccessKey"]
    secrets_seen.add(make_user_key["SecretAccessKey"])
    refused = keyturn("enroll", user, check=False)
    assert refused.returncode == 2 and "already has two access keys" in refused.stderr
    assert len(key_statuses(moto, user)) == 2

    other = unique("scheduled")
    moto.client("iam").create_user(UserName=other)
    out = json.loads(keyturn("--output", "json", "enroll", other, "--secret-name", f"apps/{other}", "--rotate-every", "45",
                             "--rotation-lambda", moto.placeholder_function()).stdout)
    secrets_seen.add(value(moto, f"apps/{other}", "AWSCURRENT")["SecretAccessKey"])
    d = moto.client("secretsmanager").describe_secret(SecretId=f"apps/{other}")
    assert out["scheduled"] is True and d["RotationEnabled"] is True
    assert d["RotationRules"]["AutomaticallyAfterDays"] == 45 and d["RotationLambdaARN"] == moto.placeholder_function()
    assert value(moto, f"apps/{other}", "AWSCURRENT")["AccessKeyId"] == out["keyId"], "not rotated at once"


def test_enroll_adopt_takes_over_hand_made_secrets_in_each_shape(moto, keyturn, secrets_seen):
    sm = moto.client("secretsmanager")
    cases = []
    for shape in ("camel", "lower"):
        user, secret_id = unique(shape), unique(f"legacy/{shape}")
        key = make_user(moto, user, secrets_seen)
        body = ({"accessKey": key["AccessKeyId"], "secretKey": key["SecretAccessKey"], "owner": "x"} if shape == "camel"
                else {"username": user, "accesskey": key["AccessKeyId"], "secretkey": key["SecretAccessKey"]})
        sm.create_secret(Name=secret_id, SecretString=json.dumps(body))
        cases.append((shape, user, secret_id, body))
    # The camel shape names no user: --user supplies it (kept as the keyturn:user tag).
    no_user = keyturn("enroll", "--adopt", cases[0][2], check=False)
    assert no_user.returncode == 2 and "keyturn:user" in no_user.stderr
    for shape, user, secret_id, body in cases:
        extra = ["--user", user] if shape == "camel" else []
        out = json.loads(keyturn("--output", "json", "enroll", "--adopt", secret_id, *extra).stdout)
        assert out["outcome"] == "adopted" and out["user"] == user
        assert json.loads(keyturn("--output", "json", "rotate", secret_id).stdout)[0]["outcome"] == "rotated"
        after = value(moto, secret_id, "AWSCURRENT")
        secrets_seen.add(after.get("secretKey") or after.get("secretkey"))
        assert list(after) == list(body), f"{shape}: the shape is kept"
    # A secret whose key is not the user's is refused.
    intruder = make_user(moto, unique("intruder"), secrets_seen)
    victim, bad_secret = unique("victim"), unique("legacy/bad")
    moto.client("iam").create_user(UserName=victim)
    sm.create_secret(Name=bad_secret, SecretString=json.dumps({"UserName": victim, "AccessKeyId": intruder["AccessKeyId"], "SecretAccessKey": intruder["SecretAccessKey"]}))
    refused = keyturn("enroll", "--adopt", bad_secret, check=False)
    assert refused.returncode == 2 and "is not one of user" in refused.stderr


def test_bulk_runs_show_progress_on_a_terminal(moto, keyturn_binary, secrets_seen):
    secrets = [managed_secret(moto, secrets_seen, prefix="tty")[1] for _ in range(3)]
    env = base_env(moto.endpoint, *moto.admin)
    command = " ".join([str(keyturn_binary), "rotate", *secrets])
    # `script` gives the CLI a pseudo-terminal, as a person running it would have.
    proc = subprocess.run(["script", "-qec", command, "/dev/null"], capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 0, proc.stdout
    assert "3/3" in proc.stdout and "[##############################] 3/3" in proc.stdout
    assert "3 secret(s), 0 failed" in proc.stdout
    for s in secrets:
        secrets_seen.add(value(moto, s, "AWSCURRENT")["SecretAccessKey"])
    piped = subprocess.run([str(keyturn_binary), "rotate", *secrets], capture_output=True, text=True, env=env, timeout=120)
    assert "/3" not in piped.stderr, "no progress bar when stderr is not a terminal"
