"""keyturn's demo: everything against moto on 127.0.0.1 (authentication on), then stopped."""

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "e2e"))
from harness import Function, Moto, RuntimeApi, allow, base_env, built  # noqa: E402

# The binaries scripts/demo found or built; KEYTURN_BIN and KEYTURN_LAMBDA_BIN name others (as for
# the tests).
KEYTURN = Path(os.environ.get("KEYTURN_BIN", built("keyturn")))
FUNCTION = Path(os.environ.get("KEYTURN_LAMBDA_BIN", built("keyturn-rotation")))
SELF_SERVICE = allow("iam:ListAccessKeys", "iam:CreateAccessKey", "iam:DeleteAccessKey",
                     "iam:GetAccessKeyLastUsed", "iam:UpdateAccessKey")


def banner(text: str) -> None:
    print(f"\n\033[1m== {text}\033[0m" if sys.stdout.isatty() else f"\n== {text}")


def main() -> int:
    work = Path(tempfile.mkdtemp(prefix="keyturn-demo-"))
    moto = Moto(work)
    env = base_env(moto.endpoint, *moto.admin)
    iam, sm = moto.client("iam"), moto.client("secretsmanager")

    def keyturn(*args: str, expect: int = 0, why: str = "") -> int:
        """Runs keyturn and shows its output; a non-zero exit the demo means is said to be one."""
        print(f"$ keyturn {' '.join(args)}")
        proc = subprocess.run([str(KEYTURN), *args], env=env, capture_output=True, text=True)
        out = (proc.stdout + proc.stderr).rstrip()
        if proc.returncode == expect == 0:
            note = "exit 0"
        elif proc.returncode == expect:
            note = f"exit {expect}, as expected: {why}"
        else:
            note = f"exit {proc.returncode}, NOT EXPECTED (the demo expected {expect}): something is wrong"
            unexpected.append(" ".join(args))
        print("  " + out.replace("\n", "\n  ") if out else "", f"\n  ({note})")
        return proc.returncode

    unexpected: list[str] = []

    def keys(user: str) -> list[str]:
        return [f"{k['AccessKeyId']} {k['Status']}" for k in iam.list_access_keys(UserName=user)["AccessKeyMetadata"]]

    try:
        banner(f"a local AWS on {moto.endpoint}: five users, three hand-made secrets, one unmanaged key")
        for user in ("alice", "bob", "carol", "dave", "erin"):
            iam.create_user(UserName=user)
        iam.put_user_policy(UserName="dave", PolicyName="self-service", PolicyDocument=SELF_SERVICE)
        carol = iam.create_access_key(UserName="carol")["AccessKey"]
        sm.create_secret(Name="legacy/carol", SecretString=json.dumps(
            {"accessKey": carol["AccessKeyId"], "secretKey": carol["SecretAccessKey"], "region": "eu-west-1"}))
        print("legacy/carol  {accessKey, secretKey, region}: a hand-made secret that names no user")
        dave = iam.create_access_key(UserName="dave")["AccessKey"]
        arn = sm.create_secret(Name="legacy/dave", SecretString="{}")["ARN"]
        sm.put_secret_value(SecretId="legacy/dave", VersionStages=["AWSCURRENT"], SecretString=json.dumps(
            {"username": "dave", "accesskey": dave["AccessKeyId"], "secretkey": dave["SecretAccessKey"], "masterarn": arn}))
        print("legacy/dave   {username, accesskey, secretkey, masterarn=itself}: dave rotates his own key")
        sm.create_secret(Name="legacy/erin", SecretString="{}", Tags=[{"Key": "keyturn:user", "Value": "erin"}])
        print("legacy/erin   {} tagged keyturn:user=erin: an empty secret waiting for its first key")
        before = {u: keys(u) for u in ("alice", "bob", "carol", "dave", "erin")}

        banner("enroll new users, adopt the hand-made secrets")
        keyturn("enroll", "alice")
        keyturn("enroll", "bob", "--tag", "team=payments")
        keyturn("enroll", "--adopt", "legacy/carol", "--user", "carol")
        keyturn("enroll", "--adopt", "legacy/dave")
        keyturn("enroll", "--adopt", "legacy/erin")

        banner("someone gives bob a second key by hand, and a program starts using it")
        stray = iam.create_access_key(UserName="bob")["AccessKey"]
        moto.client("sts", stray["AccessKeyId"], stray["SecretAccessKey"]).get_caller_identity()
        print(f"unmanaged key {stray['AccessKeyId']} used once")

        banner("rotate every managed secret under keyturn/ (bob's is refused: deleting a used key is never automatic)")
        keyturn("rotate", "--all", "--concurrency", "4", expect=1, why="bob's secret failed, the others rotated")
        banner("the hand-made secrets live outside keyturn/: --all skipped them, naming them rotates them")
        keyturn("rotate", "legacy/carol", "legacy/dave", "legacy/erin")
        banner("status shows what is wrong with bob's secret")
        keyturn("status", "keyturn/bob", expect=1, why="status exits 1 when it lists a problem")

        banner("the rotation function does a rotation too (alice), through the Lambda runtime API")
        runtime = RuntimeApi()
        fn = Function(FUNCTION, runtime, env, work / "function.log")
        try:
            token = sm.rotate_secret(SecretId="keyturn/alice", RotationLambdaARN=moto.placeholder_function(),
                                     RotationRules={"AutomaticallyAfterDays": 30})["VersionId"]
            for step in ("createSecret", "setSecret", "testSecret", "finishSecret"):
                ok, body = fn.step(step, "keyturn/alice", token)
                print(f"  {step:13} {'ok: ' + body['outcome'] if ok else 'FAILED: ' + body['errorMessage']}")
        finally:
            fn.close()
            runtime.close()

        banner("deliver: alice's key also goes to an SSM parameter her program reads; then roll back")
        sm.tag_resource(SecretId="keyturn/alice", Tags=[{"Key": "keyturn:sink:app", "Value": "ssm:/demo/alice/key"}])
        keyturn("rotate", "keyturn/alice")
        ssm = moto.client("ssm")

        def in_parameter() -> str:
            text = ssm.get_parameter(Name="/demo/alice/key", WithDecryption=True)["Parameter"]["Value"]
            return json.loads(text)["AccessKeyId"]

        print(f"  /demo/alice/key now holds {in_parameter()} (AWSCURRENT, delivered before the cut-over)")
        keyturn("rollback", "keyturn/alice")
        print(f"  /demo/alice/key is back on {in_parameter()}")

        banner("sweep: previous keys past their grace period (0 days here) are deactivated")
        keyturn("sweep", "--dry-run", "--grace-days", "0")
        keyturn("sweep", "--grace-days", "0")
        keyturn("sweep", "--grace-days", "0", "legacy/carol", "legacy/dave", "legacy/erin")

        banner("audit: every active key's age and what rotates it, today and at a review 100 days out")
        print("  (the demo signs its own calls with the emulator's admin user, whose key no secret holds:\n"
              "   the audit rightly lists it as unmanaged, next to bob's stray key)")
        keyturn("audit")  # findings below --fail-on (default overdue): exit 0
        review = (__import__("datetime").date.today() + __import__("datetime").timedelta(days=100)).isoformat()
        keyturn("audit", "--as-of", review, "--html", str(work / "audit.html"), expect=1,
                why="100 days out, every key is overdue (older than 90 days)")

        banner("summary: each user's keys before and after")
        for user, was in before.items():
            print(f"  {user:6} before: {', '.join(was) or 'no keys'}")
            print(f"  {'':6} after:  {', '.join(keys(user))}")
        print(f"\nthe function's JSON log (no secrets in it): {work / 'function.log'}")
        if unexpected:
            print(f"\nNOT AS EXPECTED: {'; '.join(unexpected)}")
            return 1
        print("\nevery command ended as the demo expected")
        return 0
    finally:
        moto.close()
        print("emulator stopped")


if __name__ == "__main__":
    sys.exit(main())
