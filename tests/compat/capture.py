#!/usr/bin/env python3
"""Records what a keyturn build writes into Secrets Manager and IAM, as fixtures that every later
version must keep reading (crates/keyturn-core/tests/compat.rs replays them). Run once per release,
with that release's binaries, against a moto server on 127.0.0.1:

    python3 tests/compat/capture.py --out tests/compat/0.1.0

It enrolls a user, rotates, rolls back, rotates again and sweeps (grace 0), and after each step
writes NAME.json: the secret (name, tags, every version with its id, labels, creation and value)
and the user's keys (id, status, creation, last use). Secret access keys are replaced by a
placeholder made from the key id: a fixture holds no credential, real or emulated."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from datetime import datetime, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "e2e"))
from harness import Moto, base_env, built  # noqa: E402

USER = "compat-app"
SECRET = f"keyturn/{USER}"


def placeholder(key_id: str) -> str:
    """Stands in for a key's secret: 40 characters, like the real thing, and plainly not one."""
    return f"fixture-secret-of-{key_id}".ljust(40, "0")[:40]


def iso(t: datetime) -> str:
    return t.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def snapshot(moto: Moto, secrets: dict[str, str], how: str, version: str) -> dict:
    sm, iam = moto.client("secretsmanager"), moto.client("iam")
    described = sm.describe_secret(SecretId=SECRET)
    versions = []
    for v in sm.list_secret_version_ids(SecretId=SECRET, IncludeDeprecated=True)["Versions"]:
        # moto's ListSecretVersionIds answers every CreatedDate with the current time; its
        # GetSecretValue has the version's own (to the second, as AWS).
        created, text = v["CreatedDate"], None
        try:
            got = sm.get_secret_value(SecretId=SECRET, VersionId=v["VersionId"])
            created, text = got["CreatedDate"], got["SecretString"]
        except sm.exceptions.ResourceNotFoundException:
            pass  # a pending version with no value
        for real, fake in secrets.items():
            text = text.replace(real, fake) if text else text
        versions.append({"id": v["VersionId"], "labels": sorted(v.get("VersionStages", [])),
                         "created": iso(created), "value": text})
    keys = []
    for k in iam.list_access_keys(UserName=USER)["AccessKeyMetadata"]:
        used = iam.get_access_key_last_used(AccessKeyId=k["AccessKeyId"])["AccessKeyLastUsed"]
        keys.append({"id": k["AccessKeyId"], "status": k["Status"], "created": iso(k["CreateDate"]),
                     "last_used": {"at": iso(used["LastUsedDate"]), "service": used.get("ServiceName", "")}
                     if used.get("LastUsedDate") else None})
    return {
        "written_by": version,
        "how": how,
        "captured_at": iso(datetime.now(timezone.utc)),
        "user": USER,
        "secret": {
            "name": SECRET,
            "rotation_enabled": bool(described.get("RotationEnabled")),
            "tags": {t["Key"]: t["Value"] for t in described.get("Tags", [])},
            "versions": versions,
        },
        "keys": keys,
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--keyturn", type=Path, default=Path(os.environ.get("KEYTURN_BIN", built("keyturn"))))
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    moto = Moto(Path(tempfile.mkdtemp(prefix="keyturn-compat-")))
    try:
        env = base_env(moto.endpoint, *moto.admin)
        env["KEYTURN_LAST_USED_SETTLE_SECONDS"] = "0"
        version = subprocess.run([str(args.keyturn), "--version"], capture_output=True, text=True, check=True).stdout.strip()
        moto.client("iam").create_user(UserName=USER)
        secrets: dict[str, str] = {}

        def learn_keys() -> None:
            """Each key's secret, read from the versions, mapped to its placeholder."""
            sm = moto.client("secretsmanager")
            for v in sm.list_secret_version_ids(SecretId=SECRET, IncludeDeprecated=True)["Versions"]:
                try:
                    value = json.loads(sm.get_secret_value(SecretId=SECRET, VersionId=v["VersionId"])["SecretString"])
                except Exception:
                    continue
                secrets[value["SecretAccessKey"]] = placeholder(value["AccessKeyId"])

        def step(name: str, how: str, *argv: str, extra: list[str] | None = None) -> None:
            for command in [list(argv)] + ([extra] if extra else []):
                proc = subprocess.run([str(args.keyturn), *command], env=env, capture_output=True, text=True)
                if proc.returncode != 0:
                    raise SystemExit(f"keyturn {' '.join(command)} exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr}")
            learn_keys()
            fixture = snapshot(moto, secrets, how, version)
            (args.out / f"{name}.json").write_text(json.dumps(fixture, indent=2) + "\n")
            print(f"{args.out / name}.json: {how}")

        step("enrolled", f"keyturn enroll {USER}", "enroll", USER)
        step("rotated", f"then keyturn rotate {SECRET}", "rotate", SECRET)
        step("rolled-back", f"then keyturn rollback {SECRET}", "rollback", SECRET)
        step("swept", f"then keyturn rotate {SECRET}; keyturn sweep --grace-days 0 {SECRET} (settle window 0)",
             "rotate", SECRET, extra=["sweep", "--grace-days", "0", SECRET])
        everything = "".join(p.read_text() for p in args.out.glob("*.json"))
        leaked = [s[:4] for s in secrets if s in everything]
        if leaked:
            raise SystemExit(f"a secret access key reached the fixtures: {leaked}")
    finally:
        moto.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
