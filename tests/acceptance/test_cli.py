"""The real ``tidings`` command, run as a subprocess against files in a temporary folder."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from importlib import resources
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import event, write_jsonl

DAY_BEFORE = "2025-08-05"
DAY = "2025-08-06"


def toml_config(store_url: str, cutoff: str = "18:00") -> str:
    # A JSON string is a valid TOML basic string.
    return f"""
timezone = "Europe/London"

[store]
url = {json.dumps(store_url)}

[window]
cutoff = "{cutoff}"

[entities.Placement]
label = "placement"
key = "id"
recipient = "traineeId"
ignore = ["updatedAt"]

[entities.Placement.fields]
traineeId = "string"
site = {{ type = "string", label = "Site" }}
dateFrom = {{ type = "date", label = "Start date" }}
wte = {{ type = "decimal", label = "Whole time equivalent" }}
"""


class Cli:
    """Runs ``python -m tidings`` in ``folder`` with ``TIDINGS_CONFIG`` set to ``config``."""

    def __init__(self, folder: Path, config: Path) -> None:
        self.folder = folder
        self.config = config

    def __call__(
        self, *args: str, stdin: str | None = None, expect: int | None = 0
    ) -> subprocess.CompletedProcess[str]:
        env = {**os.environ, "TIDINGS_CONFIG": str(self.config), "COLUMNS": "200"}
        done = subprocess.run(
            [sys.executable, "-m", "tidings", *args],
            cwd=self.folder,
            env=env,
            input=stdin,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        if expect is not None:
            assert done.returncode == expect, (done.stdout, done.stderr)
        return done

    def json(self, *args: str) -> Any:
        return json.loads(self(*args).stdout)


@pytest.fixture
def cli(tmp_path: Path) -> Cli:
    """A CLI on an SQLite store in ``tmp_path``."""
    config = tmp_path / "tidings.toml"
    config.write_text(toml_config("sqlite:///tidings.db"), encoding="utf-8")
    return Cli(tmp_path, config)


def placement(key: str, trainee: str, site: str, **more: str) -> dict[str, str]:
    return {"id": key, "traineeId": trainee, "site": site, **more}


# --- init and configuration ---------------------------------------------------------------


def test_init_writes_a_starter_config_that_works_and_refuses_to_overwrite_it(
    tmp_path: Path,
) -> None:
    cli = Cli(tmp_path, tmp_path / "tidings.toml")
    starter = resources.files("tidings").joinpath("starter.toml").read_text("utf-8")

    done = cli("init")
    assert "Wrote tidings.toml" in done.stdout
    assert (tmp_path / "tidings.toml").read_text(encoding="utf-8") == starter

    (tmp_path / "tidings.toml").write_text("# mine\n", encoding="utf-8")
    refused = cli("init", expect=2)
    assert "--force" in refused.stderr
    assert (tmp_path / "tidings.toml").read_text(encoding="utf-8") == "# mine\n"
    cli("init", "--force")
    assert (tmp_path / "tidings.toml").read_text(encoding="utf-8") == starter

    # The starter config is usable as written: its store is created next to it.
    cli("init", "elsewhere.toml")
    result = cli.json("preview", "--config", "elsewhere.toml", "--at", DAY, "--json")
    assert result == {"closes_at": "2025-08-06T17:00:00+01:00", "digests": []}
    assert not (tmp_path / "tidings.db").exists()  # a preview only reads: it creates nothing


def test_a_bad_config_exits_2_and_names_every_bad_key(tmp_path: Path) -> None:
    config = tmp_path / "bad.toml"
    config.write_text(
        toml_config("sqlite:///x.db", cutoff="6pm") + '\n[audit]\nretention_days = "forever"\n',
        encoding="utf-8",
    )
    cli = Cli(tmp_path, config)
    done = cli("preview", "--at", DAY, expect=2)
    assert "window.cutoff" in done.stderr
    assert "audit.retention_days" in done.stderr
    assert "HH:MM" in done.stderr
    assert "Traceback" not in done.stderr

    missing = cli("ingest", "--config", "nowhere.toml", str(config), expect=2)
    assert "nowhere.toml does not exist" in missing.stderr
    assert "tidings init" in missing.stderr


# --- ingest, quarantine, preview, close, explain, prune -----------------------------------


@pytest.mark.slow
def test_a_day_through_the_cli_on_both_stores(tmp_path: Path, store_url: str) -> None:
    config = tmp_path / "tidings.toml"
    config.write_text(toml_config(store_url), encoding="utf-8")
    cli = Cli(tmp_path, config)

    # Last night's load becomes the baseline: nobody is told about it.
    write_jsonl(
        tmp_path / "load.jsonl",
        event("l1", "P1", "load", 1, "2025-08-05T17:00:00+01:00",
              placement("P1", "T1", "Worthing", dateFrom="2025-08-06", wte="1.0")),
        event("l2", "P3", "load", 1, "2025-08-05T17:00:00+01:00", placement("P3", "T3", "Hove")),
    )  # fmt: skip
    done = cli("ingest", "load.jsonl")
    assert "accepted" in done.stdout
    assert cli.json("close", "--at", DAY_BEFORE, "--json") == {
        "closes_at": "2025-08-05T18:00:00+01:00",
        "digests": [],
    }

    # The day: a real change, a reverted one, a respelt value, a new record, and a bad line.
    at = "2025-08-06T{}:00+01:00".format
    write_jsonl(
        tmp_path / "edits.jsonl",
        event("e1", "P1", "patch", 2, at("09:00"), {"dateFrom": "2025-08-13"}),
        {k: v for k, v in event("e2", "P3", "patch", 2, at("09:30"), {"site": "X"}).items()
         if k != "seq"},
        event("e3", "P1", "patch", 3, at("10:00"), {"site": "Crawley"}),
        event("e4", "P1", "patch", 4, at("11:00"), {"site": "Worthing"}),
        event("e5", "P1", "patch", 5, at("12:00"), {"wte": "1.00", "updatedAt": at("12:00")}),
        event("e6", "P2", "upsert", 1, at("13:00"), placement("P2", "T2", "Hove", wte="0.8")),
    )  # fmt: skip
    done = cli("ingest", "edits.jsonl", expect=1)
    assert "quarantined" in done.stdout
    assert "Some input was quarantined" in done.stderr

    listed = cli("quarantine")
    assert "edits.jsonl:2" in listed.stdout
    assert "seq" in listed.stdout
    assert "is missing" in listed.stdout
    [entry] = cli.json("quarantine", "--json")
    assert (entry["line"], entry["field"], entry["status"]) == (2, "seq", "open")
    assert entry["origin"].endswith("edits.jsonl")

    fixed = json.dumps(event("e2", "P3", "patch", 2, at("09:30"), {"site": "Hove"}))
    done = cli("quarantine", "replay", str(entry["id"]), "--line", fixed)
    assert f"{entry['id']}: accepted" in done.stdout
    assert [e["status"] for e in cli.json("quarantine", "--all", "--json")] == ["replayed"]

    expected = {
        "closes_at": "2025-08-06T18:00:00+01:00",
        "digests": [
            {
                "recipient": "T1",
                "changes": [
                    {
                        "source": "tcs",
                        "entity": "Placement",
                        "key": "P1",
                        "kind": "updated",
                        "fields": {"dateFrom": {"before": "2025-08-06", "after": "2025-08-13"}},
                    }
                ],
            },
            {
                "recipient": "T2",
                "changes": [
                    {
                        "source": "tcs",
                        "entity": "Placement",
                        "key": "P2",
                        "kind": "created",
                        "fields": {
                            "id": {"before": None, "after": "P2"},
                            "site": {"before": None, "after": "Hove"},
                            "traineeId": {"before": None, "after": "T2"},
                            "wte": {"before": None, "after": "0.8"},
                        },
                    }
                ],
            },
        ],
    }
    first = cli("preview", "--at", DAY, "--json").stdout
    assert json.loads(first) == expected
    assert cli("preview", "--at", DAY, "--json").stdout == first  # a preview changes nothing
    text_too = store_url.startswith("sqlite")  # the words do not depend on the store
    if text_too:
        words = cli("preview", "--at", DAY).stdout
        assert "Start date is now 13 August 2025 (was 6 August 2025)." in words

    explained = cli.json("explain", "tcs", "Placement", "P1", "--at", DAY, "--json")
    assert explained["baseline"]["site"] == "Worthing"
    assert [e["seq"] for e in explained["pending"]] == [2, 3, 4, 5]
    assert [c["recipient"] for c in explained["changes"]] == ["T1"]
    assert explained["changes"][0]["fields"] == expected["digests"][0]["changes"][0]["fields"]
    reverted = cli.json("explain", "tcs", "Placement", "P3", "--at", DAY, "--json")
    assert (len(reverted["pending"]), reverted["changes"]) == (1, [])

    assert cli.json("close", "--at", DAY, "--json") == expected
    again = cli.json("close", "--at", DAY, "--json")
    assert again == {"closes_at": expected["closes_at"], "digests": []}

    after = cli.json("explain", "--config", str(config), "tcs", "Placement", "P1", "--at", DAY,
                     "--json")  # fmt: skip
    assert (after["pending"], after["changes"]) == ([], [])
    assert after["baseline"]["dateFrom"] == "2025-08-13"
    assert [(t["recipient"], t["kind"]) for t in after["told"]] == [("T1", "updated")]
    if text_too:
        shown = cli("explain", "tcs", "Placement", "P1", "--at", DAY).stdout
        assert "Baseline (after window 2" in shown
        assert "'updated' for T1 about dateFrom: no rules were configured" in shown

    assert "Removed 0 events" in cli("prune").stdout


def test_ingest_reads_standard_input(cli: Cli) -> None:
    line = json.dumps(
        event("s1", "P9", "upsert", 1, "2025-08-06T10:00:00Z", placement("P9", "T9", "Hove"))
    )
    done = cli("ingest", "-", stdin=line + "\n")
    assert "quarantined" in done.stdout
    digests = cli.json("preview", "--at", DAY, "--json")["digests"]
    assert [(d["recipient"], d["changes"][0]["kind"]) for d in digests] == [("T9", "created")]
    # The same line again is a duplicate, not a second event.
    cli("ingest", "-", stdin=line + "\n")
    assert cli.json("preview", "--at", DAY, "--json")["digests"] == digests


def test_format_forces_the_parser(cli: Cli) -> None:
    dms = {
        "data": {"id": "P7", "traineeId": "T7", "site": "Hove", "wte": "1.00"},
        "metadata": {
            "timestamp": "2025-08-06T09:00:00.000001Z",
            "record-type": "data",
            "operation": "insert",
            "schema-name": "tcs",
            "table-name": "Placement",
        },
    }
    write_jsonl(cli.folder / "dms.jsonl", dms)
    cli("ingest", "--format", "dms", "dms.jsonl")
    [digest] = cli.json("preview", "--at", DAY, "--json")["digests"]
    assert digest["changes"][0]["fields"]["wte"] == {"before": None, "after": "1"}

    write_jsonl(cli.folder / "native.jsonl", event("n1", "P8", "upsert", 1, "2025-08-06T09:00:00Z",
                                                   placement("P8", "T8", "Hove")))  # fmt: skip
    cli("ingest", "--format", "dms", "native.jsonl", expect=1)
    [entry] = cli.json("quarantine", "--json")
    assert (entry["format"], entry["line"]) == ("dms", 1)
    cli("ingest", "native.jsonl")  # detected as native


def test_ingest_refuses_a_missing_file(cli: Cli) -> None:
    done = cli("ingest", "nothing.jsonl", expect=2)
    assert "nothing.jsonl is not a file" in done.stderr
