"""The second security and chaos review (issue 24), replayed against moto with authentication on,
every outcome read back with boto3. Six cases: a forged cut-over time, a forged deactivation time,
a rollback racing the sweep, a rollback racing a rotation with a sink, cancel and rollback aimed at
another secret's user, and IAM's last-used record lagging behind a use; then the review's smaller
findings. Where both apply, the CLI and the rotation function are shown alike. Races are made real
by a loopback proxy that holds one run's write while the other run completes."""

from __future__ import annotations

import json
import subprocess
import threading
import time
from datetime import datetime, timezone

import pytest

from conftest import ALL_OUTPUT
from faultproxy import FaultProxy
from harness import base_env
from test_attacks import forget_secrets  # noqa: F401  (autouse: each test sees only its secrets)
from test_cli import managed_secret
from test_rotation_function import key_statuses, make_user, start_rotation, unique, value, whoami
from test_sinks import parameter

SETTLE = {"KEYTURN_LAST_USED_SETTLE_SECONDS": "14400"}


def tags_of(moto, secret_id: str) -> dict:
    return {t["Key"]: t["Value"] for t in moto.client("secretsmanager").describe_secret(SecretId=secret_id).get("Tags", [])}


def rows(proc) -> list[dict]:
    return json.loads(proc.stdout)


def rotated(moto, keyturn, secrets_seen, prefix, tags=()):
    """A user and its managed secret, rotated once by the CLI: (user, secret, A, B) with A the
    previous key (AWSPREVIOUS) and B the current one."""
    user, secret_id, a = managed_secret(moto, secrets_seen, prefix, tags=tags)
    keyturn("rotate", secret_id)
    b = value(moto, secret_id, "AWSCURRENT")
    secrets_seen.add(b["SecretAccessKey"])
    return user, secret_id, a, b


