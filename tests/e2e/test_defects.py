"""The defects a new user, a QA run and a review met, each as they met it, against moto with
authentication on: each must now be refused (or survived) with nothing lost or made."""

from __future__ import annotations

import json
import subprocess
import time
from datetime import datetime, timedelta, timezone

from conftest import ALL_OUTPUT
from faultproxy import FaultProxy
from harness import base_env
from test_cli import managed_secret
from test_rotation_function import key_statuses, make_user, start_rotation, unique, value, whoami


def test_a_second_secret_for_a_user_is_refused_and_the_first_keeps_its_key(moto, keyturn, secrets_seen):
    user = unique("app4")
    moto.client("iam").create_user(UserName=user)
    first = json.loads(keyturn("--output", "json", "enroll", user).stdout)
    key = value(moto, first["secret"], "AWSCURRENT")
    secrets_seen.add(key["SecretAccessKey"])
    second = keyturn("enroll", user, "--secret-name", f"other/{user}", check=False)
    assert second.returncode == 2 and "one user, one managed secret" in second.stderr, second.stderr
    assert f"keyturn/{user}" in second.stderr
    assert key_statuses(moto, user) == {key["AccessKeyId"]: "Active"}, "no second key was made"
    # A hand-made second secret tagged for the same user: a rotation of either is refused.
    moto.client("secretsmanager").create_secret(
        Name=f"other/{user}", SecretString=json.dumps({"accessKey": key["AccessKeyId"], "secretKey": key["SecretAccessKey"]}),
        Tags=[{"Key": "keyturn:user", "Value": user}, {"Key": "keyturn:managed", "Value": "true"}],
    )
    refused = keyturn("--output", "json", "rotate", f"other/{user}", first["secret"], check=False)
    assert refused.returncode == 1
    assert [r["errorType"] for r in json.loads(refused.stdout)] == ["UserHasOtherSecret", "UserHasOtherSecret"]
    assert key_statuses(moto, user) == {key["AccessKeyId"]: "Active"}
    assert whoami(moto, key["AccessKeyId"], key["SecretAccessKey"]).endswith(f":user/{user}")


def test_a_secret_holding_another_users_key_is_not_rotated(moto, keyturn, secrets_seen):
    app1, app2 = unique("owner"), unique("named")
    key1 = make_user(moto, app1, secrets_seen)
    moto.client("iam").create_user(UserName=app2)
    secret_id = unique("keyturn/mixed")
    moto.client("secretsmanager").create_secret(
        Name=secret_id, SecretString=json.dumps({"UserName": app2, "AccessKeyId": key1["AccessKeyId"], "SecretAccessKey": key1["SecretAccessKey"]}),
    )
    for args in (["rotate", "--dry-run", secret_id], ["rotate", secret_id]):
        proc = keyturn("--output", "json", *args, check=False)
        assert proc.returncode == 1, proc.stdout
        out = json.loads(proc.stdout)[0]
        assert out["errorType"] == "NotUsersKey" and key1["AccessKeyId"] in out["error"], out
    assert key_statuses(moto, app2) == {}, "no key was made for the user the value names"
    assert value(moto, secret_id, "AWSCURRENT")["AccessKeyId"] == key1["AccessKeyId"]


def test_a_refused_rotate_writes_nothing_and_its_retry_runs_at_once(moto, keyturn, secrets_seen):
    user, secret_id, old = managed_secret(moto, secrets_seen, "retry")
    keyturn("rotate", secret_id)
    # The previous key is still in use: the next rotation must refuse to delete it.
    whoami(moto, old["AccessKeyId"], old["SecretAccessKey"])  # a consumer uses it
    sm = moto.client("secretsmanager")
    # Ids and labels: moto moves a version's LastAccessedDate whenever its value is read.
    def versions():
        return [(v["VersionId"], sorted(v["VersionStages"])) for v in sm.list_secret_version_ids(SecretId=secret_id)["Versions"]]

    versions_before = versions()
    plan = keyturn("--output", "json", "rotate", "--dry-run", secret_id, check=False)
    assert plan.returncode == 1 and json.loads(plan.stdout)[0]["errorType"] == "KeyInUse"
    refused = keyturn("--output", "json", "rotate", secret_id, check=False)
    assert refused.returncode == 1 and json.loads(refused.stdout)[0]["errorType"] == "KeyInUse"
    assert versions() == versions_before, "no version was written"
    moto.client("iam").delete_access_key(UserName=user, AccessKeyId=old["AccessKeyId"])
    again = json.loads(keyturn("--output", "json", "rotate", secret_id).stdout)[0]
    assert again["outcome"] == "rotated"
    secrets_seen.add(value(moto, secret_id, "AWSCURRENT")["SecretAccessKey"])


