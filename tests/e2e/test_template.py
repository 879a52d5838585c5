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

from harness import REGION, ROOT, auth_off

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


def create_stack(moto, name: str, body: str, parameters: dict[str, str], capabilities: list[str]) -> dict:
    """Creates a stack and waits for it; returns its logical-to-physical resource ids."""
    cf = moto.client("cloudformation")
    cf.create_stack(
        StackName=name,
        TemplateBody=body,
        Capabilities=capabilities,
        Parameters=[{"ParameterKey": k, "ParameterValue": v} for k, v in parameters.items()],
    )
    deadline = time.monotonic() + 60
    while True:
        stack = cf.describe_stacks(StackName=name)["Stacks"][0]
        if not stack["StackStatus"].endswith("IN_PROGRESS") or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert stack["StackStatus"] == "CREATE_COMPLETE", stack
    return {r["LogicalResourceId"]: r["PhysicalResourceId"] for r in cf.list_stack_resources(StackName=name)["StackResourceSummaries"]}


def deploy(moto, parameters: dict[str, str], name: str | None = None) -> dict:
    """Deploys the translated template; returns the role's inline policy document."""
    name = name or f"keyturn-{uuid.uuid4().hex[:8]}"
    resources = create_stack(moto, name, json.dumps(translated()), parameters, ["CAPABILITY_IAM", "CAPABILITY_AUTO_EXPAND"])
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
    """The tags the function writes (finish: user, cut-over and the key ids; sweep: deactivation),
    from tags.rs."""
    source = TAGS_RS.read_text()
    consts = dict(re.findall(r'pub const (\w+): &str = "([^"]+)";', source))
    return {consts[n] for n in ("USER", "CUTOVER_VERSION", "CUTOVER_AT", "DEACTIVATED_KEY", "DEACTIVATED_AT", "CURRENT_KEY", "PREVIOUS_KEY")}


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
    assert not allowed & {"keyturn:managed", "keyturn:grace-days", "keyturn:delete-after-days", "keyturn:in-use", "keyturn:rotation-days", "keyturn:require-switch"}

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


SINK_SIDS = {"SsmSinksUnderThePrefix", "SsmSinkCustomerKeysThroughSsmOnly", "ReadTheGitHubToken", "AnnounceOnTheDefaultBus"}


def test_each_sink_permission_comes_only_with_its_parameter(moto):
    plain = deploy(moto, {})["policy"]
    assert not SINK_SIDS & {s.get("Sid") for s in plain["Statement"]}, "no sink, no permission"
    env = function_environment()
    assert env["KEYTURN_EVENTS"] == {"Ref": "PublishEvents"}
    assert env["KEYTURN_SSM_PREFIX"] == {"Fn::If": ["HasSsmSinks", {"Ref": "SsmParameterPrefix"}, "none"]}
    assert env["KEYTURN_GITHUB_TOKEN_SECRET"] == {"Ref": "GitHubTokenSecretArn"}
    assert env["KEYTURN_GITHUB_OWNERS"] == {"Fn::Join": [",", {"Ref": "GitHubOwners"}]}
    token = f"arn:aws:secretsmanager:{REGION}:123456789012:secret:ci/github-token-AbCdEf"
    cmk = f"arn:aws:kms:{REGION}:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab"
    policy = deploy(moto, {
        "SsmParameterPrefix": "/keyturn/", "SsmKmsKeyArns": cmk, "GitHubTokenSecretArn": token,
        "GitHubOwners": "acme", "PublishEvents": "true",
    })["policy"]
    ssm = statement(policy, "SsmSinksUnderThePrefix")
    assert ssm["Action"] in ("ssm:PutParameter", ["ssm:PutParameter"])
    assert ssm["Resource"] == f"arn:aws:ssm:{REGION}:123456789012:parameter/keyturn/*"
    kms = statement(policy, "SsmSinkCustomerKeysThroughSsmOnly")
    assert kms["Resource"] in (cmk, [cmk]) and kms["Condition"]["StringEquals"]["kms:ViaService"] == f"ssm.{REGION}.amazonaws.com"
    github = statement(policy, "ReadTheGitHubToken")
    assert github["Resource"] == token and github["Action"] in ("secretsmanager:GetSecretValue", ["secretsmanager:GetSecretValue"])
    events = statement(policy, "AnnounceOnTheDefaultBus")
    assert events["Resource"] == f"arn:aws:events:{REGION}:123456789012:event-bus/default"
    assert events["Condition"]["StringEquals"]["events:source"] == "keyturn"
    # A customer key alone grants nothing without SSM sinks.
    alone = deploy(moto, {"SsmKmsKeyArns": cmk})["policy"]
    assert not SINK_SIDS & {s.get("Sid") for s in alone["Statement"]}


