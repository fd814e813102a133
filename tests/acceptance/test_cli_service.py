"""The conventions of a service tool, on the real ``tidings`` command run as a subprocess:
``--config`` before or after the command, ``--version``, ``tidings run``'s log (text and JSON
lines, levels, no personal data), progress only on a terminal, shell completion, help that
fits 80 columns, and a base install that leaves the demo's dependencies out."""

from __future__ import annotations

import importlib.metadata
import json
import os
import pty
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
import typer.main
from typer.core import TyperGroup

from tests.acceptance.test_cli import toml_config as plain_config
from tests.acceptance.test_cli_notify import person, placement
from tests.acceptance.test_cli_notify import toml_config as delivery_config
from tests.helpers import event, write_jsonl
from tidings.cli import app
from tidings.demo.smtp_server import LocalSmtpServer

DAY = "2025-08-06"
ROOT = Path(__file__).resolve().parents[2]
# Recipient ids that cannot occur by chance in a log line (an ISO time holds "T1").
PEOPLE = {"TRN-ALPHA": "alpha@nhs.example", "TRN-BRAVO": "bravo@trust.example", "TRN-NOMAIL": None}
SITES = ("Leeds General", "York District", "Hull Royal")


def tidings(
    *args: str,
    cwd: Path,
    env: dict[str, str] | None = None,
    expect: int | None = 0,
) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items() if k != "TIDINGS_CONFIG"}
    done = subprocess.run(
        [sys.executable, "-m", "tidings", *args],
        cwd=cwd,
        env={**environ, "COLUMNS": "200", **(env or {})},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    if expect is not None:
        assert done.returncode == expect, (args, done.stdout, done.stderr)
    return done


# --- point 4a: --config before or after the command ------------------------------------------


def test_config_is_taken_before_or_after_the_command_and_the_one_after_wins(
    tmp_path: Path,
) -> None:
    # Two configs told apart by their cutoff, so the JSON says which one was read.
    (tmp_path / "evening.toml").write_text(plain_config("sqlite:///e.db", "18:00"), "utf-8")
    (tmp_path / "noon.toml").write_text(plain_config("sqlite:///n.db", "12:00"), "utf-8")
    evening, noon = "2025-08-06T18:00:00+01:00", "2025-08-06T12:00:00+01:00"

    def closes_at(*args: str, env: dict[str, str] | None = None) -> str:
        result = json.loads(tidings(*args, cwd=tmp_path, env=env).stdout)
        return str(result["closes_at"])

    assert closes_at("--config", "evening.toml", "close", "--at", DAY, "--json") == evening
    assert closes_at("close", "--at", DAY, "--json", "--config", "noon.toml") == noon
    assert closes_at("-c", "evening.toml", "preview", "--at", DAY, "--json", "-c", "noon.toml") == (
        noon
    )
    # Before the command beats the environment; the environment is still the fallback.
    env = {"TIDINGS_CONFIG": "noon.toml"}
    assert closes_at("-c", "evening.toml", "preview", "--at", DAY, "--json", env=env) == evening
    assert closes_at("preview", "--at", DAY, "--json", env=env) == noon
    # A command group's subcommand reads it too.
    assert tidings("-c", "evening.toml", "quarantine", "--json", cwd=tmp_path).stdout == "[]\n"
    missing = tidings("--config", "nowhere.toml", "prune", cwd=tmp_path, expect=2)
    assert "nowhere.toml does not exist" in missing.stderr


# --- point 4b: --version ------------------------------------------------------------------------


def test_version_prints_the_installed_version(tmp_path: Path) -> None:
    done = tidings("--version", cwd=tmp_path)
    assert done.stdout == f"tidings {importlib.metadata.version('tidings')}\n"
    assert done.stderr == ""


# --- point 4c: tidings run's log ---------------------------------------------------------------


class Service:
    """``tidings ARGS`` in the background, its standard error read line by line as it comes."""

    def __init__(self, folder: Path, *args: str) -> None:
        env = {k: v for k, v in os.environ.items() if k != "TIDINGS_CONFIG"}
        self.process = subprocess.Popen(
            [sys.executable, "-m", "tidings", *args],
            cwd=folder,
            env={**env, "COLUMNS": "200"},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stderr is not None
        for line in self.process.stderr:
            self.lines.append(line.rstrip("\n"))

    def wait_for(self, check: Callable[[list[str]], bool], seconds: float = 60.0) -> None:
        deadline = time.monotonic() + seconds
        while not check(list(self.lines)):
            assert self.process.poll() is None, ("exited", self.lines)
            assert time.monotonic() < deadline, ("timed out", self.lines)
            time.sleep(0.1)

    def stop(self) -> tuple[int, str, list[str]]:
        """SIGTERM, as systemd and docker stop send; the exit code, stdout and the log."""
        self.process.send_signal(signal.SIGTERM)
        self.process.wait(timeout=60)
        # Only the reader thread reads standard error (two readers would split its lines).
        self._reader.join(timeout=10)
        assert self.process.stdout is not None
        stdout = self.process.stdout.read()
        return self.process.returncode, stdout, self.lines


@pytest.fixture
def smtp() -> Iterator[LocalSmtpServer]:
    with LocalSmtpServer() as server:
        yield server


def day_of_changes(folder: Path, smtp_port: int) -> None:
    """A config on SQLite and a day's input: three people (one without an email address),
    a placement each. ``tidings run`` closes the missed cutoff at once and sends."""
    (folder / "tidings.toml").write_text(
        delivery_config("sqlite:///tidings.db", smtp_port), "utf-8"
    )
    write_jsonl(
        folder / "input.jsonl",
        *(person(key, email) for key, email in PEOPLE.items()),
        *(
            placement(f"P{n}", key, site)
            for n, (key, site) in enumerate(zip(PEOPLE, SITES, strict=True))
        ),
    )
    tidings("ingest", "input.jsonl", "--config", "tidings.toml", cwd=folder)


def assert_no_personal_data(log: list[str]) -> None:
    text = "\n".join(log)
    for data in [*PEOPLE, *SITES, "@", "nhs.example", "Smith"]:
        assert data not in text, (data, text)


TEXT_LINE = re.compile(r"^(\S+) (DEBUG|INFO|WARNING|ERROR|CRITICAL) +(tidings[.\w]*): (.*)$")


def test_run_logs_each_step_as_timestamped_text_lines(
    tmp_path: Path, smtp: LocalSmtpServer
) -> None:
    day_of_changes(tmp_path, smtp.port)
    service = Service(tmp_path, "--config", "tidings.toml", "run")
    service.wait_for(lambda lines: any("dispatch round" in line for line in lines))
    code, stdout, log = service.stop()

    assert code == 0, log
    assert stdout == ""  # the service's output is its log
    parsed = [TEXT_LINE.match(line) for line in log]
    assert all(parsed), log
    steps = {m.group(4).split(" ")[0]: m for m in parsed if m}
    for m in parsed:
        assert m is not None
        assert datetime.fromisoformat(m.group(1)).tzinfo is not None  # RFC 3339, with offset
    closed = next(m.group(4) for m in parsed if m and m.group(4).startswith("window closed"))
    assert "window_id=1 " in closed
    assert " notices=6 " in closed, closed  # email and inbox for three people, one held
    assert " recipients=3 " in closed, closed
    sent = next(m.group(4) for m in parsed if m and m.group(4).startswith("dispatch round"))
    assert " delivered=5 " in sent, sent
    assert 'by_channel={"email":2,"inbox":3}' in sent, sent
    assert {"running", "window", "dispatch", "stopped"} <= set(steps), log
    assert len(smtp.messages) == 2
    assert_no_personal_data(log)


def test_run_logs_json_lines_for_a_log_collector(tmp_path: Path, smtp: LocalSmtpServer) -> None:
    day_of_changes(tmp_path, smtp.port)
    service = Service(tmp_path, "run", "--config", "tidings.toml", "--log-format", "json")
    service.wait_for(lambda lines: any('"dispatch round"' in line for line in lines))
    code, _, log = service.stop()

    assert code == 0, log
    entries = [json.loads(line) for line in log]
    for entry in entries:
        assert {"ts", "level", "logger", "message"} <= set(entry), entry
        assert datetime.fromisoformat(entry["ts"]).tzinfo is not None
        assert entry["level"] in ("debug", "info", "warning", "error")
    by_message = {e["message"]: e for e in entries}
    closed = by_message["window closed"]
    assert (closed["window_id"], closed["notices"], closed["notices_held"]) == (1, 6, 1)
    assert closed["by_kind"] == {"created": 3}
    assert by_message["dispatch round"]["by_channel"] == {"email": 2, "inbox": 3}
    assert by_message["stopped"]["delivered"] == 5
    assert entries[0]["message"].startswith("running")
    assert_no_personal_data(log)


def test_log_level_leaves_out_the_less_severe(tmp_path: Path) -> None:
    # An SMTP server that is not there: the round that finds it so is a warning.
    with LocalSmtpServer() as gone:
        port = gone.port
    day_of_changes(tmp_path, port)
    service = Service(tmp_path, "run", "--log-level", "warning", "--config", "tidings.toml")
    service.wait_for(lambda lines: any("channel unreachable" in line for line in lines))
    code, _, log = service.stop()

    assert code == 0, log
    levels = {m.group(2) for line in log if (m := TEXT_LINE.match(line))}
    assert levels == {"WARNING"}, log
    unreachable = next(line for line in log if "channel unreachable" in line)
    assert "channel=email" in unreachable
    assert_no_personal_data(log)


# --- point 4d: progress, only on a terminal ---------------------------------------------------


def on_a_terminal(folder: Path, *args: str) -> tuple[int, str]:
    """Run with standard error on a pseudo-terminal; the exit code and what it showed."""
    main, secondary = pty.openpty()
    environ = {k: v for k, v in os.environ.items() if k not in ("TIDINGS_CONFIG", "NO_COLOR")}
    process = subprocess.Popen(
        [sys.executable, "-m", "tidings", *args],
        cwd=folder,
        env={**environ, "TERM": "xterm-256color", "COLUMNS": "160"},
        stdout=subprocess.DEVNULL,
        stderr=secondary,
    )
    os.close(secondary)
    shown = bytearray()
    while True:
        try:
            chunk = os.read(main, 4096)
        except OSError:  # EIO: the other end closed
            break
        if not chunk:
            break
        shown += chunk
    os.close(main)
    return process.wait(timeout=60), shown.decode("utf-8", "replace")


def test_ingest_and_close_show_progress_on_a_terminal_only(tmp_path: Path) -> None:
    (tmp_path / "tidings.toml").write_text(plain_config("sqlite:///tidings.db"), "utf-8")
    records = [
        event(f"P{n}-1", f"P{n}", "upsert", 1, f"{DAY}T09:00:00+01:00", {"traineeId": "X"})
        for n in range(3000)
    ]
    write_jsonl(tmp_path / "a.jsonl", *records[:1500])
    write_jsonl(tmp_path / "b.jsonl", *records[1500:])
    config = ("--config", "tidings.toml")

    code, shown = on_a_terminal(tmp_path, "ingest", "a.jsonl", *config)
    assert code == 0
    assert re.search(r"1,500 events", shown), shown
    assert "kB" in shown  # bytes read
    code, shown = on_a_terminal(tmp_path, "close", "--at", DAY, *config)
    assert code == 0
    assert "1,500 records" in shown, shown

    # Into a pipe (a log, cron's mail): none of it.
    piped = tidings("ingest", "b.jsonl", *config, cwd=tmp_path)
    assert "events" not in piped.stderr, piped.stderr
    assert "\x1b" not in piped.stderr
    closed = tidings("close", "--at", DAY, *config, cwd=tmp_path)
    assert "records" not in closed.stderr, closed.stderr
    assert "\x1b" not in closed.stderr


# --- point 4e: shell completion ---------------------------------------------------------------


def script() -> str:
    """The installed ``tidings`` script (completion goes by the program's name)."""
    found = Path(sys.executable).parent / "tidings"
    return str(found) if found.exists() else str(shutil.which("tidings"))


def test_shell_completion_can_be_shown_and_completes_commands_and_options(
    tmp_path: Path,
) -> None:
    # Through bash (not exec'd: "; true"), so the shell is detected as bash.
    shown = subprocess.run(
        ["bash", "-c", f"'{script()}' --show-completion; true"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert "_TIDINGS_COMPLETE=complete_bash" in shown.stdout, shown
    assert "complete -o default -F _tidings_completion tidings" in shown.stdout

    def complete(words: str) -> list[str]:
        env = {
            **os.environ,
            "_TIDINGS_COMPLETE": "complete_bash",
            "COMP_WORDS": words,
            "COMP_CWORD": str(len(words.split()) - (0 if words.endswith(" ") else 1)),
        }
        done = subprocess.run(
            [script()], env=env, capture_output=True, text=True, timeout=60, check=True
        )
        return done.stdout.split()

    assert complete("tidings cl") == ["close"]
    assert "--log-format" in complete("tidings run --")


# --- point 4f: every --json documented ---------------------------------------------------------


def _commands(group: Any, prefix: str = "") -> Iterator[tuple[str, Any]]:
    for name, command in sorted(group.commands.items()):
        yield f"{prefix}{name}", command
        if isinstance(command, TyperGroup):
            yield from _commands(command, f"{prefix}{name} ")


def test_the_readme_lists_every_command_that_prints_json() -> None:
    readme = (ROOT / "README.md").read_text("utf-8")
    section = readme.split("### JSON outputs", 1)[1].split("\n#", 1)[0]
    root = typer.main.get_command(app)
    with_json = {
        path
        for path, command in _commands(root)
        if any("--json" in p.opts for p in command.params)
        or any(getattr(p, "name", "") == "form" for p in command.params)  # report --format json
    }
    assert with_json, "no command has --json?"
    missing = [path for path in sorted(with_json) if f"`tidings {path}" not in section]
    assert missing == [], missing


# --- point 4g: help written for people, at 80 columns ------------------------------------------


@pytest.mark.slow
def test_help_fits_80_columns_and_says_how_to_use_it(tmp_path: Path) -> None:
    root = typer.main.get_command(app)
    words = [[], *(path.split() for path, _ in _commands(root))]
    environ = {k: v for k, v in os.environ.items() if k != "TIDINGS_CONFIG"}
    running = [
        subprocess.Popen(
            [sys.executable, "-m", "tidings", *w, "--help"],
            cwd=tmp_path,
            env={**environ, "COLUMNS": "80"},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for w in words
    ]
    helps = [p.communicate(timeout=120) for p in running]
    for w, process, (stdout, stderr) in zip(words, running, helps, strict=True):
        assert process.returncode == 0, (w, stderr)
        too_long = [line for line in stdout.splitlines() if len(line) > 80]
        assert too_long == [], (w, too_long)
    top = helps[0][0]
    for said in ("tidings ingest", "tidings close", "tidings run", "$TIDINGS_CONFIG", "Exit"):
        assert said in top, top
    assert "--version" in top
    assert "--install-completion" in top


# --- point 6a: the demo's dependencies are an extra ---------------------------------------------


def test_the_base_package_requires_neither_faker_nor_aiosmtpd() -> None:
    requires = importlib.metadata.requires("tidings") or []

    def name(requirement: str) -> str:
        found = re.match(r"[A-Za-z0-9_.-]+", requirement)
        assert found is not None
        return found.group(0).lower()

    def extra(requirement: str) -> str | None:
        found = re.search(r"""extra\s*==\s*['"]([^'"]+)['"]""", requirement)
        return found.group(1) if found else None

    demo_deps = {"faker", "aiosmtpd"}
    base = {name(r) for r in requires if extra(r) is None}
    assert "typer" in base
    assert not base & demo_deps, base
    assert {name(r) for r in requires if extra(r) == "demo"} == demo_deps
    # The dev extra (tests, benchmarks) has them too, and nothing else asks for them.
    assert {extra(r) for r in requires if name(r) in demo_deps} == {"demo", "dev"}


def test_the_command_line_imports_neither_faker_nor_aiosmtpd(tmp_path: Path) -> None:
    code = (
        "import sys\n"
        "from tidings.cli import app\n"
        "try:\n"
        "    app(['--help'], prog_name='tidings')\n"
        "except SystemExit:\n"
        "    pass\n"
        "import tidings.api, tidings.delivery\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('faker', 'aiosmtpd')))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert "Usage: tidings" in done.stdout
    assert done.stdout.splitlines()[-1] == "[]"


@pytest.mark.parametrize("missing", ["faker", "aiosmtpd"])
def test_the_demo_without_its_extra_says_what_to_install(tmp_path: Path, missing: str) -> None:
    # As if the package were not installed: an import of it fails as it would then.
    code = (
        "import runpy, sys\n"
        f"sys.modules[{missing!r}] = None\n"
        "runpy.run_module('tidings.demo', run_name='__main__', alter_sys=True)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2
    assert done.stderr == f"error: the demo needs {missing}: pip install 'tidings[demo]'\n"
