"""The reference point for keyturn's benchmarks: a minimal IAM access-key rotation function in the
usual Python shape (boto3 clients at module level, a handler that checks the event the way AWS's
published rotation templates do, one function per step). It is written for the benchmark only: it
makes the same four steps with about the same calls as keyturn, and none of keyturn's checks (it
deletes the non-current key without asking whether it is in use)."""

import json
import os

import boto3

secretsmanager = boto3.client("secretsmanager")
iam = boto3.client("iam")


def lambda_handler(event, context):
    arn, token, step = event["SecretId"], event["ClientRequestToken"], event["Step"]
    metadata = secretsmanager.describe_secret(SecretId=arn)
    versions = metadata["VersionIdsToStages"]
    if token not in versions:
        raise ValueError(f"secret version {token} has no stage for rotation of secret {arn}")
    if "AWSCURRENT" in versions[token]:
        return
    if "AWSPENDING" not in versions[token]:
        raise ValueError(f"secret version {token} not set as AWSPENDING for rotation of secret {arn}")
    {"createSecret": create_secret, "setSecret": set_secret, "testSecret": test_secret, "finishSecret": finish_secret}[step](arn, token)


def create_secret(arn, token):
    current = json.loads(secretsmanager.get_secret_value(SecretId=arn, VersionStage="AWSCURRENT")["SecretString"])
    try:
        secretsmanager.get_secret_value(SecretId=arn, VersionId=token, VersionStage="AWSPENDING")
        return
    except secretsmanager.exceptions.ResourceNotFoundException:
        pass
    user = current["UserName"]
    keys = iam.list_access_keys(UserName=user)["AccessKeyMetadata"]
    if len(keys) >= 2:
        for key in keys:
            if key["AccessKeyId"] != current["AccessKeyId"]:
                iam.delete_access_key(UserName=user, AccessKeyId=key["AccessKeyId"])
    new = iam.create_access_key(UserName=user)["AccessKey"]
    value = dict(current, AccessKeyId=new["AccessKeyId"], SecretAccessKey=new["SecretAccessKey"])
    secretsmanager.put_secret_value(SecretId=arn, ClientRequestToken=token, SecretString=json.dumps(value), VersionStages=["AWSPENDING"])


def set_secret(arn, token):
    pending = json.loads(secretsmanager.get_secret_value(SecretId=arn, VersionId=token, VersionStage="AWSPENDING")["SecretString"])
    keys = iam.list_access_keys(UserName=pending["UserName"])["AccessKeyMetadata"]
    if pending["AccessKeyId"] not in {k["AccessKeyId"] for k in keys}:
        raise ValueError(f"pending key {pending['AccessKeyId']} does not exist")


def test_secret(arn, token):
    pending = json.loads(secretsmanager.get_secret_value(SecretId=arn, VersionId=token, VersionStage="AWSPENDING")["SecretString"])
    sts = boto3.client(
        "sts", aws_access_key_id=pending["AccessKeyId"], aws_secret_access_key=pending["SecretAccessKey"],
        endpoint_url=os.environ.get("AWS_ENDPOINT_URL"),
    )
    identity = sts.get_caller_identity()
    if not identity["Arn"].endswith(f":user/{pending['UserName']}"):
        raise ValueError("the new key authenticates as someone else")


def finish_secret(arn, token):
    metadata = secretsmanager.describe_secret(SecretId=arn)
    current = next(v for v, stages in metadata["VersionIdsToStages"].items() if "AWSCURRENT" in stages)
    if current == token:
        return
    secretsmanager.update_secret_version_stage(SecretId=arn, VersionStage="AWSCURRENT", MoveToVersionId=token, RemoveFromVersionId=current)
