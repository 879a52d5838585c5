"""`--output` on every command: each format a command prints is honoured and parses; one it does
not print is refused (exit 2) before any AWS call. And the progress bar: drawn on a terminal,
absent otherwise, never on standard output."""

from __future__ import annotations

import csv
import fcntl
import io
import json
import os
import pty
import struct
import subprocess
import termios
import threading

import pytest

from harness import base_env, free_port
from test_cli import managed_secret
from test_rotation_function import key_statuses, unique, value

# moto's default account: the caller's own, where every row of a run without account flags is.
ACCOUNT = "123456789012"


def lines_are_trimmed(text: str) -> bool:
    return all(line == line.rstrip() for line in text.splitlines())


def csv_rows(text: str) -> list[dict]:
    return list(csv.DictReader(io.StringIO(text)))


REFUSED = [
    ("enroll", "csv", ["enroll", "nobody"]),
    ("status", "csv", ["status", "keyturn/anything"]),
    ("credential-process", "table", ["credential-process", "--secret-id", "keyturn/anything"]),
    ("credential-process", "csv", ["credential-process", "--secret-id", "keyturn/anything"]),
]


@pytest.mark.parametrize("command,fmt,args", REFUSED, ids=[f"{c}-{f}" for c, f, _ in REFUSED])
def test_a_format_the_command_does_not_print_is_refused_before_any_aws_call(moto, keyturn_binary, command, fmt, args):
    # The endpoint is a closed port: had keyturn called AWS, it would say it could not connect.
    env = base_env(f"http://127.0.0.1:{free_port()}", *moto.admin)
    proc = subprocess.run([str(keyturn_binary), "--output", fmt, *args], capture_output=True, text=True, env=env, timeout=60)
    assert proc.returncode == 2, proc
    assert f"`keyturn {command}` has no {fmt} output: use --output" in proc.stderr, proc.stderr
    assert "could not connect" not in proc.stderr and proc.stdout == ""


def test_enroll_refused_for_its_format_creates_nothing(moto, keyturn):
    user = unique("outfmt")
    moto.client("iam").create_user(UserName=user)
    proc = keyturn("--output", "csv", "enroll", user, check=False)
    assert proc.returncode == 2 and "use --output table or --output json" in proc.stderr, proc.stderr
    assert key_statuses(moto, user) == {}, "no key was made"
    names = [s["Name"] for s in moto.client("secretsmanager").list_secrets()["SecretList"]]
    assert f"keyturn/{user}" not in names, "no secret was made"


def test_enroll_and_status_print_a_table_or_json(moto, keyturn, secrets_seen):
    user_a, user_b = unique("outen"), unique("outen")
    for u in (user_a, user_b):
        moto.client("iam").create_user(UserName=u)
    table = keyturn("enroll", user_a).stdout
    assert table.startswith(f"enrolled keyturn/{user_a} for user {user_a}"), table
    enrolled = json.loads(keyturn("--output", "json", "enroll", user_b).stdout)
    assert enrolled["outcome"] == "enrolled" and enrolled["secret"] == f"keyturn/{user_b}", enrolled
    for u in (user_a, user_b):
        secrets_seen.add(value(moto, f"keyturn/{u}", "AWSCURRENT")["SecretAccessKey"])

    shown = keyturn("status", f"keyturn/{user_a}").stdout
    assert shown.startswith(f"secret   keyturn/{user_a}\nuser     {user_a}"), shown
    assert "versions\nVERSION" in shown and "keys\nKEY" in shown and lines_are_trimmed(shown), shown
    report = json.loads(keyturn("--output", "json", "status", f"keyturn/{user_b}").stdout)
    assert report["user"] == user_b and report["problems"] == [], report


