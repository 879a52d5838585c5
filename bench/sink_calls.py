#!/usr/bin/env python3
"""Calls a first rotation makes per sink, restart target and notice (BENCHMARKS.md, "Delivery, per
sink" and "Consumers and owners"):
`python3 bench/sink_calls.py [path/to/keyturn-rotation]` (default: the one release build's, scripts/build).

The rotation function rotates one secret per case through the loopback fault proxy (which records
each AWS call) against moto on 127.0.0.1, with the GitHub stand-in of the end-to-end tests on
127.0.0.1 recording its HTTP calls; it prints the calls of each case.
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "e2e"))

from faultproxy import FaultProxy  # noqa: E402
from github_standin import GitHubStandIn  # noqa: E402
from harness import Function, Moto, RuntimeApi, auth_off, base_env, built  # noqa: E402
from test_rotation_function import make_user, run_steps, start_rotation, unique  # noqa: E402


def main() -> None:
    binary = Path(sys.argv[1]) if len(sys.argv) > 1 else built("keyturn-rotation")
    tmp = Path(tempfile.mkdtemp(prefix="keyturn-sink-calls-"))
    moto, github = Moto(tmp), GitHubStandIn("token")
    sm = moto.client("secretsmanager")
    sm.create_secret(Name="github-token", SecretString="token")
    ecs = moto.client("ecs")
    ecs.create_cluster(clusterName="bench")
    task = ecs.register_task_definition(family="web", containerDefinitions=[{"name": "app", "image": "app:1", "memory": 128}])
    ecs.create_service(cluster="bench", serviceName="web", taskDefinition=task["taskDefinition"]["taskDefinitionArn"], desiredCount=0)
    github.add_workflow("acme", "app", "deploy.yml")
    topic = moto.client("sns").create_topic(Name="notices")["TopicArn"]
    cases = [
        ("no sink", [], False),
        ("ssm", [("keyturn:sink:p", "ssm:/bench/{u}")], False),
        ("github", [("keyturn:sink:g", "github:acme/app")], False),
        ("events", [], True),
        ("all three", [("keyturn:sink:p", "ssm:/bench/{u}"), ("keyturn:sink:g", "github:acme/app")], True),
        ("ecs restart", [("keyturn:restart:web", "ecs:bench/web")], False),
        ("workflow restart", [("keyturn:restart:deploy", "github:acme/app workflow=deploy.yml ref=main")], False),
        # moto checks a Publish's signature against a re-encoded form: notices run with its
        # authentication off (tests/e2e/test_notices.py).
        ("owner notice", [("keyturn:owner", "team-a")], False),
    ]
    try:
        for label, tags, events in cases:
            user = unique("u")
            key = make_user(moto, user, set())
            secret = unique("keyturn/u")
            sm.create_secret(
                Name=secret,
                SecretString=json.dumps({"UserName": user, "AccessKeyId": key["AccessKeyId"], "SecretAccessKey": key["SecretAccessKey"]}),
                Tags=[{"Key": k, "Value": v.format(u=user)} for k, v in tags],
            )
            proxy, runtime = FaultProxy(moto.endpoint), RuntimeApi()
            env = base_env(proxy.endpoint, *moto.admin)
            env.update(KEYTURN_GITHUB_API=github.base, KEYTURN_GITHUB_TOKEN_SECRET="github-token", KEYTURN_EVENTS=str(events).lower())
            env.update(KEYTURN_RESTART_ECS_CLUSTERS="bench", KEYTURN_RESTART_GITHUB_REPOS="acme/app", KEYTURN_NOTICE_TOPIC=topic)
            fn = Function(binary, runtime, env, tmp / f"{user}.log")
            before = len(github.calls)
            try:
                token = start_rotation(moto, secret)
                if label == "owner notice":
                    with auth_off(moto):
                        run_steps(fn, secret, token)
                else:
                    run_steps(fn, secret, token)
            finally:
                fn.close()
                runtime.close()
                proxy.close()
            http = github.calls[before:]
            print(f"{label}: {len(proxy.calls)} AWS calls, {len(http)} HTTP calls")
            print(f"  AWS:  {', '.join(proxy.calls)}")
            if http:
                print(f"  HTTP: {', '.join(http)}")
    finally:
        github.close()
        moto.close()


if __name__ == "__main__":
    main()