def test_restarting_services_is_allowed_only_in_the_named_clusters_and_a_failed_restart_alarms(moto):
    plain = deploy(moto, {})
    assert "RestartServicesOfTheAllowedClusters" not in {s.get("Sid") for s in plain["policy"]["Statement"]}, "no cluster, no ECS permission"
    env = function_environment()
    assert env["KEYTURN_RESTART_ECS_CLUSTERS"] == {"Fn::Join": [",", {"Ref": "RestartEcsClusters"}]}
    assert env["KEYTURN_RESTART_GITHUB_REPOS"] == {"Fn::Join": [",", {"Ref": "RestartGitHubRepos"}]}
    deployed = deploy(moto, {"RestartEcsClusters": "prod,batch"})
    ecs = statement(deployed["policy"], "RestartServicesOfTheAllowedClusters")
    assert set(ecs["Action"]) == {"ecs:UpdateService", "ecs:DescribeServices"}
    assert ecs["Resource"] == ["arn:*:ecs:*:*:service/prod/*", "arn:*:ecs:*:*:service/batch/*"], ecs
    assert ecs["Condition"]["StringEquals"] == {"aws:ResourceAccount": "123456789012", "aws:RequestedRegion": REGION}
    # A restart that fails does not fail the step: the function logs it, a metric filter counts
    # it, and an alarm tells the alert topic.
    resources = translated()["Resources"]
    pattern = resources["RestartFailureMetric"]["Properties"]["FilterPattern"]
    assert pattern == '{ $.message = "restart failed" }'
    source = (ROOT / "crates/keyturn-core/src/rotation/restart.rs").read_text()
    assert '"restart failed");' in source, "the filter matches the message the function logs"
    alarm = resources["RestartFailureAlarm"]["Properties"]
    assert alarm["MetricName"] == "RestartFailures" and alarm["AlarmActions"] == [{"Ref": "AlertTopic"}]


def test_notices_publish_only_to_the_notice_topic_and_only_when_asked_for(moto):
    plain = deploy(moto, {})
    assert "NoticesToOwners" not in {s.get("Sid") for s in plain["policy"]["Statement"]}, "no topic, no SNS permission"
    assert "NoticeTopic" not in plain["resources"]
    env = function_environment()
    assert env["KEYTURN_NOTICE_TOPIC"] == {"Fn::If": ["CreatesNoticeTopic", {"Ref": "NoticeTopic"}, {"Ref": "NoticeTopicArn"}]}
    assert env["KEYTURN_NOTICE_DAYS"] == {"Ref": "NoticeDays"} and env["KEYTURN_ROTATION_DAYS"] == {"Ref": "RotationDays"}
    given = f"arn:aws:sns:{REGION}:123456789012:team-notices"
    publish = statement(deploy(moto, {"NoticeTopicArn": given})["policy"], "NoticesToOwners")
    assert publish["Action"] in ("sns:Publish", ["sns:Publish"]) and publish["Resource"] == given, publish
    created = deploy(moto, {"NoticeTopicArn": "create"})
    topic = created["resources"]["NoticeTopic"]
    assert statement(created["policy"], "NoticesToOwners")["Resource"] == topic
    outputs = moto.client("cloudformation").describe_stacks(StackName=created["stack"])["Stacks"][0]["Outputs"]
    assert {o["OutputKey"]: o["OutputValue"] for o in outputs}["NoticeTopicArn"] == topic


