"""Every command, given bad arguments, exits 2 with one clear line saying what is wrong, never
a traceback. The list of commands is read from the application itself, so a command added
without a case here fails this test."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import typer.main
from typer.core import TyperGroup

from tests.acceptance.test_cli_notify import toml_config
from tidings.cli import app

# One bad invocation per command (the command's words first).
BAD: dict[str, list[str]] = {
    "init": ["init", "no-such-folder/tidings.toml"],
    "ingest": ["ingest", "missing.jsonl"],
    "consume": ["consume", "--source", "nope"],
    "source": ["source"],
    "source status": ["source", "status", "--source", "nope"],
    "preview": ["preview", "--at", "yesterday"],
    "close": ["close", "--at", "2025-13-45"],
    "explain": ["explain", "tcs", "Nope", "1"],
    "prune": ["prune", "--config", "missing.toml"],
    "quarantine": ["quarantine", "--config", "missing.toml"],
    "quarantine show": ["quarantine", "show", "abc"],
    "quarantine replay": ["quarantine", "replay", "1", "2", "--line", "{}"],
    "quarantine discard": ["quarantine", "discard", "0"],
    "dispatch": ["dispatch", "--once", "--config", "missing.toml"],
    "run": ["run", "--config", "missing.toml"],
    "render": ["render", "default", "--medium", "fax"],
    "prefs": ["prefs", "T1", "--category", "nope", "--opt-out", "email"],
    "inbox": ["inbox", "T1", "--read", "99999999999999999999"],
    "notices": ["notices"],
    "reminders": ["reminders", "--at", "someday"],
    "reminders send": ["reminders", "send", "--at", "2025-13-45"],
    "report": ["report", "no-such-report"],
    "reports": ["reports", "--config", "missing.toml"],
    "reports send": ["reports", "send", "--at", "2025-13-45"],
    "attention": ["attention", "--config", "missing.toml"],
    "attention retry": ["attention", "retry", "x"],
    "attention forget": ["attention", "forget", "nobody@example.org"],
    "attention replay": ["attention", "replay", "0"],
    "attention dismiss": ["attention", "dismiss"],
    "unsubscribe": ["unsubscribe", "not-a-token"],
    "serve": ["serve", "--port", "70000"],
    "users": ["users"],
    "users add": ["users", "add", "x", "--role", "wizard"],
    "users list": ["users", "list", "--config", "missing.toml"],
    "users grant": ["users", "grant", "nobody", "admin"],
    "users revoke": ["users", "revoke", "0"],
    "users password": ["users", "password", "nobody"],
    "users disable": ["users", "disable", "nobody"],
    "users enable": ["users", "enable", "nobody"],
    "keys": ["keys"],
    "keys create": ["keys", "create", "feed"],
    "keys list": ["keys", "list", "--config", "missing.toml"],
    "keys revoke": ["keys", "revoke", "x"],
    "access": ["access"],
    "access roles": ["access", "roles", "--json=yes"],
    "access who-can-see": ["access", "who-can-see"],
    "access log": ["access", "log", "--limit", "0"],
}


def _commands(group: Any, prefix: str = "") -> list[str]:
    found = []
    for name, command in sorted(group.commands.items()):
        path = f"{prefix}{name}"
        if isinstance(command, TyperGroup):
            found.append(path)  # the group's own listing
            found += _commands(command, f"{path} ")
        else:
            found.append(path)
    return found


def test_every_command_has_a_bad_arguments_case() -> None:
    command = typer.main.get_command(app)
    assert isinstance(command, TyperGroup)
    assert sorted(_commands(command)) == sorted(BAD)


@pytest.mark.slow
def test_bad_arguments_are_one_clear_line_and_exit_2(tmp_path: Path) -> None:
    config = tmp_path / "tidings.toml"
    config.write_text(toml_config("sqlite:///tidings.db", 2525), encoding="utf-8")
    env = {**os.environ, "TIDINGS_CONFIG": str(config), "COLUMNS": "200"}
    running = [
        subprocess.Popen(
            [sys.executable, "-m", "tidings", *args],
            cwd=tmp_path,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for args in BAD.values()
    ]
    outputs = [p.communicate(timeout=120) for p in running]

    for (name, _), process, (stdout, stderr) in zip(BAD.items(), running, outputs, strict=True):
        done = subprocess.CompletedProcess(name, process.returncode, stdout, stderr)
        said = done.stdout + done.stderr
        assert done.returncode == 2, (name, said)
        assert "Traceback" not in said, (name, said)
        errors = [line for line in done.stderr.splitlines() if line.lower().startswith("error")]
        assert len(errors) == 1, (name, done.stderr)
        assert len(errors[0]) > len("error: "), (name, errors)
