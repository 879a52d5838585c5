"""keyturn audit --security-hub against moto's Security Hub (BatchImportFindings, GetFindings): one
finding per key with a stable id, severities by finding, the exemption in the note, and a key that
is fixed or gone resolved on the next run without duplicates.

moto's GetFindings applies no filter and returns every finding of the account and region: the
tests filter by id as keyturn itself does. moto has no BatchUpdateFindings: keyturn reports that it
could not set the workflow status (a warning; the findings are archived all the same) and moto
keeps the RESOLVED workflow the import carried."""

import json
import re
from datetime import datetime, timedelta, timezone

from test_cli import managed_secret
from test_rotation_function import make_user, unique, value, whoami

ACCOUNT = "123456789012"
PRODUCT = f"arn:aws:securityhub:us-east-1:{ACCOUNT}:product/{ACCOUNT}/default"
TODAY = datetime.now(timezone.utc).date()


def findings(moto) -> dict[str, list[dict]]:
    """Every keyturn finding in the hub, by id (a list: a duplicate would show as two)."""
    hub = moto.client("securityhub")
    out: dict[str, list[dict]] = {}
    token = None
    while True:
        page = hub.get_findings(MaxResults=100, **({"NextToken": token} if token else {}))
        for f in page["Findings"]:
            if f["Id"].startswith("keyturn/"):
                out.setdefault(f["Id"], []).append(f)
        token = page.get("NextToken")
        if not token:
            return out


