"""A stand-in for GitHub's REST API on 127.0.0.1: the documented Actions-secrets endpoints keyturn
calls, for repositories, environments and organizations.

- `GET {scope}/secrets/public-key` answers `{"key_id", "key"}`: a Curve25519 public key of the
  stand-in's own (PyNaCl), one per scope;
- `PUT {scope}/secrets/{name}` takes `{"encrypted_value", "key_id"}` (and `visibility` for an
  organization), opens the sealed box with the scope's private key, and keeps the clear value;
  201 when the secret is new, 204 when it is updated, as GitHub answers.

It checks what GitHub checks: a bearer token equal to the one it was given (401 otherwise), the API
version header, a key id that matches the scope's key (422), a value that opens (422), a secret
name GitHub allows (422) and `visibility` on organization secrets only. `refuse(prefix, status)`
makes calls under a path prefix fail with that status, and `fail_next(n, status)` the next n calls,
so tests can break a sink.
"""

from __future__ import annotations

import base64
import json
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from nacl.public import PrivateKey, SealedBox

HOST = "127.0.0.1"
SCOPE = re.compile(r"^(/repos/[^/]+/[^/]+/actions|/repos/[^/]+/[^/]+/environments/[^/]+|/orgs/[^/]+/actions)/secrets(?:/(public-key|[^/]+))?$")
NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class GitHubStandIn:
    def __init__(self, token: str):
        self.token = token
        self.keys: dict[str, PrivateKey] = {}
        self.secrets: dict[str, str] = {}  # "{scope}/{NAME}" -> clear value
        self.visibility: dict[str, str] = {}
        self.calls: list[str] = []
        self.bodies: list[str] = []  # every request body, to search for leaked secrets
        self.refusals: dict[str, int] = {}
        self.failures: list[int] = []
        self.lock = threading.Lock()
        standin = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_GET(self):
                standin._handle(self, "GET")

            def do_PUT(self):
                standin._handle(self, "PUT")

        self.server = ThreadingHTTPServer((HOST, 0), Handler)
        self.port = self.server.server_address[1]
        self.base = f"http://{HOST}:{self.port}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def refuse(self, prefix: str, status: int = 403) -> None:
        with self.lock:
            self.refusals[prefix] = status

    def fail_next(self, count: int, status: int = 500) -> None:
        with self.lock:
            self.failures.extend([status] * count)

    def clear(self) -> None:
        with self.lock:
            self.refusals.clear()
            self.failures.clear()

    def value(self, scope: str, name: str) -> str | None:
        return self.secrets.get(f"{scope}/{name}")

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def _reply(self, h, status: int, body: dict | None = None) -> None:
        data = json.dumps(body).encode() if body is not None else b""
        h.send_response(status)
        h.send_header("Content-Type", "application/json")
        h.send_header("Content-Length", str(len(data)))
        h.end_headers()
        h.wfile.write(data)

    def _handle(self, h, method: str) -> None:
        length = int(h.headers.get("Content-Length") or 0)
        raw = h.rfile.read(length) if length else b""
        with self.lock:
            self.calls.append(f"{method} {h.path}")
            self.bodies.append(raw.decode(errors="replace"))
            failure = self.failures.pop(0) if self.failures else None
            refused = next((s for p, s in self.refusals.items() if h.path.startswith(p)), None)
        if h.headers.get("Authorization") != f"Bearer {self.token}":
            return self._reply(h, 401, {"message": "Bad credentials"})
        if h.headers.get("X-GitHub-Api-Version") != "2022-11-28" or "github" not in (h.headers.get("Accept") or ""):
            return self._reply(h, 400, {"message": "missing API version or media type"})
        if failure:
            return self._reply(h, failure, {"message": "Server Error" if failure >= 500 else "Forbidden"})
        if refused:
            return self._reply(h, refused, {"message": "Resource not accessible by integration"})
        m = SCOPE.match(h.path)
        if not m:
            return self._reply(h, 404, {"message": "Not Found"})
        scope, leaf = m.group(1) + "/secrets", m.group(2)
        key = self.keys.setdefault(scope, PrivateKey.generate())
        key_id = f"kid-{abs(hash(scope)) % 10**8}"
        if method == "GET" and leaf == "public-key":
            return self._reply(h, 200, {"key_id": key_id, "key": base64.b64encode(bytes(key.public_key)).decode()})
        if method != "PUT" or not leaf or leaf == "public-key":
            return self._reply(h, 404, {"message": "Not Found"})
        if not NAME.match(leaf) or leaf.upper().startswith("GITHUB_"):
            return self._reply(h, 422, {"message": f"invalid secret name {leaf}"})
        try:
            body = json.loads(raw)
        except ValueError:
            return self._reply(h, 400, {"message": "Problems parsing JSON"})
        if body.get("key_id") != key_id:
            return self._reply(h, 422, {"message": "key_id does not match"})
        is_org = scope.startswith("/orgs/")
        if is_org != ("visibility" in body) or (is_org and body["visibility"] not in ("all", "private", "selected")):
            return self._reply(h, 422, {"message": "visibility is required for organization secrets only"})
        try:
            clear = SealedBox(key).decrypt(base64.b64decode(body["encrypted_value"])).decode()
        except Exception:
            return self._reply(h, 422, {"message": "encrypted_value does not open with the key"})
        path = f"{scope}/{leaf}"
        with self.lock:
            existed = path in self.secrets
            self.secrets[path] = clear
            if is_org:
                self.visibility[path] = body["visibility"]
        return self._reply(h, 204 if existed else 201, None if existed else {})
