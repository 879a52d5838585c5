"""Restarting the consumers that read a key once: an ECS service in moto (UpdateService with
forceNewDeployment, read back with boto3) and a deploy workflow on the GitHub stand-in (its
workflow_dispatch recorded). The sweep retires the previous key only after each restart since the
cut-over completed (a proxy answers DescribeServices as ECS does mid-deployment, since moto
completes deployments at once) and the new key was used; a failed restart leaves the rotation done
and is retried; a target outside the deployment's bounds is refused before a key is made."""

from __future__ import annotations

import json
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone

import pytest

from faultproxy import FaultProxy
from harness import auth_off
from github_standin import GitHubStandIn
from test_rotation_function import STEPS, key_statuses, make_user, run_steps, start_rotation, unique, value, whoami

TOKEN = "ghs_e2eRestartStandInToken012345"
CLUSTER = "keyturn-e2e"


@pytest.fixture(scope="module")
def github():
    standin = GitHubStandIn(TOKEN)
    yield standin
    standin.close()


@pytest.fixture(scope="module")
def token_secret(moto):
    name = unique("keyturn-e2e/restart-token")
    moto.client("secretsmanager").create_secret(Name=name, SecretString=json.dumps({"token": TOKEN}))
    return name


def service(moto, name: str, secret_arn: str) -> dict:
    """An ECS service whose task definition injects the secret at task start."""
    ecs = moto.client("ecs")
    ecs.create_cluster(clusterName=CLUSTER)
    task = ecs.register_task_definition(
        family=name,
        containerDefinitions=[{
            "name": "app", "image": "app:1", "memory": 128,
            "secrets": [
                {"name": "AWS_ACCESS_KEY_ID", "valueFrom": f"{secret_arn}:AccessKeyId::"},
                {"name": "AWS_SECRET_ACCESS_KEY", "valueFrom": f"{secret_arn}:SecretAccessKey::"},
            ],
        }],
    )["taskDefinition"]["taskDefinitionArn"]
    ecs.create_service(cluster=CLUSTER, serviceName=name, taskDefinition=task, desiredCount=0)
    return primary(moto, name)


def primary(moto, name: str) -> dict:
    [svc] = moto.client("ecs").describe_services(cluster=CLUSTER, services=[name])["services"]
    return next(d for d in svc["deployments"] if d["status"] == "PRIMARY")


def restart_secret(moto, github, secrets_seen, prefix: str, extra_tags=()):
    """A user, its secret naming an ECS service and a deploy workflow, both existing."""
    user, secret_id = unique(prefix), unique(f"keyturn/{prefix}")
    old = make_user(moto, user, secrets_seen)
    svc, repo = unique("web"), unique("app")
    arn = moto.client("secretsmanager").create_secret(
        Name=secret_id,
        SecretString=json.dumps({"UserName": user, "AccessKeyId": old["AccessKeyId"], "SecretAccessKey": old["SecretAccessKey"]}),
        Tags=[
            {"Key": "keyturn:managed", "Value": "true"},
            {"Key": "keyturn:restart:web", "Value": f"ecs:{CLUSTER}/{svc}"},
            {"Key": "keyturn:restart:deploy", "Value": f"github:acme/{repo} workflow=deploy.yml ref=main"},
            *extra_tags,
        ],
    )["ARN"]
    before = service(moto, svc, arn)
    github.add_workflow("acme", repo, "deploy.yml")
    return {"user": user, "secret": secret_id, "old": old, "service": svc, "repo": repo, "deployment": before}


def bounds(github, token_secret, repo: str) -> dict:
    return {
        "KEYTURN_RESTART_ECS_CLUSTERS": CLUSTER,
        "KEYTURN_RESTART_GITHUB_REPOS": f"acme/{repo}",
        "KEYTURN_GITHUB_API": github.base,
        "KEYTURN_GITHUB_TOKEN_SECRET": token_secret,
    }


def sweep(keyturn, endpoint: str, env: dict, secret_id: str) -> dict:
    out = keyturn("--endpoint-url", endpoint, "--output", "json", "sweep", "--grace-days", "0", secret_id, env_extra=env)
    return json.loads(out.stdout)[0]


