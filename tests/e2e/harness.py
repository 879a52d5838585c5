"""Test bed for keyturn's end-to-end tests: a moto server with request authentication on, and a
Lambda runtime API that drives the real rotation binary. Everything listens on 127.0.0.1 only."""

from __future__ import annotations

import io
import json
import os
import queue
import socket
import subprocess
import sys
import threading
import time
import uuid
import zipfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import boto3
import botocore.config

HOST = "127.0.0.1"
REGION = "us-east-1"
ROOT = Path(__file__).resolve().parents[2]


def built(name: str) -> Path:
    """A binary of the one release build scripts/build makes (x86_64 Linux, glibc 2.17), or of a
    host build (`cargo build --release`) on a machine where that is all there is."""
    shared = ROOT / "target" / "x86_64-unknown-linux-gnu" / "release" / name
    host = ROOT / "target" / "release" / name
    return host if not shared.exists() and host.exists() else shared


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def base_env(endpoint: str, key_id: str, secret: str) -> dict[str, str]:
    """An environment that can only reach the local emulator."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "KEYTURN_"))}
    env.update(
        AWS_ENDPOINT_URL=endpoint,
        AWS_REGION=REGION,
        AWS_DEFAULT_REGION=REGION,
        AWS_ACCESS_KEY_ID=key_id,
        AWS_SECRET_ACCESS_KEY=secret,
        AWS_EC2_METADATA_DISABLED="true",
        AWS_CONFIG_FILE="/dev/null",
        AWS_SHARED_CREDENTIALS_FILE="/dev/null",
        # moto's last-used record is live, and most tests rotate twice in a row: the settle window
        # (4 hours by default) is off unless a test turns it on (test_round_two.py does).
        KEYTURN_LAST_USED_SETTLE_SECONDS="0",
    )
    return env


class Moto:
    """moto_server on 127.0.0.1 with authentication turned on after the bootstrap calls; the
    bootstrap makes an administrator whose key signs everything after."""

    BOOTSTRAP_CALLS = 3

    def __init__(self, log_dir: Path):
        self.port = free_port()
        self.endpoint = f"http://{HOST}:{self.port}"
        env = dict(os.environ, INITIAL_NO_AUTH_ACTION_COUNT=str(self.BOOTSTRAP_CALLS))
        self.log_path = log_dir / "moto.log"
        self.log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", HOST, "-p", str(self.port)], stdout=self.log, stderr=subprocess.STDOUT, env=env
        )
        self._wait_ready()
        bootstrap = self.client("iam", "bootstrap", "bootstrap")
        bootstrap.create_user(UserName="admin")
        bootstrap.put_user_policy(UserName="admin", PolicyName="all", PolicyDocument=allow("*"))
        key = bootstrap.create_access_key(UserName="admin")["AccessKey"]
        self.admin = (key["AccessKeyId"], key["SecretAccessKey"])

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"moto_server exited with {self.proc.returncode}")
            try:
                with socket.create_connection((HOST, self.port), timeout=0.5):
                    return
            except OSError:
                time.sleep(0.1)
        raise RuntimeError("moto_server did not start within 30 s")

    def client(self, service: str, key_id: str | None = None, secret: str | None = None):
        key_id, secret = (key_id, secret) if key_id else self.admin
        return boto3.client(
            service,
            endpoint_url=self.endpoint,
            region_name=REGION,
            aws_access_key_id=key_id,
            aws_secret_access_key=secret,
            config=botocore.config.Config(retries={"max_attempts": 2}),
        )

    def placeholder_function(self) -> str:
        """A Lambda function for RotateSecret to name: moto cannot run it, so RotateSecret leaves
        the AWSPENDING version with no value, exactly what Secrets Manager does before createSecret.
        Created once per server (moto's signature check rejects Lambda's GET calls under auth)."""
        if getattr(self, "_placeholder", None) is None:
            role = self.client("iam").create_role(RoleName="placeholder", AssumeRolePolicyDocument="{}")["Role"]["Arn"]
            buf = io.BytesIO()
            with zipfile.ZipFile(buf, "w") as z:
                z.writestr("bootstrap", "#!/bin/sh\n")
            self._placeholder = self.client("lambda").create_function(
                FunctionName="placeholder", Runtime="provided.al2023", Role=role, Handler="bootstrap",
                Code={"ZipFile": buf.getvalue()},
            )["FunctionArn"]
        return self._placeholder

    def close(self) -> None:
        stop_process(self.proc)
        self.log.close()


class auth_off:
    """moto with request authentication switched off (its reset-auth, with a raw body), and on
    again after: for what moto cannot do under authentication (Lambda's GET calls fail its
    signature check) or what set-up must do before any policy exists."""

    def __init__(self, moto):
        self.moto = moto

    def _set(self, value: str):
        import urllib.request

        req = urllib.request.Request(f"{self.moto.endpoint}/moto-api/reset-auth", data=value.encode(), method="POST", headers={"Content-Type": "text/plain"})
        urllib.request.urlopen(req, timeout=10).read()

    def __enter__(self):
        self._set("inf")

    def __exit__(self, *exc):
        self._set("0")


def stop_process(proc: subprocess.Popen, grace: float = 10) -> None:
    """SIGTERM, then SIGKILL if it has not exited within `grace` seconds."""
    proc.terminate()
    try:
        proc.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def allow(*actions: str) -> str:
    return json.dumps({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": list(actions), "Resource": "*"}]})


class RuntimeApi:
    """The Lambda runtime API (2018-06-01) on 127.0.0.1: queues invocations for the function's
    `next` poll and collects its responses and errors."""

    def __init__(self):
        self.pending: queue.Queue = queue.Queue()
        self.results: dict[str, queue.Queue] = {}
        self.init_error: dict | None = None
        api = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):  # quiet
                pass

            def _reply(self, status: int, body: bytes = b"", headers: dict | None = None):
                self.send_response(status)
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self):
                if self.path != "/2018-06-01/runtime/invocation/next":
                    return self._reply(404)
                request_id, payload = api.pending.get()
                self._reply(200, json.dumps(payload).encode(), {
                    "Content-Type": "application/json",
                    "Lambda-Runtime-Aws-Request-Id": request_id,
                    "Lambda-Runtime-Deadline-Ms": str(int((time.time() + 300) * 1000)),
                    "Lambda-Runtime-Invoked-Function-Arn": f"arn:aws:lambda:{REGION}:123456789012:function:keyturn-rotation",
                    "Lambda-Runtime-Trace-Id": "Root=1-00000000-000000000000000000000000",
                })

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                parts = self.path.strip("/").split("/")
                if parts[-2:] == ["init", "error"]:
                    api.init_error = json.loads(body or b"{}")
                elif len(parts) == 5 and parts[4] in ("response", "error"):
                    api.results.setdefault(parts[3], queue.Queue()).put((parts[4] == "response", json.loads(body or b"null")))
                else:
                    return self._reply(404)
                self._reply(202, b"{}", {"Content-Type": "application/json"})

        self.server = ThreadingHTTPServer((HOST, 0), Handler)
        self.server.daemon_threads = True
        self.server.handle_error = lambda request, address: None  # a function killed mid-poll
        self.address = f"{HOST}:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def invoke(self, payload: dict, timeout: float = 120) -> tuple[bool, dict]:
        request_id = str(uuid.uuid4())
        self.results.setdefault(request_id, queue.Queue())
        self.pending.put((request_id, payload))
        return self.results[request_id].get(timeout=timeout)

    def close(self):
        self.server.shutdown()


class Function:
    """A rotation function as Lambda runs it: a process polling the runtime API. `command` is the
    release binary, or a whole command line (the benchmark's Python reference under awslambdaric);
    `started` is taken just before the process is spawned."""

    def __init__(self, command: Path | list[str], runtime: RuntimeApi, env: dict[str, str], log_path: Path, cwd: Path | None = None):
        self.runtime = runtime
        self.log_path = log_path
        self.log = open(log_path, "wb")
        env = dict(env)
        env.update(
            AWS_LAMBDA_RUNTIME_API=runtime.address,
            AWS_LAMBDA_FUNCTION_NAME="keyturn-rotation",
            AWS_LAMBDA_FUNCTION_VERSION="$LATEST",
            AWS_LAMBDA_FUNCTION_MEMORY_SIZE="128",
            AWS_LAMBDA_LOG_GROUP_NAME="/aws/lambda/keyturn-rotation",
            AWS_LAMBDA_LOG_STREAM_NAME="local",
        )
        argv = [str(command)] if isinstance(command, Path) else command
        self.started = time.perf_counter()
        self.proc = subprocess.Popen(argv, cwd=cwd, stdout=self.log, stderr=subprocess.STDOUT, env=env)

    def step(self, step: str, secret_id: str, token: str) -> tuple[bool, dict]:
        if self.proc.poll() is not None:
            raise RuntimeError(f"the function exited with {self.proc.returncode}: {self.output()}")
        return self.runtime.invoke({"Step": step, "SecretId": secret_id, "ClientRequestToken": token})

    def output(self) -> str:
        if not self.log.closed:
            self.log.flush()
        return self.log_path.read_text(errors="replace")

    def close(self):
        stop_process(self.proc)
        self.log.close()
