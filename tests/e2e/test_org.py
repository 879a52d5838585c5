"""keyturn across an AWS Organization, in moto: an organization of four member accounts in two OUs
(one nested) and the management account; keyturn's member-account template (the rotation stack and
the member role, built by deploy/org/build.py) deployed to the OUs by a service-managed StackSet as
deploy/org/stackset.yaml declares it, with the operator policy on in one OU and off in the other;
one account left without the role. Users, keys and managed secrets (by `keyturn enroll` with each
account's own credentials) in every account; authentication on after set-up.

moto evaluates no trust policy and lets any role be assumed, even one that does not exist (whose
credentials then fail with a 500): the tests reach moto through a proxy that answers AssumeRole of
the account without the role with AccessDenied, as STS does."""

from __future__ import annotations

import datetime
import io
import json
import re
import subprocess
import time
import zipfile

import boto3
import botocore.config
import pytest
from cfnlint.decode import decode_str

from faultproxy import FaultProxy
from harness import HOST, REGION, ROOT, allow, auth_off, base_env, free_port


def _load_build():
    """deploy/org/build.py, loaded by path (a module named `build` may already be PyPA's)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("keyturn_org_build", ROOT / "deploy" / "org" / "build.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


member_template = _load_build()

ROLE = "keyturn-org-access"
MANAGEMENT = "123456789012"
USERS = ("svc-a", "svc-b")
TODAY = datetime.datetime.now(datetime.timezone.utc).date()


def client(endpoint: str, service: str, creds: tuple[str, str, str | None]):
    return boto3.client(
        service,
        endpoint_url=endpoint,
        region_name=REGION,
        aws_access_key_id=creds[0],
        aws_secret_access_key=creds[1],
        aws_session_token=creds[2],
        config=botocore.config.Config(retries={"max_attempts": 2}),
    )


class Org:
    """The organization as the tests set it up."""

    def __init__(self, moto, keyturn_bin):
        self.moto = moto
        self.keyturn_bin = keyturn_bin
        self.accounts: dict[str, str] = {"management": MANAGEMENT}  # name -> id
        self.ous: dict[str, str] = {}
        self.keys: dict[str, dict[str, str]] = {}  # account id -> user -> enrolled key id
        self.legacy: dict[str, str] = {}  # account id -> the unmanaged key's id
        self.secret_keys: set[str] = set()
        self.setup_output: list[str] = []
        self.stack_sets: list[str] = []

    # Credentials: the administrator's in the management account; in a member account those of
    # OrganizationAccountAccessRole (given an inline policy in set-up), for the tests' own checks.
    def creds(self, account: str) -> tuple[str, str, str | None]:
        if account == MANAGEMENT:
            return (*self.moto.admin, None)
        admin = client(self.moto.endpoint, "sts", (*self.moto.admin, None))
        c = admin.assume_role(RoleArn=f"arn:aws:iam::{account}:role/OrganizationAccountAccessRole", RoleSessionName="tests")["Credentials"]
        return (c["AccessKeyId"], c["SecretAccessKey"], c["SessionToken"])

    def client(self, account: str, service: str):
        return client(self.moto.endpoint, service, self.creds(account))

    def build(self):
        admin = (*self.moto.admin, None)
        org = client(self.moto.endpoint, "organizations", admin)
        self.org_id = org.create_organization(FeatureSet="ALL")["Organization"]["Id"]
        root = org.list_roots()["Roots"][0]["Id"]
        self.ous["prod"] = org.create_organizational_unit(ParentId=root, Name="prod")["OrganizationalUnit"]["Id"]
        self.ous["nested"] = org.create_organizational_unit(ParentId=self.ous["prod"], Name="prod-eu")["OrganizationalUnit"]["Id"]
        self.ous["dev"] = org.create_organizational_unit(ParentId=root, Name="dev")["OrganizationalUnit"]["Id"]
        for name, ou in (("prod", "prod"), ("nested", "nested"), ("dev", "dev"), ("norole", None)):
            account = org.create_account(Email=f"{name}@example.test", AccountName=name)["CreateAccountStatus"]["AccountId"]
            self.accounts[name] = account
            if ou:
                org.move_account(AccountId=account, SourceParentId=root, DestinationParentId=self.ous[ou])
        for name in ("prod", "nested", "dev", "norole"):
            self.client(self.accounts[name], "iam").put_role_policy(
                RoleName="OrganizationAccountAccessRole", PolicyName="tests", PolicyDocument=allow("*"))
        self.deploy_stack_set()
        self.deployed_policies = {}
        for name in ("prod", "nested", "dev"):
            self.widen_for_moto(self.accounts[name])
        for account in self.accounts.values():
            self.populate(account)

    def widen_for_moto(self, account: str):
        """moto matches a policy's resources against "*" and so denies every resource-scoped
        statement: the member role's policies are put back with the same actions on "*" (the
        deployed documents are kept for the test that reads them). The actions are what moto
        evaluates, and what org check and the auditor-only OU show."""
        iam = self.client(account, "iam")
        for name in iam.list_role_policies(RoleName=ROLE)["PolicyNames"]:
            doc = iam.get_role_policy(RoleName=ROLE, PolicyName=name)["PolicyDocument"]
            doc = json.loads(doc) if isinstance(doc, str) else doc
            self.deployed_policies[(account, name)] = json.loads(json.dumps(doc))
            for statement in doc["Statement"]:
                statement["Resource"] = "*"
                statement.pop("Condition", None)
            iam.put_role_policy(RoleName=ROLE, PolicyName=name, PolicyDocument=json.dumps(doc))

    def deploy_stack_set(self):
        """The StackSet as deploy/org/stackset.yaml declares it (moto's CloudFormation has no
        AWS::CloudFormation::StackSet resource, so its properties drive the API here), with the
        member-account template deploy/org/build.py makes and the code from a bucket in the
        management account (the bucket deploy/org/code-bucket.yaml makes)."""
        admin = (*self.moto.admin, None)
        # The code bucket from deploy/org/code-bucket.yaml, in the management account.
        bucket_template, problems = decode_str((ROOT / "deploy" / "org" / "code-bucket.yaml").read_text())
        assert not problems, problems
        cf = client(self.moto.endpoint, "cloudformation", admin)
        cf.create_stack(StackName="keyturn-code", TemplateBody=json.dumps(bucket_template, default=str),
                        Parameters=[{"ParameterKey": "OrganizationId", "ParameterValue": self.org_id}])
        deadline = time.monotonic() + 60
        while (stack := cf.describe_stacks(StackName="keyturn-code")["Stacks"][0])["StackStatus"].endswith("IN_PROGRESS") and time.monotonic() < deadline:
            time.sleep(0.5)
        assert stack["StackStatus"] == "CREATE_COMPLETE", stack
        self.bucket = next(o["OutputValue"] for o in stack["Outputs"] if o["OutputKey"] == "CodeBucketName")
        s3 = client(self.moto.endpoint, "s3", admin)
        zipped = io.BytesIO()
        with zipfile.ZipFile(zipped, "w") as z:
            z.writestr("bootstrap", "#!/bin/sh\n")  # moto runs no function: any code will do
        s3.put_object(Bucket=self.bucket, Key="keyturn/bootstrap.zip", Body=zipped.getvalue())
        self.template = member_template.merged()
        declared, problems = decode_str((ROOT / "deploy" / "org" / "stackset.yaml").read_text())
        assert not problems, problems
        props = declared["Resources"]["KeyturnStackSet"]["Properties"]
        self.declared = props
        values = {
            "CodeBucket": self.bucket,
            "CodeKey": "keyturn/bootstrap.zip",
            "CentralAccountId": MANAGEMENT,
            "TrustedPrincipalArns": f"arn:aws:iam::{MANAGEMENT}:user/admin",
            "OrganizationId": self.org_id,
            "ExternalId": "",
            "EnableAuditor": "true",
            "EnableOperator": "true",
            "EnableSecurityHubFindings": "true",
            "SecurityHubFindings": "true",
            "RoleName": ROLE,
            "SecretNamePrefix": "keyturn/",
            "UserPath": "/keyturn/",
            "AlertEmail": "",
        }
        assert [p["ParameterKey"] for p in props["Parameters"]] == list(values), "stackset.yaml passes these parameters"
        params = [{"ParameterKey": k, "ParameterValue": v} for k, v in values.items()]
        name = str(props["StackSetName"])
        cf.create_stack_set(
            StackSetName=name,
            TemplateBody=json.dumps(self.template),
            PermissionModel=str(props["PermissionModel"]),
            AutoDeployment={k: bool(v) for k, v in props["AutoDeployment"].items()},
            Capabilities=[str(c) for c in props["Capabilities"]],
            Parameters=params,
        )
        self.stack_sets.append(name)
        regions = [REGION]
        cf.create_stack_instances(StackSetName=name, DeploymentTargets={"OrganizationalUnitIds": [self.ous["prod"]]}, Regions=regions)
        # The dev OU gets the auditor policy only, without Security Hub's findings (moto takes
        # overrides as the whole parameter set).
        off = ("EnableOperator", "EnableSecurityHubFindings", "SecurityHubFindings")
        dev = [{**p, "ParameterValue": "false"} if p["ParameterKey"] in off else p for p in params]
        cf.create_stack_instances(StackSetName=name, DeploymentTargets={"OrganizationalUnitIds": [self.ous["dev"]]}, Regions=regions, ParameterOverrides=dev)
        deadline = time.monotonic() + 60
        while True:
            instances = cf.list_stack_instances(StackSetName=name)["Summaries"]
            if all(i["StackInstanceStatus"]["DetailedStatus"] == "SUCCEEDED" for i in instances) or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        self.instances = {i["Account"]: i["StackInstanceStatus"]["DetailedStatus"] for i in instances}

    def keyturn(self, account: str, *args: str) -> subprocess.CompletedProcess:
        key, secret, token = self.creds(account)
        env = base_env(self.moto.endpoint, key, secret)
        if token:
            env["AWS_SESSION_TOKEN"] = token
        proc = subprocess.run([str(self.keyturn_bin), *args], capture_output=True, text=True, env=env, timeout=120)
        self.setup_output.append(proc.stdout + proc.stderr)
        assert proc.returncode == 0, f"keyturn {args} in {account}: {proc.stdout}\n{proc.stderr}"
        return proc

    def populate(self, account: str):
        """Two enrolled users (their keys made by keyturn enroll, in the account's own secrets)
        and one with a key no secret holds."""
        iam, sm = self.client(account, "iam"), self.client(account, "secretsmanager")
        self.keys[account] = {}
        for user in USERS:
            iam.create_user(UserName=user, Path="/keyturn/")
            iam.put_user_policy(UserName=user, PolicyName="whoami", PolicyDocument=allow("sts:GetCallerIdentity"))
            report = json.loads(self.keyturn(account, "--output", "json", "enroll", user).stdout)
            self.keys[account][user] = report["keyId"]
            value = json.loads(sm.get_secret_value(SecretId=f"keyturn/{user}")["SecretString"])
            self.secret_keys.add(value["SecretAccessKey"])
        iam.create_user(UserName="legacy")
        legacy = iam.create_access_key(UserName="legacy")["AccessKey"]
        self.secret_keys.add(legacy["SecretAccessKey"])
        self.legacy[account] = legacy["AccessKeyId"]


@pytest.fixture(scope="module")
def org(moto, keyturn_binary):
    bed = Org(moto, keyturn_binary)
    with auth_off(moto):
        bed.build()
    everything = "\n".join(bed.setup_output)
    assert not [s for s in bed.secret_keys if s in everything], "enroll printed a secret key"
    # The account without the role: STS refuses it, as it would.
    bed.proxy = FaultProxy(moto.endpoint, deny_assume={f"arn:aws:iam::{bed.accounts['norole']}:role/{ROLE}"})
    yield bed
    bed.proxy.close()


@pytest.fixture
def kt(org, keyturn, secrets_seen):
    """keyturn as the management account's administrator, through the proxy."""
    secrets_seen.update(org.secret_keys)

    def run(*args, check=False):
        return keyturn(*args, check=check, env_extra={"AWS_ENDPOINT_URL": org.proxy.endpoint})

    return run


def by_account(rows: list[dict]) -> dict[str, list[dict]]:
    out: dict[str, list[dict]] = {}
    for r in rows:
        out.setdefault(r["account"], []).append(r)
    return out


def test_the_stack_set_deploys_the_role_and_the_rotation_stack_to_the_target_ous(org):
    a = org.accounts
    assert org.instances == {a["prod"]: "SUCCEEDED", a["nested"]: "SUCCEEDED", a["dev"]: "SUCCEEDED"}, "the nested OU included"
    assert org.declared["PermissionModel"] == "SERVICE_MANAGED" and org.declared["AutoDeployment"]["Enabled"] is True
    with auth_off(org.moto):
        both = ["keyturn-auditor", "keyturn-auditor-findings", "keyturn-operator"]
        for name, policies in (("prod", both), ("nested", both), ("dev", ["keyturn-auditor"])):
            iam = org.client(a[name], "iam")
            assert sorted(iam.list_role_policies(RoleName=ROLE)["PolicyNames"]) == policies, name
            trust = iam.get_role(RoleName=ROLE)["Role"]["AssumeRolePolicyDocument"]
            trust = json.loads(trust) if isinstance(trust, str) else trust
            statement = trust["Statement"][0]
            assert statement["Principal"]["AWS"] == f"arn:aws:iam::{MANAGEMENT}:root", trust
            assert statement["Condition"]["StringEquals"]["aws:PrincipalOrgID"] == org.org_id, trust
            operator = org.deployed_policies.get((a[name], "keyturn-operator"))
            if operator:
                scoped = {st["Sid"]: st["Resource"] for st in operator["Statement"]}
                assert scoped["AccessKeysOfManagedUsers"][0] == f"arn:aws:iam::{a[name]}:user/keyturn/*", scoped
                assert scoped["ManagedSecrets"] == f"arn:aws:secretsmanager:*:{a[name]}:secret:keyturn/*", scoped
            auditor = org.deployed_policies[(a[name], "keyturn-auditor")]
            read = {action for st in auditor["Statement"] for action in st["Action"]}
            assert "secretsmanager:GetSecretValue" not in read and "iam:GetCredentialReport" in read, read
            findings = org.deployed_policies.get((a[name], "keyturn-auditor-findings"))
            if findings:
                scoped = {st["Sid"]: (st["Action"], st["Resource"]) for st in findings["Statement"]}
                assert scoped["ImportFindingsAsThisAccountsOwnProduct"] == ("securityhub:BatchImportFindings", f"arn:aws:securityhub:*:{a[name]}:product/{a[name]}/default"), scoped
                assert scoped["ReadAndResolveFindingsInThisAccountsHub"][1] == f"arn:aws:securityhub:*:{a[name]}:hub/default", scoped
            functions = [f["FunctionName"] for f in org.client(a[name], "lambda").list_functions()["Functions"]]
            assert len(functions) == 1 and functions[0].endswith("-rotation"), functions
        roles = [r["RoleName"] for r in org.client(a["norole"], "iam").list_roles()["Roles"]]
        assert ROLE not in roles


def test_audit_org_reports_every_accounts_keys_and_the_unreachable_account_as_an_error_row(org, kt, tmp_path):
    assumed_before = org.proxy.calls.count("AssumeRole")
    proc = kt("--output", "json", "audit", "--org")
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "1 of 5 account(s)" in proc.stderr, proc.stderr
    rows = by_account(json.loads(proc.stdout)["keys"])
    a = org.accounts
    assert set(rows) == set(a.values()), rows.keys()
    for name in ("management", "prod", "nested", "dev"):
        account = a[name]
        held = {r["keyId"]: r for r in rows[account]}
        for user, key_id in org.keys[account].items():
            assert held[key_id]["secret"] == f"keyturn/{user}" and held[key_id]["label"] == "AWSCURRENT", held[key_id]
            assert held[key_id]["user"] == user and held[key_id]["account"] == account
        # The report names no key ids; the key no secret holds is known by its user.
        legacy = [r for r in rows[account] if r["user"] == "legacy"]
        assert len(legacy) == 1 and legacy[0]["finding"] == "unmanaged", legacy
        # No key of another account shows up here.
        others = {k for acc, keys in org.keys.items() if acc != account for k in keys.values()}
        assert not others & set(held), name
    assert rows[a["prod"]][0]["accountName"] == "prod"
    (failed,) = rows[a["norole"]]
    assert failed["finding"] == "account-failed" and failed["keyId"] is None, failed
    for part in (f"account {a['norole']} (norole)", f"role/{ROLE}", "access denied", "deploy the member role", f"--exclude-account {a['norole']}"):
        assert part in failed["error"], failed["error"]
    # The management account with the caller's own credentials: one AssumeRole per member account.
    assert org.proxy.calls.count("AssumeRole") - assumed_before == 4

    page = tmp_path / "audit.html"
    table = kt("audit", "--org", "--html", str(page)).stdout
    lines = table.splitlines()
    for name in ("prod", "nested", "dev", "norole"):
        heads = [l for l in lines if l.startswith(f"{a[name]} ({name})")]
        assert len(heads) == 1, (name, table)
    assert "in 5 accounts" in lines[-1] and "1 account(s) failed" in lines[-1], lines[-1]
    # The page's summary per account, worst first: the account that failed, then by findings.
    html = page.read_text()
    summary = html.split("<h2>Accounts</h2>", 1)[1].split("</table>", 1)[0]
    order = re.findall(r"<td>(\d{12})", summary)
    assert order[0] == a["norole"] and sorted(order) == sorted(a.values()), order
    assert html.index("<h2>Accounts</h2>") < html.index("<h2>Key ages</h2>")


def test_ou_selects_nested_ous_and_account_selects_one(org, kt):
    a = org.accounts
    proc = kt("--output", "json", "audit", "--ou", org.ous["prod"])
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert set(by_account(json.loads(proc.stdout)["keys"])) == {a["prod"], a["nested"]}
    proc = kt("--output", "json", "audit", "--account", a["dev"])
    assert proc.returncode == 0, proc.stderr
    assert set(by_account(json.loads(proc.stdout)["keys"])) == {a["dev"]}
    proc = kt("--output", "csv", "audit", "--org", "--exclude-account", a["norole"])
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("account,accountName,user,"), proc.stdout[:80]
    assert {line.split(",")[0] for line in proc.stdout.splitlines()[1:]} == {a[n] for n in ("management", "prod", "nested", "dev")}
    for bad, said in ((["--account", "12345"], "12 digits"), (["--ou", "prod"], "OU id")):
        proc = kt("audit", *bad)
        assert proc.returncode == 2 and said in proc.stderr, proc.stderr


def test_rotate_all_org_rotates_in_each_account_with_its_own_keys(org, kt, secrets_seen):
    a = org.accounts
    proc = kt("--output", "json", "rotate", "--all", "--org")
    assert proc.returncode == 2, proc.stdout + proc.stderr
    rows = by_account(json.loads(proc.stdout))
    for name in ("management", "prod", "nested"):
        account = a[name]
        assert sorted(r["secret"] for r in rows[account]) == [f"keyturn/{u}" for u in USERS], rows[account]
        assert all(r["outcome"] == "rotated" for r in rows[account]), [r["error"] for r in rows[account]]
        # Checked in that account with its own credentials.
        sm, iam = org.client(account, "secretsmanager"), org.client(account, "iam")
        for user in USERS:
            old = org.keys[account][user]
            current = json.loads(sm.get_secret_value(SecretId=f"keyturn/{user}", VersionStage="AWSCURRENT")["SecretString"])
            secrets_seen.add(current["SecretAccessKey"])
            assert current["AccessKeyId"] != old
            me = client(org.moto.endpoint, "sts", (current["AccessKeyId"], current["SecretAccessKey"], None)).get_caller_identity()
            assert me["Account"] == account and me["Arn"] == f"arn:aws:iam::{account}:user/keyturn/{user}", me
            previous = json.loads(sm.get_secret_value(SecretId=f"keyturn/{user}", VersionStage="AWSPREVIOUS")["SecretString"])
            assert previous["AccessKeyId"] == old
            statuses = {k["AccessKeyId"]: k["Status"] for k in iam.list_access_keys(UserName=user)["AccessKeyMetadata"]}
            assert statuses == {old: "Active", current["AccessKeyId"]: "Active"}, statuses
            org.keys[account][user] = current["AccessKeyId"]
    # The auditor-only OU: each secret fails, access denied, and nothing changed there.
    dev = rows[a["dev"]]
    assert len(dev) == 2 and all(r["outcome"] == "failed" and "access denied" in r["error"] for r in dev), dev
    assert {k["AccessKeyId"] for u in USERS for k in org.client(a["dev"], "iam").list_access_keys(UserName=u)["AccessKeyMetadata"]} == set(org.keys[a["dev"]].values())
    (failed,) = rows[a["norole"]]
    assert failed["secret"] is None and failed["errorType"] == "AccountFailed" and a["norole"] in failed["error"], failed


def snapshot(org, account: str) -> dict:
    iam, sm = org.client(account, "iam"), org.client(account, "secretsmanager")
    keys = {u: sorted((k["AccessKeyId"], k["Status"]) for k in iam.list_access_keys(UserName=u)["AccessKeyMetadata"]) for u in (*USERS, "legacy")}
    stages = {u: sm.describe_secret(SecretId=f"keyturn/{u}")["VersionIdsToStages"] for u in USERS}
    tags = {u: sorted((t["Key"], t["Value"]) for t in sm.describe_secret(SecretId=f"keyturn/{u}").get("Tags", [])) for u in USERS}
    return {"keys": keys, "stages": stages, "tags": tags}


def test_sweep_org_dry_run_changes_nothing(org, kt):
    a = org.accounts
    members = [a[n] for n in ("management", "prod", "nested", "dev")]
    before = {acc: snapshot(org, acc) for acc in members}
    proc = kt("--output", "json", "sweep", "--org", "--dry-run")
    assert proc.returncode == 2, proc.stdout + proc.stderr
    rows = by_account(json.loads(proc.stdout))
    for name in ("management", "prod", "nested"):
        assert {r["action"] for r in rows[a[name]]} == {"waiting"} and all(r["dryRun"] for r in rows[a[name]]), rows[a[name]]
    assert {acc: snapshot(org, acc) for acc in members} == before


def test_org_check_names_what_each_account_is_missing(org, kt):
    a = org.accounts
    proc = kt("--output", "json", "org", "check", "--org")
    assert proc.returncode == 1, proc.stdout + proc.stderr
    rows = {r["account"]: r for r in json.loads(proc.stdout)}
    for name in ("management", "prod", "nested"):
        r = rows[a[name]]
        assert all(r[c]["ok"] is True for c in ("assume", "audit", "rotate", "sweep")), r
    assert rows[a["management"]]["via"] == "own credentials"
    assert rows[a["prod"]]["via"] == f"arn:aws:iam::{a['prod']}:role/{ROLE}"
    dev = rows[a["dev"]]
    assert dev["assume"]["ok"] and dev["audit"]["ok"] and dev["audit"]["missing"] == [], dev
    assert dev["rotate"]["ok"] is False and {"secretsmanager:GetSecretValue", "secretsmanager:PutSecretValue", "iam:CreateAccessKey"} <= set(dev["rotate"]["missing"]), dev
    assert dev["sweep"]["ok"] is False and "iam:UpdateAccessKey" in dev["sweep"]["missing"], dev
    norole = rows[a["norole"]]
    assert norole["assume"] == {"ok": False, "missing": ["sts:AssumeRole"]} and f"role/{ROLE}" in norole["error"], norole
    # The probes changed nothing: no user, key or secret of theirs anywhere.
    with auth_off(org.moto):
        for account in (a["prod"], a["dev"]):
            assert not [u for u in org.client(account, "iam").list_users()["Users"] if u["UserName"].startswith("keyturn-org-check")]
            assert not [s for s in org.client(account, "secretsmanager").list_secrets()["SecretList"] if "org-check" in s["Name"]]
    table = kt("org", "check", "--ou", org.ous["dev"]).stdout
    row = next(l for l in table.splitlines() if l.startswith(a["dev"]))
    assert row.split()[2:6] == ["ok", "ok", "missing", "missing"] and "iam:CreateAccessKey" in row, table
    proc = kt("org", "check", "--ou", org.ous["prod"])
    assert proc.returncode == 0, proc.stdout + proc.stderr


def exemptions_file(tmp_path, body: str):
    path = tmp_path / "exemptions.toml"
    path.write_text(body)
    return str(path)


def entry(account: str, user: str, until: datetime.date, owner: str = "platform@example.test", reason: str = "vendor appliance") -> str:
    owner_line = f'owner = "{owner}"\n' if owner is not None else ""
    # Every user of an account is exempt only when the entry says so (all_users = true).
    all_users = "all_users = true\n" if user == "*" else ""
    return f'[[exemption]]\naccount = "{account}"\nuser = "{user}"\n{all_users}reason = "{reason}"\n{owner_line}until = {until.isoformat()}\n\n'


def test_exemptions_hold_until_their_date_and_a_bad_file_is_refused_before_anything_runs(org, kt, tmp_path):
    a = org.accounts
    as_of = (TODAY + datetime.timedelta(days=200)).isoformat()  # every key overdue by then
    path = exemptions_file(tmp_path, entry(a["prod"], "*", TODAY + datetime.timedelta(days=300)) + entry("*", "svc-*", TODAY + datetime.timedelta(days=100)))
    proc = kt("--output", "json", "audit", "--org", "--exclude-account", a["norole"], "--as-of", as_of, "--exemptions", path)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    rows = by_account(json.loads(proc.stdout)["keys"])
    prod = rows[a["prod"]]
    assert prod and all(r["finding"] == "exempt" and r["exemption"] == "holds" for r in prod), prod
    assert all("overdue" in r["findings"] and r["exemptOwner"] == "platform@example.test" and r["exemptReason"] == "vendor appliance" for r in prod), prod
    dev = {r["user"]: r for r in rows[a["dev"]]}
    assert dev["svc-a"]["finding"] == "overdue" and dev["svc-a"]["exemption"] == "expired", dev["svc-a"]
    assert dev["legacy"]["exemption"] is None and dev["legacy"]["finding"] == "overdue", dev["legacy"]
    assert "ended on" in proc.stderr and a["dev"] in proc.stderr, proc.stderr
    # Only prod: every key exempt, so nothing fails.
    proc = kt("audit", "--account", a["prod"], "--as-of", as_of, "--exemptions", path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "exempt until" in proc.stdout, proc.stdout

    # Refused before any AWS call: a closed port proves none was made.
    closed = f"http://{HOST}:{free_port()}"
    for body, said in (
        (entry(a["prod"], "*", TODAY + datetime.timedelta(days=30), owner=None), "owner is missing"),
        (entry(a["prod"], "*", TODAY + datetime.timedelta(days=400)), "more than a year"),
        ("[[exemption]]\naccount = 'x'\n", "12-digit"),
        (entry("*", "*", TODAY + datetime.timedelta(days=30)), "every user of every account"),
        (entry(a["prod"], "svc-?", TODAY + datetime.timedelta(days=30)), "other glob syntax"),
    ):
        bad = exemptions_file(tmp_path, body)
        for argv in (["audit", "--org", "--exemptions", bad], ["rotate", "--due", "--org", "--exemptions", bad]):
            proc = subprocess.run([str(org.keyturn_bin), *argv], capture_output=True, text=True, env=base_env(closed, "AKIAEXAMPLE", "x"), timeout=60)
            assert proc.returncode == 2 and said in proc.stderr and "nothing was run" in proc.stderr, (argv, proc.stderr)


def keyturn_findings(org, account: str) -> dict[str, dict]:
    """keyturn's findings in an account's own Security Hub (moto's GetFindings applies no filter)."""
    hub = org.client(account, "securityhub")
    return {f["Id"]: f for f in hub.get_findings(MaxResults=100)["Findings"] if f["Id"].startswith("keyturn/")}


def test_security_hub_findings_go_to_each_member_or_to_the_administrator(org, kt):
    a = org.accounts
    members = [a[n] for n in ("prod", "nested")]
    # The dev OU's role may not import findings: only the OUs deployed with the flag are audited
    # into Security Hub.
    proc = kt("audit", "--org", "--exclude-account", a["norole"], "--exclude-account", a["dev"], "--security-hub")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    for account in members:
        found = keyturn_findings(org, account)
        legacy = f"keyturn/{account}/legacy/{org.legacy[account]}"
        assert legacy in found, (account, sorted(found))
        f = found[legacy]
        assert f["AwsAccountId"] == account and f["ProductArn"] == f"arn:aws:securityhub:{REGION}:{account}:product/{account}/default"
        assert f["ProductFields"]["keyturn/finding"] == "unmanaged"
        assert all(i.startswith(f"keyturn/{account}/") for i in found), "each member holds only its own findings"
        assert f"Security Hub of account {account}:" in proc.stderr
    # With --security-hub-admin, every member's findings go to the caller's hub (the delegated
    # administrator), each naming its member account.
    proc = kt("audit", "--org", "--exclude-account", a["norole"], "--exclude-account", a["dev"], "--security-hub", "--security-hub-admin")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    central = keyturn_findings(org, MANAGEMENT)
    for account in members:
        f = central[f"keyturn/{account}/legacy/{org.legacy[account]}"]
        # Security Hub takes a default-product finding only from its own account: the finding is
        # the administrator's; the member is in its id, its resources and its product fields.
        assert f["AwsAccountId"] == MANAGEMENT and f["ProductFields"]["keyturn/account"] == account
        assert f["Resources"][0]["Details"]["AwsIamAccessKey"]["AccountId"] == account
    # Where the role was deployed without the flag, Security Hub refuses it, and the account's
    # error names what to allow.
    denied = kt("audit", "--account", a["dev"], "--security-hub")
    said = denied.stdout + denied.stderr
    assert denied.returncode == 2 and "securityhub:GetFindings" in said and "access denied" in said, said
    # The members' own findings are untouched by the administrator's run (nothing resolved there).
    assert all(keyturn_findings(org, m)[f"keyturn/{m}/legacy/{org.legacy[m]}"]["RecordState"] == "ACTIVE" for m in members)


def test_a_terminal_shows_progress_over_accounts_and_not_over_each_accounts_secrets(org, secrets_seen):
    from test_cli_output import run_on_a_terminal

    a = org.accounts
    env = dict(base_env(org.proxy.endpoint, *org.moto.admin))
    code, out, drawn = run_on_a_terminal([str(org.keyturn_bin), "--output", "json", "audit", "--org", "--exclude-account", a["norole"]], env)
    assert code in (0, 1), drawn
    assert {k["account"] for k in json.loads(out)["keys"]} == {a[n] for n in ("management", "prod", "nested", "dev")}, "standard output is the JSON alone"
    assert "4/4" in drawn and "[###" in drawn, repr(drawn)
    # One bar, over the accounts: the bar over each account's two managed secrets is not drawn.
    assert "2/2" not in drawn, repr(drawn)
    assert not [s for s in org.secret_keys | secrets_seen if s in drawn + out]