def test_finish_restarts_after_the_cutover_and_the_sweep_waits_for_every_restart_and_the_switch(moto, function_factory, keyturn, github, token_secret, secrets_seen):
    s = restart_secret(moto, github, secrets_seen, "restart")
    env = bounds(github, token_secret, s["repo"])
    # The deployment ECS runs after the restart stays in progress until the test lets it finish.
    proxy = FaultProxy(moto.endpoint, rolling={s["service"]})
    try:
        fn = function_factory(AWS_ENDPOINT_URL=proxy.endpoint, KEYTURN_EVENTS="true", **env)
        token = start_rotation(moto, s["secret"])
        run_steps(fn, s["secret"], token, STEPS[:3])
        assert primary(moto, s["service"])["id"] == s["deployment"]["id"], "nothing is restarted before finishSecret"
        assert github.runs_of("acme", s["repo"], "deploy.yml") == []
        finishing = datetime.now(timezone.utc).replace(microsecond=0)
        run_steps(fn, s["secret"], token, STEPS[3:])
        current = value(moto, s["secret"], "AWSCURRENT")
        secrets_seen.add(current["SecretAccessKey"])
        assert current["AccessKeyId"] != s["old"]["AccessKeyId"]
        restarted = primary(moto, s["service"])
        assert restarted["id"] != s["deployment"]["id"] and restarted["createdAt"] >= finishing, "a new deployment after AWSCURRENT moved"
        [run] = github.runs_of("acme", s["repo"], "deploy.yml")
        assert run["head_branch"] == "main" and run["event"] == "workflow_dispatch"
        assert '"restarted":"deploy,web"' in fn.output(), "the step's log line names what it restarted"

        # Grace over, previous key unused; both restarts still in progress: awaiting the switch.
        waiting = sweep(keyturn, proxy.endpoint, env, s["secret"])
        assert waiting["action"] == "awaiting-switch" and waiting["failed"] is False, waiting
        assert [(p["name"], p["progress"]) for p in waiting["pendingRestarts"]] == [("deploy", "running"), ("web", "running")], waiting
        assert all(p["retried"] is None for p in waiting["pendingRestarts"]), "nothing restarted again while it runs"
        assert key_statuses(moto, s["user"])[s["old"]["AccessKeyId"]] == "Active"
        status = json.loads(keyturn("--endpoint-url", proxy.endpoint, "--output", "json", "status", s["secret"], env_extra=env).stdout)
        assert {r["name"]: r["progress"] for r in status["restarts"]} == {"deploy": "running", "web": "running"}, status
        assert "restart  web" in keyturn("--endpoint-url", proxy.endpoint, "status", s["secret"], env_extra=env).stdout

        # Both rollouts complete; the new key has not been used since the cut-over yet.
        proxy.rolling.clear()
        github.finish_runs("success")
        waiting = sweep(keyturn, proxy.endpoint, env, s["secret"])
        assert waiting["action"] == "awaiting-switch" and waiting["pendingRestarts"] == [], waiting
        assert key_statuses(moto, s["user"])[s["old"]["AccessKeyId"]] == "Active"

        # The restarted consumers use the new key: the previous key is deactivated.
        time.sleep(1.1)
        with pytest.raises(Exception):
            moto.client("secretsmanager", current["AccessKeyId"], current["SecretAccessKey"]).list_secrets()
        done = sweep(keyturn, proxy.endpoint, env, s["secret"])
        assert done["action"] == "deactivated", done
        assert key_statuses(moto, s["user"])[s["old"]["AccessKeyId"]] == "Inactive"
        assert len(github.runs_of("acme", s["repo"], "deploy.yml")) == 1, "one dispatch in all"
    finally:
        proxy.close()


