"""The release rotation function, driven through the Lambda runtime API against moto with
authentication on; every outcome is checked with boto3, not with keyturn's own code."""

import json
import time
import uuid

import pytest

from harness import allow

STEPS = ["createSecret", "setSecret", "testSecret", "finishSecret"]


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def start_rotation(moto, secret_id: str) -> str:
    """What Secrets Manager does before createSecret: RotateSecret leaves a pending version with no
    value. moto refuses RotateSecret while AWSPENDING sits on the AWSCURRENT version (its check is
    the inverse of AWS's documented rule), so clear that finished label first, as AWS would accept."""
    sm = moto.client("secretsmanager")
    for version, labels in sm.describe_secret(SecretId=secret_id).get("VersionIdsToStages", {}).items():
        if "AWSPENDING" in labels and "AWSCURRENT" in labels:
            sm.update_secret_version_stage(SecretId=secret_id, VersionStage="AWSPENDING", RemoveFromVersionId=version)
    out = sm.rotate_secret(
        SecretId=secret_id, RotationLambdaARN=moto.placeholder_function(), RotationRules={"AutomaticallyAfterDays": 30}
    )
    return out["VersionId"]


def run_steps(fn, secret_id: str, token: str, steps=STEPS):
    for step in steps:
        ok, body = fn.step(step, secret_id, token)
        assert ok, f"{step} failed: {body}\n{fn.output()}"


def value(moto, secret_id: str, stage: str) -> dict:
    text = moto.client("secretsmanager").get_secret_value(SecretId=secret_id, VersionStage=stage)["SecretString"]
    return json.loads(text)


def whoami(moto, key_id: str, secret: str) -> str:
    """The ARN the key authenticates as. moto's server, under the fault tests' parallel load, now
    and then answers a check's own call with an HTML 500 that botocore cannot parse: that (and any
    5xx) is asked again; a refusal of the key (4xx) is the answer and raised at once."""
    from botocore.exceptions import ClientError
    from botocore.parsers import ResponseParserError

    for attempt in range(3):
        try:
            return moto.client("sts", key_id, secret).get_caller_identity()["Arn"]
        except (ResponseParserError, ClientError) as e:
            status = getattr(e, "response", {}).get("ResponseMetadata", {}).get("HTTPStatusCode", 500)
            if attempt == 2 or (isinstance(e, ClientError) and status < 500):
                raise
            time.sleep(0.5)
    raise AssertionError("unreachable")


def key_statuses(moto, user: str) -> dict:
    keys = moto.client("iam").list_access_keys(UserName=user)["AccessKeyMetadata"]
    return {k["AccessKeyId"]: k["Status"] for k in keys}


def make_user(moto, user: str, secrets_seen, policy: str | None = None) -> dict:
    iam = moto.client("iam")
    iam.create_user(UserName=user)
    if policy:
        iam.put_user_policy(UserName=user, PolicyName="p", PolicyDocument=policy)
    key = iam.create_access_key(UserName=user)["AccessKey"]
    secrets_seen.add(key["SecretAccessKey"])
    return key


def test_authentication_is_on(moto):
    with pytest.raises(Exception) as err:
        moto.client("iam", "AKIANOTAREALKEY00000", "wrong").list_users()
    assert "InvalidClientTokenId" in str(err.value) or "security token" in str(err.value)


