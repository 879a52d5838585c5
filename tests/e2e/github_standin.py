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

For restart targets it also serves a workflow's dispatches and runs:
- `POST /repos/{o}/{r}/actions/workflows/{file}/dispatches` with `{"ref": BRANCH}` records a run
  (204), `in_progress` until `finish_runs(conclusion)`; a workflow must be added first
  (`add_workflow`), else 404 as GitHub answers for a workflow without a `workflow_dispatch` trigger;
- `GET .../workflows/{file}/runs?event=workflow_dispatch&branch=B&per_page=1` lists that branch's
  runs, newest first.
"""

from __future__ import annotations

import base64
import json
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from nacl.public import PrivateKey, SealedBox

HOST = "127.0.0.1"
WORKFLOW = re.compile(r"^/repos/([^/]+)/([^/]+)/actions/workflows/([^/?]+)/(dispatches|runs)(?:\?(.*))?$")
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
        self.workflows: set[str] = set()  # "o/r/file"
        self.runs: list[dict] = []  # every dispatched run, oldest first
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

            def do_POST(self):
                standin._handle(self, "POST")

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

    def add_workflow(self, owner: str, repo: str, file: str) -> None:
        with self.lock:
            self.workflows.add(f"{owner}/{repo}/{file}")

    def runs_of(self, owner: str, repo: str, file: str) -> list[dict]:
        with self.lock:
            return [r for r in self.runs if r["workflow"] == f"{owner}/{repo}/{file}"]

    def finish_runs(self, conclusion: str = "success") -> None:
        """Every run in progress completes with `conclusion`."""
        with self.lock:
            for r in self.runs:
                if r["status"] != "completed":
                    r["status"], r["conclusion"] = "completed", conclusion

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
        w = WORKFLOW.match(h.path)
        if w:
            return self._workflow(h, method, w, raw)
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

    def _workflow(self, h, method: str, m: re.Match, raw: bytes) -> None:
        from datetime import datetime, timezone
        from urllib.parse import parse_qs

        owner, repo, file, leaf, query = m.groups()
        workflow = f"{owner}/{repo}/{file}"
        if workflow not in self.workflows:
            return self._reply(h, 404, {"message": "Not Found"})
        if method == "POST" and leaf == "dispatches":
            try:
                ref = json.loads(raw)["ref"]
            except (ValueError, KeyError, TypeError):
                return self._reply(h, 422, {"message": "ref is required"})
            with self.lock:
                self.runs.append({
                    "id": 1000 + len(self.runs),
                    "workflow": workflow,
                    "head_branch": ref,
                    "event": "workflow_dispatch",
                    "created_at": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
                    "status": "in_progress",
                    "conclusion": None,
                })
            return self._reply(h, 204)
        if method == "GET" and leaf == "runs":
            q = parse_qs(query or "")
            branch, event = (q.get("branch") or [None])[0], (q.get("event") or [None])[0]
            with self.lock:
                runs = [
                    {k: v for k, v in r.items() if k != "workflow"}
                    for r in reversed(self.runs)
                    if r["workflow"] == workflow and (branch is None or r["head_branch"] == branch) and (event is None or r["event"] == event)
                ]
            per_page = int((q.get("per_page") or ["30"])[0])
            return self._reply(h, 200, {"total_count": len(runs), "workflow_runs": runs[:per_page]})
        return self._reply(h, 404, {"message": "Not Found"})