def test_a_failed_restart_leaves_the_rotation_done_reported_and_retried(moto, keyturn, github, token_secret, secrets_seen):
    s = restart_secret(moto, github, secrets_seen, "restartfail")
    env = bounds(github, token_secret, s["repo"])
    github.refuse(f"/repos/acme/{s['repo']}/actions/workflows", 403)
    try:
        failed = keyturn("--output", "json", "rotate", s["secret"], env_extra=env, check=False)
    finally:
        github.clear()
    assert failed.returncode == 1, "a restart that failed fails the command"
    row = json.loads(failed.stdout)[0]
    assert row["outcome"] == "rotated" and row["restarted"] == ["web"], row
    assert row["errorType"] == "RestartFailed" and "restart deploy" in row["error"] and "deliver --restart" in row["error"], row
    current = value(moto, s["secret"], "AWSCURRENT")
    secrets_seen.add(current["SecretAccessKey"])
    assert current["AccessKeyId"] == row["newKeyId"] != s["old"]["AccessKeyId"], "the rotation stands"
    assert whoami(moto, current["AccessKeyId"], current["SecretAccessKey"]).endswith(f":user/{s['user']}")
    assert primary(moto, s["service"])["id"] != s["deployment"]["id"]
    assert github.runs_of("acme", s["repo"], "deploy.yml") == []

    # The sweep (the previous key still in its grace period) dispatches it again.
    waiting = json.loads(keyturn("--output", "json", "sweep", s["secret"], env_extra=env).stdout)[0]
    assert waiting["action"] == "waiting", waiting
    [run] = github.runs_of("acme", s["repo"], "deploy.yml")
    web = primary(moto, s["service"])["id"]
    # deliver --restart restarts only what has not completed since the cut-over; --all-targets all.
    github.finish_runs("success")
    asked = json.loads(keyturn("--output", "json", "deliver", "--restart", s["secret"], env_extra=env).stdout)[0]
    assert asked["keyId"] == current["AccessKeyId"] and {t["name"]: t["result"] for t in asked["targets"]} == {"deploy": "done", "web": "done"}, asked
    assert primary(moto, s["service"])["id"] == web
    everything = json.loads(keyturn("--output", "json", "deliver", "--restart", "--all-targets", s["secret"], env_extra=env).stdout)[0]
    assert {t["result"] for t in everything["targets"]} == {"restarted"}, everything
    assert primary(moto, s["service"])["id"] != web and len(github.runs_of("acme", s["repo"], "deploy.yml")) == 2


def test_the_function_finishes_the_rotation_when_a_restart_fails_and_logs_what_the_alarm_counts(moto, function_factory, github, token_secret, secrets_seen):
    s = restart_secret(moto, github, secrets_seen, "restartlog")
    fn = function_factory(**bounds(github, token_secret, s["repo"]))
    token = start_rotation(moto, s["secret"])
    run_steps(fn, s["secret"], token, STEPS[:3])
    github.refuse(f"/repos/acme/{s['repo']}/actions/workflows", 403)
    try:
        ok, body = fn.step("finishSecret", s["secret"], token)
    finally:
        github.clear()
    assert ok and body["restarted"] == ["web"] and body["restartFailed"] == ["deploy"], body
    current = value(moto, s["secret"], "AWSCURRENT")
    secrets_seen.add(current["SecretAccessKey"])
    assert current["AccessKeyId"] != s["old"]["AccessKeyId"], "AWSCURRENT moved and stays"
    # The line the template's metric filter ({ $.message = "restart failed" }) counts, naming what
    # to do; the step's own line says what was restarted and what failed.
    failed = [json.loads(line) for line in fn.output().splitlines() if '"restart failed"' in line]
    assert len(failed) == 1 and failed[0]["message"] == "restart failed" and failed[0]["restart"] == "deploy", failed
    assert "deliver --restart" in failed[0]["error"] and failed[0]["key_id"] == current["AccessKeyId"], failed
    assert '"restart_failed":"deploy"' in fn.output()


def test_a_target_outside_the_deployments_bounds_is_refused_before_a_key_is_made(moto, keyturn, function_factory, github, token_secret, secrets_seen):
    s = restart_secret(moto, github, secrets_seen, "restartbound", extra_tags=[{"Key": "keyturn:restart:other", "Value": "ecs:other-cluster/web"}])
    env = bounds(github, token_secret, s["repo"])
    refused = keyturn("--output", "json", "rotate", s["secret"], env_extra=env, check=False)
    row = json.loads(refused.stdout)[0]
    assert row["outcome"] == "failed" and row["errorType"] == "BadRestart", row
    assert "keyturn:restart:other" in row["error"] and "no key was created" in row["error"], row
    # With no bounds at all (the default), no target is allowed.
    plain = {k: v for k, v in env.items() if not k.startswith("KEYTURN_RESTART_")}
    row = json.loads(keyturn("--output", "json", "rotate", "--dry-run", s["secret"], env_extra=plain, check=False).stdout)[0]
    assert row["errorType"] == "BadRestart" and "dispatches no GitHub workflow" in row["error"], row
    fn = function_factory(**env)
    token = start_rotation(moto, s["secret"])
    ok, body = fn.step("createSecret", s["secret"], token)
    assert not ok and body["errorType"] == "BadRestart", body
    assert list(key_statuses(moto, s["user"])) == [s["old"]["AccessKeyId"]], "no key was made"
    assert primary(moto, s["service"])["id"] == s["deployment"]["id"] and github.runs_of("acme", s["repo"], "deploy.yml") == []


