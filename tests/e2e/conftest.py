import os
import subprocess
from pathlib import Path

import pytest

from harness import ROOT, Function, Moto, RuntimeApi, base_env


@pytest.fixture(scope="session")
def lambda_binary() -> Path:
    path = Path(os.environ.get("KEYTURN_LAMBDA_BIN", ROOT / "target" / "release" / "keyturn-rotation"))
    if not path.exists():
        pytest.fail(f"{path} is missing: build it with cargo build --release -p keyturn-lambda")
    return path


@pytest.fixture(scope="session")
def keyturn_binary() -> Path:
    path = Path(os.environ.get("KEYTURN_BIN", ROOT / "target" / "release" / "keyturn"))
    if not path.exists():
        pytest.fail(f"{path} is missing: build it with cargo build --release -p keyturn")
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
        if args[0] != "credential-process":
            printed.append(proc.stdout + proc.stderr)
        if check and proc.returncode != 0:
            raise AssertionError(f"keyturn {' '.join(args)} exited {proc.returncode}\n{proc.stdout}\n{proc.stderr}")
        return proc

    yield run
    everything = "\n".join(printed)
    leaked = [s[:4] + "..." for s in secrets_seen | {moto.admin[1]} if s and s in everything]
    assert not leaked, f"secret access keys appeared in keyturn's output: {leaked}"


@pytest.fixture(scope="module")
def moto(tmp_path_factory):
    server = Moto(tmp_path_factory.mktemp("moto"))
    yield server
    server.close()


@pytest.fixture
def secrets_seen():
    """Every secret access key a test creates or reads; checked against all function output."""
    return set()


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
    for fn, runtime in started:
        fn.close()
        runtime.close()
        outputs.append(fn.output())
    everything = "\n".join(outputs)
    assert everything.strip(), "the function printed nothing: the secret scan would be vacuous"
    leaked = [s[:4] + "..." for s in secrets_seen if s and s in everything]
    assert not leaked, f"secret access keys appeared in function output: {leaked}"
