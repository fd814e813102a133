"""Staff users, API keys and who can see what, through the real ``tidings`` command: passwords
never echoed, key tokens shown once and stored hashed, every change in the audit log, and
"who can see this person" answered with the grant that lets each one."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import event, write_jsonl
from tidings.access.control import AccessControl
from tidings.api import Tidings

CONFIG = """\
timezone = "Europe/London"
[store]
url = "{url}"
[window]
cutoff = "18:00"
[entities.Placement]
recipient = "traineeId"
fields = {{ traineeId = "string", programme = "string" }}
[access.scopes.programme]
entity = "Placement"
field = "programme"
"""


def _run(
    folder: Path, *args: str, stdin: str = "", expect: int = 0
) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "TIDINGS_CONFIG"}
    env["COLUMNS"] = "200"
    done = subprocess.run(
        [sys.executable, "-m", "tidings", *args, "--config", str(folder / "tidings.toml")],
        cwd=folder,
        env=env,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == expect, (args, done.stdout, done.stderr)
    return done


@pytest.fixture
def folder(tmp_path: Path, store_url: str) -> Path:
    (tmp_path / "tidings.toml").write_text(CONFIG.format(url=store_url), "utf-8")
    write_jsonl(
        tmp_path / "p.jsonl",
        event(
            "a",
            "P1",
            "upsert",
            1,
            "2025-08-06T10:00:00+01:00",
            {"traineeId": "T1", "programme": "North"},
        ),
        event(
            "b",
            "P2",
            "upsert",
            1,
            "2025-08-06T10:00:00+01:00",
            {"traineeId": "T2", "programme": "South"},
        ),
    )
    _run(tmp_path, "ingest", "p.jsonl")
    return tmp_path


@pytest.mark.slow
def test_users_keys_and_grants_through_the_command(folder: Path) -> None:
    password = "a long enough password"
    added = _run(folder, "users", "add", "ann", "--role", "admin", stdin=password + "\n")
    assert password not in added.stdout + added.stderr
    _run(
        folder,
        "users",
        "add",
        "nora",
        "--role",
        "manager",
        "--scope",
        "programme=North",
        stdin=password + "\n",
    )
    made = json.loads(_run(folder, "keys", "create", "feed", "--role", "ingest", "--json").stdout)
    assert made["token"].startswith("tdk_")
    assert made["roles"] == ["ingest"]

    listed = _run(folder, "keys", "list", "--json").stdout
    assert made["token"] not in listed
    assert json.loads(listed)[0]["grants"][0]["role"] == "ingest"
    db = folder / "tidings.db"
    if db.exists():
        assert made["token"].split("_")[-1].encode() not in db.read_bytes()

    users = {u["username"]: u for u in json.loads(_run(folder, "users", "list", "--json").stdout)}
    nora = users["nora"]["grants"][0]
    assert (nora["role"], nora["scope"], nora["source"]) == ("manager", "programme=North", "local")
    assert nora["granted_by"].startswith("cli")

    seers = json.loads(_run(folder, "access", "who-can-see", "T2", "--json").stdout)
    assert [(s["name"], [g["why"] for g in s["grants"]]) for s in seers] == [
        ("ann", [f"admin granted by {nora['granted_by']}"])
    ]
    seers = {
        s["name"] for s in json.loads(_run(folder, "access", "who-can-see", "T1", "--json").stdout)
    }
    assert seers == {"ann", "nora"}

    _run(folder, "users", "revoke", str(nora["id"]))
    seers = {
        s["name"] for s in json.loads(_run(folder, "access", "who-can-see", "T1", "--json").stdout)
    }
    assert seers == {"ann"}
    _run(folder, "keys", "revoke", str(made["id"]))

    log = json.loads(_run(folder, "access", "log", "--json").stdout)
    actions = [(a["action"], a["target"]) for a in reversed(log)]
    for wanted in [
        ("user.add", "user:ann"),
        ("grant", "user:nora"),
        ("key.create", f"key:{made['id']}"),
        ("access.who-can-see", "person:T2"),
        ("revoke", "user:nora"),
        ("key.revoke", f"key:{made['id']}"),
    ]:
        assert wanted in actions


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("users", "add", "x", "--role", "manager"), "needs a scope"),
        (("users", "add", "x", "--role", "wizard"), "is not a role"),
        (("users", "add", "x", "--role", "manager", "--scope", "region=N"), "not a scope"),
        (("users", "grant", "nobody", "admin"), "no user called"),
        (("keys", "revoke", "99"), "no active API key"),
        (("users", "revoke", "99"), "no active grant"),
    ],
)
def test_mistakes_exit_2_and_say_what_to_do(
    folder: Path, args: tuple[str, ...], message: str
) -> None:
    done = _run(folder, *args, stdin="a long enough password\n", expect=2)
    assert message in done.stderr
    assert "Traceback" not in done.stderr


def test_a_generated_password_is_printed_once_and_signs_in(folder: Path) -> None:
    done = _run(folder, "users", "add", "sam", "--role", "support", "--generate")
    password = done.stdout.split("Password (shown once): ", 1)[1].split()[0]
    assert len(password) >= 20
    with Tidings.open(folder / "tidings.toml") as tidings:
        access = AccessControl(tidings.config, tidings.store, tidings.clock)
        assert access.sign_in("sam", password).principal.roles == ("support",)