def test_security_hub_permissions_come_only_with_the_findings_and_the_dashboard_and_alarm_deploy(moto):
    plain = deploy(moto, {})
    sids = {s.get("Sid") for s in plain["policy"]["Statement"]}
    hub_sids = {"AuditEveryKeyOfTheAccount", "NameEveryUsersKeys", "ImportFindingsAsThisAccountsOwnProduct", "ReadAndResolveFindingsInThisAccountsHub"}
    assert not sids & hub_sids, "no findings, no Security Hub or account-wide IAM read permission"
    assert not {"AwaitingSwitchAlarm", "MetricsDashboardResource"} & set(plain["resources"])
    env = function_environment()
    assert env["KEYTURN_SECURITY_HUB"] == {"Ref": "SecurityHubFindings"} and env["KEYTURN_MAX_AGE_DAYS"] == {"Ref": "MaxKeyAgeDays"}

    on = deploy(moto, {"SecurityHubFindings": "true", "MetricsDashboard": "true", "AwaitingSwitchAlarmDays": "21"})
    account = "123456789012"
    imported = statement(on["policy"], "ImportFindingsAsThisAccountsOwnProduct")
    assert imported["Action"] in ("securityhub:BatchImportFindings", ["securityhub:BatchImportFindings"])
    assert imported["Resource"] == f"arn:aws:securityhub:{REGION}:{account}:product/{account}/default"
    hub = statement(on["policy"], "ReadAndResolveFindingsInThisAccountsHub")
    assert set(hub["Action"]) == {"securityhub:GetFindings", "securityhub:BatchUpdateFindings"}
    assert hub["Resource"] == f"arn:aws:securityhub:{REGION}:{account}:hub/default"
    assert statement(on["policy"], "NameEveryUsersKeys")["Resource"] == f"arn:aws:iam::{account}:user/*"
    # The dashboard and the alarm exist in CloudWatch, reading the function's EMF metrics.
    cw = moto.client("cloudwatch")
    topic = on["resources"]["AlertTopic"]
    # moto's CloudFormation makes no AWS::CloudWatch::Alarm (it leaves the resource out): the
    # alarm's properties, resolved as CloudFormation would, go through CloudWatch's PutMetricAlarm.
    props = translated()["Resources"]["AwaitingSwitchAlarm"]
    assert props["Condition"] == "HasDashboard"
    props = resolve(props["Properties"], {"AwaitingSwitchAlarmDays": "21", "AlertTopic": topic}, {})
    props["Threshold"] = float(props["Threshold"])
    cw.put_metric_alarm(AlarmName=f"{on['stack']}-awaiting-switch", **props)
    alarm = cw.describe_alarms(AlarmNames=[f"{on['stack']}-awaiting-switch"])["MetricAlarms"][0]
    assert (alarm["Namespace"], alarm["MetricName"], alarm["Statistic"], alarm["Threshold"]) == ("keyturn", "AwaitingSwitchDays", "Maximum", 21.0)
    assert alarm["AlarmActions"] == [topic] and alarm["ComparisonOperator"] == "GreaterThanThreshold"
    # The alert topic's policy lets this alarm publish, and only when the alarm exists.
    topic_policy = translated()["Resources"]["AlertTopicPolicy"]["Properties"]["PolicyDocument"]["Statement"]
    sources = next(s for s in topic_policy if s["Sid"] == "ErrorAlarm")["Condition"]["ArnEquals"]["aws:SourceArn"]
    assert {"Fn::If": ["HasDashboard", {"Fn::GetAtt": ["AwaitingSwitchAlarm", "Arn"]}, {"Ref": "AWS::NoValue"}]} in sources
    name = on["resources"]["MetricsDashboardResource"]
    body = json.loads(cw.get_dashboard(DashboardName=name)["DashboardBody"])
    text = json.dumps(body)
    source = (ROOT / "crates/keyturn-lambda/src/emf.rs").read_text()
    for metric in ("Rotations", "Failures", "StepDuration", "KeysRetired", "SecretsAwaitingSwitch", "AwaitingSwitchDays", "SweepBlocked", "KeysByFinding", "OldestActiveKeyDays"):
        assert metric in text, f"the dashboard shows {metric}"
        assert f'"{metric}"' in source, f"the function writes {metric}"
    assert '"value": 21' in text, "the alarm's threshold is drawn"
    with auth_off(moto):
        fn = moto.client("lambda").get_function_configuration(FunctionName=on["resources"]["RotationFunction"])
    assert fn["Timeout"] == 900, "the daily audit gets 15 minutes"
    outputs = moto.client("cloudformation").describe_stacks(StackName=on["stack"])["Stacks"][0]["Outputs"]
    assert {o["OutputKey"]: o["OutputValue"] for o in outputs}["DashboardName"] == name


@pytest.mark.parametrize("prefix", ["keyturn", "keyturn-prod", "/keyturn/", ""])
def test_a_prefix_without_a_trailing_slash_is_refused(prefix):
    # CloudFormation applies AllowedPattern to the whole value (moto does not check it).
    pattern = translated()["Parameters"]["SecretNamePrefix"]["AllowedPattern"]
    assert not re.fullmatch(pattern, prefix), f"{prefix!r} passes {pattern}"
    assert re.fullmatch(pattern, "keyturn/") and re.fullmatch(pattern, "team/keyturn/")


