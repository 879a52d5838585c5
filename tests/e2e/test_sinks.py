"""Delivering the new key: SSM parameters and GitHub Actions secrets (a stand-in of GitHub's REST
API on 127.0.0.1 that opens the sealed boxes with PyNaCl), EventBridge events captured by a rule
into an SQS queue in moto, `keyturn deliver`, `keyturn rollback` and its refusals, a failing sink,
and faults at every sink call. Every outcome is read back with boto3 or from the stand-in."""

from __future__ import annotations

import json
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from faultproxy import KINDS, FaultProxy
from github_standin import GitHubStandIn
from test_rotation_function import STEPS, key_statuses, make_user, run_steps, start_rotation, unique, value, whoami

TOKEN = "ghs_e2eStandInToken0123456789"


@pytest.fixture(scope="module")
def github():
    standin = GitHubStandIn(TOKEN)
    yield standin
    standin.close()


@pytest.fixture(scope="module")
def token_secret(moto):
    name = unique("keyturn-e2e/github-token")
    moto.client("secretsmanager").create_secret(Name=name, SecretString=json.dumps({"token": TOKEN}))
    return name


@pytest.fixture
def sink_env(github, token_secret):
    # The environment sink's secret names are not keyturn's defaults: the deployment allows them.
    return {"KEYTURN_GITHUB_API": github.base, "KEYTURN_GITHUB_TOKEN_SECRET": token_secret, "KEYTURN_GITHUB_SECRET_NAMES": "PROD_KEY_ID,PROD_SECRET"}