def test_a_dry_run_names_the_key_it_would_delete_and_refuses_a_value_that_is_not_json(moto, keyturn, secrets_seen):
    user, secret_id, old = managed_secret(moto, secrets_seen, "plan")
    keyturn("rotate", secret_id)
    secrets_seen.add(value(moto, secret_id, "AWSCURRENT")["SecretAccessKey"])
    plan = json.loads(keyturn("--output", "json", "rotate", "--dry-run", secret_id).stdout)[0]
    assert plan["outcome"] == "planned" and plan["deletedKeyId"] == old["AccessKeyId"], plan
    assert old["AccessKeyId"] in plan["detail"] and "would delete" in plan["detail"]
    assert old["AccessKeyId"] in key_statuses(moto, user)
    broken = unique("keyturn/broken")
    moto.client("secretsmanager").create_secret(Name=broken, SecretString="not json", Tags=[{"Key": "keyturn:user", "Value": user}])
    proc = keyturn("--output", "json", "rotate", "--dry-run", broken, check=False)
    assert proc.returncode == 1 and json.loads(proc.stdout)[0]["errorType"] == "BadSecretValue"
    versions = moto.client("secretsmanager").list_secret_version_ids(SecretId=broken)["Versions"]
    assert len(versions) == 1, "nothing written to a secret keyturn cannot rotate"
    # A second secret tagged for the user: later unnamed sweeps would rightly block the first.
    moto.client("secretsmanager").delete_secret(SecretId=broken, ForceDeleteWithoutRecovery=True)


def test_managed_means_the_value_true(moto, keyturn, secrets_seen):
    user, secret_id, old = managed_secret(moto, secrets_seen, "notmanaged", tags=[{"Key": "keyturn:managed-by", "Value": "team"}])
    moto.client("secretsmanager").tag_resource(SecretId=secret_id, Tags=[{"Key": "keyturn:managed", "Value": "false"}])
    out = json.loads(keyturn("--output", "json", "sweep", "--dry-run").stdout)
    assert secret_id not in [r["secret"] for r in out]


def test_enroll_whose_create_secret_outcome_is_unknown_looks_before_deleting(moto, keyturn_binary, secrets_seen):
    user = unique("unknown")
    moto.client("iam").create_user(UserName=user)
    # Calls: DescribeSecret, ListSecrets, ListAccessKeys, CreateAccessKey, CreateSecret (5th):
    # every attempt of CreateSecret is forwarded, then its connection reset.
    proxy = FaultProxy(moto.endpoint, "reset", 5, every=True)
    try:
        env = dict(base_env(moto.endpoint, *moto.admin), AWS_ENDPOINT_URL=proxy.endpoint)
        proc = subprocess.run([str(keyturn_binary), "--output", "json", "enroll", user], env=env, capture_output=True, text=True, timeout=180)
        ALL_OUTPUT.append(proc.stdout + proc.stderr)
        assert proxy.injected and proxy.injected.endswith("CreateSecret"), proxy.calls
    finally:
        proxy.close()
    current = value(moto, f"keyturn/{user}", "AWSCURRENT")
    secrets_seen.add(current["SecretAccessKey"])
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["keyId"] == current["AccessKeyId"]
    assert key_statuses(moto, user) == {current["AccessKeyId"]: "Active"}, "the key the secret holds was kept"
    assert whoami(moto, current["AccessKeyId"], current["SecretAccessKey"]).endswith(f":user/{user}")


def _rotated(moto, keyturn, secrets_seen, prefix, tags=()):
    user, secret_id, a = managed_secret(moto, secrets_seen, prefix, tags=tags)
    keyturn("rotate", secret_id)
    b = value(moto, secret_id, "AWSCURRENT")
    secrets_seen.add(b["SecretAccessKey"])
    return user, secret_id, a, b


def test_a_refused_rotate_of_a_value_that_is_not_json_writes_nothing(moto, keyturn, secrets_seen):
    user = unique("nojson")
    make_user(moto, user, secrets_seen)
    broken = unique("keyturn/nojson")
    sm = moto.client("secretsmanager")
    sm.create_secret(Name=broken, SecretString="not json", Tags=[{"Key": "keyturn:user", "Value": user}])
    proc = keyturn("--output", "json", "rotate", broken, check=False)
    assert proc.returncode == 1 and json.loads(proc.stdout)[0]["errorType"] == "BadSecretValue"
    assert len(sm.list_secret_version_ids(SecretId=broken)["Versions"]) == 1, "no version written"
    status = keyturn("status", broken, check=False)
    assert status.returncode == 1 and "cannot be read" in status.stdout, status.stdout


