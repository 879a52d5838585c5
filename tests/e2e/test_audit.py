"""keyturn audit against moto: keys in every state, judged at several --as-of dates, in every format."""

import csv
import io
import json
from datetime import datetime, timedelta, timezone

from test_cli import managed_secret
from test_rotation_function import make_user, unique, value, whoami


def as_of(days: int) -> str:
    return (datetime.now(timezone.utc) + timedelta(days=days)).strftime("%Y-%m-%d")


def test_audit_judges_every_active_key(moto, keyturn, secrets_seen, tmp_path):
    iam = moto.client("iam")
    user, secret_id, first = managed_secret(moto, secrets_seen, "audited")
    whoami(moto, first["AccessKeyId"], first["SecretAccessKey"])  # used while current
    keyturn("rotate", secret_id)
    current = value(moto, secret_id, "AWSCURRENT")
    secrets_seen.add(current["SecretAccessKey"])
    whoami(moto, current["AccessKeyId"], current["SecretAccessKey"])
    stray_user = unique("stray")
    stray = make_user(moto, stray_user, secrets_seen)
    whoami(moto, stray["AccessKeyId"], stray["SecretAccessKey"])
    idle_user = unique("idle")
    make_user(moto, idle_user, secrets_seen)
    off_user = unique("off")
    off = make_user(moto, off_user, secrets_seen)
    iam.update_access_key(UserName=off_user, AccessKeyId=off["AccessKeyId"], Status="Inactive")
    mine = {user, stray_user, idle_user, off_user}

    def run(*extra, check=True):
        proc = keyturn("--output", "json", "audit", *extra, check=check)
        keys = [k for k in json.loads(proc.stdout)["keys"] if k["user"] in mine]
        return proc.returncode, {(k["user"], k["keyId"] or f"slot{k['slot']}"): k for k in keys}

    code, now = run()
    assert code == 0
    assert off_user not in {u for u, _ in now}, "inactive keys do not count"
    by_user = {}
    for (u, _), k in now.items():
        by_user.setdefault(u, []).append(k)
    cur = now[(user, current["AccessKeyId"])]
    prev = now[(user, first["AccessKeyId"])]
    assert (cur["finding"], cur["secret"], cur["label"]) == ("ok", secret_id, "AWSCURRENT")
    assert (prev["finding"], prev["label"]) == ("ok", "AWSPREVIOUS")
    # moto's report writes not_supported for the last-used service and region (AWS fills them in),
    # so only the date is checked here; the parser's unit tests cover service and region.
    assert cur["lastUsed"] is not None and cur["lastUsedService"] is None and cur["ageDays"] == 0
    assert [k["findings"] for k in by_user[stray_user]] == [["unmanaged"]]
    assert [k["findings"] for k in by_user[idle_user]] == [["unmanaged", "never-used"]]
    # The report names no key ids; keyturn lists the keys of a user with an unmanaged active key.
    assert by_user[stray_user][0]["keyId"] == stray["AccessKeyId"], by_user[stray_user]

    _, later = run("--as-of", as_of(10))
    assert later[(user, first["AccessKeyId"])]["findings"] == ["stale-previous"]
    assert later[(user, current["AccessKeyId"])]["findings"] == ["ok"]
    _, month = run("--as-of", as_of(31))
    assert month[(user, current["AccessKeyId"])]["findings"] == ["due"]
    code, quarter = run("--as-of", as_of(100), check=False)
    assert code == 1, "overdue keys fail the audit by default"
    assert all(k["findings"][0] == "overdue" for k in quarter.values())
    assert quarter[(user, current["AccessKeyId"])]["ageDays"] == 100, "whole calendar days"

    failing = keyturn("audit", "--fail-on", "unmanaged", check=False)
    assert failing.returncode == 1 and "unmanaged" in failing.stdout
    assert keyturn("audit", "--fail-on", "overdue").returncode == 0
    bad = keyturn("audit", "--fail-on", "scary", check=False)
    assert bad.returncode == 2 and "expected one of" in bad.stderr

    rows = list(csv.DictReader(io.StringIO(keyturn("--output", "csv", "audit").stdout)))
    assert {"user", "keyId", "ageDays", "secret", "finding"} <= set(rows[0])
    assert {r["user"] for r in rows} >= {user, stray_user, idle_user}
    assert any(r["keyId"] == current["AccessKeyId"] and r["secret"] == secret_id for r in rows)

    page = tmp_path / "audit.html"
    wrote = keyturn("audit", "--html", str(page), "--as-of", as_of(100), check=False)
    assert f"keyturn: wrote the audit page to {page}" in wrote.stderr, wrote.stderr
    html = page.read_text()
    assert html.startswith("<!DOCTYPE html>") and "<svg" in html and "<rect" in html
    assert "<script" not in html and "http" not in html.replace('xmlns="http://www.w3.org/2000/svg"', "")
    assert stray_user in html and current["AccessKeyId"] in html and "overdue" in html