@pytest.fixture(scope="module")
def events_queue(moto):
    """A rule on the default bus sending every keyturn event to an SQS queue."""
    sqs, events = moto.client("sqs"), moto.client("events")
    url = sqs.create_queue(QueueName=unique("keyturn-events"))["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    rule = unique("keyturn-events")
    events.put_rule(Name=rule, EventPattern=json.dumps({"source": ["keyturn"]}), State="ENABLED")
    events.put_targets(Rule=rule, Targets=[{"Id": "queue", "Arn": arn}])
    return {"url": url, "seen": []}


def events_for(moto, queue, secret_id: str, wait: float = 5.0) -> list[dict]:
    """The keyturn events about `secret_id` that reached the queue (all read so far are kept)."""
    sqs = moto.client("sqs")
    deadline = time.monotonic() + wait
    while True:
        for m in sqs.receive_message(QueueUrl=queue["url"], MaxNumberOfMessages=10, WaitTimeSeconds=0).get("Messages", []):
            queue["seen"].append(json.loads(m["Body"]))
            sqs.delete_message(QueueUrl=queue["url"], ReceiptHandle=m["ReceiptHandle"])
        found = [e for e in queue["seen"] if e.get("detail", {}).get("secret") == secret_id]
        if found or time.monotonic() > deadline:
            return found
        time.sleep(0.2)


def parameter(moto, name: str) -> str | None:
    try:
        return moto.client("ssm").get_parameter(Name=name, WithDecryption=True)["Parameter"]["Value"]
    except moto.client("ssm").exceptions.ParameterNotFound:
        return None


def sink_secret(moto, secrets_seen, prefix="sink", extra_tags=()):
    """A user and its secret with an SSM sink and three GitHub sinks (repository, environment with
    other names, organization); returns (user, secret, old key, parameter name, repo)."""
    user, secret_id = unique(prefix), unique(f"keyturn/{prefix}")
    old = make_user(moto, user, secrets_seen)
    param, repo = f"/keyturn-e2e/{user}/key", unique("app")
    tags = [
        {"Key": "keyturn:managed", "Value": "true"},
        {"Key": "keyturn:sink:param", "Value": f"ssm:{param}"},
        {"Key": "keyturn:sink:ci", "Value": f"github:acme/{repo}"},
        {"Key": "keyturn:sink:prod", "Value": f"github:acme/{repo}/environments/prod id=PROD_KEY_ID secret=PROD_SECRET"},
        {"Key": "keyturn:sink:org", "Value": f"github-org:acme-{repo}?visibility=all"},
        *extra_tags,
    ]
    moto.client("secretsmanager").create_secret(
        Name=secret_id,
        SecretString=json.dumps({"UserName": user, "AccessKeyId": old["AccessKeyId"], "SecretAccessKey": old["SecretAccessKey"]}),
        Tags=tags,
    )
    return user, secret_id, old, param, repo


def assert_delivered(moto, github, secret_id, param, repo):
    """Every sink holds AWSCURRENT: the parameter its whole value, GitHub the key id and secret."""
    current = value(moto, secret_id, "AWSCURRENT")
    assert json.loads(parameter(moto, param)) == current, "the parameter holds AWSCURRENT in its own shape"
    pairs = [
        (f"/repos/acme/{repo}/actions/secrets", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"),
        (f"/repos/acme/{repo}/environments/prod/secrets", "PROD_KEY_ID", "PROD_SECRET"),
        (f"/orgs/acme-{repo}/actions/secrets", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"),
    ]
    for scope, id_name, secret_name in pairs:
        assert github.value(scope, id_name) == current["AccessKeyId"], scope
        assert github.value(scope, secret_name) == current["SecretAccessKey"], scope
    assert github.visibility[f"/orgs/acme-{repo}/actions/secrets/AWS_ACCESS_KEY_ID"] == "all"
    return current


def assert_no_secret_in(texts, secrets):
    joined = "\n".join(texts)
    leaked = [s[:4] + "..." for s in secrets if s and s in joined]
    assert not leaked, f"a secret access key appeared: {leaked}"


def test_the_function_delivers_to_every_sink_before_the_cutover_and_announces_it(moto, function_factory, github, sink_env, events_queue, secrets_seen):
    user, secret_id, old, param, repo = sink_secret(moto, secrets_seen)
    fn = function_factory(KEYTURN_EVENTS="true", **sink_env)
    token = start_rotation(moto, secret_id)
    run_steps(fn, secret_id, token, STEPS[:3])
    assert parameter(moto, param) is None, "nothing is delivered before finishSecret"
    run_steps(fn, secret_id, token, STEPS[3:])
    current = assert_delivered(moto, github, secret_id, param, repo)
    secrets_seen.add(current["SecretAccessKey"])
    assert current["AccessKeyId"] != old["AccessKeyId"]
    assert whoami(moto, current["AccessKeyId"], current["SecretAccessKey"]).endswith(f":user/{user}")
    [event] = events_for(moto, events_queue, secret_id)
    assert event["source"] == "keyturn" and event["detail-type"] == "keyturn rotation"
    detail = event["detail"]
    assert detail["keyId"] == current["AccessKeyId"] and detail["previousKeyId"] == old["AccessKeyId"]
    assert detail["user"] == user and detail["version"] == token and sorted(detail["sinks"]) == ["ci", "org", "param", "prod"]
    assert_no_secret_in([json.dumps(event), *github.bodies, fn.output()], secrets_seen)
    # The sealed boxes on the wire are not the clear values.
    assert not any(current["SecretAccessKey"] in b for b in github.bodies)


def test_the_cli_rotation_delivers_and_deliver_writes_again(moto, keyturn, github, sink_env, events_queue, secrets_seen):
    user, secret_id, old, param, repo = sink_secret(moto, secrets_seen, prefix="clisink")
    out = json.loads(keyturn("--output", "json", "--events", "rotate", secret_id, env_extra=sink_env).stdout)
    assert out[0]["outcome"] == "rotated"
    current = assert_delivered(moto, github, secret_id, param, repo)
    secrets_seen.add(current["SecretAccessKey"])
    assert [e["detail-type"] for e in events_for(moto, events_queue, secret_id)] == ["keyturn rotation"]
    status = json.loads(keyturn("--output", "json", "status", secret_id, env_extra=sink_env).stdout)
    assert [(s["name"], s["kind"]) for s in status["sinks"]] == [("ci", "github"), ("org", "github"), ("param", "ssm"), ("prod", "github")]
    # Someone overwrites the parameter: deliver puts AWSCURRENT back, and announces it.
    moto.client("ssm").put_parameter(Name=param, Value="stale", Type="SecureString", Overwrite=True)
    delivered = json.loads(keyturn("--output", "json", "--events", "deliver", secret_id, env_extra=sink_env).stdout)
    assert delivered[0]["keyId"] == current["AccessKeyId"] and sorted(delivered[0]["sinks"]) == ["ci", "org", "param", "prod"]
    assert json.loads(parameter(moto, param)) == current
    time.sleep(0.5)
    assert [e["detail-type"] for e in events_for(moto, events_queue, secret_id)] == ["keyturn rotation", "keyturn delivery"]
    table = keyturn("deliver", secret_id, "keyturn/no-such-secret", env_extra=sink_env, check=False)
    assert table.returncode == 1, "a secret that could not be delivered fails the command"
    assert f"delivered {secret_id} key {current['AccessKeyId']}" in table.stdout and "failed keyturn/no-such-secret" in table.stdout


def test_a_failing_sink_fails_finish_with_awscurrent_unchanged_and_the_retry_delivers(moto, function_factory, github, sink_env, secrets_seen):
    user, secret_id, old, param, repo = sink_secret(moto, secrets_seen, prefix="failsink")
    fn = function_factory(**sink_env)
    token = start_rotation(moto, secret_id)
    run_steps(fn, secret_id, token, STEPS[:3])
    pending = value(moto, secret_id, "AWSPENDING")
    secrets_seen.add(pending["SecretAccessKey"])
    github.refuse(f"/repos/acme/{repo}/environments/prod", 403)
    try:
        ok, body = fn.step("finishSecret", secret_id, token)
    finally:
        github.clear()
    assert not ok and body["errorType"] == "SinkFailed", body
    assert "sink prod" in body["errorMessage"] and "AWSCURRENT is unchanged" in body["errorMessage"]
    assert value(moto, secret_id, "AWSCURRENT")["AccessKeyId"] == old["AccessKeyId"]
    for key in (old, pending):  # both keys are valid meanwhile
        assert whoami(moto, key["AccessKeyId"], key["SecretAccessKey"]).endswith(f":user/{user}")
    ok, body = fn.step("finishSecret", secret_id, token)
    assert ok, body
    assert assert_delivered(moto, github, secret_id, param, repo)["AccessKeyId"] == pending["AccessKeyId"]


def test_the_cli_stops_before_the_cutover_when_a_sink_fails_and_resume_delivers(moto, keyturn, github, sink_env, secrets_seen):
    user, secret_id, old, param, repo = sink_secret(moto, secrets_seen, prefix="clifail")
    github.refuse(f"/orgs/acme-{repo}", 404)
    try:
        failed = keyturn("--output", "json", "rotate", secret_id, env_extra=sink_env, check=False)
    finally:
        github.clear()
    assert failed.returncode == 1
    row = json.loads(failed.stdout)[0]
    assert row["errorType"] == "SinkFailed" and "sink org" in row["error"], row
    assert value(moto, secret_id, "AWSCURRENT")["AccessKeyId"] == old["AccessKeyId"]
    resumed = json.loads(keyturn("--output", "json", "rotate", "--resume", secret_id, env_extra=sink_env).stdout)[0]
    assert resumed["outcome"] == "resumed", resumed
    current = assert_delivered(moto, github, secret_id, param, repo)
    secrets_seen.add(current["SecretAccessKey"])
    assert len(key_statuses(moto, user)) == 2


def test_a_malformed_sink_tag_is_refused_before_any_key_is_created(moto, keyturn, function_factory, sink_env, secrets_seen):
    user, secret_id, old, param, _ = sink_secret(moto, secrets_seen, prefix="badsink", extra_tags=[{"Key": "keyturn:sink:typo", "Value": "sssm:/x"}])
    proc = keyturn("--output", "json", "rotate", secret_id, env_extra=sink_env, check=False)
    assert proc.returncode == 1
    row = json.loads(proc.stdout)[0]
    assert row["errorType"] == "BadSink" and "keyturn:sink:typo" in row["error"] and "no key was created" in row["error"]
    fn = function_factory(**sink_env)
    ok, body = fn.step("createSecret", secret_id, start_rotation(moto, secret_id))
    assert not ok and body["errorType"] == "BadSink", body
    assert key_statuses(moto, user) == {old["AccessKeyId"]: "Active"}
    assert parameter(moto, param) is None
    status = json.loads(keyturn("--output", "json", "status", secret_id, env_extra=sink_env, check=False).stdout)
    assert status["sinks"] == [] and any("keyturn:sink:typo" in p for p in status["problems"]), status


def test_sinks_the_deployment_does_not_allow_are_refused_before_any_key_is_made(moto, keyturn, function_factory, sink_env, secrets_seen):
    user, secret_id, old, _, _ = sink_secret(moto, secrets_seen, prefix="notoken")
    proc = keyturn("--output", "json", "rotate", secret_id, check=False)
    row = json.loads(proc.stdout)[0]
    assert row["errorType"] == "BadSink" and "KEYTURN_GITHUB_TOKEN_SECRET" in row["error"], row
    outside = keyturn("--output", "json", "rotate", "--github-owner", "acme", secret_id, env_extra=sink_env, check=False)
    row = json.loads(outside.stdout)[0]
    assert row["errorType"] == "BadSink" and "GitHub owner acme-" in row["error"], row
    # The function as the template configures it without SsmParameterPrefix.
    fn = function_factory(KEYTURN_SSM_PREFIX="none", **sink_env)
    ok, body = fn.step("createSecret", secret_id, start_rotation(moto, secret_id))
    assert not ok and body["errorType"] == "BadSink" and "SsmParameterPrefix" in body["errorMessage"], body
    assert key_statuses(moto, user) == {old["AccessKeyId"]: "Active"}


def test_rollback_puts_the_previous_key_back_reactivating_it_and_delivers(moto, keyturn, github, sink_env, events_queue, secrets_seen):
    user, secret_id, old, param, repo = sink_secret(moto, secrets_seen, prefix="rollback")
    keyturn("--events", "rotate", secret_id, env_extra=sink_env)
    new = value(moto, secret_id, "AWSCURRENT")
    secrets_seen.add(new["SecretAccessKey"])
    # The sweep retired the old key; then the new one turns out broken for a consumer.
    keyturn("--events", "sweep", "--grace-days", "0", secret_id, env_extra=sink_env)
    assert key_statuses(moto, user)[old["AccessKeyId"]] == "Inactive"
    plan = json.loads(keyturn("--output", "json", "rollback", "--dry-run", secret_id, env_extra=sink_env).stdout)
    assert plan["dryRun"] and plan["reactivated"] and plan["keyId"] == old["AccessKeyId"]
    assert value(moto, secret_id, "AWSCURRENT")["AccessKeyId"] == new["AccessKeyId"], "a dry run changes nothing"
    done = json.loads(keyturn("--output", "json", "--events", "rollback", secret_id, env_extra=sink_env).stdout)
    assert done["keyId"] == old["AccessKeyId"] and done["rolledBackFrom"] == new["AccessKeyId"] and done["reactivated"]
    assert value(moto, secret_id, "AWSCURRENT")["AccessKeyId"] == old["AccessKeyId"]
    assert value(moto, secret_id, "AWSPREVIOUS")["AccessKeyId"] == new["AccessKeyId"]
    assert key_statuses(moto, user) == {old["AccessKeyId"]: "Active", new["AccessKeyId"]: "Active"}
    assert whoami(moto, old["AccessKeyId"], old["SecretAccessKey"]).endswith(f":user/{user}")
    assert_delivered(moto, github, secret_id, param, repo)
    tags = {t["Key"]: t["Value"] for t in moto.client("secretsmanager").describe_secret(SecretId=secret_id)["Tags"]}
    assert tags["keyturn:rolled-back-from"] == new["AccessKeyId"] and "keyturn:rolled-back-at" in tags
    time.sleep(0.5)
    kinds = [(e["detail-type"], e["detail"].get("action")) for e in events_for(moto, events_queue, secret_id)]
    assert kinds == [("keyturn rotation", None), ("keyturn retirement", "deactivated"), ("keyturn rollback", None)], kinds
    # The rolled-back-from key is left to the sweep: its grace period runs from the rollback.
    swept = json.loads(keyturn("--output", "json", "sweep", secret_id, env_extra=sink_env).stdout)[0]
    assert swept["action"] == "waiting" and swept["keyId"] == new["AccessKeyId"]


def test_rollback_refuses_when_the_previous_key_is_gone_or_a_rotation_is_in_flight(moto, keyturn, sink_env, secrets_seen):
    user, secret_id, old, param, _ = sink_secret(moto, secrets_seen, prefix="norollback")
    never = keyturn("rollback", secret_id, env_extra=sink_env, check=False)
    assert never.returncode == 2 and "no AWSPREVIOUS version" in never.stderr
    keyturn("rotate", secret_id, env_extra=sink_env)
    secrets_seen.add(value(moto, secret_id, "AWSCURRENT")["SecretAccessKey"])
    moto.client("iam").delete_access_key(UserName=user, AccessKeyId=old["AccessKeyId"])
    before = moto.client("secretsmanager").describe_secret(SecretId=secret_id)["VersionIdsToStages"]
    gone = keyturn("rollback", secret_id, env_extra=sink_env, check=False)
    assert gone.returncode == 2 and old["AccessKeyId"] in gone.stderr and "nothing was changed" in gone.stderr, gone.stderr
    assert moto.client("secretsmanager").describe_secret(SecretId=secret_id)["VersionIdsToStages"] == before

    user2, secret2, _, _, _ = sink_secret(moto, secrets_seen, prefix="inflight")
    keyturn("rotate", secret2, env_extra=sink_env)
    secrets_seen.add(value(moto, secret2, "AWSCURRENT")["SecretAccessKey"])
    start_rotation(moto, secret2)
    busy = keyturn("rollback", secret2, env_extra=sink_env, check=False)
    assert busy.returncode == 2 and "in flight" in busy.stderr, busy.stderr


# ---- faults at every sink call -------------------------------------------------------------

FAULT_ENV = {"KEYTURN_EVENTS": "true"}


def _sink_calls(moto, function_factory, github, sink_env, secrets_seen) -> list[str]:
    """The AWS calls of a clean first rotation with sinks and events, through the proxy."""
    user, secret_id, old, param, repo = sink_secret(moto, secrets_seen, prefix="sinkbase")
    proxy = FaultProxy(moto.endpoint)
    try:
        fn = function_factory(AWS_ENDPOINT_URL=proxy.endpoint, **FAULT_ENV, **sink_env)
        run_steps(fn, secret_id, start_rotation(moto, secret_id))
        secrets_seen.add(assert_delivered(moto, github, secret_id, param, repo)["SecretAccessKey"])
        return list(proxy.calls)
    finally:
        proxy.close()


def _faulted_run(moto, function_factory, github, sink_env, secrets_seen, kind, k):
    """One rotation with `kind` at AWS call k; Secrets Manager's retry re-runs the steps (a new
    process where one was stopped) until they all pass. Returns what failed on the way."""
    from test_faults import _invoke

    user, secret_id, old, param, repo = sink_secret(moto, secrets_seen, prefix="sinkfault")
    proxy = FaultProxy(moto.endpoint, kind, k)
    failed: list[str] = []
    try:
        fn = function_factory(AWS_ENDPOINT_URL=proxy.endpoint, **FAULT_ENV, **sink_env)
        token = start_rotation(moto, secret_id)
        for _ in range(3):
            for step in STEPS:
                result = _invoke(fn, proxy, step, secret_id, token)
                if result is None:
                    failed.append(f"{step}: stopped")
                    proxy.disarm()
                    fn = function_factory(AWS_ENDPOINT_URL=proxy.endpoint, **FAULT_ENV, **sink_env)
                    break
                ok, body = result
                if not ok:
                    failed.append(f"{step}: {body.get('errorType')}")
                    break
            else:
                break
        else:
            raise AssertionError(f"{kind}@{k}: not done after 3 runs: {failed}")
        current = value(moto, secret_id, "AWSCURRENT")
        secrets_seen.add(current["SecretAccessKey"])
        assert current["AccessKeyId"] != old["AccessKeyId"], f"{kind}@{k}"
        assert whoami(moto, current["AccessKeyId"], current["SecretAccessKey"]).endswith(f":user/{user}")
        assert value(moto, secret_id, "AWSPREVIOUS")["AccessKeyId"] == old["AccessKeyId"]
        assert whoami(moto, old["AccessKeyId"], old["SecretAccessKey"]).endswith(f":user/{user}")
        assert_delivered(moto, github, secret_id, param, repo)
        return {"injected": proxy.injected, "failed": failed}
    finally:
        proxy.close()


@pytest.mark.parametrize("op", ["PutParameter", "PutEvents"])
def test_every_fault_at_an_aws_sink_call_ends_delivered(moto, function_factory, github, sink_env, secrets_seen, op):
    """The proxy breaks the rotation's SSM or EventBridge call in each way it knows; every run ends
    with AWSCURRENT on the new key and every sink holding it, the previous key intact."""
    calls = _sink_calls(moto, function_factory, github, sink_env, secrets_seen)
    k = calls.index(op) + 1
    with ThreadPoolExecutor(3) as pool:
        outcomes = dict(zip(KINDS, pool.map(lambda kind: _faulted_run(moto, function_factory, github, sink_env, secrets_seen, kind, k), KINDS)))
    for kind, out in outcomes.items():
        assert out["injected"] == f"{k}:{op}", f"{kind}: not injected at {op}: {out}"
    # A refusal before the cut-over fails finishSecret and the retry delivers; the event's refusal
    # comes after AWSCURRENT moved and is reported as such.
    expected = "SinkFailed" if op == "PutParameter" else "EventFailed"
    assert outcomes["denied"]["failed"] == [f"finishSecret: {expected}"], outcomes["denied"]
    assert outcomes["5xx"]["failed"] == [] and outcomes["throttle"]["failed"] == [], "the SDK retries these"


@pytest.mark.parametrize("status", [500, 403, 401])
def test_a_fault_at_a_github_call_ends_delivered(moto, function_factory, github, sink_env, secrets_seen, status):
    """The stand-in fails finishSecret's first GitHub call: a 5xx is retried by keyturn; a 403 or
    401 fails the step with AWSCURRENT unchanged, and the retry delivers."""
    user, secret_id, old, param, repo = sink_secret(moto, secrets_seen, prefix="ghfault")
    fn = function_factory(**sink_env)
    token = start_rotation(moto, secret_id)
    run_steps(fn, secret_id, token, STEPS[:3])
    github.fail_next(1, status)
    ok, body = fn.step("finishSecret", secret_id, token)
    if status >= 500:
        assert ok, f"a 5xx is retried: {body}"
    else:
        assert not ok and body["errorType"] == "SinkFailed", body
        assert value(moto, secret_id, "AWSCURRENT")["AccessKeyId"] == old["AccessKeyId"]
        ok, body = fn.step("finishSecret", secret_id, token)
        assert ok, body
    secrets_seen.add(assert_delivered(moto, github, secret_id, param, repo)["SecretAccessKey"])
