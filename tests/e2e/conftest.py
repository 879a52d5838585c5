import json
import os
import subprocess
import tempfile
from pathlib import Path

import pytest

from harness import Function, Moto, RuntimeApi, base_env, built


# Suite-wide secret hygiene: every secret access key created anywhere in the run, and everything
# the function, the CLI and the emulator printed; checked once more when the session ends.
ALL_SECRETS: set = set()
ALL_OUTPUT: list = []
SECRET_FIELDS = ("SecretAccessKey", "secretKey", "secretkey")


def harvest_secrets(moto) -> None:
    """Every secret key stored in any version of any secret (deprecated ones included): that is
    every key keyturn created, whether or not a test read it."""
    sm = moto.client("secretsmanager")
    for page in sm.get_paginator("list_secrets").paginate():
        for secret in page["SecretList"]:
            versions = sm.list_secret_version_ids(SecretId=secret["ARN"], IncludeDeprecated=True)["Versions"]
            for v in versions:
                try:
                    text = sm.get_secret_value(SecretId=secret["ARN"], VersionId=v["VersionId"]).get("SecretString")
                    value = json.loads(text or "null")
                except Exception:
                    continue
                if isinstance(value, dict):
                    ALL_SECRETS.update(str(value[f]) for f in SECRET_FIELDS if value.get(f))


def pytest_configure(config):
    if not hasattr(config, "workerinput"):
        config.hygiene_dir = tempfile.mkdtemp(prefix="keyturn-hygiene-")


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node):
    """pytest-xdist: each worker writes its findings where the controller reads them."""
    node.workerinput["hygiene_dir"] = node.config.hygiene_dir


def own_findings() -> dict:
    text = "\n".join(o if isinstance(o, str) else o.read_text(errors="replace") for o in ALL_OUTPUT if isinstance(o, str) or o.exists())
    leaked = sorted(s[:4] + "..." for s in ALL_SECRETS if len(s) >= 16 and s in text)
    return {"secrets": len(ALL_SECRETS), "characters": len(text), "leaked": leaked}


def pytest_sessionfinish(session, exitstatus):
    config = session.config
    if hasattr(config, "workerinput"):
        # An xdist worker: its secrets and output are its own; the controller adds them up.
        path = Path(config.workerinput["hygiene_dir"]) / f"{config.workerinput['workerid']}.json"
        path.write_text(json.dumps(own_findings()))
        return
    found = [own_findings()] + [json.loads(p.read_text()) for p in sorted(Path(config.hygiene_dir).glob("*.json"))]
    secrets, characters = sum(f["secrets"] for f in found), sum(f["characters"] for f in found)
    leaked = sorted({k for f in found for k in f["leaked"]})
    print(f"\nsecret hygiene: {secrets} secret access keys searched for in {characters} characters of output ({len(found) - 1} workers)")
    if not secrets or not characters:
        print("secret hygiene: nothing to search, the check would be vacuous")
        session.exitstatus = 1
    if leaked:
        print(f"secret hygiene: LEAKED {leaked}")
        session.exitstatus = 1


@pytest.fixture(scope="session")
def lambda_binary() -> Path:
    path = Path(os.environ.get("KEYTURN_LAMBDA_BIN", built("keyturn-rotation")))
    if not path.exists():
        pytest.fail(f"{path} is missing: build it with scripts/build")
    return path


@pytest.fixture(scope="session")
def keyturn_binary() -> Path:
    path = Path(os.environ.get("KEYTURN_BIN", built("keyturn")))
    if not path.exists():
        pytest.fail(f"{path} is missing: build it with scripts/build")
    return path


@pytest.fixture
def keyturn(moto, keyturn_binary, secrets_seen):
    """Runs the keyturn CLI against the emulator with the administrator's key; at teardown, no secret
    access key the test saw may appear in anything it printed (credential-process excepted: printing
    the key is its job)."""
    printed = []

    def run(*args, check=True, env_extra=None):
        env = base_env(moto.endpoint, *moto.admin)
        env.update(env_extra or {})
        proc = subprocess.run([str(keyturn_binary), *args], capture_output=True, text=True, env=env, timeout=300)
        if "credential-process" not in args:
            printed.append(proc.stdout + proc.stderr)
        if check and proc.returncode != 0:
            raise AssertionError(f"keyturn {' '.join(args)} exited {proc.returncode}\n{proc.stdout}\n{proc.stderr}")
        return proc

    yield run
    ALL_OUTPUT.extend(printed)
    everything = "\n".join(printed)
    leaked = [s[:4] + "..." for s in secrets_seen | {moto.admin[1]} if s and s in everything]
    assert not leaked, f"secret access keys appeared in keyturn's output: {leaked}"


@pytest.fixture(scope="module")
def moto(tmp_path_factory):
    server = Moto(tmp_path_factory.mktemp("moto"))
    yield server
    harvest_secrets(server)
    ALL_SECRETS.add(server.admin[1])
    server.close()
    ALL_OUTPUT.append(server.log_path)


@pytest.fixture
def secrets_seen():
    """Every secret access key a test creates or reads; checked against all function output."""
    seen = set()
    yield seen
    ALL_SECRETS.update(seen)


@pytest.fixture
def function_factory(moto, lambda_binary, tmp_path, secrets_seen):
    """Starts rotation function processes (each behind its own runtime API) and, at teardown,
    checks that no secret access key the test saw appears in anything they printed."""
    started = []

    def start(key_id=None, secret=None, **extra_env):
        key_id, secret = (key_id, secret) if key_id else moto.admin
        env = base_env(moto.endpoint, key_id, secret)
        env.update(KEYTURN_TEST_BACKOFF_MS="200", KEYTURN_TEST_MAX_BACKOFF_MS="1000")
        env.update(extra_env)
        runtime = RuntimeApi()
        fn = Function(lambda_binary, runtime, env, tmp_path / f"function-{len(started)}.log")
        started.append((fn, runtime))
        return fn

    yield start
    outputs = []
    for fn, _ in started:  # stop them all first, then wait: the fault tests start dozens
        if fn.proc.poll() is None:
            fn.proc.terminate()
    for fn, runtime in started:
        fn.close()
        runtime.close()
        outputs.append(fn.output())
    ALL_OUTPUT.extend(outputs)
    everything = "\n".join(outputs)
    assert everything.strip(), "the function printed nothing: the secret scan would be vacuous"
    leaked = [s[:4] + "..." for s in secrets_seen if s and s in everything]
    assert not leaked, f"secret access keys appeared in function output: {leaked}"
