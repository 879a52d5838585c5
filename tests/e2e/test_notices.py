"""Owners' notices: an SNS topic in moto with one SQS queue per owner, each subscribed with a filter
policy on the owner message attribute. A rotation's notice lands only in its owner's queue, in the
custom-notification shape chat integrations render; a reminder and a key still in use are told by
the sweep and shown by `keyturn notify --dry-run`; no notice holds a secret access key.

moto checks a form-encoded request's signature against the form re-encoded by botocore, not the
bytes sent: a Publish whose message holds spaces, quotes or braces (every notice) fails its check
when the SDK for Rust percent-encodes differently. What publishes runs with moto's authentication
off (`auth_off`); what must be recorded as a key's use (IAM's last-used) runs with it on."""

from __future__ import annotations

import json
import time

import pytest

from harness import auth_off
from test_rotation_function import STEPS, make_user, run_steps, start_rotation, unique, value


@pytest.fixture(scope="module")
def topic(moto):
    """The notice topic, and a queue per owner subscribed with a filter policy on `owner`."""
    sns, sqs = moto.client("sns"), moto.client("sqs")
    arn = sns.create_topic(Name=unique("keyturn-notices"))["TopicArn"]
    queues = {}
    for owner in ("team-a", "team-b"):
        url = sqs.create_queue(QueueName=unique(f"notices-{owner}"))["QueueUrl"]
        queue_arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        sns.subscribe(
            TopicArn=arn, Protocol="sqs", Endpoint=queue_arn,
            Attributes={"FilterPolicyScope": "MessageAttributes", "FilterPolicy": json.dumps({"owner": [owner]})},
        )
        queues[owner] = url
    return {"arn": arn, "queues": queues}


