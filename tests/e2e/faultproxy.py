"""A fault-injecting HTTP proxy on 127.0.0.1 in front of moto, for the wire-level fault tests.

Every AWS call the SDK makes is one invocation (the `amz-sdk-invocation-id` header, the same on
each retry of one call); the proxy numbers invocations 1, 2, 3... in the order their first attempt
arrives and can break the first attempt of invocation k in one of these ways:

- `5xx`: a 500 InternalFailure, without forwarding (the server did nothing);
- `throttle`: a 400 throttling error, without forwarding;
- `denied`: a 403 access-denied error, without forwarding (not retryable: the step fails);
- `reset`: forwards the call, then resets the connection instead of answering (the server acted,
  the client does not know);
- `timeout`: forwards the call, then answers nothing until well past the SDK's attempt timeout;
- `stop`: forwards the call, then holds the answer and sets `stopped`, so the test can kill the
  process "right after call k".

With `deny_assume={role ARN, ...}` it answers AssumeRole of those roles with AccessDenied, as STS
does for a role that does not exist or whose trust does not admit the caller (moto evaluates no
trust policy and lets any role be assumed, even a missing one).

With `hold="Operation"` it holds the first attempt of each call of that operation before forwarding
it (the write has not happened yet) until `unhold` is set, and sets `holding` meanwhile: another
run can act in between, as when two processes overlap. With `hide_uses=seconds` it answers
GetAccessKeyLastUsed without a last use that happened less than that long ago, as IAM's last-used
record, which is not live, does.

With `serialize={"Operation", ...}` calls of those operations reach moto one at a time, as IAM
applies its two-key limit to CreateAccessKey atomically: moto's threaded server checks the count
and then adds the key, so two CreateAccessKey for one user arriving together could both succeed
and leave it three keys, which IAM never does.

With `rolling={"service", ...}` it answers ECS DescribeServices for those services as ECS does in
the middle of a rolling deployment (moto completes every deployment at once): the primary
deployment's rolloutState IN_PROGRESS and an older ACTIVE deployment still running a task, until
the test removes the service from the set.

With `delay=seconds` every call waits that long before it is forwarded: a slower network, so that
a test can act in the middle of a bulk run.

With `lag=seconds` it plays IAM's eventual consistency instead: for that long after a
CreateAccessKey through the proxy, STS refuses calls signed with the new key (InvalidClientTokenId),
and for `list_lag` seconds (default the same) ListAccessKeys answers without it, as real IAM may.

Signatures still verify: the request reaches moto byte for byte, Host header included. Nothing in
keyturn knows about the proxy; the process under test only has its endpoint.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import re
import socket
import struct
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs

HOST = "127.0.0.1"
KINDS = ("5xx", "throttle", "denied", "reset", "timeout", "stop")
HOLD_SECONDS = 12.0  # longer than the SDK's 10 s attempt timeout

ERRORS = {
    # kind: (status, JSON-protocol code, query-protocol code)
    "5xx": (500, "InternalServiceError", "ServiceFailure"),
    "throttle": (400, "ThrottlingException", "Throttling"),
    "denied": (403, "AccessDeniedException", "AccessDenied"),
    "invalid": (403, "UnrecognizedClientException", "InvalidClientTokenId"),
}


# REST-JSON calls (Security Hub's) by method and path.
REST = {
    ("POST", "/findings/import"): "BatchImportFindings",
    ("POST", "/findings"): "GetFindings",
    ("PATCH", "/findings/batchupdate"): "BatchUpdateFindings",
}


def operation(headers, body: bytes, method: str = "", path: str = "") -> str:
    target = headers.get("X-Amz-Target")
    if target:
        return target.split(".")[-1]
    rest = REST.get((method, path.split("?", 1)[0]))
    if rest:
        return rest
    try:
        return parse_qs(body.decode())["Action"][0]
    except (KeyError, UnicodeDecodeError):
        return "?"


class FaultProxy:
    def __init__(
        self, upstream: str, kind: str | None = None, at: int | None = None, throttle_share: float = 0.0,
        gate: tuple[str, int] | None = None, every: bool = False, lag: float = 0.0, list_lag: float | None = None,
        deny_assume: set[str] | None = None, hold: str | None = None, hide_uses: float = 0.0,
        delay: float = 0.0, serialize: set[str] | None = None, rolling: set[str] | None = None,
    ):
        """`gate=(text, n)`: the first n requests whose body contains `text` wait until all n have
        arrived (at most 10 s), so that n processes make that call at the same moment. `every`: break every
        attempt of invocation k, not only the first (the SDK's retries all fail too)."""
        assert kind is None or kind in KINDS
        self.upstream = upstream.split("//", 1)[1]
        self.kind, self.at, self.throttle_share, self.every = kind, at, throttle_share, every
        self.lag = lag
        self.deny_assume = set(deny_assume or ())
        self.assume_denied = 0
        self.list_lag = lag if list_lag is None else list_lag
        self.created: dict[str, float] = {}  # key id -> when CreateAccessKey answered
        self.hidden = 0  # ListAccessKeys answers that left a key out
        self.refused = 0  # STS calls refused for a lagging key
        self.lock = threading.Lock()
        self.invocations: dict[str, int] = {}
        self.calls: list[str] = []  # operation of each invocation, in order
        self.attempts = 0
        self.throttled = 0
        self.injected: str | None = None  # "k:Operation" once the fault was injected
        self.stopped = threading.Event()
        self.gate = (gate[0].encode(), threading.Barrier(gate[1], timeout=10)) if gate else None
        self.gated = 0
        self.release = threading.Event()
        self.hold, self.holding, self.unhold = hold, threading.Event(), threading.Event()
        self.hide_uses = hide_uses
        self.uses_hidden = 0
        self.delay = delay
        self.serialize = set(serialize or ())
        self.serial = threading.Lock()
        self.rolling = set(rolling or ())
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_POST(self):
                proxy._handle(self)

            def do_GET(self):
                proxy._handle(self)

            def do_PATCH(self):
                proxy._handle(self)

            def do_PUT(self):
                proxy._handle(self)

            def do_DELETE(self):
                proxy._handle(self)

        self.server = ThreadingHTTPServer((HOST, 0), Handler)
        self.server.daemon_threads = True
        self.server.handle_error = lambda request, address: None  # a client closing its connection is not news
        self.endpoint = f"http://{HOST}:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def disarm(self) -> None:
        with self.lock:
            self.kind = None
            self.throttle_share = 0.0
        self.release.set()
        self.stopped.clear()

    def close(self) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()

    def _handle(self, h: BaseHTTPRequestHandler) -> None:
        body = h.rfile.read(int(h.headers.get("Content-Length") or 0))
        op = operation(h.headers, body, h.command, h.path)
        invocation = h.headers.get("amz-sdk-invocation-id") or f"anon-{id(h)}-{time.monotonic_ns()}"
        first = "attempt=1" in (h.headers.get("amz-sdk-request") or "attempt=1")
        with self.lock:
            self.attempts += 1
            if invocation not in self.invocations:
                self.calls.append(op)
                self.invocations[invocation] = len(self.calls)
            k = self.invocations[invocation]
            fault = self.kind if ((first or self.every) and self.kind and k == self.at) else None
            if fault:
                self.injected = f"{k}:{op}"
            elif first and self.throttle_share and _share(invocation) < self.throttle_share:
                fault = "throttle"
                self.throttled += 1

        if fault in ERRORS:
            return self._error(h, fault, op)
        if self.deny_assume and op == "AssumeRole":
            role = (parse_qs(body.decode(errors="replace")).get("RoleArn") or [""])[0]
            if role in self.deny_assume:
                with self.lock:
                    self.assume_denied += 1
                return self._error(h, "denied", op, f"User is not authorized to perform: sts:AssumeRole on resource: {role}")
        if self.lag and op == "GetCallerIdentity":
            signer = re.search(r"Credential=([A-Z0-9]+)/", h.headers.get("Authorization") or "")
            if signer and self._lagging(signer.group(1), self.lag):
                with self.lock:
                    self.refused += 1
                return self._error(h, "invalid", op)
        if self.hold and first and op == self.hold and not self.unhold.is_set():
            self.holding.set()
            self.unhold.wait(8)  # within the SDK's 10 s attempt timeout
        if self.gate and first and self.gate[0] in body and self.gated < self.gate[1].parties:
            with self.lock:
                self.gated += 1
            try:
                self.gate[1].wait()
            except threading.BrokenBarrierError:
                pass
        if self.delay:
            time.sleep(self.delay)
        if op in self.serialize:
            with self.serial:
                status, headers, payload = self._forward(h, body)
        else:
            status, headers, payload = self._forward(h, body)
        if (self.lag or self.list_lag) and status == 200 and op == "CreateAccessKey":
            made = re.search(rb"<AccessKeyId>([A-Z0-9]+)</AccessKeyId>", payload)
            if made:
                with self.lock:
                    self.created[made.group(1).decode()] = time.monotonic()
        if self.list_lag and status == 200 and op == "ListAccessKeys":
            payload = self._hide_new_keys(payload)
        if self.hide_uses and status == 200 and op == "GetAccessKeyLastUsed":
            payload = self._hide_recent_use(payload)
        if self.rolling and status == 200 and op == "DescribeServices":
            payload = self._still_rolling(payload)
        if fault == "reset":
            h.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            h.close_connection = True
            h.connection.close()
            return
        if fault == "timeout":
            self.release.wait(HOLD_SECONDS)
            h.close_connection = True
            return
        if fault == "stop":
            self.stopped.set()
            self.release.wait(600)
            h.close_connection = True
            return
        h.send_response(status)
        for name, value in headers:
            if name.lower() not in ("transfer-encoding", "connection", "content-length", "server", "date"):
                h.send_header(name, value)
        h.send_header("Content-Length", str(len(payload)))
        h.end_headers()
        h.wfile.write(payload)

    def _lagging(self, key_id: str, lag: float) -> bool:
        with self.lock:
            made = self.created.get(key_id)
        return made is not None and time.monotonic() - made < lag

    def _hide_new_keys(self, payload: bytes) -> bytes:
        def keep(member: re.Match) -> bytes:
            key = re.search(rb"<AccessKeyId>([A-Z0-9]+)</AccessKeyId>", member.group(0))
            if key and self._lagging(key.group(1).decode(), self.list_lag):
                with self.lock:
                    self.hidden += 1
                return b""
            return member.group(0)

        return re.sub(rb"<member>.*?</member>", keep, payload, flags=re.S)

    def _hide_recent_use(self, payload: bytes) -> bytes:
        from datetime import datetime, timezone

        found = re.search(rb"<LastUsedDate>([^<]+)</LastUsedDate>", payload)
        if not found:
            return payload
        when = datetime.fromisoformat(found.group(1).decode().replace("Z", "+00:00"))
        if when.tzinfo is None:
            when = when.replace(tzinfo=timezone.utc)
        if (datetime.now(timezone.utc) - when).total_seconds() >= self.hide_uses:
            return payload
        with self.lock:
            self.uses_hidden += 1
        payload = payload.replace(found.group(0), b"")
        payload = re.sub(rb"<ServiceName>[^<]*</ServiceName>", b"<ServiceName>N/A</ServiceName>", payload)
        return re.sub(rb"<Region>[^<]*</Region>", b"<Region>N/A</Region>", payload)

    def _still_rolling(self, payload: bytes) -> bytes:
        answer = json.loads(payload)
        for service in answer.get("services", []):
            if service.get("serviceName") not in self.rolling:
                continue
            deployments = service.get("deployments") or []
            for d in deployments:
                if d.get("status") == "PRIMARY":
                    d["rolloutState"] = "IN_PROGRESS"
            older = dict(deployments[0]) if deployments else {}
            older.update(id="ecs-svc/older", status="ACTIVE", runningCount=1, rolloutState="COMPLETED")
            deployments.append(older)
            service["deployments"] = deployments
        return json.dumps(answer).encode()

    def _forward(self, h: BaseHTTPRequestHandler, body: bytes):
        conn = http.client.HTTPConnection(self.upstream, timeout=60)
        try:
            conn.putrequest(h.command, h.path, skip_host=True, skip_accept_encoding=True)
            for name, value in h.headers.items():
                conn.putheader(name, value)
            conn.endheaders(body)
            resp = conn.getresponse()
            return resp.status, resp.getheaders(), resp.read()
        finally:
            conn.close()

    @staticmethod
    def _error(h: BaseHTTPRequestHandler, kind: str, op: str, message: str | None = None) -> None:
        status, json_code, query_code = ERRORS[kind]
        message = message or f"injected {kind} on {op}"
        rest_code = None
        if h.headers.get("X-Amz-Target"):
            payload = json.dumps({"__type": json_code, "message": message}).encode()
            ctype = "application/x-amz-json-1.1"
        elif (h.headers.get("Content-Type") or "").startswith("application/json"):
            # REST-JSON (Security Hub): the code in a header; a throttle is a 429.
            rest_code = "TooManyRequestsException" if kind == "throttle" else json_code
            status = 429 if kind == "throttle" else status
            payload = json.dumps({"message": message}).encode()
            ctype = "application/json"
        else:
            payload = (
                f'<ErrorResponse xmlns="https://iam.amazonaws.com/doc/2010-05-08/"><Error><Type>Sender</Type>'
                f"<Code>{query_code}</Code><Message>{message}</Message></Error>"
                f"<RequestId>00000000-0000-0000-0000-000000000000</RequestId></ErrorResponse>"
            ).encode()
            ctype = "text/xml"
        h.send_response(status)
        h.send_header("Content-Type", ctype)
        h.send_header("x-amzn-RequestId", "00000000-0000-0000-0000-000000000000")
        if rest_code:
            h.send_header("x-amzn-ErrorType", rest_code)
        h.send_header("Content-Length", str(len(payload)))
        h.end_headers()
        h.wfile.write(payload)


def _share(invocation: str) -> float:
    """A stable number in [0, 1) per invocation: which calls are throttled does not depend on timing."""
    return int.from_bytes(hashlib.sha256(invocation.encode()).digest()[:4], "big") / 2**32