def test_four_steps_rotate_the_key(moto, function_factory, secrets_seen):
    user, secret_id = unique("app"), unique("keyturn/app")
    old = make_user(moto, user, secrets_seen)
    secrets_seen.add(moto.admin[1])
    moto.client("secretsmanager").create_secret(
        Name=secret_id,
        SecretString=json.dumps({"UserName": user, "AccessKeyId": old["AccessKeyId"], "SecretAccessKey": old["SecretAccessKey"]}),
    )
    token = start_rotation(moto, secret_id)
    fn = function_factory()
    run_steps(fn, secret_id, token)

    current = value(moto, secret_id, "AWSCURRENT")
    secrets_seen.add(current["SecretAccessKey"])
    assert current["UserName"] == user
    assert current["AccessKeyId"] != old["AccessKeyId"]
    assert whoami(moto, current["AccessKeyId"], current["SecretAccessKey"]).endswith(f":user/{user}")
    previous = value(moto, secret_id, "AWSPREVIOUS")
    assert previous["AccessKeyId"] == old["AccessKeyId"]
    assert key_statuses(moto, user) == {old["AccessKeyId"]: "Active", current["AccessKeyId"]: "Active"}
    assert whoami(moto, old["AccessKeyId"], old["SecretAccessKey"]).endswith(f":user/{user}"), "old key still works"

    stages = moto.client("secretsmanager").describe_secret(SecretId=secret_id)["VersionIdsToStages"]
    assert "AWSCURRENT" in stages[token]
    tags = {t["Key"]: t["Value"] for t in moto.client("secretsmanager").describe_secret(SecretId=secret_id)["Tags"]}
    assert tags["keyturn:cutover-version"] == token

    # Structured logs: one JSON line per step naming the secret, user, step, key ids and outcome.
    lines = [json.loads(l) for l in fn.output().splitlines() if l.startswith("{")]
    done = [l for l in lines if l.get("message") == "rotation step done"]
    assert [l["step"] for l in done] == STEPS
    # setSecret reads no value, so it names the user only once the secret carries keyturn:user.
    assert all(l["secret"] == secret_id and l["user"] in (user, "" if l["step"] == "setSecret" else user) for l in done)
    assert done[0]["outcome"] == "created" and done[0]["pending_key_id"] == current["AccessKeyId"]
    assert done[3]["outcome"] == "promoted" and "duration_ms" in done[3]

    # Each step again (Secrets Manager's retry after the fact): nothing changes.
    run_steps(fn, secret_id, token)
    assert value(moto, secret_id, "AWSCURRENT") == current
    assert len(key_statuses(moto, user)) == 2


def test_the_configuration_test_of_rotate_immediately_false_passes_and_changes_nothing(moto, function_factory, secrets_seen):
    """RotateImmediately=false: Secrets Manager runs testSecret alone on a temporary AWSPENDING
    version (moto runs nothing, so the test plays that part), then removes it. keyturn checks the
    configuration and makes, deletes and writes nothing; a real rotation still tests its new key."""
    user, secret_id = unique("cfgtest"), unique("keyturn/cfgtest")
    old = make_user(moto, user, secrets_seen)
    sm = moto.client("secretsmanager")
    sm.create_secret(
        Name=secret_id,
        SecretString=json.dumps({"UserName": user, "AccessKeyId": old["AccessKeyId"], "SecretAccessKey": old["SecretAccessKey"]}),
    )  # not tagged managed: this module's scheduled-sweep test counts the managed secrets it sweeps
    token = start_rotation(moto, secret_id)
    versions_before = sm.list_secret_version_ids(SecretId=secret_id)["Versions"]
    fn = function_factory()
    ok, body = fn.step("testSecret", secret_id, token)
    assert ok, f"the configuration test failed: {body}\n{fn.output()}"
    assert key_statuses(moto, user) == {old["AccessKeyId"]: "Active"}, "no key made or changed"
    after = sm.list_secret_version_ids(SecretId=secret_id)["Versions"]
    assert [(v["VersionId"], v["VersionStages"]) for v in after] == [(v["VersionId"], v["VersionStages"]) for v in versions_before]
    assert "keyturn:cutover-version" not in {t["Key"] for t in sm.describe_secret(SecretId=secret_id).get("Tags", [])}
    lines = [json.loads(l) for l in fn.output().splitlines() if l.startswith("{")]
    assert any(l.get("outcome") == "configuration-checked" and l.get("user") == user for l in lines), fn.output()

    # Secrets Manager then removes the temporary version's label; a real rotation runs all four
    # steps and tests the new key.
    sm.update_secret_version_stage(SecretId=secret_id, VersionStage="AWSPENDING", RemoveFromVersionId=token)
    token = start_rotation(moto, secret_id)
    run_steps(fn, secret_id, token)
    current = value(moto, secret_id, "AWSCURRENT")
    secrets_seen.add(current["SecretAccessKey"])
    assert current["AccessKeyId"] != old["AccessKeyId"]
    done = [json.loads(l) for l in fn.output().splitlines() if l.startswith("{") and '"rotation step done"' in l]
    assert [l["outcome"] for l in done if l["step"] == "testSecret"][-1] == "tested"