def _faulted_rotation(moto, function_factory, env, s, kind, k):
    """One rotation with `kind` at AWS call k through a proxy; Secrets Manager's retry re-runs the
    steps (a new process where one was stopped) until they pass. Returns the proxy's injection."""
    from test_faults import _invoke

    proxy = FaultProxy(moto.endpoint, kind, k)
    try:
        fn = function_factory(AWS_ENDPOINT_URL=proxy.endpoint, **env)
        token = start_rotation(moto, s["secret"])
        for _ in range(3):
            for step in STEPS:
                result = _invoke(fn, proxy, step, s["secret"], token)
                if result is None:
                    proxy.disarm()
                    fn = function_factory(AWS_ENDPOINT_URL=proxy.endpoint, **env)
                    break
                if not result[0]:
                    break
            else:
                break
        else:
            raise AssertionError(f"{kind}@{k}: the rotation did not finish in 3 runs")
        return proxy.injected
    finally:
        proxy.close()


@pytest.mark.parametrize("op", ["UpdateService", "Publish"])
def test_a_fault_at_a_restart_or_a_notice_leaves_the_rotation_done_and_the_sweep_restarts_what_was_missed(moto, function_factory, keyturn, github, token_secret, secrets_seen, op):
    """The proxy breaks finishSecret's ECS UpdateService or SNS Publish in each way it knows: the
    rotation is done every time (AWSCURRENT on the new key, the previous key intact), and the next
    sweep restarts whatever the fault cost. moto's authentication is off (SNS Publish, see
    test_notices.py)."""
    from faultproxy import KINDS

    topic = moto.client("sns").create_topic(Name=unique("keyturn-fault-notices"))["TopicArn"]
    owner = [{"Key": "keyturn:owner", "Value": "team-a"}]
    with auth_off(moto):
        clean = restart_secret(moto, github, secrets_seen, "rclean", extra_tags=owner)
        env = {**bounds(github, token_secret, clean["repo"]), "KEYTURN_NOTICE_TOPIC": topic}
        proxy = FaultProxy(moto.endpoint)
        try:
            fn = function_factory(AWS_ENDPOINT_URL=proxy.endpoint, **env)
            run_steps(fn, clean["secret"], start_rotation(moto, clean["secret"]))
            calls = list(proxy.calls)
        finally:
            proxy.close()
        secrets_seen.add(value(moto, clean["secret"], "AWSCURRENT")["SecretAccessKey"])
        k = calls.index(op) + 1

        def faulted(kind):
            s = restart_secret(moto, github, secrets_seen, "rfault", extra_tags=owner)
            run_env = {**env, "KEYTURN_RESTART_GITHUB_REPOS": f"acme/{s['repo']}"}
            assert _faulted_rotation(moto, function_factory, run_env, s, kind, k) == f"{k}:{op}", kind
            current = value(moto, s["secret"], "AWSCURRENT")
            secrets_seen.add(current["SecretAccessKey"])
            assert current["AccessKeyId"] != s["old"]["AccessKeyId"], f"{kind}: the rotation is done"
            assert value(moto, s["secret"], "AWSPREVIOUS")["AccessKeyId"] == s["old"]["AccessKeyId"], kind
            assert key_statuses(moto, s["user"])[s["old"]["AccessKeyId"]] == "Active", kind
            swept = json.loads(keyturn("--output", "json", "sweep", s["secret"], env_extra=run_env).stdout)[0]
            assert swept["action"] == "waiting", f"{kind}: {swept}"
            assert primary(moto, s["service"])["id"] != s["deployment"]["id"], f"{kind}: the service was restarted"
            assert 1 <= len(github.runs_of("acme", s["repo"], "deploy.yml")) <= 2, f"{kind}: the workflow was dispatched"

        with ThreadPoolExecutor(3) as pool:
            list(pool.map(faulted, KINDS))