def test_cancel_deletes_only_the_key_its_rotation_made(moto, keyturn, secrets_seen):
    user, secret_id, own = managed_secret(moto, secrets_seen, "cancelforged")
    victim = unique("victim")
    victims = make_user(moto, victim, secrets_seen)
    # A pending version that names another user and holds that user's only key.
    token = start_rotation(moto, secret_id)
    moto.client("secretsmanager").put_secret_value(
        SecretId=secret_id, ClientRequestToken=token, VersionStages=["AWSPENDING"],
        SecretString=json.dumps({"UserName": victim, "AccessKeyId": victims["AccessKeyId"], "SecretAccessKey": victims["SecretAccessKey"]}),
    )
    out = json.loads(keyturn("--output", "json", "rotate", "--cancel", secret_id).stdout)[0]
    assert out["outcome"] == "cancelled" and out["deletedKeyId"] is None, out
    assert f"not one of user {user}'s keys" in out["detail"], out
    assert key_statuses(moto, victim) == {victims["AccessKeyId"]: "Active"}
    assert whoami(moto, victims["AccessKeyId"], victims["SecretAccessKey"]).endswith(f":user/{victim}")
    assert key_statuses(moto, user) == {own["AccessKeyId"]: "Active"}


def test_the_sweep_keeps_the_previous_key_while_the_current_one_is_broken(moto, keyturn, secrets_seen):
    user, secret_id, a, b = _rotated(moto, keyturn, secrets_seen, "brokencur")
    iam = moto.client("iam")
    iam.update_access_key(UserName=user, AccessKeyId=b["AccessKeyId"], Status="Inactive")
    for _ in range(2):
        proc = keyturn("--output", "json", "sweep", "--grace-days", "0", "--delete-after-days", "0", secret_id, check=False)
        row = json.loads(proc.stdout)[0]
        assert proc.returncode == 1 and row["action"] == "blocked" and row["keyId"] == a["AccessKeyId"], row
    assert key_statuses(moto, user)[a["AccessKeyId"]] == "Active", "the last working key is kept"
    status = keyturn("status", secret_id, check=False)
    assert status.returncode == 1 and f"AWSCURRENT's key {b['AccessKeyId']} is inactive" in status.stdout
    iam.delete_access_key(UserName=user, AccessKeyId=b["AccessKeyId"])
    row = json.loads(keyturn("--output", "json", "sweep", "--grace-days", "0", secret_id, check=False).stdout)[0]
    assert row["action"] == "blocked" and "is not one of user" in row["detail"], row
    assert key_statuses(moto, user) == {a["AccessKeyId"]: "Active"}


def test_a_stale_deactivation_record_does_not_delete_a_key_used_since(moto, keyturn, secrets_seen):
    user, secret_id, a, b = _rotated(moto, keyturn, secrets_seen, "stale")
    assert json.loads(keyturn("--output", "json", "sweep", "--grace-days", "0", secret_id).stdout)[0]["action"] == "deactivated"
    iam = moto.client("iam")
    time.sleep(1.1)
    iam.update_access_key(UserName=user, AccessKeyId=a["AccessKeyId"], Status="Active")
    whoami(moto, a["AccessKeyId"], a["SecretAccessKey"])  # a program uses it again
    iam.update_access_key(UserName=user, AccessKeyId=a["AccessKeyId"], Status="Inactive")
    row = json.loads(keyturn("--output", "json", "sweep", "--delete-after-days", "0", secret_id).stdout)[0]
    assert row["action"] == "waiting", row
    assert a["AccessKeyId"] in key_statuses(moto, user), "not deleted on a stale record"


def test_the_sweep_clears_awsprevious_from_a_key_already_gone(moto, keyturn, secrets_seen):
    user, secret_id, a, b = _rotated(moto, keyturn, secrets_seen, "gone")
    moto.client("iam").delete_access_key(UserName=user, AccessKeyId=a["AccessKeyId"])
    row = json.loads(keyturn("--output", "json", "sweep", secret_id).stdout)[0]
    assert row["action"] == "cleared" and row["keyId"] == a["AccessKeyId"], row
    stages = moto.client("secretsmanager").describe_secret(SecretId=secret_id)["VersionIdsToStages"]
    assert not any("AWSPREVIOUS" in labels for labels in stages.values())
    assert keyturn("status", secret_id).returncode == 0