def test_the_deployed_stack_is_what_the_readme_promises(moto):
    deployed = deploy(moto, {})
    r = deployed["resources"]
    with auth_off(moto):
        lam = moto.client("lambda")
        fn = lam.get_function_configuration(FunctionName=r["RotationFunction"])
        concurrency = lam.get_function_concurrency(FunctionName=r["RotationFunction"])
    assert (fn["Runtime"], fn["Handler"], fn["MemorySize"], fn["Timeout"]) == ("provided.al2023", "bootstrap", 128, 180), fn
    assert fn["Architectures"] == ["x86_64"], fn
    assert "ReservedConcurrentExecutions" not in concurrency, "no reservation unless asked for"
    env = fn["Environment"]["Variables"]
    # Lambda keeps variables as strings; moto keeps a number as CloudFormation passed it.
    assert env["KEYTURN_SECRET_PREFIX"] == "keyturn/" and env["KEYTURN_USER_PATH"] == "/keyturn/" and str(env["KEYTURN_GRACE_DAYS"]) == "7", env

    logs = moto.client("logs").describe_log_groups(logGroupNamePrefix=r["RotationLogGroup"])["logGroups"]
    assert [g["retentionInDays"] for g in logs] == [90], logs

    events = moto.client("events")
    failure = events.describe_rule(Name=r["RotationFailureRule"])
    pattern = json.loads(failure["EventPattern"])
    assert set(pattern["detail"]["eventName"]) == {"RotationFailed", "RotationAbandoned", "TestRotationFailed"}
    assert pattern["detail"]["additionalEventData"]["SecretId"] == [{"prefix": f"arn:aws:secretsmanager:{REGION}:123456789012:secret:keyturn/"}], pattern
    target = events.list_targets_by_rule(Rule=r["RotationFailureRule"])["Targets"][0]
    transformer = target["InputTransformer"]
    assert transformer["InputPathsMap"]["secret"] == "$.detail.additionalEventData.SecretId", transformer
    assert transformer["InputPathsMap"]["error"] == "$.detail.errorMessage", transformer
    assert "<event> for secret <secret>" in transformer["InputTemplate"] and "<error>" in transformer["InputTemplate"]
    assert r["RotationLogGroup"] in transformer["InputTemplate"]

    schedules = [n for n in r if n.startswith("RotationFunctionDailySweep") and not n.endswith("Permission")]
    assert len(schedules) == 1, r
    sweep = events.describe_rule(Name=r[schedules[0]])
    assert sweep["ScheduleExpression"] == "rate(1 day)"
    sweep_target = events.list_targets_by_rule(Rule=r[schedules[0]])["Targets"][0]
    assert json.loads(sweep_target["Input"]) == {"keyturn": "sweep"}
    assert sweep_target["RetryPolicy"] == {"MaximumRetryAttempts": 8, "MaximumEventAgeInSeconds": 3600}, sweep_target

    invoke = [res for res in translated()["Resources"].values() if res["Type"] == "AWS::Lambda::EventInvokeConfig"]
    assert [i["Properties"]["MaximumRetryAttempts"] for i in invoke] == [2], invoke
    log_group = translated()["Resources"]["RotationLogGroup"]
    assert log_group["DeletionPolicy"] == "Retain" and "LogGroupName" not in log_group["Properties"]


def test_a_reserved_concurrency_is_set_only_when_asked_for(moto):
    deployed = deploy(moto, {"ReservedConcurrency": "5"})
    with auth_off(moto):
        concurrency = moto.client("lambda").get_function_concurrency(FunctionName=deployed["resources"]["RotationFunction"])
    assert concurrency["ReservedConcurrentExecutions"] == 5
    pattern = translated()["Parameters"]["ReservedConcurrency"]["AllowedPattern"]
    assert re.fullmatch(pattern, "") and re.fullmatch(pattern, "10") and not re.fullmatch(pattern, "0")


def resolve(node, params: dict, exports: dict):
    """CloudFormation's intrinsic functions the example uses (Ref, Fn::Sub, Fn::Join,
    Fn::ImportValue), evaluated against parameters and the exports of deployed stacks."""
    if isinstance(node, dict) and len(node) == 1:
        (fn, arg), = node.items()
        if fn == "Ref":
            return params[arg]
        if fn == "Fn::Sub":
            return re.sub(r"\$\{([^}]+)\}", lambda m: str(params[m.group(1)]), arg)
        if fn == "Fn::Join":
            return arg[0].join(str(resolve(x, params, exports)) for x in arg[1])
        if fn == "Fn::ImportValue":
            return exports[resolve(arg, params, exports)]
    if isinstance(node, dict):
        return {k: resolve(v, params, exports) for k, v in node.items()}
    if isinstance(node, list):
        return [resolve(x, params, exports) for x in node]
    return node


