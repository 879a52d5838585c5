#!/usr/bin/env python3
"""Security Hub calls and time per 1,000 findings (BENCHMARKS.md, "Findings in Security Hub"):
`python3 bench/hub_findings.py [path/to/keyturn] [--users N]` (default: the one release build's
CLI, scripts/build; 1,000 users).

Against moto on 127.0.0.1, through the loopback proxy that records each AWS call: N users with one
never-used key each, so that each has a finding (unmanaged). Then `keyturn audit --security-hub`
after a warm-up run: the plain audit without Security Hub (the baseline), the first import, a re-run that updates every finding in place, and a run after a tenth
of the keys were deleted (those findings resolved). Each run is timed (wall clock, best of one: moto is single-threaded and warm) and its
calls counted by operation; the Security Hub share is the run's time less the plain audit's.
"""

from __future__ import annotations

import collections
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "e2e"))

from faultproxy import FaultProxy  # noqa: E402
from harness import Moto, auth_off, base_env, built  # noqa: E402

HUB_CALLS = ("GetFindings", "BatchImportFindings", "BatchUpdateFindings")


def main() -> None:
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    users = int(sys.argv[sys.argv.index("--users") + 1]) if "--users" in sys.argv else 1000
    args = [a for a in args if a != str(users)]
    binary = Path(args[0]) if args else built("keyturn")
    tmp = Path(tempfile.mkdtemp(prefix="keyturn-hub-bench-"))
    moto = Moto(tmp)
    proxy = FaultProxy(moto.endpoint)
    env = base_env(proxy.endpoint, *moto.admin)
    keys = {}
    try:
        with auth_off(moto):
            iam = moto.client("iam")
            started = time.perf_counter()
            for i in range(users):
                name = f"bench-{i:05d}"
                iam.create_user(UserName=name)
                keys[name] = iam.create_access_key(UserName=name)["AccessKey"]["AccessKeyId"]
            print(f"{users} users made in {time.perf_counter() - started:.1f} s", file=sys.stderr)

        def run(label: str, *extra: str) -> dict:
            before = len(proxy.calls)
            t0 = time.perf_counter()
            proc = subprocess.run([str(binary), "--output", "json", "audit", "--fail-on", "current-key-missing", *extra],
                                  capture_output=True, text=True, env=env, timeout=1800)
            elapsed = time.perf_counter() - t0
            assert proc.returncode == 0, proc.stderr
            calls = collections.Counter(proxy.calls[before:])
            said = [line for line in proc.stderr.splitlines() if "Security Hub of account" in line]
            out = {"run": label, "seconds": round(elapsed, 2), "calls": dict(sorted(calls.items())),
                   "hub_calls": sum(calls[c] for c in HUB_CALLS), "said": said}
            print(json.dumps(out), file=sys.stderr, flush=True)
            return out

        run("warm-up (not counted)")
        results = [run("plain audit (baseline)")]
        results.append(run("first import", "--security-hub"))
        results.append(run("re-run: every finding updated", "--security-hub"))
        with auth_off(moto):
            iam = moto.client("iam")
            for name in list(keys)[: users // 10]:
                iam.delete_access_key(UserName=name, AccessKeyId=keys[name])
        results.append(run(f"after {users // 10} keys deleted: resolved", "--security-hub"))
        base = results[0]["seconds"]
        for r in results[1:]:
            r["hub_seconds"] = round(r["seconds"] - base, 2)
        print(json.dumps({"users": users, "results": results}, indent=2))
    finally:
        proxy.close()
        moto.close()


if __name__ == "__main__":
    os.environ.setdefault("AWS_EC2_METADATA_DISABLED", "true")
    main()
