"""What a new user trips on (issue 25): Ctrl-C in the middle of a bulk rotation, the messages of
the common mistakes, outputs that must agree with each other. Against moto with authentication on,
through the release CLI."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import time

from conftest import ALL_OUTPUT
from faultproxy import FaultProxy
from harness import base_env
from test_rotation_function import key_statuses, make_user, unique, value

POLICY = '{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"iam:ListUsers","Resource":"*"}]}'


def fleet_of_secrets(moto, secrets_seen, prefix, n):
    """n managed secrets under `prefix`, one user each: {secret: (user, first key id)}."""
    made = {}
    for i in range(n):
        user, secret = unique(f"sig{i}"), f"{prefix}s{i:02d}"
        key = make_user(moto, user, secrets_seen, policy=POLICY)
        moto.client("secretsmanager").create_secret(
            Name=secret,
            SecretString=json.dumps({"UserName": user, "AccessKeyId": key["AccessKeyId"], "SecretAccessKey": key["SecretAccessKey"]}),
            Tags=[{"Key": "keyturn:managed", "Value": "true"}],
        )
        made[secret] = (user, key["AccessKeyId"])
    return made


def settled(moto, secrets_seen, made):
    """Each secret rotated or untouched, nothing in flight, no key held by no version: the names
    rotated."""
    sm = moto.client("secretsmanager")
    rotated = set()
    for secret, (user, first) in made.items():
        stages = sm.describe_secret(SecretId=secret)["VersionIdsToStages"]
        assert not any("AWSPENDING" in s for s in stages.values()), f"{secret}: a rotation left in flight: {stages}"
        current = value(moto, secret, "AWSCURRENT")
        secrets_seen.add(current["SecretAccessKey"])
        held = {current["AccessKeyId"]}
        if any("AWSPREVIOUS" in s for s in stages.values()):
            held.add(value(moto, secret, "AWSPREVIOUS")["AccessKeyId"])
        assert set(key_statuses(moto, user)) == held, f"{secret}: a key held by no version"
        if current["AccessKeyId"] != first:
            rotated.add(secret)
    return rotated


def rotate_all(env, binary, prefix, *extra):
    return subprocess.Popen(
        [str(binary), "--prefix", prefix, "--output", "json", "rotate", *extra],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )


def wait_for(proxy, op, n, timeout=60):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proxy.calls.count(op) >= n:
            return
        time.sleep(0.02)
    raise AssertionError(f"{op} was called {proxy.calls.count(op)} times, not {n}")


def test_ctrl_c_mid_rotate_all_stops_at_a_safe_point_and_names_what_finishes_the_rest(moto, keyturn_binary, keyturn, secrets_seen):
    prefix = unique("keyturn/sigint") + "/"
    made = fleet_of_secrets(moto, secrets_seen, prefix, 20)
    proxy = FaultProxy(moto.endpoint, delay=0.04)  # a slower network: the run lasts seconds
    try:
        proc = rotate_all(base_env(proxy.endpoint, *moto.admin), keyturn_binary, prefix, "--all", "--concurrency", "4")
        wait_for(proxy, "CreateAccessKey", 6)  # mid-run: some done, four in flight
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=120)
    finally:
        proxy.close()
    ALL_OUTPUT.append(out + err)
    assert proc.returncode == 130, err
    rows = json.loads(out)
    outcomes = {r["secret"]: r["outcome"] for r in rows}
    assert sorted(outcomes) == sorted(made), "every secret has its row"
    assert set(outcomes.values()) == {"rotated", "not-started"}, outcomes
    left = sorted(s for s, o in outcomes.items() if o == "not-started")
    assert "starting nothing new" in err and "interrupted: " in err, err
    # The secrets in flight were let finish: each is rotated or untouched, and the table agrees.
    assert settled(moto, secrets_seen, made) == {s for s, o in outcomes.items() if o == "rotated"}
    # The one command that finishes the rest names exactly the secrets not started.
    command = re.search(r"to rotate the rest, run: (.+)$", err, re.M).group(1)
    words = command.split()
    assert words[0] == str(keyturn_binary) and "--all" not in words and sorted(w for w in words if w.startswith(prefix) and w != prefix) == left, command
    rest = subprocess.run(words, env=base_env(moto.endpoint, *moto.admin), capture_output=True, text=True, timeout=300)
    ALL_OUTPUT.append(rest.stdout + rest.stderr)
    assert rest.returncode == 0, rest.stderr
    assert sorted(r["secret"] for r in json.loads(rest.stdout) if r["outcome"] == "rotated") == left
    assert settled(moto, secrets_seen, made) == set(made)
    # And a plain rotate --all afterwards completes.
    again = json.loads(keyturn("--prefix", prefix, "--output", "json", "rotate", "--all").stdout)
    assert [r["outcome"] for r in again] == ["rotated"] * 20


def test_a_second_ctrl_c_aborts_at_once_and_names_the_resume_that_repairs(moto, keyturn_binary, keyturn, secrets_seen):
    prefix = unique("keyturn/abort") + "/"
    made = fleet_of_secrets(moto, secrets_seen, prefix, 6)
    # Each run's key is made, then its PutSecretValue held: the abort cuts the rotations off there.
    proxy = FaultProxy(moto.endpoint, hold="PutSecretValue")
    try:
        proc = rotate_all(base_env(proxy.endpoint, *moto.admin), keyturn_binary, prefix, "--all", "--concurrency", "3")
        assert proxy.holding.wait(60)
        wait_for(proxy, "PutSecretValue", 3)
        proc.send_signal(signal.SIGINT)
        time.sleep(0.3)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=30)
        proxy.unhold.set()  # the held writes land or not: the repair must handle both
        time.sleep(1.0)
    finally:
        proxy.close()
    ALL_OUTPUT.append(out + err)
    assert proc.returncode == 130 and out == "", (out, err)
    assert "aborted at once, cutting off the work on 3 secret(s)" in err, err
    command = re.search(r"finish them with: (.+)$", err, re.M).group(1)
    words = command.split()
    cut = sorted(w for w in words if w.startswith(prefix) and w != prefix)
    assert len(cut) == 3 and "--resume" in words and "--all" not in words, command
    repaired = subprocess.run(words, env=base_env(moto.endpoint, *moto.admin), capture_output=True, text=True, timeout=300)
    ALL_OUTPUT.append(repaired.stdout + repaired.stderr)
    assert repaired.returncode == 0, repaired.stdout + repaired.stderr
    assert {r["outcome"] for r in json.loads(repaired.stdout)} == {"resumed"}, repaired.stdout
    assert settled(moto, secrets_seen, made) == set(cut)
    again = json.loads(keyturn("--prefix", prefix, "--output", "json", "rotate", "--all").stdout)
    assert [r["outcome"] for r in again] == ["rotated"] * 6


def test_the_common_mistakes_get_their_cause_and_next_step(moto, keyturn, secrets_seen):
    ghost = unique("ghost")
    enrolled = keyturn("enroll", ghost, check=False)
    assert enrolled.returncode == 2 and f"IAM user {ghost} does not exist, so nothing was created" in enrolled.stderr, enrolled.stderr
    assert "keyturn:user" not in enrolled.stderr and "IAM_USER_NAME" not in enrolled.stderr
    # An unknown region: moto answers HTTP 500 with nothing in it; the message says so and does not
    # call it transient.
    region = keyturn("--region", "us-east-9", "status", "keyturn/anything", check=False)
    assert region.returncode == 2 and "HTTP 500: the service answered with no error code or message" in region.stderr, region.stderr
    assert "transient" not in region.stderr and "check the region" in region.stderr
    prefix = keyturn("--prefix", "keyturn", "status", "keyturn/anything", check=False)
    assert prefix.returncode == 2 and "fix --prefix (or KEYTURN_SECRET_PREFIX)" in prefix.stderr and "--user-path" not in prefix.stderr, prefix.stderr
    # enroll --user USER is enroll USER; the usage names the two forms apart.
    user = unique("byflag")
    moto.client("iam").create_user(UserName=user)
    by_flag = keyturn("enroll", "--user", user)
    assert f"enrolled keyturn/{user} for user {user}" in by_flag.stdout and "not scheduled: rotate it with keyturn rotate" in by_flag.stdout, by_flag.stdout
    secrets_seen.add(value(moto, f"keyturn/{user}", "AWSCURRENT")["SecretAccessKey"])
    usage = keyturn("enroll", check=False)
    assert usage.returncode == 2 and "keyturn enroll [OPTIONS] USER\n" in usage.stderr and "--adopt SECRET [--user USER]" in usage.stderr, usage.stderr
    # A young key no version holds (another run's, maybe): in the table, the cause in one clause;
    # in JSON, the whole text, which does not contradict itself.
    stray = moto.client("iam").create_access_key(UserName=user)["AccessKey"]
    secrets_seen.add(stray["SecretAccessKey"])
    table = keyturn("rotate", f"keyturn/{user}", check=False)
    assert table.returncode == 1 and "taken for the new key of another keyturn run" in table.stdout, table.stdout
    assert "let that run finish" not in table.stdout and "errors are shortened to their cause: --output json gives each in full" in table.stdout, table.stdout
    full = json.loads(keyturn("--output", "json", "rotate", f"keyturn/{user}", check=False).stdout)[0]["error"]
    assert f"let that run finish; if no keyturn run is under way, keyturn rotate --resume keyturn/{user} takes the key" in full, full
    assert "move what uses it" not in full, full
    moto.client("iam").delete_access_key(UserName=user, AccessKeyId=stray["AccessKeyId"])
    # The current key deleted by hand: the refusal names rollback, which repairs it.
    keyturn("rotate", f"keyturn/{user}")
    current = value(moto, f"keyturn/{user}", "AWSCURRENT")
    secrets_seen.add(current["SecretAccessKey"])
    moto.client("iam").delete_access_key(UserName=user, AccessKeyId=current["AccessKeyId"])
    secrets_seen.add(moto.client("iam").create_access_key(UserName=user)["AccessKey"]["SecretAccessKey"])  # the user is full again
    refused = keyturn("--output", "json", "rotate", f"keyturn/{user}", check=False)
    row = json.loads(refused.stdout)[0]
    assert refused.returncode == 1 and row["errorType"] == "NotUsersKey" and f"keyturn rollback keyturn/{user} makes it AWSCURRENT again" in row["error"], row


def test_status_agrees_with_itself_and_prints_times_for_people(moto, keyturn, secrets_seen):
    user = unique("statusfor")
    moto.client("iam").create_user(UserName=user)
    secret = f"keyturn/{user}"
    keyturn("enroll", user)
    for _ in range(3):  # three rotations: two versions hold a label, two older ones none
        keyturn("rotate", secret)
    secrets_seen.add(value(moto, secret, "AWSCURRENT")["SecretAccessKey"])
    report = json.loads(keyturn("--output", "json", "status", secret).stdout)
    # The JSON names the same last rotation as the table: keyturn's cut-over.
    assert report["lastRotated"] == report["cutover"] and report["lastRotatedBy"] == "keyturn", report
    assert sorted(tuple(v["labels"]) for v in report["versions"]) == [("AWSCURRENT",), ("AWSPREVIOUS",)], report["versions"]
    assert report["versionsNotShown"] == 2, report
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d+Z", report["lastRotated"]), "JSON keeps RFC 3339's precision"
    every = json.loads(keyturn("--output", "json", "status", "--all-versions", secret).stdout)
    assert len(every["versions"]) == 4 and every["versionsNotShown"] == 0, every["versions"]
    text = keyturn("status", secret).stdout
    last = report["lastRotated"][:19] + "Z"
    assert f"last rotated {last} (cut-over by keyturn)" in text, text
    assert "and 2 older version(s) with no label (--all-versions lists them)" in text, text
    # Times for people are whole seconds: no fraction anywhere in the text.
    assert not re.search(r"T\d\d:\d\d:\d\d\.\d", text), text