def test_second_rotation_deletes_the_unused_previous_key(moto, function_factory, secrets_seen):
    user, secret_id = unique("app"), unique("keyturn/app")
    first = make_user(moto, user, secrets_seen)
    moto.client("secretsmanager").create_secret(
        Name=secret_id, SecretString=json.dumps({"UserName": user, "AccessKeyId": first["AccessKeyId"], "SecretAccessKey": first["SecretAccessKey"]})
    )
    fn = function_factory()
    run_steps(fn, secret_id, start_rotation(moto, secret_id))
    second = value(moto, secret_id, "AWSCURRENT")
    run_steps(fn, secret_id, start_rotation(moto, secret_id))
    third = value(moto, secret_id, "AWSCURRENT")
    secrets_seen.update({second["SecretAccessKey"], third["SecretAccessKey"]})
    assert key_statuses(moto, user) == {second["AccessKeyId"]: "Active", third["AccessKeyId"]: "Active"}
    assert value(moto, secret_id, "AWSPREVIOUS")["AccessKeyId"] == second["AccessKeyId"]


def test_a_previous_key_still_in_use_is_refused_and_kept(moto, function_factory, secrets_seen):
    user, secret_id = unique("app"), unique("keyturn/app")
    first = make_user(moto, user, secrets_seen, policy=allow("iam:ListUsers"))
    moto.client("secretsmanager").create_secret(
        Name=secret_id, SecretString=json.dumps({"UserName": user, "AccessKeyId": first["AccessKeyId"], "SecretAccessKey": first["SecretAccessKey"]})
    )
    fn = function_factory()
    run_steps(fn, secret_id, start_rotation(moto, secret_id))
    second = value(moto, secret_id, "AWSCURRENT")
    secrets_seen.add(second["SecretAccessKey"])
    time.sleep(1.1)  # IAM's last-used dates have one-second precision
    whoami(moto, first["AccessKeyId"], first["SecretAccessKey"])  # a consumer on the old key

    token = start_rotation(moto, secret_id)
    ok, body = fn.step("createSecret", secret_id, token)
    assert not ok
    assert body["errorType"] == "KeyInUse"
    assert first["AccessKeyId"] in body["errorMessage"] and "by sts" in body["errorMessage"]
    assert key_statuses(moto, user) == {first["AccessKeyId"]: "Active", second["AccessKeyId"]: "Active"}
    assert value(moto, secret_id, "AWSCURRENT") == second


def test_legacy_shapes_are_written_back_in_their_own_shape(moto, function_factory, secrets_seen):
    fn = function_factory()
    sm = moto.client("secretsmanager")
    # accessKey/secretKey with the user in a tag, and other fields kept.
    user, secret_id = unique("camel"), unique("legacy/camel")
    key = make_user(moto, user, secrets_seen)
    sm.create_secret(
        Name=secret_id,
        SecretString=json.dumps({"accessKey": key["AccessKeyId"], "secretKey": key["SecretAccessKey"], "region": "eu-west-1"}),
        Tags=[{"Key": "keyturn:user", "Value": user}],
    )
    run_steps(fn, secret_id, start_rotation(moto, secret_id))
    after = value(moto, secret_id, "AWSCURRENT")
    secrets_seen.add(after["secretKey"])
    assert list(after) == ["accessKey", "secretKey", "region"] and after["region"] == "eu-west-1"
    assert whoami(moto, after["accessKey"], after["secretKey"]).endswith(f":user/{user}")

    # The empty {} gets the canonical shape, with the user from IAM_USER_NAME.
    user2, secret2 = unique("empty"), unique("legacy/empty")
    make_user(moto, user2, secrets_seen)
    sm.create_secret(Name=secret2, SecretString="{}")
    fn2 = function_factory(IAM_USER_NAME=user2)
    run_steps(fn2, secret2, start_rotation(moto, secret2))
    filled = value(moto, secret2, "AWSCURRENT")
    secrets_seen.add(filled["SecretAccessKey"])
    assert filled["UserName"] == user2
    assert whoami(moto, filled["AccessKeyId"], filled["SecretAccessKey"]).endswith(f":user/{user2}")


SELF_SERVICE = allow(
    "iam:ListAccessKeys", "iam:CreateAccessKey", "iam:DeleteAccessKey", "iam:GetAccessKeyLastUsed", "iam:UpdateAccessKey"
)