def received(moto, url: str, want: int, wait: float = 5.0) -> list[dict]:
    """The SNS envelopes in the queue (at least `want`, or whatever came within `wait`)."""
    sqs, got = moto.client("sqs"), []
    deadline = time.monotonic() + wait
    while len(got) < want and time.monotonic() < deadline:
        for m in sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=0).get("Messages", []):
            got.append(json.loads(m["Body"]))
            sqs.delete_message(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"])
        time.sleep(0.1)
    time.sleep(0.3)  # and nothing more arrives
    for m in sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=0).get("Messages", []):
        got.append(json.loads(m["Body"]))
        sqs.delete_message(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"])
    return got


def owned_secret(moto, secrets_seen, owner: str, prefix: str, extra_tags=()):
    user, secret_id = unique(prefix), unique(f"keyturn/{prefix}")
    old = make_user(moto, user, secrets_seen)
    moto.client("secretsmanager").create_secret(
        Name=secret_id,
        SecretString=json.dumps({"UserName": user, "AccessKeyId": old["AccessKeyId"], "SecretAccessKey": old["SecretAccessKey"]}),
        Tags=[{"Key": "keyturn:managed", "Value": "true"}, {"Key": "keyturn:owner", "Value": owner}, *extra_tags],
    )
    return user, secret_id, old


def assert_chat_shape(envelope: dict, owner: str, kind: str) -> dict:
    assert envelope["MessageAttributes"]["owner"]["Value"] == owner, envelope
    assert envelope["MessageAttributes"]["kind"]["Value"] == kind, envelope
    message = json.loads(envelope["Message"])
    assert message["version"] == "1.0" and message["source"] == "custom", message
    assert message["content"]["textType"] == "client-markdown" and message["content"]["title"], message
    assert message["metadata"]["eventType"] == f"keyturn {kind}" and message["metadata"]["additionalContext"]["owner"] == owner
    return message


def assert_no_secret_in(texts, secrets):
    joined = "\n".join(texts)
    leaked = [s[:4] + "..." for s in secrets if s and s in joined]
    assert not leaked, f"a secret access key appeared in a notice: {leaked}"


def test_each_owner_receives_only_its_own_notices_in_the_chat_shape(moto, keyturn, function_factory, topic, secrets_seen):
    _, secret_a, old_a = owned_secret(moto, secrets_seen, "team-a", "notice-a")
    _, secret_b, old_b = owned_secret(moto, secrets_seen, "team-b", "notice-b")
    fn = function_factory(KEYTURN_NOTICE_TOPIC=topic["arn"])
    token = start_rotation(moto, secret_a)
    with auth_off(moto):
        run_steps(fn, secret_a, token, STEPS)
        rotated = json.loads(keyturn("--notice-topic", topic["arn"], "--output", "json", "rotate", secret_b).stdout)[0]
    assert rotated["outcome"] == "rotated", rotated
    new_a, new_b = value(moto, secret_a, "AWSCURRENT"), value(moto, secret_b, "AWSCURRENT")
    secrets_seen.update({new_a["SecretAccessKey"], new_b["SecretAccessKey"]})

    [to_a] = received(moto, topic["queues"]["team-a"], 1)
    [to_b] = received(moto, topic["queues"]["team-b"], 1)
    message = assert_chat_shape(to_a, "team-a", "rotated")
    assert secret_a in message["content"]["title"] and new_a["AccessKeyId"] in message["content"]["description"]
    assert old_a["AccessKeyId"] in message["content"]["description"], "it names the key it replaces"
    message = assert_chat_shape(to_b, "team-b", "rotated")
    assert secret_b in message["content"]["title"] and new_b["AccessKeyId"] in message["content"]["description"]
    assert_no_secret_in([json.dumps(to_a), json.dumps(to_b)], secrets_seen)

    # A failed step is told to the owner too (an unknown version: nothing changes).
    with auth_off(moto):
        ok, body = fn.step("createSecret", secret_a, "no-such-version")
    assert not ok and body["errorType"] == "UnknownVersion", body
    [failed] = received(moto, topic["queues"]["team-a"], 1)
    message = assert_chat_shape(failed, "team-a", "failed")
    assert "UnknownVersion" in message["content"]["description"]
    assert received(moto, topic["queues"]["team-b"], 0, wait=0.5) == [], "nothing reached the other owner"


def test_the_sweep_reminds_and_reports_a_key_in_use_and_notify_dry_run_prints_it(moto, keyturn, topic, secrets_seen):
    # Enrolled 23 days ago with a 30-day period: the rotation is 7 days away, and the consumers act
    # by hand (no sink, no restart target): the reminder is due today.
    enrolled = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() - 23 * 86400 - 3600))
    _, due_secret, _ = owned_secret(moto, secrets_seen, "team-a", "notice-due", [{"Key": "keyturn:enrolled-at", "Value": enrolled}])
    dry = json.loads(keyturn("--output", "json", "notify", "--dry-run", due_secret).stdout)
    assert [(r["kind"], r["owner"], r["sent"]) for r in dry] == [("due", "team-a", False)], dry
    assert dry[0]["message"]["content"]["nextSteps"], dry
    assert "would send due notice to team-a" in keyturn("notify", "--dry-run", due_secret).stdout
    assert received(moto, topic["queues"]["team-a"], 0, wait=0.5) == [], "a dry run sends nothing"
    refused = keyturn("notify", due_secret, check=False)
    assert refused.returncode == 2 and "--notice-topic" in refused.stderr
    with auth_off(moto):
        sent = json.loads(keyturn("--notice-topic", topic["arn"], "--output", "json", "notify", due_secret).stdout)
    assert [r["sent"] for r in sent] == [True], sent
    [reminder] = received(moto, topic["queues"]["team-a"], 1)
    assert_chat_shape(reminder, "team-a", "due")

    # A previous key still used after its grace period: the sweep tells the owner.
    _, in_use, old = owned_secret(moto, secrets_seen, "team-b", "notice-inuse")
    keyturn("rotate", in_use)
    secrets_seen.add(value(moto, in_use, "AWSCURRENT")["SecretAccessKey"])
    received(moto, topic["queues"]["team-b"], 0, wait=0.3)  # no topic was given to rotate: nothing
    time.sleep(1.1)
    with pytest.raises(Exception):
        moto.client("secretsmanager", old["AccessKeyId"], old["SecretAccessKey"]).list_secrets()
    with auth_off(moto):
        swept = json.loads(keyturn("--notice-topic", topic["arn"], "--output", "json", "sweep", "--grace-days", "0", in_use).stdout)[0]
    assert swept["action"] == "in-use", swept
    [notice] = received(moto, topic["queues"]["team-b"], 1)
    message = assert_chat_shape(notice, "team-b", "in-use")
    assert old["AccessKeyId"] in message["content"]["title"] and any("by " in s for s in message["content"]["nextSteps"]), message
    assert_no_secret_in([json.dumps(reminder), json.dumps(notice), json.dumps(dry)], secrets_seen)
