"""The CLI's first hour (issue 15, errors): each way of getting the set-up wrong gets a message that
names the thing and what to do, with exit code 2, and changes nothing."""

from __future__ import annotations

import json
import subprocess

from harness import base_env, free_port
from test_rotation_function import key_statuses, make_user, unique


def run(binary, env, *args):
    return subprocess.run([str(binary), *args], capture_output=True, text=True, env=env, timeout=120)


def test_absent_credentials_say_so(moto, keyturn_binary):
    env = base_env(moto.endpoint, "unused", "unused")
    del env["AWS_ACCESS_KEY_ID"], env["AWS_SECRET_ACCESS_KEY"]
    proc = run(keyturn_binary, env, "status", "keyturn/anything")
    assert proc.returncode == 2, proc
    assert "no AWS credentials found" in proc.stderr and "--profile" in proc.stderr, proc.stderr
    assert "dispatch failure" not in proc.stderr


def test_a_named_profile_wins_over_the_environment_and_an_unknown_one_is_named(moto, keyturn_binary, tmp_path):
    config = tmp_path / "config"
    config.write_text(f"[profile ops]\nregion = us-east-1\naws_access_key_id = {moto.admin[0]}\naws_secret_access_key = {moto.admin[1]}\n")
    env = base_env(moto.endpoint, "AKIAWRONGWRONGWRONG0", "wrong" * 8)  # rejected if used
    env["AWS_CONFIG_FILE"] = str(config)
    unknown = run(keyturn_binary, env, "--profile", "nosuch", "audit")
    assert unknown.returncode == 2 and "profile nosuch was not found" in unknown.stderr, unknown.stderr
    used = run(keyturn_binary, env, "--profile", "ops", "--output", "json", "audit", "--fail-on", "overdue")
    assert used.returncode == 0, used.stderr
    assert "keys" in json.loads(used.stdout), "the audit ran with the profile's credentials"


def test_an_unreachable_endpoint_is_named_as_such(moto, keyturn_binary):
    env = base_env(f"http://127.0.0.1:{free_port()}", *moto.admin)
    proc = run(keyturn_binary, env, "status", "keyturn/anything")
    assert proc.returncode == 2
    assert "could not connect to the AWS endpoint" in proc.stderr and "--endpoint-url" in proc.stderr, proc.stderr
    assert proc.stderr.count("could not connect") == 1, "the cause is said once"


def test_a_missing_secret_is_not_found_not_empty(moto, keyturn_binary):
    proc = run(keyturn_binary, base_env(moto.endpoint, *moto.admin), "credential-process", "--secret-id", "nosuch/secret")
    assert proc.returncode == 2
    assert "nosuch/secret" in proc.stderr and "can't find the specified secret" in proc.stderr, proc.stderr
    assert "has no AWSCURRENT value" not in proc.stderr and ".;" not in proc.stderr


def test_a_bare_rotate_names_its_choices(moto, keyturn_binary):
    proc = run(keyturn_binary, base_env(moto.endpoint, *moto.admin), "rotate")
    assert proc.returncode == 2 and "--all" in proc.stderr and "--due" in proc.stderr, proc.stderr


def test_enroll_whose_schedule_fails_says_what_exists_and_a_rerun_finishes(moto, keyturn, secrets_seen):
    user = unique("app8")
    moto.client("iam").create_user(UserName=user)
    bad = "arn:aws:lambda:us-east-1:123456789012:function:no-such-function"
    failed = keyturn("enroll", user, "--rotation-lambda", bad, check=False)
    secret = f"keyturn/{user}"
    assert failed.returncode == 2, failed
    assert secret in failed.stderr and "holds user" in failed.stderr and f"enroll --adopt {secret}" in failed.stderr, failed.stderr
    current = json.loads(moto.client("secretsmanager").get_secret_value(SecretId=secret)["SecretString"])
    secrets_seen.add(current["SecretAccessKey"])
    again = json.loads(keyturn("--output", "json", "enroll", user).stdout)
    assert again["outcome"] == "already-enrolled" and again["keyId"] == current["AccessKeyId"], again
    assert list(key_statuses(moto, user)) == [current["AccessKeyId"]], "one key, the secret's"


def test_status_of_a_value_that_is_not_json_names_the_problem(moto, keyturn, secrets_seen):
    user = unique("nj")
    make_user(moto, user, secrets_seen)
    secret = unique("keyturn/nj")
    moto.client("secretsmanager").create_secret(Name=secret, SecretString="not json", Tags=[{"Key": "keyturn:user", "Value": user}])
    shown = keyturn("status", secret, check=False)
    assert shown.returncode == 1, shown
    assert "problems none" not in shown.stdout and "not JSON" in shown.stdout, shown.stdout


def test_verbose_shows_the_sdks_account_and_no_secret(moto, keyturn, secrets_seen):
    user = unique("verbose")
    key = make_user(moto, user, secrets_seen)
    secret = unique("keyturn/verbose")
    moto.client("secretsmanager").create_secret(
        Name=secret, SecretString=json.dumps({"UserName": user, "AccessKeyId": key["AccessKeyId"], "SecretAccessKey": key["SecretAccessKey"]})
    )
    proc = keyturn("--verbose", "rotate", secret)
    new = json.loads(moto.client("secretsmanager").get_secret_value(SecretId=secret, VersionStage="AWSCURRENT")["SecretString"])
    secrets_seen.add(new["SecretAccessKey"])  # the fixture searches all output for it at teardown
    assert "aws_smithy_runtime" in proc.stderr and "CreateAccessKey" in proc.stderr, proc.stderr[-2000:]
    assert new["SecretAccessKey"] not in proc.stderr + proc.stdout
    quiet = keyturn("status", secret)
    assert quiet.stderr == "", quiet.stderr


def test_status_after_a_local_rotation_says_when_the_key_last_changed(moto, keyturn, secrets_seen):
    user = unique("last")
    key = make_user(moto, user, secrets_seen)
    secret = unique("keyturn/last")
    moto.client("secretsmanager").create_secret(
        Name=secret, SecretString=json.dumps({"UserName": user, "AccessKeyId": key["AccessKeyId"], "SecretAccessKey": key["SecretAccessKey"]})
    )
    before = keyturn("status", secret, check=False).stdout
    assert "last rotated never" in before, before
    keyturn("rotate", secret)
    secrets_seen.add(json.loads(moto.client("secretsmanager").get_secret_value(SecretId=secret, VersionStage="AWSCURRENT")["SecretString"])["SecretAccessKey"])
    after = keyturn("status", secret, check=False).stdout
    assert "(cut-over by keyturn)" in after and "last -" not in after, after