def test_a_full_sweep_cycle_writes_no_secret_value(moto, keyturn_binary, keyturn, secrets_seen):
    user, secret_id, a, b = _rotated(moto, keyturn, secrets_seen, "cycle")
    sm = moto.client("secretsmanager")
    versions = len(sm.list_secret_version_ids(SecretId=secret_id, IncludeDeprecated=True)["Versions"])
    proxy = FaultProxy(moto.endpoint)
    try:
        env = dict(base_env(moto.endpoint, *moto.admin), AWS_ENDPOINT_URL=proxy.endpoint)
        for args in (["sweep", "--grace-days", "0", secret_id], ["sweep", "--grace-days", "0", "--delete-after-days", "0", secret_id]):
            proc = subprocess.run([str(keyturn_binary), "--output", "json", *args], env=env, capture_output=True, text=True, timeout=120)
            ALL_OUTPUT.append(proc.stdout + proc.stderr)
            assert proc.returncode == 0, proc.stderr
        calls = list(proxy.calls)
    finally:
        proxy.close()
    assert "DeleteAccessKey" in calls and "UpdateAccessKey" in calls, calls
    assert not {"PutSecretValue", "UpdateSecret"} & set(calls), calls
    assert len(sm.list_secret_version_ids(SecretId=secret_id, IncludeDeprecated=True)["Versions"]) == versions
    assert key_statuses(moto, user) == {b["AccessKeyId"]: "Active"}


def test_the_audit_survives_a_managed_secret_whose_user_is_gone_and_honours_its_grace_tag(moto, keyturn, secrets_seen):
    gone_user, gone_secret, gone_key = managed_secret(moto, secrets_seen, "ghost")
    iam = moto.client("iam")
    iam.delete_access_key(UserName=gone_user, AccessKeyId=gone_key["AccessKeyId"])
    iam.delete_user_policy(UserName=gone_user, PolicyName="p")
    iam.delete_user(UserName=gone_user)
    user, secret_id, a, b = _rotated(moto, keyturn, secrets_seen, "graceful", tags=[{"Key": "keyturn:grace-days", "Value": "30"}])
    plain_user, _, plain_a, _ = _rotated(moto, keyturn, secrets_seen, "plain")
    in_ten_days = (datetime.now(timezone.utc) + timedelta(days=10)).strftime("%Y-%m-%d")
    proc = keyturn("--output", "json", "audit", "--as-of", in_ten_days, check=False)
    assert proc.returncode in (0, 1), proc.stderr
    # The secret whose user is gone is reported, not left out (issue 24): its key is missing.
    gone = [k for k in json.loads(proc.stdout)["keys"] if k.get("secret") == gone_secret]
    assert gone and gone[0]["finding"] == "current-key-missing" and gone_user in gone[0]["error"], gone
    keys = {k["keyId"]: k for k in json.loads(proc.stdout)["keys"] if k["user"] in (user, plain_user)}
    assert "stale-previous" in keys[plain_a["AccessKeyId"]]["findings"], "the default grace is 7 days"
    assert "stale-previous" not in keys[a["AccessKeyId"]]["findings"], "the secret's 30 grace days apply"


def test_keyturns_own_calls_with_a_master_key_do_not_count_as_a_consumers_use(moto, keyturn, secrets_seen):
    # Master secret M: an administrator's key that other secrets' rotations sign IAM calls with.
    admin, master, k_old = managed_secret(moto, secrets_seen, "master")
    moto.client("iam").put_user_policy(UserName=admin, PolicyName="p", PolicyDocument=json.dumps(
        {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "iam:*", "Resource": "*"}]}))
    keyturn("rotate", master)
    secrets_seen.add(value(moto, master, "AWSCURRENT")["SecretAccessKey"])
    # A rotation of another secret that read M's AWSCURRENT just before M's cut-over goes on signing
    # its IAM calls with the old key for a few seconds: that is keyturn's use, not a consumer's.
    moto.client("iam", k_old["AccessKeyId"], k_old["SecretAccessKey"]).list_access_keys(UserName=admin)
    row = json.loads(keyturn("--output", "json", "sweep", "--grace-days", "0", master).stdout)[0]
    assert row["action"] == "deactivated" and row["keyId"] == k_old["AccessKeyId"], row
    # A consumer's call (any other service) does count.
    user, other, o_old = managed_secret(moto, secrets_seen, "consumer")
    keyturn("rotate", other)
    secrets_seen.add(value(moto, other, "AWSCURRENT")["SecretAccessKey"])
    whoami(moto, o_old["AccessKeyId"], o_old["SecretAccessKey"])
    row = json.loads(keyturn("--output", "json", "sweep", "--grace-days", "0", other).stdout)[0]
    assert row["action"] == "in-use", row