def test_rotate_and_sweep_print_a_table_json_or_csv(moto, keyturn, secrets_seen):
    user, secret_id, old = managed_secret(moto, secrets_seen, prefix="outrot")

    table = keyturn("rotate", secret_id).stdout
    heading, row, summary = table.splitlines()
    # Every row names its account (the caller's own here); the account heads its group of rows.
    assert heading.startswith("ACCOUNT  ") and "  SECRET  " in heading and "  OUTCOME  " in heading and "  NEW KEY  " in heading, table
    assert row.split()[:3] == [ACCOUNT, secret_id, "rotated"] and summary == "1 secret(s), 0 failed", table
    assert lines_are_trimmed(table) and not heading.startswith(" "), table
    rotated = json.loads(keyturn("--output", "json", "rotate", secret_id).stdout)
    assert rotated[0]["outcome"] == "rotated" and rotated[0]["error"] is None, rotated
    assert rotated[0]["account"] == ACCOUNT and rotated[0]["accountName"] is None, rotated
    text = keyturn("--output", "csv", "rotate", secret_id).stdout
    assert text.startswith("account,accountName,secret,"), text
    rows = csv_rows(text)
    # One row type: the CSV's header is the JSON's fields, in the same order.
    assert list(rows[0]) == list(rotated[0]), (list(rows[0]), list(rotated[0]))
    assert rows[0]["secret"] == secret_id and rows[0]["outcome"] == "rotated" and rows[0]["error"] == "", rows
    assert rows[0]["newKeyId"] == value(moto, secret_id, "AWSCURRENT")["AccessKeyId"], rows

    swept = keyturn("sweep", "--dry-run", secret_id).stdout
    heading, row, summary = swept.splitlines()
    assert heading.split()[:3] == ["ACCOUNT", "SECRET", "ACTION"] and row.split()[:3] == [ACCOUNT, secret_id, "waiting"], swept
    assert summary == "1 secret(s), 0 failed" and lines_are_trimmed(swept), swept
    plan = json.loads(keyturn("--output", "json", "sweep", "--dry-run", secret_id).stdout)[0]
    assert plan["action"] == "waiting" and plan["failed"] is False and "outcome" not in plan, plan
    assert plan["account"] == ACCOUNT, plan
    previous = value(moto, secret_id, "AWSPREVIOUS")["AccessKeyId"]
    assert plan["keyId"] == previous, plan
    rows = csv_rows(keyturn("--output", "csv", "sweep", "--dry-run", secret_id).stdout)
    assert list(rows[0]) == list(plan), (list(rows[0]), list(plan))
    assert rows[0]["action"] == "waiting" and rows[0]["keyId"] == previous, rows
    assert rows[0]["user"] == user and rows[0]["dryRun"] == "true" and rows[0]["failed"] == "false", rows


def test_audit_prints_a_table_json_or_csv(moto, keyturn, secrets_seen):
    user, secret_id, key = managed_secret(moto, secrets_seen, prefix="outaud")
    table = keyturn("audit").stdout
    assert table.splitlines()[0].split()[:4] == ["ACCOUNT", "USER", "SLOT", "KEY"] and lines_are_trimmed(table), table
    assert table.splitlines()[1].startswith(ACCOUNT + "  "), table
    mine = [l for l in table.splitlines() if key["AccessKeyId"] in l]
    assert len(mine) == 1 and user in mine[0].split()[:2] and f"{secret_id} (AWSCURRENT)" in mine[0], table
    report = json.loads(keyturn("--output", "json", "audit").stdout)
    entry = next(k for k in report["keys"] if k["keyId"] == key["AccessKeyId"])
    assert entry["secret"] == secret_id and entry["label"] == "AWSCURRENT" and entry["findings"] == [entry["finding"]], entry
    assert entry["account"] == ACCOUNT and entry["exemption"] is None and entry["error"] is None, entry
    assert set(report) == {"asOf", "maxAgeDays", "keys"}, report
    rows = csv_rows(keyturn("--output", "csv", "audit").stdout)
    row = next(r for r in rows if r["keyId"] == key["AccessKeyId"])
    assert row["account"] == ACCOUNT and list(row)[:3] == ["account", "accountName", "user"], row
    assert row["secret"] == secret_id and row["ageDays"] == "0" and row["finding"] == entry["finding"], row


