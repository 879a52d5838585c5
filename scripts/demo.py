"""keyturn's demo: one rotation by the real rotation function against moto on 127.0.0.1."""

import json
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "e2e"))
from harness import ROOT, Function, Moto, RuntimeApi, base_env  # noqa: E402

STEPS = ["createSecret", "setSecret", "testSecret", "finishSecret"]


def main() -> int:
    work = Path(tempfile.mkdtemp(prefix="keyturn-demo-"))
    moto = Moto(work)
    runtime = fn = None
    try:
        print(f"local AWS emulator on {moto.endpoint} (authentication on)")
        iam, sm = moto.client("iam"), moto.client("secretsmanager")
        iam.create_user(UserName="app1")
        old = iam.create_access_key(UserName="app1")["AccessKey"]
        sm.create_secret(Name="keyturn/app1", SecretString=json.dumps(
            {"UserName": "app1", "AccessKeyId": old["AccessKeyId"], "SecretAccessKey": old["SecretAccessKey"]}))
        print(f"user app1 has key {old['AccessKeyId']}, held by secret keyturn/app1")
        token = sm.rotate_secret(SecretId="keyturn/app1", RotationLambdaARN=moto.placeholder_function(),
                                 RotationRules={"AutomaticallyAfterDays": 30})["VersionId"]
        runtime = RuntimeApi()
        fn = Function(ROOT / "target" / "release" / "keyturn-rotation", runtime,
                      base_env(moto.endpoint, *moto.admin), work / "function.log")
        for step in STEPS:
            ok, body = fn.step(step, "keyturn/app1", token)
            print(f"  {step:13} {'ok: ' + body['outcome'] if ok else 'FAILED: ' + body['errorMessage']}")
            if not ok:
                return 1
        new = json.loads(sm.get_secret_value(SecretId="keyturn/app1", VersionStage="AWSCURRENT")["SecretString"])
        arn = moto.client("sts", new["AccessKeyId"], new["SecretAccessKey"]).get_caller_identity()["Arn"]
        keys = iam.list_access_keys(UserName="app1")["AccessKeyMetadata"]
        print("\nsummary")
        print(f"  AWSCURRENT  {new['AccessKeyId']} (new; authenticates as {arn})")
        print(f"  AWSPREVIOUS {old['AccessKeyId']} (kept active for the grace period)")
        print(f"  IAM keys    {', '.join(k['AccessKeyId'] + ' ' + k['Status'] for k in keys)}")
        print(f"  function log (JSON, no secrets): {work / 'function.log'}")
        return 0
    finally:
        if fn:
            fn.close()
        if runtime:
            runtime.close()
        moto.close()
        print("emulator stopped")


if __name__ == "__main__":
    sys.exit(main())