def test_findings_are_imported_updated_and_resolved(moto, keyturn, secrets_seen, tmp_path):
    iam = moto.client("iam")
    # A managed key in use (no finding today), an unmanaged one, an exempt one, and a secret whose
    # current key IAM no longer has.
    user, secret_id, key = managed_secret(moto, secrets_seen, "hubok")
    whoami(moto, key["AccessKeyId"], key["SecretAccessKey"])
    stray_user = unique("hubstray")
    stray = make_user(moto, stray_user, secrets_seen)
    exempt_user = unique("hubexempt")
    exempt = make_user(moto, exempt_user, secrets_seen)
    gone_user, gone_secret, gone = managed_secret(moto, secrets_seen, "hubgone")
    iam.delete_access_key(UserName=gone_user, AccessKeyId=gone["AccessKeyId"])
    until = TODAY + timedelta(days=60)
    exemptions = tmp_path / "exemptions.toml"
    exemptions.write_text(
        f'[[exemption]]\naccount = "{ACCOUNT}"\nuser = "{exempt_user}"\nreason = "vendor appliance"\n'
        f'owner = "platform@example.test"\nuntil = {until.isoformat()}\n'
    )

    first = keyturn("--output", "json", "audit", "--security-hub", "--exemptions", str(exemptions), check=False)
    assert first.returncode == 1, "a current key missing fails the audit"
    assert f"Security Hub of account {ACCOUNT}:" in first.stderr and "imported" in first.stderr, first.stderr
    hub = findings(moto)
    assert all(len(v) == 1 for v in hub.values()), "one finding per id"
    ids = {
        "stray": f"keyturn/{ACCOUNT}/{stray_user}/{stray['AccessKeyId']}",
        "exempt": f"keyturn/{ACCOUNT}/{exempt_user}/{exempt['AccessKeyId']}",
        "gone": f"keyturn/{ACCOUNT}/{gone_user}/{gone['AccessKeyId']}",
        "ok": f"keyturn/{ACCOUNT}/{user}/{key['AccessKeyId']}",
    }
    assert ids["ok"] not in hub, "a key with no finding has none in Security Hub"
    stray_f, exempt_f, gone_f = (hub[ids[k]][0] for k in ("stray", "exempt", "gone"))
    for f in (stray_f, exempt_f, gone_f):
        assert f["ProductArn"] == PRODUCT and f["AwsAccountId"] == ACCOUNT and f["GeneratorId"] == "keyturn-audit"
        assert f["SchemaVersion"] == "2018-10-08" and f["RecordState"] == "ACTIVE"
        assert f["FindingProviderFields"]["Severity"]["Label"] == f["Severity"]["Label"]
        assert "keyturn " in f["Remediation"]["Recommendation"]["Text"]
    assert (stray_f["Severity"]["Label"], stray_f["ProductFields"]["keyturn/finding"]) == ("MEDIUM", "unmanaged")
    assert stray_f["Resources"][0] == {
        "Type": "AwsIamAccessKey",
        "Id": f"AWS::IAM::AccessKey:{stray['AccessKeyId']}",
        "Partition": "aws",
        "Region": "us-east-1",
        "Details": {"AwsIamAccessKey": {"Status": "Active", "CreatedAt": stray_f["Resources"][0]["Details"]["AwsIamAccessKey"]["CreatedAt"],
                                        "PrincipalName": stray_user, "PrincipalType": "IAMUser", "AccountId": ACCOUNT}},
    }
    assert stray_f["Compliance"]["Status"] == "FAILED"
    assert (gone_f["Severity"]["Label"], gone_f["ProductFields"]["keyturn/finding"]) == ("CRITICAL", "current-key-missing")
    assert {"Type": "AwsSecretsManagerSecret", "Id": gone_secret, "Partition": "aws", "Region": "us-east-1"} in gone_f["Resources"]
    assert gone_secret in gone_f["Remediation"]["Recommendation"]["Text"]
    assert exempt_f["Severity"]["Label"] == "INFORMATIONAL" and exempt_f["Compliance"]["Status"] == "WARNING"
    note = exempt_f["Note"]["Text"]
    assert "platform@example.test" in note and "vendor appliance" in note and until.isoformat() in note, note
    assert exempt_f["ProductFields"]["keyturn/exemptUntil"] == until.isoformat()

    # 100 days on, the managed key is overdue: its finding appears, the others are updated in place.
    later = (TODAY + timedelta(days=100)).isoformat()
    second = keyturn("audit", "--security-hub", "--as-of", later, "--exemptions", str(exemptions), check=False)
    assert second.returncode == 1 and "imported" in second.stderr, second.stdout + second.stderr
    hub = findings(moto)
    assert all(len(v) == 1 for v in hub.values()), "a re-run updates, never duplicates"
    assert hub[ids["ok"]][0]["Severity"]["Label"] == "HIGH"
    assert hub[ids["ok"]][0]["ProductFields"]["keyturn/finding"] == "overdue"

    # Fixed: a working key put in the secret whose key was gone (as the remediation says; keyturn
    # rotate refuses a secret whose AWSCURRENT key is not the user's), then rotated, and the stray
    # key deleted. Today the managed key is fine again. Each of those findings is resolved.
    refused = keyturn("--output", "json", "rotate", gone_secret, check=False)
    assert refused.returncode == 1 and json.loads(refused.stdout)[0]["errorType"] == "NotUsersKey"
    working = iam.create_access_key(UserName=gone_user)["AccessKey"]
    secrets_seen.add(working["SecretAccessKey"])
    moto.client("secretsmanager").put_secret_value(SecretId=gone_secret, SecretString=json.dumps(
        {"UserName": gone_user, "AccessKeyId": working["AccessKeyId"], "SecretAccessKey": working["SecretAccessKey"]}))
    rotated = json.loads(keyturn("--output", "json", "rotate", gone_secret).stdout)
    assert rotated[0]["outcome"] == "rotated", rotated
    current = value(moto, gone_secret, "AWSCURRENT")
    secrets_seen.add(current["SecretAccessKey"])
    iam.delete_access_key(UserName=stray_user, AccessKeyId=stray["AccessKeyId"])
    third = keyturn("--output", "json", "audit", "--security-hub", "--exemptions", str(exemptions), check=False)
    assert "3 resolved" in third.stderr, third.stderr
    # moto has no BatchUpdateFindings: keyturn says the workflow status could not be set.
    assert "workflow status could not be set to RESOLVED" in third.stderr, third.stderr
    hub = findings(moto)
    assert all(len(v) == 1 for v in hub.values()), "resolving adds no finding"
    for k in ("stray", "gone", "ok"):
        f = hub[ids[k]][0]
        assert (f["RecordState"], f["Compliance"]["Status"], f["Workflow"]["Status"]) == ("ARCHIVED", "PASSED", "RESOLVED"), f
    assert hub[ids["exempt"]][0]["RecordState"] == "ACTIVE", "a finding that still holds stays active"
    # The rotated secret: its new current key was used (keyturn tested it), so it has no finding;
    # the key put in by hand, now AWSPREVIOUS, was never used: a low finding of its own.
    assert f"keyturn/{ACCOUNT}/{gone_user}/{current['AccessKeyId']}" not in hub
    f = hub[f"keyturn/{ACCOUNT}/{gone_user}/{working['AccessKeyId']}"][0]
    assert (f["RecordState"], f["Severity"]["Label"], f["ProductFields"]["keyturn/finding"]) == ("ACTIVE", "LOW", "never-used"), f

    # Nothing changed: a fourth run imports the same findings and resolves nothing more.
    fourth = keyturn("audit", "--security-hub", "--exemptions", str(exemptions), check=False)
    assert "0 resolved" in fourth.stderr, fourth.stderr
    assert findings(moto).keys() == hub.keys()


