"""The trust boundary (issue 14), the parts landed so far: data from AWS is escaped before it
reaches a terminal or a CSV cell."""

from __future__ import annotations

import csv
import io
import json

from test_rotation_function import make_user, unique

HOSTILE = "AKIA\u001b]0;owned\u0007\u001b[2J\u202e"


def test_terminal_output_escapes_control_characters_from_secret_values(moto, keyturn, secrets_seen):
    user = unique("esc")
    make_user(moto, user, secrets_seen)
    secret_id = unique("keyturn/esc")
    moto.client("secretsmanager").create_secret(
        Name=secret_id, SecretString=json.dumps({"UserName": user, "AccessKeyId": HOSTILE, "SecretAccessKey": "x" * 40}),
        Tags=[{"Key": "keyturn:user", "Value": user}],
    )
    status = keyturn("status", secret_id, check=False)
    rotate = keyturn("rotate", secret_id, check=False)
    for proc in (status, rotate):
        shown = proc.stdout + proc.stderr
        assert not any(c in shown for c in "\u001b\u0007\u202e"), repr(shown)
    assert "\\u{1b}" in status.stdout, status.stdout
    assert rotate.returncode == 1


def test_csv_cells_that_a_spreadsheet_would_evaluate_are_neutralised(moto, keyturn, secrets_seen):
    user = "=1+1-" + unique("x")
    make_user(moto, user, secrets_seen)
    proc = keyturn("--output", "csv", "audit", check=False)
    rows = list(csv.DictReader(io.StringIO(proc.stdout)))
    cells = [r["user"] for r in rows if user in r["user"]]
    assert cells == ["'" + user], cells
    assert not any(v.startswith(("=", "+", "-", "@")) for r in rows for v in r.values() if v), "no formula cell"