def test_one_user_example_follows_the_stack_it_imports(moto, function_factory, secrets_seen):
    """deploy/examples/one-user.yaml against a keyturn stack with its own prefix and path: the user,
    the secret's name and the schedule's function all come from that stack's exports. moto's
    CloudFormation creates the user but has no AWS::SecretsManager::Secret or RotationSchedule: the
    test evaluates those two resources against the same exports and makes them with the API calls
    CloudFormation would make, then lets keyturn's function run the first rotation on them."""
    name = f"kt{uuid.uuid4().hex[:6]}"
    main = deploy(moto, {"SecretNamePrefix": "team/", "UserPath": "/team/"}, name=name)
    user = f"svc-{uuid.uuid4().hex[:6]}"
    template = decode_str((ROOT / "deploy" / "examples" / "one-user.yaml").read_text())[0]
    template = json.loads(json.dumps(template, default=str))
    params = {"KeyturnStackName": name, "UserName": user, "RotationDays": 30}
    resources = create_stack(moto, f"{name}-{user}", json.dumps(template), {"KeyturnStackName": name, "UserName": user}, ["CAPABILITY_NAMED_IAM"])
    assert resources["User"] == user, resources
    assert moto.client("iam").get_user(UserName=user)["User"]["Path"] == "/team/"

    cf = moto.client("cloudformation")
    exports = {e["Name"]: e["Value"] for e in cf.list_exports()["Exports"]}
    secret = resolve(template["Resources"]["Secret"]["Properties"], params, exports)
    assert secret["Name"] == f"team/{user}" and template["Resources"]["Secret"]["DeletionPolicy"] == "Retain"
    sm = moto.client("secretsmanager")
    arn = sm.create_secret(Name=secret["Name"], Description=secret["Description"], SecretString=secret["SecretString"], Tags=secret["Tags"])["ARN"]
    schedule = resolve(template["Resources"]["Schedule"]["Properties"], {**params, "Secret": arn}, exports)
    with auth_off(moto):
        function_arn = moto.client("lambda").get_function_configuration(FunctionName=main["resources"]["RotationFunction"])["FunctionArn"]
    assert schedule["RotationLambdaARN"] == function_arn and schedule["SecretId"] == arn
    assert template["Resources"]["Schedule"]["Properties"]["RotateImmediatelyOnUpdate"] is True
    token = sm.rotate_secret(SecretId=arn, RotationLambdaARN=moto.placeholder_function(), RotationRules=schedule["RotationRules"])["VersionId"]
    fn = function_factory(KEYTURN_SECRET_PREFIX="team/", KEYTURN_USER_PATH="/team/")
    for step in ("createSecret", "setSecret", "testSecret", "finishSecret"):
        ok, body = fn.step(step, arn, token)
        assert ok, f"{step}: {body}\n{fn.output()}"
    current = json.loads(sm.get_secret_value(SecretId=arn, VersionStage="AWSCURRENT")["SecretString"])
    secrets_seen.add(current["SecretAccessKey"])
    assert current["UserName"] == user and current["AccessKeyId"] in {
        k["AccessKeyId"] for k in moto.client("iam").list_access_keys(UserName=user)["AccessKeyMetadata"]
    }, "the first rotation gave the example's user its first key"


@pytest.mark.parametrize("prefix", ["/", "/apps", "apps/", "//"])
def test_an_ssm_prefix_must_end_in_a_slash_and_not_be_the_root(prefix):
    # A prefix /apps would admit /apps-evil/stolen; / alone would admit every parameter.
    pattern = translated()["Parameters"]["SsmParameterPrefix"]["AllowedPattern"]
    assert not re.fullmatch(pattern, prefix), f"{prefix!r} passes {pattern}"
    assert re.fullmatch(pattern, "") and re.fullmatch(pattern, "/keyturn/") and re.fullmatch(pattern, "/team/keyturn/")


def test_the_function_reads_the_settle_window_and_the_sink_allow_lists_from_parameters():
    env = function_environment()
    assert env["KEYTURN_LAST_USED_SETTLE_SECONDS"] == {"Ref": "LastUsedSettleSeconds"}
    assert env["KEYTURN_GITHUB_SECRET_NAMES"] == {"Fn::Join": [",", {"Ref": "GitHubSecretNames"}]}
    assert env["KEYTURN_SSM_KMS_KEYS"] == {"Fn::Join": [",", {"Ref": "SsmKmsKeyArns"}]}
    settle = translated()["Parameters"]["LastUsedSettleSeconds"]
    assert settle["Default"] == 14400 and settle["MinValue"] == 0 and settle["MaxValue"] == 604800
