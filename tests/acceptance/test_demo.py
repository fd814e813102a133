"""``python -m tidings.demo``, the program behind ``make demo``, run as a subprocess."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest


def run_demo(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tidings.demo", *args],
        env={**os.environ, "COLUMNS": "200"},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.mark.slow
def test_the_demo_runs_a_day_end_to_end_and_every_check_passes(tmp_path: Path) -> None:
    out = tmp_path / "out"
    done = run_demo("--out", str(out), "--trainees", "200")
    assert done.returncode == 0, (done.stdout, done.stderr)

    checks = re.search(r"checks against the generator: (\d+)/(\d+) passed", done.stdout)
    assert checks is not None, done.stdout
    assert checks[1] == checks[2]
    assert int(checks[2]) >= 10
    assert "failed:" not in done.stdout
    assert "0 people told" in done.stdout  # the bootstrap load
    assert "One trainee's digest" in done.stdout
    assert re.search(r"What changed for \d+:", done.stdout)
    assert re.search(r"is now \d+ \w+ \d{4} \(was \d+ \w+ \d{4}\)", done.stdout)  # a date
    assert "Quarantined input (2)" in done.stdout
    assert f"explain --config {out / 'tidings.toml'} --at 2025-08-06 tcs Placement" in done.stdout

    for name in ("tidings.toml", "tidings-demo.db", "bootstrap.jsonl", "edits.jsonl", "dms.jsonl"):
        assert (out / name).is_file(), name
    assert 'url = "sqlite:///tidings-demo.db"' in (out / "tidings.toml").read_text("utf-8")

    # Repeatable: the old store is replaced, so a second run tells the same story.
    again = run_demo("--out", str(out), "--trainees", "200")
    assert again.returncode == 0, (again.stdout, again.stderr)
    assert again.stdout == done.stdout


def test_the_demo_refuses_a_region_too_small_to_be_messy(tmp_path: Path) -> None:
    done = run_demo("--out", str(tmp_path), "--trainees", "3")
    assert done.returncode == 2
    assert "--trainees must be between" in done.stderr
