"""Guard rails and wording through the real command: a second close at the same time does
nothing, a future --at needs --force, preview never creates a database, counts are worded for
one or many, a bad line is placed at the same character on ingest and on replay; and records
are named and amounts shown the way the config says (display names, places, currency,
undeclared fields hidden from previews unless asked)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.acceptance.test_cli import Cli
from tests.helpers import event, write_jsonl

AT = "2025-08-06T10:00:00+01:00"


def _config(store_url: str) -> str:
    return f"""
timezone = "Europe/London"
[store]
url = {json.dumps(store_url)}
[window]
cutoff = "18:00"
[entities.Placement]
label = "placement"
key = "id"
recipient = "traineeId"
display = "placement at {{{{ site }}}} from {{{{ dateFrom }}}}"
[entities.Placement.fields]
traineeId = "string"
site = {{ type = "string", label = "Site" }}
dateFrom = {{ type = "date", label = "Start date" }}
price = {{ type = "decimal", label = "Price", currency = "GBP" }}
wte = {{ type = "decimal", label = "Whole time equivalent", places = 2 }}
"""


@pytest.fixture
def cli(tmp_path: Path, store_url: str) -> Cli:
    config = tmp_path / "tidings.toml"
    config.write_text(_config(store_url))
    return Cli(tmp_path, config)


def _placement(key: str, seq: int = 1, at: str = AT, **data: object) -> dict[str, object]:
    record = {"traineeId": "T1", "site": "Leeds", "dateFrom": "2025-09-01", **data}
    return event(f"{key}-{seq}", key, "upsert", seq, at, record)


def test_closing_twice_at_the_same_time_says_so_and_makes_no_empty_window(cli: Cli) -> None:
    write_jsonl(cli.folder / "e.jsonl", _placement("P1"))
    cli("ingest", "e.jsonl")
    first = cli("close", "--at", "2025-08-06")
    assert "Window 1 closed" in first.stdout
    again = cli("close", "--at", "2025-08-06")
    assert "Window 1 already closed at 2025-08-06T18:00:00+01:00: nothing to do" in again.stderr
    assert "Window 2" not in again.stdout + again.stderr
    assert cli.json("close", "--at", "2025-08-06", "--json")["digests"] == []
    # The next day's close is a new window as ever.
    assert "Window 2 closed" in cli("close", "--at", "2025-08-07").stdout


def test_a_close_in_the_future_needs_force(cli: Cli) -> None:
    refused = cli("close", "--at", "2199-01-01", expect=2)
    assert "is in the future" in refused.stderr
    assert "--force" in refused.stderr
    forced = cli("close", "--at", "2199-01-01", "--force")
    assert "Window 1 closed" in forced.stdout


def test_preview_does_not_create_a_database(tmp_path: Path) -> None:
    db = tmp_path / "never.db"
    config = tmp_path / "tidings.toml"
    config.write_text(_config(f"sqlite:///{db}"))
    shown = Cli(tmp_path, config)("preview")
    assert "records with events │ 0" in " ".join(shown.stdout.split())
    assert "there is no database at" in shown.stderr
    assert "does not create one" in shown.stderr
    assert not db.exists()


def test_counts_are_worded_for_one_and_for_many(cli: Cli) -> None:
    write_jsonl(cli.folder / "e.jsonl", "{not json")
    cli("ingest", "e.jsonl", expect=1)
    listed = cli("quarantine", "--all")
    assert "(1 entry)" in listed.stdout
    assert "1 entries" not in listed.stdout
    pruned = cli("prune")
    assert "Removed 0 events older than" in pruned.stdout


def test_a_moved_record_is_one_net_change_and_two_changes_to_tell(cli: Cli) -> None:
    write_jsonl(cli.folder / "a.jsonl", _placement("P1", at="2025-08-05T10:00:00+01:00"))
    cli("ingest", "a.jsonl")
    cli("close", "--at", "2025-08-05")
    write_jsonl(cli.folder / "b.jsonl", _placement("P1", 2, traineeId="T2"))
    cli("ingest", "b.jsonl")
    text = " ".join(cli("close", "--at", "2025-08-06").stdout.split())
    assert "records with a net change │ 1" in text
    assert "changes to tell │ 2" in text
    assert "A record that moved from one person to another is one net change" in text


def test_a_bad_line_is_placed_at_the_same_character_on_ingest_and_on_replay(cli: Cli) -> None:
    truncated = '{"id":"1","source":"tcs","entity":"Placement","key":"P1","op":"upsert"'
    write_jsonl(cli.folder / "e.jsonl", truncated)
    cli("ingest", "e.jsonl", expect=1)
    (entry,) = cli.json("quarantine", "--json")
    replayed = cli("quarantine", "replay", str(entry["id"]), expect=1)
    assert entry["reason"] == "not valid JSON: unexpected end of data at character 71 of the line"
    assert entry["reason"] in " ".join(replayed.stdout.split() + replayed.stderr.split())


def test_records_are_named_by_their_display_and_amounts_keep_their_places(cli: Cli) -> None:
    write_jsonl(
        cli.folder / "e.jsonl",
        _placement("P1", price=30, wte="1.0", note="from the old system"),
    )
    cli("ingest", "e.jsonl")
    text = " ".join(cli("preview", "--at", "2025-08-06").stdout.split())
    assert "Placement at Leeds from 1 September 2025 was added." in text
    assert "Price: £30.00" in text
    assert "Whole time equivalent: 1.00" in text
    assert "note" not in text
    assert "(and 1 undeclared field: --all-fields shows them)" in text
    every = " ".join(cli("preview", "--at", "2025-08-06", "--all-fields").stdout.split())
    assert "note: from the old system" in every


def test_a_display_naming_an_undeclared_field_is_a_config_error(
    tmp_path: Path, store_url: str
) -> None:
    config = tmp_path / "tidings.toml"
    config.write_text(_config(store_url).replace("{{ site }}", "{{ sitee }}"))
    failed = Cli(tmp_path, config)("preview", expect=2)
    assert "display names 'sitee', not a declared field" in " ".join(failed.stderr.split())