def test_audit_names_every_key_it_knows_and_flags_a_current_key_iam_no_longer_has(moto, keyturn, secrets_seen):
    iam = moto.client("iam")
    user, secret_id, held = managed_secret(moto, secrets_seen, "named")
    extra = iam.create_access_key(UserName=user)["AccessKey"]  # by hand: held by no version
    secrets_seen.add(extra["SecretAccessKey"])
    gone_user, gone_secret, gone = managed_secret(moto, secrets_seen, "gone")
    iam.delete_access_key(UserName=gone_user, AccessKeyId=gone["AccessKeyId"])

    proc = keyturn("--output", "json", "audit", check=False)
    keys = json.loads(proc.stdout)["keys"]
    mine = {k["keyId"]: k for k in keys if k["user"] == user}
    assert set(mine) == {held["AccessKeyId"], extra["AccessKeyId"]}, mine
    assert mine[extra["AccessKeyId"]]["findings"][0] == "unmanaged" and mine[extra["AccessKeyId"]]["secret"] is None
    missing = [k for k in keys if k["user"] == gone_user]
    assert [(k["keyId"], k["finding"], k["secret"], k["slot"]) for k in missing] == [
        (gone["AccessKeyId"], "current-key-missing", gone_secret, None)
    ], missing
    assert proc.returncode == 1, "the most serious finding fails the audit at the default --fail-on"
    table = keyturn("audit", check=False).stdout
    assert extra["AccessKeyId"] in table and "current-key-missing" in table
    moto.client("secretsmanager").delete_secret(SecretId=gone_secret, ForceDeleteWithoutRecovery=True)


def test_an_auditor_without_get_secret_value_still_joins_keys_to_their_secrets(moto, keyturn, secrets_seen):
    """finishSecret records the key ids AWSCURRENT and AWSPREVIOUS hold in the secret's tags, so a
    read-only auditor (no secretsmanager:GetSecretValue) still sees which secret holds which key;
    a recorded id that is not the user's key is not believed."""
    from botocore.exceptions import ClientError
    from harness import allow

    user, secret_id, _ = managed_secret(moto, secrets_seen, prefix="recorded")
    keyturn("rotate", secret_id)
    keyturn("rotate", secret_id)
    current, previous = (value(moto, secret_id, label) for label in ("AWSCURRENT", "AWSPREVIOUS"))
    secrets_seen.update({current["SecretAccessKey"], previous["SecretAccessKey"]})
    sm = moto.client("secretsmanager")
    tags = {t["Key"]: t["Value"] for t in sm.describe_secret(SecretId=secret_id)["Tags"]}
    assert (tags["keyturn:current-key"], tags["keyturn:previous-key"]) == (current["AccessKeyId"], previous["AccessKeyId"])

    auditor_name = unique("auditor")
    auditor = make_user(moto, auditor_name, secrets_seen, policy=allow(
        "iam:GenerateCredentialReport", "iam:GetCredentialReport", "iam:ListAccessKeys", "iam:GetAccessKeyLastUsed",
        "secretsmanager:ListSecrets", "secretsmanager:DescribeSecret", "sts:GetCallerIdentity",
    ))
    as_auditor = {"AWS_ACCESS_KEY_ID": auditor["AccessKeyId"], "AWS_SECRET_ACCESS_KEY": auditor["SecretAccessKey"]}
    try:
        moto.client("secretsmanager", auditor["AccessKeyId"], auditor["SecretAccessKey"]).get_secret_value(SecretId=secret_id)
        raise AssertionError("the auditor could read a secret value")
    except ClientError as e:
        assert "not authorized to perform: secretsmanager:GetSecretValue" in str(e), e

    def held(env):
        proc = keyturn("--output", "json", "audit", env_extra=env, check=False)
        assert proc.returncode in (0, 1), proc.stderr
        return {k["keyId"]: k["label"] for k in json.loads(proc.stdout)["keys"] if k["user"] == user}, proc.stderr

    labels, _ = held(as_auditor)
    assert labels == {current["AccessKeyId"]: "AWSCURRENT", previous["AccessKeyId"]: "AWSPREVIOUS"}, labels

    # A forged record (another user's key as AWSCURRENT): not believed; the auditor cannot read the
    # value instead, so the secret is reported as unreadable and its keys as unmanaged.
    other = make_user(moto, unique("other"), secrets_seen)
    sm.tag_resource(SecretId=secret_id, Tags=[{"Key": "keyturn:current-key", "Value": other["AccessKeyId"]}])
    labels, stderr = held(as_auditor)
    assert other["AccessKeyId"] not in labels and set(labels.values()) == {None}, labels
    assert secret_id in stderr and "reported as unmanaged" in stderr, stderr
    # With GetSecretValue (the administrator), the values decide, whatever the tag says.
    labels, _ = held({})
    assert labels == {current["AccessKeyId"]: "AWSCURRENT", previous["AccessKeyId"]: "AWSPREVIOUS"}, labels