def emf_problems(line: dict) -> list[str]:
    """What keeps a log line from being valid embedded metric format, as CloudWatch's
    specification states the structure: `_aws` with an integer `Timestamp` (ms) and
    `CloudWatchMetrics`, each directive with a `Namespace` (1 to 255 characters), `Dimensions` (sets
    of at most 30 names, each a top-level string member) and `Metrics` (at most 100, each a `Name`
    that is a top-level number, or list of numbers, and an optional known `Unit`)."""
    units = {"Seconds", "Microseconds", "Milliseconds", "Bytes", "Kilobytes", "Megabytes", "Gigabytes", "Terabytes",
             "Bits", "Kilobits", "Megabits", "Gigabits", "Terabits", "Percent", "Count", "Bytes/Second",
             "Kilobytes/Second", "Megabytes/Second", "Gigabytes/Second", "Terabytes/Second", "Bits/Second",
             "Kilobits/Second", "Megabits/Second", "Gigabits/Second", "Terabits/Second", "Count/Second", "None"}
    problems = []
    aws = line.get("_aws")
    if not isinstance(aws, dict):
        return ["no _aws object"]
    if not isinstance(aws.get("Timestamp"), int) or isinstance(aws.get("Timestamp"), bool):
        problems.append("Timestamp is not an integer")
    directives = aws.get("CloudWatchMetrics")
    if not isinstance(directives, list) or not directives:
        return problems + ["no CloudWatchMetrics"]
    for d in directives:
        ns = d.get("Namespace")
        if not isinstance(ns, str) or not 1 <= len(ns) <= 255:
            problems.append(f"Namespace {ns!r}")
        for dims in d.get("Dimensions", []):
            if not isinstance(dims, list) or len(dims) > 30:
                problems.append(f"dimension set {dims!r}")
                continue
            problems += [f"dimension {n!r} has no string value" for n in dims if not isinstance(line.get(n), str)]
        metrics = d.get("Metrics")
        if not isinstance(metrics, list) or len(metrics) > 100:
            problems.append("Metrics")
            continue
        for m in metrics:
            name, unit = m.get("Name"), m.get("Unit", "None")
            if unit not in units:
                problems.append(f"{name}: unit {unit!r}")
            v = line.get(name)
            if not (isinstance(v, (int, float)) and not isinstance(v, bool)) and not (isinstance(v, list) and all(isinstance(x, (int, float)) for x in v)):
                problems.append(f"metric {name!r} has no number")
    return problems


def emf_lines(output: str) -> list[dict]:
    lines = []
    for text in output.splitlines():
        try:
            obj = json.loads(text)
        except json.JSONDecodeError:
            continue
        if isinstance(obj, dict) and "_aws" in obj:
            lines.append(obj)
    return lines