def test_credential_process_prints_its_json_by_default_and_when_asked(moto, keyturn, secrets_seen):
    user, secret_id, key = managed_secret(moto, secrets_seen, prefix="outcp")
    for args in ([], ["--output", "json"]):
        out = json.loads(keyturn(*args, "credential-process", "--secret-id", secret_id).stdout)
        assert out["Version"] == 1 and out["AccessKeyId"] == key["AccessKeyId"], args


def run_on_a_terminal(argv: list[str], env: dict, stream: str = "stderr") -> tuple[int, str, str]:
    """Runs argv with one stream (standard error by default) on a pseudo-terminal of 100 columns
    and the other on a pipe; returns the exit code, what the pipe got, and what was drawn on the
    terminal."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))
    streams = {"stdout": subprocess.PIPE, "stderr": subprocess.PIPE, stream: slave}
    proc = subprocess.Popen(argv, stdout=streams["stdout"], stderr=streams["stderr"], env=env)
    os.close(slave)
    drawn = bytearray()

    def drain():
        while True:
            try:
                chunk = os.read(master, 4096)
            except OSError:  # EIO: the terminal's last writer closed it
                return
            if not chunk:
                return
            drawn.extend(chunk)

    reader = threading.Thread(target=drain, daemon=True)
    reader.start()
    out, err = proc.communicate(timeout=300)
    reader.join(timeout=30)
    os.close(master)
    piped = out if stream == "stderr" else err
    return proc.returncode, piped.decode(), drawn.decode(errors="replace")


def test_colours_follow_the_terminal_no_color_and_clicolor_force(moto, keyturn_binary, secrets_seen):
    managed_secret(moto, secrets_seen, prefix="outcol")
    env = base_env(moto.endpoint, *moto.admin)
    ansi = "\x1b["

    def piped(**extra):
        proc = subprocess.run([str(keyturn_binary), "audit"], capture_output=True, text=True, env={**env, **extra}, timeout=300)
        assert proc.returncode in (0, 1), proc.stderr
        return proc.stdout

    assert ansi not in piped(), "no colour into a pipe"
    assert ansi in piped(CLICOLOR_FORCE="1"), "CLICOLOR_FORCE colours a pipe"
    _, _, coloured = run_on_a_terminal([str(keyturn_binary), "audit"], env, stream="stdout")
    assert ansi in coloured and "USER" in coloured, repr(coloured[:300])
    _, _, plain = run_on_a_terminal([str(keyturn_binary), "audit"], {**env, "NO_COLOR": "1"}, stream="stdout")
    assert ansi not in plain and "USER" in plain, repr(plain[:300])
    _, _, plain = run_on_a_terminal([str(keyturn_binary), "audit"], {**env, "CLICOLOR": "0"}, stream="stdout")
    assert ansi not in plain and "USER" in plain, repr(plain[:300])


def test_the_progress_bar_is_drawn_on_a_terminal_only(moto, keyturn_binary, secrets_seen):
    made = [managed_secret(moto, secrets_seen, prefix="outbar") for _ in range(3)]
    secrets = [s for _, s, _ in made]
    env = base_env(moto.endpoint, *moto.admin)
    code, out, drawn = run_on_a_terminal([str(keyturn_binary), "--output", "json", "rotate", *secrets], env)
    assert code == 0, drawn
    assert [r["outcome"] for r in json.loads(out)] == ["rotated"] * 3, "standard output is the JSON alone"
    assert "3/3" in drawn and "[###" in drawn, repr(drawn)
    for s in secrets:
        assert value(moto, s, "AWSCURRENT")["SecretAccessKey"] not in drawn + out
    piped = subprocess.run([str(keyturn_binary), "rotate", *secrets], capture_output=True, text=True, env=env, timeout=300)
    assert piped.returncode == 0, piped.stderr
    assert "3/3" not in piped.stderr and "#" not in piped.stderr, piped.stderr
