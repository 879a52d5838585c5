"""The deployment's trust boundary as the template states it: translated offline by samtranslator
(as `sam deploy` would) and deployed to moto's CloudFormation, with and without master secrets;
then the deployed role's policy is read back. moto does not evaluate these conditions, so the test
checks they are there and say what the security model says."""

from __future__ import annotations

import ast
import json
import os
import re
import time
import uuid

import pytest
from cfnlint.decode import decode_str
from samtranslator.translator.transform import transform

from harness import REGION, ROOT

TEMPLATE = ROOT / "deploy" / "template.yaml"
TAGS_RS = ROOT / "crates" / "keyturn-core" / "src" / "tags.rs"
PREFIX_ARN = "arn:aws:secretsmanager:{region}:123456789012:secret:keyturn/*"


class _NoManagedPolicies:
    def load(self):
        return {}


def translated() -> dict:
    template, problems = decode_str(TEMPLATE.read_text())
    assert not problems, problems
    # The code is built by `sam build`; CloudFormation here only needs somewhere to point.
    template["Resources"]["RotationFunction"]["Properties"]["CodeUri"] = "s3://keyturn-build/bootstrap.zip"
    # samtranslator reads the region from a boto3 session: give it ours, never instance metadata.
    os.environ.setdefault("AWS_EC2_METADATA_DISABLED", "true")
    os.environ.setdefault("AWS_DEFAULT_REGION", REGION)
    out = transform(template, {}, _NoManagedPolicies())
    for resource in out["Resources"].values():
        if resource["Type"] == "AWS::Lambda::Function":
            resource["Properties"]["Code"] = {"ZipFile": "placeholder"}
    return json.loads(json.dumps(out, default=str))


def deploy(moto, parameters: dict[str, str]) -> dict:
    """Deploys the translated template; returns the role's inline policy document."""
    cf = moto.client("cloudformation")
    name = f"keyturn-{uuid.uuid4().hex[:8]}"
    cf.create_stack(
        StackName=name,
        TemplateBody=json.dumps(translated()),
        Capabilities=["CAPABILITY_IAM", "CAPABILITY_AUTO_EXPAND"],
        Parameters=[{"ParameterKey": k, "ParameterValue": v} for k, v in parameters.items()],
    )
    deadline = time.monotonic() + 60
    while True:
        stack = cf.describe_stacks(StackName=name)["Stacks"][0]
        if not stack["StackStatus"].endswith("IN_PROGRESS") or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert stack["StackStatus"] == "CREATE_COMPLETE", stack
    resources = {r["LogicalResourceId"]: r["PhysicalResourceId"] for r in cf.list_stack_resources(StackName=name)["StackResourceSummaries"]}
    iam = moto.client("iam")
    role = resources["RotationRole"]
    doc = iam.get_role_policy(RoleName=role, PolicyName="keyturn")["PolicyDocument"]
    if isinstance(doc, str):  # moto returns the document as CloudFormation gave it
        try:
            doc = json.loads(doc)
        except json.JSONDecodeError:
            doc = ast.literal_eval(doc)
    # CloudFormation drops an AWS::NoValue list item; moto leaves a null in its place.
    doc["Statement"] = [s for s in doc["Statement"] if s]
    return {"policy": doc, "resources": resources, "stack": name}


def function_environment() -> dict:
    """The function's environment as the template wires it (moto, with authentication on, rejects
    the signatures of Lambda's GET calls, so the deployed configuration is not read back)."""
    fn = [r for r in translated()["Resources"].values() if r["Type"] == "AWS::Lambda::Function"][0]
    return fn["Properties"]["Environment"]["Variables"]


def statement(policy: dict, sid: str) -> dict:
    found = [s for s in policy["Statement"] if s.get("Sid") == sid]
    assert len(found) == 1, f"{sid}: {[s.get('Sid') for s in policy['Statement']]}"
    return found[0]


def tags_keyturn_writes() -> set[str]:
    """The tags the function writes (finish: user and cut-over; sweep: deactivation), from tags.rs."""
    source = TAGS_RS.read_text()
    consts = dict(re.findall(r'pub const (\w+): &str = "([^"]+)";', source))
    return {consts[n] for n in ("USER", "CUTOVER_VERSION", "CUTOVER_AT", "DEACTIVATED_KEY", "DEACTIVATED_AT")}


def test_the_deployed_role_is_bounded_by_prefix_user_path_and_master_list(moto):
    plain = deploy(moto, {})
    policy, env = plain["policy"], function_environment()
    assert env["KEYTURN_SECRET_PREFIX"] == {"Ref": "SecretNamePrefix"}
    assert env["KEYTURN_USER_PATH"] == {"Ref": "UserPath"}
    assert env["KEYTURN_MASTER_SECRETS"] == {"Fn::Join": [",", {"Ref": "MasterSecretArns"}]}
    assert "ReadTheAllowedMasterSecrets" not in {s.get("Sid") for s in policy["Statement"]}

    tagging = statement(policy, "RecordCutoverUserAndDeactivationTags")
    allowed = set(tagging["Condition"]["ForAllValues:StringEquals"]["aws:TagKeys"])
    assert allowed == tags_keyturn_writes()
    assert not allowed & {"keyturn:managed", "keyturn:grace-days", "keyturn:delete-after-days", "keyturn:in-use", "keyturn:rotation-days"}

    kms = statement(policy, "SecretsEncryptedWithACustomerKey")
    assert kms["Condition"]["StringLike"]["kms:EncryptionContext:SecretARN"] == [PREFIX_ARN.format(region=REGION)]
    assert kms["Condition"]["StringEquals"]["kms:ViaService"] == f"secretsmanager.{REGION}.amazonaws.com"

    keys = statement(policy, "AccessKeysOfManagedUsers")
    assert keys["Resource"].endswith(":user/keyturn/*") and "iam:GetUser" in keys["Action"]

    topic_policy = [r for r in translated()["Resources"].values() if r["Type"] == "AWS::SNS::TopicPolicy"][0]
    for s in topic_policy["Properties"]["PolicyDocument"]["Statement"]:
        assert "aws:SourceArn" in s["Condition"].get("ArnEquals", {}), f"{s['Sid']} admits any source: {s}"


def test_master_secrets_are_readable_and_allow_listed_and_nothing_else(moto):
    master = f"arn:aws:secretsmanager:{REGION}:123456789012:secret:admins/keyturn-master-AbCdEf"
    deployed = deploy(moto, {"MasterSecretArns": master})
    reading = statement(deployed["policy"], "ReadTheAllowedMasterSecrets")
    assert reading["Resource"] in (master, [master])
    assert set(reading["Action"]) == {"secretsmanager:DescribeSecret", "secretsmanager:GetSecretValue"}
    kms = statement(deployed["policy"], "SecretsEncryptedWithACustomerKey")
    assert kms["Condition"]["StringLike"]["kms:EncryptionContext:SecretARN"] == [PREFIX_ARN.format(region=REGION), master]


@pytest.mark.parametrize("prefix", ["keyturn", "keyturn-prod", "/keyturn/", ""])
def test_a_prefix_without_a_trailing_slash_is_refused(prefix):
    # CloudFormation applies AllowedPattern to the whole value (moto does not check it).
    pattern = translated()["Parameters"]["SecretNamePrefix"]["AllowedPattern"]
    assert not re.fullmatch(pattern, prefix), f"{prefix!r} passes {pattern}"
    assert re.fullmatch(pattern, "keyturn/") and re.fullmatch(pattern, "team/keyturn/")