def test_the_function_audits_daily_into_security_hub_and_writes_emf_metrics(moto, function_factory, secrets_seen):
    from test_rotation_function import run_steps, start_rotation

    user, secret_id, _ = managed_secret(moto, secrets_seen, "hubfn")
    stray_user = unique("hubfnstray")
    stray = make_user(moto, stray_user, secrets_seen)
    fn = function_factory(KEYTURN_SECURITY_HUB="true", KEYTURN_GRACE_DAYS="0")
    token = start_rotation(moto, secret_id)
    run_steps(fn, secret_id, token)
    failed, _ = fn.step("createSecret", "keyturn/does-not-exist", "t-1")
    assert not failed
    ok, body = fn.runtime.invoke({"keyturn": "sweep"})
    assert ok, f"{body}\n{fn.output()}"
    assert body["audit"]["imported"] >= 1, body
    hub = findings(moto)
    stray_f = hub[f"keyturn/{ACCOUNT}/{stray_user}/{stray['AccessKeyId']}"]
    assert len(stray_f) == 1 and stray_f[0]["ProductFields"]["keyturn/finding"] == "unmanaged"
    assert stray_f[0]["ProductArn"] == PRODUCT

    lines = emf_lines(fn.output())
    for line in lines:
        assert not emf_problems(line), (emf_problems(line), line)
        assert all(d["Namespace"] == "keyturn" for d in line["_aws"]["CloudWatchMetrics"])
    names = {m["Name"] for line in lines for d in line["_aws"]["CloudWatchMetrics"] for m in d["Metrics"]}
    assert names >= {"Rotations", "Failures", "StepDuration", "KeysRetired", "SecretsAwaitingSwitch",
                     "AwaitingSwitchDays", "SweepBlocked", "KeysByFinding", "OldestActiveKeyDays"}, names
    steps = [line for line in lines if "Step" in line]
    assert [line["Step"] for line in steps] == ["createSecret", "setSecret", "testSecret", "finishSecret", "createSecret"], steps
    assert steps[3]["Rotations"] == 1 and steps[0]["Rotations"] == 0
    assert steps[4]["Failures"] == 1 and steps[4]["ErrorType"] and "ErrorType" in steps[4]["_aws"]["CloudWatchMetrics"][0]["Dimensions"][1]
    unmanaged = [line for line in lines if line.get("Finding") == "unmanaged"]
    assert len(unmanaged) == 1 and unmanaged[0]["KeysByFinding"] >= 1, unmanaged
    oldest = [line for line in lines if "OldestActiveKeyDays" in line]
    assert oldest and oldest[0]["Account"] == ACCOUNT and oldest[0]["OldestActiveKeyDays"] == 0


def test_hundreds_of_findings_go_in_batches_of_100_through_throttling(moto, keyturn, secrets_seen):
    from faultproxy import FaultProxy

    iam = moto.client("iam")
    prefix = unique("hubmany")
    made = {}
    for i in range(230):
        name = f"{prefix}-{i:03d}"
        iam.create_user(UserName=name)
        key = iam.create_access_key(UserName=name)["AccessKey"]
        secrets_seen.add(key["SecretAccessKey"])
        made[name] = key["AccessKeyId"]
    # A third of all calls' first attempts throttled: the SDK retries them (a batch of 100 as a whole).
    proxy = FaultProxy(moto.endpoint, throttle_share=0.33)
    try:
        proc = keyturn("--output", "json", "audit", "--security-hub", "--fail-on", "current-key-missing",
                       env_extra={"AWS_ENDPOINT_URL": proxy.endpoint})
        imports = proxy.calls.count("BatchImportFindings")
        throttled = proxy.attempts - len(proxy.calls)
    finally:
        proxy.close()
    assert "imported" in proc.stderr, proc.stderr
    hub = findings(moto)
    mine = {i: v for i, v in hub.items() if f"/{prefix}-" in i}
    assert len(mine) == 230 and all(len(v) == 1 for v in mine.values())
    assert {i.rsplit("/", 1)[1] for i in mine} == set(made.values())
    said = re.search(r"(\d+) finding\(s\) about account \d+ imported, (\d+) resolved", proc.stderr)
    total = int(said.group(1)) + int(said.group(2))
    assert imports == -(-total // 100), (imports, total)
    assert throttled > 0, "the proxy throttled some calls"