def test_a_self_rotating_user_with_a_function_that_has_no_iam_permissions(moto, function_factory, secrets_seen):
    # The function's own identity may use Secrets Manager only.
    fn_key = make_user(moto, unique("fnrole"), secrets_seen, policy=allow("secretsmanager:*"))
    with pytest.raises(Exception) as denied:
        moto.client("iam", fn_key["AccessKeyId"], fn_key["SecretAccessKey"]).list_users()
    assert "AccessDenied" in str(denied.value)

    user, secret_id = unique("selfie"), unique("keyturn/selfie")
    k1 = make_user(moto, user, secrets_seen, policy=SELF_SERVICE)
    sm = moto.client("secretsmanager")
    arn = sm.create_secret(Name=secret_id, SecretString="{}")["ARN"]
    sm.put_secret_value(
        SecretId=secret_id,
        SecretString=json.dumps({"username": user, "accesskey": k1["AccessKeyId"], "secretkey": k1["SecretAccessKey"], "masterarn": arn}),
        VersionStages=["AWSCURRENT"],
    )
    fn = function_factory(fn_key["AccessKeyId"], fn_key["SecretAccessKey"])
    seen = [k1["AccessKeyId"]]
    for period in range(3):
        run_steps(fn, secret_id, start_rotation(moto, secret_id))
        current = value(moto, secret_id, "AWSCURRENT")
        secrets_seen.add(current["secretkey"])
        assert list(current) == ["username", "accesskey", "secretkey", "masterarn"] and current["masterarn"] == arn
        assert whoami(moto, current["accesskey"], current["secretkey"]).endswith(f":user/{user}")
        seen.append(current["accesskey"])
        assert set(key_statuses(moto, user)) == set(seen[-2:]), f"period {period}: current and previous only"


def test_a_value_that_is_not_json_changes_nothing(moto, function_factory, secrets_seen):
    user, secret_id = unique("app"), unique("bad/notjson")
    key = make_user(moto, user, secrets_seen)
    moto.client("secretsmanager").create_secret(Name=secret_id, SecretString="not json at all", Tags=[{"Key": "keyturn:user", "Value": user}])
    fn = function_factory()
    ok, body = fn.step("createSecret", secret_id, start_rotation(moto, secret_id))
    assert not ok and body["errorType"] == "BadSecretValue"
    assert secret_id in body["errorMessage"] and "not JSON" in body["errorMessage"]
    assert key_statuses(moto, user) == {key["AccessKeyId"]: "Active"}


def test_malformed_events_and_unknown_tokens_are_clear_errors(moto, function_factory, secrets_seen):
    fn = function_factory()
    ok, body = fn.runtime.invoke({"Step": "rotateEverything"})
    assert not ok and body["errorType"] == "BadEvent"
    user, secret_id = unique("app"), unique("keyturn/app")
    key = make_user(moto, user, secrets_seen)
    moto.client("secretsmanager").create_secret(
        Name=secret_id, SecretString=json.dumps({"UserName": user, "AccessKeyId": key["AccessKeyId"], "SecretAccessKey": key["SecretAccessKey"]})
    )
    start_rotation(moto, secret_id)
    ok, body = fn.step("createSecret", secret_id, str(uuid.uuid4()))
    assert not ok and body["errorType"] == "UnknownVersion"
    assert key_statuses(moto, user) == {key["AccessKeyId"]: "Active"}


def test_the_scheduled_event_sweeps_managed_secrets(moto, function_factory, secrets_seen):
    user, secret_id = unique("swept"), unique("keyturn/swept")
    old = make_user(moto, user, secrets_seen)
    moto.client("secretsmanager").create_secret(
        Name=secret_id,
        SecretString=json.dumps({"UserName": user, "AccessKeyId": old["AccessKeyId"], "SecretAccessKey": old["SecretAccessKey"]}),
        Tags=[{"Key": "keyturn:managed", "Value": "true"}],
    )
    fn = function_factory(KEYTURN_GRACE_DAYS="0")
    run_steps(fn, secret_id, start_rotation(moto, secret_id))
    secrets_seen.add(value(moto, secret_id, "AWSCURRENT")["SecretAccessKey"])
    ok, body = fn.runtime.invoke({"source": "aws.events", "detail-type": "Scheduled Event", "detail": {}})
    assert ok, body
    assert body["outcomes"] == {"deactivated": 1}
    assert key_statuses(moto, user)[old["AccessKeyId"]] == "Inactive"
    assert whoami(moto, *(lambda c: (c["AccessKeyId"], c["SecretAccessKey"]))(value(moto, secret_id, "AWSCURRENT"))).endswith(f":user/{user}")