def run_through(proxy, keyturn_binary, moto, *argv, env_extra=None):
    """keyturn in the background, its calls through `proxy`."""
    env = dict(base_env(proxy.endpoint, *moto.admin), **(env_extra or {}))
    return subprocess.Popen([str(keyturn_binary), "--output", "json", *argv], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def finished(proc, timeout=120) -> tuple[int, str, str]:
    out, err = proc.communicate(timeout=timeout)
    ALL_OUTPUT.append(out + err)
    return proc.returncode, out, err


# 1. A forged cut-over time cannot delete a key in use.


@pytest.mark.parametrize("forged", ["2099-01-01T00:00:00Z", "now"])
def test_a_forged_cutover_time_cannot_delete_a_key_in_use(moto, keyturn, function_factory, secrets_seen, forged):
    """Two users, each rotated once, each previous key A then used (an STS call). Only one secret's
    keyturn:cutover-at is changed; both the CLI's and the function's next rotation refuse with
    KeyInUse, and A stays."""
    cases = []
    for name in ("forged", "untouched"):
        user, secret_id, a, b = rotated(moto, keyturn, secrets_seen, f"cut{name}")
        time.sleep(1.1)  # the use falls in a later second than the version's creation
        whoami(moto, a["AccessKeyId"], a["SecretAccessKey"])
        cases.append((user, secret_id, a, b))
    when = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ") if forged == "now" else forged
    moto.client("secretsmanager").tag_resource(SecretId=cases[0][1], Tags=[{"Key": "keyturn:cutover-at", "Value": when}])
    fn = function_factory()
    for user, secret_id, a, b in cases:
        row = rows(keyturn("--output", "json", "rotate", secret_id, check=False))[0]
        assert row["errorType"] == "KeyInUse" and a["AccessKeyId"] in row["error"], row
        ok, body = fn.step("createSecret", secret_id, start_rotation(moto, secret_id))
        assert not ok and body["errorType"] == "KeyInUse" and a["AccessKeyId"] in body["errorMessage"], body
        assert key_statuses(moto, user) == {a["AccessKeyId"]: "Active", b["AccessKeyId"]: "Active"}
        assert whoami(moto, a["AccessKeyId"], a["SecretAccessKey"]).endswith(f":user/{user}")
    if forged != "now":
        status = keyturn("--output", "json", "status", cases[0][1], check=False)
        problems = json.loads(status.stdout)["problems"]
        assert any("cutover-at=2099" in p and "not believed" in p for p in problems), problems


# 2. A forged deactivation time keeps the delete-after wait.


def test_a_forged_deactivation_time_cannot_skip_the_wait_before_deleting(moto, keyturn, function_factory, secrets_seen):
    user, secret_id, a, b = rotated(moto, keyturn, secrets_seen, "deact")
    row = rows(keyturn("--output", "json", "sweep", "--grace-days", "0", secret_id))[0]
    assert row["action"] == "deactivated" and row["keyId"] == a["AccessKeyId"], row
    recorded = tags_of(moto, secret_id)["keyturn:deactivated-at"]
    moto.client("secretsmanager").tag_resource(SecretId=secret_id, Tags=[{"Key": "keyturn:deactivated-at", "Value": "2000-01-01T00:00:00Z"}])
    # The CLI, with a day to wait: the forged record is not believed, the wait starts again now.
    row = rows(keyturn("--output", "json", "sweep", "--grace-days", "0", "--delete-after-days", "1", secret_id))[0]
    assert row["action"] == "waiting" and a["AccessKeyId"] in row["detail"], row
    assert key_statuses(moto, user)[a["AccessKeyId"]] == "Inactive"
    again = tags_of(moto, secret_id)["keyturn:deactivated-at"]
    assert again != "2000-01-01T00:00:00Z" and again >= recorded[:19], "recorded again, now"
    # The function the same, forged again.
    moto.client("secretsmanager").tag_resource(SecretId=secret_id, Tags=[{"Key": "keyturn:deactivated-at", "Value": "2000-01-01T00:00:00Z"}])
    ok, body = function_factory(KEYTURN_GRACE_DAYS="0", KEYTURN_DELETE_AFTER_DAYS="1").runtime.invoke({"keyturn": "sweep"})
    assert ok and "deleted" not in body["outcomes"], body
    assert key_statuses(moto, user)[a["AccessKeyId"]] == "Inactive", "still there to reactivate (keyturn rollback)"
    # Even with no wait at all, a forged record deletes nothing: the sweep records the
    # deactivation again; only the sweep after that deletes.
    moto.client("secretsmanager").tag_resource(SecretId=secret_id, Tags=[{"Key": "keyturn:deactivated-at", "Value": "2000-01-01T00:00:00Z"}])
    row = rows(keyturn("--output", "json", "sweep", "--grace-days", "0", "--delete-after-days", "0", secret_id))[0]
    assert row["action"] == "waiting", row
    row = rows(keyturn("--output", "json", "sweep", "--grace-days", "0", "--delete-after-days", "0", secret_id))[0]
    assert row["action"] == "deleted", row
    assert key_statuses(moto, user) == {b["AccessKeyId"]: "Active"}


# 3. A rollback racing the sweep never leaves AWSCURRENT on an inactive key.


def test_a_rollback_racing_the_cli_sweep_leaves_awscurrent_active(moto, keyturn, keyturn_binary, secrets_seen):
    user, secret_id, a, b = rotated(moto, keyturn, secrets_seen, "rbsweep")
    proxy = FaultProxy(moto.endpoint, hold="UpdateAccessKey")
    try:
        sweep = run_through(proxy, keyturn_binary, moto, "sweep", "--grace-days", "0", secret_id)
        assert proxy.holding.wait(60), "the sweep never reached UpdateAccessKey"
        keyturn("rollback", secret_id)  # completes while the sweep's deactivation is held
        proxy.unhold.set()
        code, out, err = finished(sweep)
    finally:
        proxy.close()
    row = json.loads(out)[0]
    assert code == 1 and row["action"] == "raced" and row["failed"] is True, (code, out, err)
    assert value(moto, secret_id, "AWSCURRENT")["AccessKeyId"] == a["AccessKeyId"]
    assert key_statuses(moto, user)[a["AccessKeyId"]] == "Active", "the sweep put its deactivation back"
    assert whoami(moto, a["AccessKeyId"], a["SecretAccessKey"]).endswith(f":user/{user}")


def test_a_rollback_racing_the_functions_sweep_leaves_awscurrent_active(moto, keyturn, function_factory, secrets_seen):
    user, secret_id, a, b = rotated(moto, keyturn, secrets_seen, "rbfn")
    proxy = FaultProxy(moto.endpoint, hold="UpdateAccessKey")
    try:
        fn = function_factory(AWS_ENDPOINT_URL=proxy.endpoint, KEYTURN_GRACE_DAYS="0")
        result = {}
        sweeping = threading.Thread(target=lambda: result.update(zip(("ok", "body"), fn.runtime.invoke({"keyturn": "sweep"}))))
        sweeping.start()
        assert proxy.holding.wait(60), "the sweep never reached UpdateAccessKey"
        keyturn("rollback", secret_id)
        proxy.unhold.set()
        sweeping.join(120)
    finally:
        proxy.close()
    assert not result["ok"] and result["body"]["errorType"] == "SweepFailed" and "reactivated" in result["body"]["errorMessage"], result
    assert value(moto, secret_id, "AWSCURRENT")["AccessKeyId"] == a["AccessKeyId"]
    assert key_statuses(moto, user)[a["AccessKeyId"]] == "Active"


# 4. A rollback racing a rotation never leaves a deleted key in a sink.


def test_a_rollback_racing_a_rotation_leaves_the_sink_on_awscurrent(moto, keyturn, keyturn_binary, secrets_seen):
    param = f"/keyturn-e2e/{unique('race')}/key"
    user, secret_id, a, b = rotated(moto, keyturn, secrets_seen, "rbrot", tags=[{"Key": "keyturn:sink:param", "Value": f"ssm:{param}"}])
    assert json.loads(parameter(moto, param))["AccessKeyId"] == b["AccessKeyId"]
    proxy = FaultProxy(moto.endpoint, hold="PutParameter")
    try:
        rollback = run_through(proxy, keyturn_binary, moto, "rollback", secret_id)
        assert proxy.holding.wait(60), "the rollback never reached PutParameter"
        # Meanwhile a rotation deletes A (AWSPREVIOUS, unused) and makes C current.
        row = rows(keyturn("--output", "json", "rotate", secret_id))[0]
        assert row["deletedKeyId"] == a["AccessKeyId"], row
        proxy.unhold.set()
        code, out, err = finished(rollback)
    finally:
        proxy.close()
    c = value(moto, secret_id, "AWSCURRENT")
    secrets_seen.add(c["SecretAccessKey"])
    assert code == 2 and "changed while keyturn was about to roll back" in err, (code, out, err)
    assert "the sinks hold AWSCURRENT's key again" in err, err
    assert json.loads(parameter(moto, param))["AccessKeyId"] == c["AccessKeyId"], "the sink holds AWSCURRENT, not the deleted A"
    assert tags_of(moto, secret_id)["keyturn:current-key"] == c["AccessKeyId"], "the rollback wrote no record naming A"
    assert set(key_statuses(moto, user)) == {b["AccessKeyId"], c["AccessKeyId"]}


# 5. Cancel and rollback refuse a secret that claims another secret's user.


def decoy(moto, user: str, versions: list[str]) -> str:
    """A secret of the attacker's, in the hand-made shape (no user in the value), tagged for
    `user`; its versions hold the given key ids, the last one AWSCURRENT."""
    sm = moto.client("secretsmanager")
    name = unique("keyturn/decoy")
    shaped = lambda key_id: json.dumps({"accessKey": key_id, "secretKey": "forged-forged-forged"})
    sm.create_secret(Name=name, SecretString=shaped(versions[0]), Tags=[{"Key": "keyturn:user", "Value": user}, {"Key": "keyturn:managed", "Value": "true"}])
    for key_id in versions[1:]:
        sm.put_secret_value(SecretId=name, SecretString=shaped(key_id))
    return name


def test_cancel_and_rollback_refuse_a_secret_claiming_another_secrets_user(moto, keyturn, secrets_seen):
    user, secret_id, a, b = rotated(moto, keyturn, secrets_seen, "bob")
    # bob's previous key retired by the sweep (before any decoy: a decoy blocks bob's sweep too).
    assert rows(keyturn("--output", "json", "sweep", "--grace-days", "0", secret_id))[0]["action"] == "deactivated"
    # A decoy whose AWSPENDING holds bob's current key id (public in keyturn:current-key).
    pending = decoy(moto, user, ["AKIADECOYDECOYDECOY1"])
    moto.client("secretsmanager").put_secret_value(
        SecretId=pending, SecretString=json.dumps({"accessKey": b["AccessKeyId"], "secretKey": "forged"}), VersionStages=["AWSPENDING"]
    )
    for argv in (["rotate", "--cancel", pending], ["rotate", "--cancel", "--dry-run", pending]):
        row = rows(keyturn("--output", "json", *argv, check=False))[0]
        assert row["errorType"] == "UserHasOtherSecret" and secret_id in row["error"], row
    status = json.loads(keyturn("--output", "json", "status", pending, check=False).stdout)
    assert not any("keyturn rotate --resume or --cancel" in p for p in status["problems"]), status["problems"]
    assert any("resolve that first" in p for p in status["problems"]), status["problems"]
    # A decoy whose AWSPREVIOUS names bob's retired key.
    previous = decoy(moto, user, [a["AccessKeyId"], "AKIADECOYDECOYDECOY2"])
    proc = keyturn("rollback", previous, check=False)
    assert proc.returncode == 2 and "one user, one managed secret" in proc.stderr and secret_id in proc.stderr, proc.stderr
    assert key_statuses(moto, user) == {a["AccessKeyId"]: "Inactive", b["AccessKeyId"]: "Active"}, "nothing reactivated, nothing deleted"
    assert value(moto, secret_id, "AWSCURRENT")["AccessKeyId"] == b["AccessKeyId"]
    assert whoami(moto, b["AccessKeyId"], b["SecretAccessKey"]).endswith(f":user/{user}")


# 6. IAM's last-used record is not live.


def test_a_recent_use_iam_does_not_show_yet_keeps_the_previous_key(moto, keyturn, function_factory, secrets_seen):
    """A proxy hides uses younger than an hour from GetAccessKeyLastUsed, as IAM's lagging record
    would. Rotate, use the old key A, rotate again minutes later: refused (CLI, dry run, function),
    naming when the window ends; status shows it. With the window off, the hidden use lets the
    rotation delete A, which is what the window guards against."""
    proxy = FaultProxy(moto.endpoint, hide_uses=3600)
    try:
        through = dict(SETTLE, AWS_ENDPOINT_URL=proxy.endpoint)
        user, secret_id, a = managed_secret(moto, secrets_seen, "lag")
        keyturn("rotate", secret_id, env_extra=through)
        b = value(moto, secret_id, "AWSCURRENT")
        secrets_seen.add(b["SecretAccessKey"])
        whoami(moto, a["AccessKeyId"], a["SecretAccessKey"])  # a consumer still on A
        for argv in (["rotate", secret_id], ["rotate", "--dry-run", secret_id]):
            row = rows(keyturn("--output", "json", *argv, check=False, env_extra=through))[0]
            assert row["errorType"] == "KeyInUse" and "KEYTURN_LAST_USED_SETTLE_SECONDS" in row["error"] and "retry after" in row["error"], row
        status = json.loads(keyturn("--output", "json", "status", secret_id, env_extra=through).stdout)
        assert status["previousSettlingUntil"], status
        sweep = rows(keyturn("--output", "json", "sweep", "--grace-days", "0", secret_id, env_extra=through))[0]
        assert sweep["action"] == "waiting" and "KEYTURN_LAST_USED_SETTLE_SECONDS" in sweep["detail"], sweep
        fn = function_factory(AWS_ENDPOINT_URL=proxy.endpoint, KEYTURN_LAST_USED_SETTLE_SECONDS="14400")
        ok, body = fn.step("createSecret", secret_id, start_rotation(moto, secret_id))
        assert not ok and body["errorType"] == "KeyInUse", body
        assert key_statuses(moto, user) == {a["AccessKeyId"]: "Active", b["AccessKeyId"]: "Active"}
        moto.client("secretsmanager").update_secret_version_stage(
            SecretId=secret_id, VersionStage="AWSPENDING", RemoveFromVersionId=[v for v, l in moto.client("secretsmanager").describe_secret(SecretId=secret_id)["VersionIdsToStages"].items() if l == ["AWSPENDING"]][0]
        )
        # The window off: IAM shows A unused, and the rotation deletes it.
        off = dict(through, KEYTURN_LAST_USED_SETTLE_SECONDS="0")
        row = rows(keyturn("--output", "json", "rotate", secret_id, env_extra=off))[0]
        assert row["deletedKeyId"] == a["AccessKeyId"] and proxy.uses_hidden > 0, row
        secrets_seen.add(value(moto, secret_id, "AWSCURRENT")["SecretAccessKey"])
    finally:
        proxy.close()


# The review's smaller findings.


def test_two_secrets_may_not_deliver_to_one_parameter(moto, keyturn, function_factory, secrets_seen):
    """The first rotates and delivers; then a second secret names the same parameter (as whoever may
    tag could): neither rotates any more, as with two secrets naming one user, until one tag goes."""
    param = f"/keyturn-e2e/{unique('shared')}/key"
    sink = [{"Key": "keyturn:sink:param", "Value": f"ssm:{param}"}]
    first_user, first, _ = managed_secret(moto, secrets_seen, "first", tags=sink)
    keyturn("rotate", first)
    delivered = value(moto, first, "AWSCURRENT")
    secrets_seen.add(delivered["SecretAccessKey"])
    second_user, second, key = managed_secret(moto, secrets_seen, "second", tags=sink)
    for secret_id, other in ((second, first), (first, second)):
        row = rows(keyturn("--output", "json", "rotate", secret_id, check=False))[0]
        assert row["errorType"] == "SinkShared" and other in row["error"] and param in row["error"], row
        ok, body = function_factory().step("createSecret", secret_id, start_rotation(moto, secret_id))
        assert not ok and body["errorType"] == "SinkShared", body
    assert key_statuses(moto, second_user) == {key["AccessKeyId"]: "Active"}, "refused before a key was made"
    assert json.loads(parameter(moto, param)) == delivered, "the parameter still holds the first secret's key"
    status = json.loads(keyturn("--output", "json", "status", second, check=False).stdout)
    assert any(first in p and "two secrets may not deliver" in p for p in status["problems"]), status["problems"]


def test_a_tag_cannot_name_an_unrelated_github_secret_or_another_accounts_key(moto, keyturn, function_factory, secrets_seen):
    for spec, says in (
        ("github:acme/app id=OPS_ID secret=NPM_TOKEN", "GitHub secret name OPS_ID is not one keyturn may write"),
        ("ssm:/keyturn-e2e/x kms=arn:aws:kms:us-east-1:999999999999:key/1234abcd-12ab-34cd-56ef-1234567890ab", "another account"),
    ):
        user, secret_id, key = managed_secret(moto, secrets_seen, "tagsink", tags=[{"Key": "keyturn:sink:x", "Value": spec}])
        row = rows(keyturn("--output", "json", "rotate", secret_id, check=False))[0]
        assert row["errorType"] == "BadSink" and says in row["error"], row
        ok, body = function_factory().step("createSecret", secret_id, start_rotation(moto, secret_id))
        assert not ok and body["errorType"] == "BadSink" and says in body["errorMessage"], body
        assert key_statuses(moto, user) == {key["AccessKeyId"]: "Active"}


def test_an_ssm_prefix_without_its_last_slash_is_refused(moto, keyturn, function_factory):
    proc = keyturn("--ssm-prefix", "/apps", "status", "keyturn/none", check=False)
    assert proc.returncode == 2 and "must start and end with /" in proc.stderr and "nothing was run" in proc.stderr, proc.stderr
    fn = function_factory(KEYTURN_SSM_PREFIX="/apps")
    fn.proc.wait(30)
    assert fn.proc.returncode != 0 and "/apps-evil" in fn.output(), fn.output()


def test_the_audit_reads_a_user_name_with_a_comma_and_reports_a_deleted_user(moto, keyturn, secrets_seen):
    iam = moto.client("iam")
    comma = unique("ops,deploy")
    make_user(moto, comma, secrets_seen)
    plain = make_user(moto, unique("plain"), secrets_seen)
    # A managed secret whose user was deleted afterwards.
    gone_user, gone_secret, gone_key = managed_secret(moto, secrets_seen, "gone")
    iam.delete_access_key(UserName=gone_user, AccessKeyId=gone_key["AccessKeyId"])
    iam.delete_user_policy(UserName=gone_user, PolicyName="p")
    iam.delete_user(UserName=gone_user)
    proc = keyturn("--output", "json", "audit", check=False)
    assert proc.returncode in (0, 1), proc.stderr
    keys = json.loads(proc.stdout)["keys"]
    users = {k["user"] for k in keys}
    assert comma in users, sorted(users)
    assert not [k for k in keys if k["finding"] == "report-row-unreadable"], keys
    missing = [k for k in keys if k.get("secret") == gone_secret]
    assert missing and missing[0]["finding"] == "current-key-missing" and gone_user in missing[0]["error"] and "no longer exists" in missing[0]["error"], missing
    assert plain["AccessKeyId"] not in {k.get("keyId") for k in keys if k["finding"] == "report-row-unreadable"}


def test_an_external_id_is_never_logged_even_at_trace(moto, keyturn_binary, secrets_seen):
    secret = "external-" + unique("id")
    env = dict(base_env(moto.endpoint, *moto.admin), RUST_LOG="trace")
    proc = subprocess.run(
        [str(keyturn_binary), "--output", "json", "audit", "--account", "111111111111", "--external-id", secret],
        capture_output=True, text=True, env=env, timeout=120,
    )
    ALL_OUTPUT.append(proc.stdout + proc.stderr)
    assert len(proc.stderr) > 2000 and "sts" in proc.stderr.lower(), "the trace logged nothing of the calls: the check would be vacuous"
    assert secret not in proc.stdout + proc.stderr
