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
    assert by_user[stray_user][0]["keyId"] is None, "unmanaged keys are named by their report slot"

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
    keyturn("audit", "--html", str(page), "--as-of", as_of(100), check=False)
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
