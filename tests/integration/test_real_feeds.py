"""Real Debezium and AWS DMS captures through Tidings on SQLite: ingest the files as the
connectors write them, close the windows, and read the net changes a person would expect.

The fixtures (tests/fixtures/debezium, tests/fixtures/dms) are shaped after the connectors'
documentation: Debezium 3.x's PostgreSQL envelope with its schema, MySQL without one, DMS's
typed JSON with its before image, control and transaction records, and the pretty-printed
``MessageFormat=JSON`` form.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import FakeClock
from tidings.api import Tidings
from tidings.config import parse_config

FIXTURES = Path(__file__).parent.parent / "fixtures"
FIRST_CLOSE = datetime(2026, 8, 1, 17, 0, tzinfo=UTC)  # 18:00 in London
SECOND_CLOSE = datetime(2026, 8, 2, 17, 0, tzinfo=UTC)

PG_FIELDS = {
    "trainee_id": "string",
    "site": "string",
    "date_from": "date",
    "wte": "decimal",
    "allowance": "decimal",
    "confirmed_at": "datetime",
    "updated_at": "datetime",
    "starts_at": "string",
    "on_call": "bool",
    "notes": "string",
}


def _app(tmp_path: Path, fields: dict[str, Any], **extra: Any) -> Tidings:
    config = parse_config(
        {
            "timezone": "Europe/London",
            "window": {"cutoff": "18:00"},
            "store": {"url": f"sqlite:///{tmp_path / 'tidings.db'}"},
            "entities": {"placement": {"key": "id", "recipient": "trainee_id", "fields": fields}},
            **extra,
        }
    )
    return Tidings(config, clock=FakeClock(SECOND_CLOSE))


def _changes(app: Tidings, at: datetime) -> dict[tuple[str, str], dict[str, Any]]:
    """``(recipient, key)`` to ``{"kind", "fields": {name: (before, after)}}``."""
    out: dict[tuple[str, str], dict[str, Any]] = {}
    for digest in app.close(at).to_json()["digests"]:
        for change in digest["changes"]:
            fields = {n: (v["before"], v["after"]) for n, v in change["fields"].items()}
            out[(digest["recipient"], change["key"])] = {"kind": change["kind"], "fields": fields}
    return out


def test_debezium_postgres_with_schemas_reads_as_people_would_say_it(tmp_path: Path) -> None:
    app = _app(tmp_path, PG_FIELDS)
    snapshot = app.ingest_files([FIXTURES / "debezium" / "pg_snapshot.jsonl"])
    assert (snapshot.accepted, snapshot.quarantined) == (2, 0)
    assert _changes(app, FIRST_CLOSE) == {}  # a snapshot is the baseline: nobody is told

    stats = app.ingest_files([FIXTURES / "debezium" / "pg_changes.jsonl"])
    # The update and the delete; the tombstone, the logical message and the truncate skipped.
    assert (stats.accepted, stats.skipped, stats.quarantined) == (2, 3, 0)
    assert dict(stats.skipped_by_reason) == {
        "logical decoding message": 1,
        "tombstone": 1,
        "truncate": 1,
    }
    changes = _changes(app, SECOND_CLOSE)
    assert changes[("T1", "1")] == {
        "kind": "updated",
        "fields": {
            "date_from": ("2026-08-03", "2026-08-10"),
            "wte": ("1", "0.8"),
            "allowance": ("123.45", "-15"),
            # TIMESTAMP without zone: wall-clock time in London (BST), stored in UTC.
            "updated_at": ("2026-08-01T08:00:00+00:00", "2026-08-02T08:30:00+00:00"),
        },
    }  # notes arrived as __debezium_unavailable_value: unchanged, not reported
    assert changes[("T1", "2")]["kind"] == "deleted"
    assert changes[("T1", "2")]["fields"]["date_from"] == ("2026-09-01", None)
    with app.store.read() as tx:
        record = tx.ledger.records("placement", ["1"])["1"]
    assert record["notes"] == "long text"  # kept, never the placeholder
    app.store.dispose()


MYSQL_FIELDS = {
    "trainee_id": "string",
    "site": "string",
    "date_from": {"type": "date", "encoding": "days"},
    "wte": {"type": "decimal", "encoding": "base64", "scale": 2},
    "updated_at": {"type": "datetime", "encoding": "ms"},
    "on_call": "bool",  # TINYINT(1): 0 or 1
}

EXPECTED_MYSQL = {
    ("T1", "1"): {
        "kind": "updated",
        "fields": {
            "date_from": ("2026-08-03", "2026-08-10"),
            "wte": ("1", "0.8"),
            "on_call": (False, True),
            "site": ("Leeds General", "York"),
            "updated_at": ("2026-08-01T08:00:00+00:00", "2026-08-02T08:30:00+00:00"),
        },
    }
}


@pytest.mark.parametrize("reverse", [False, True])
def test_debezium_mysql_without_schemas_orders_by_binlog_not_ts_ms(
    tmp_path: Path, reverse: bool
) -> None:
    # The snapshot row's ts_ms is later than the update's, but its binlog position earlier.
    lines = (FIXTURES / "debezium" / "mysql_schemaless.jsonl").read_bytes().splitlines(True)
    path = tmp_path / "feed.jsonl"
    path.write_bytes(b"".join(reversed(lines) if reverse else lines))
    app = _app(tmp_path, MYSQL_FIELDS)
    stats = app.ingest_files([path])
    assert (stats.accepted, stats.quarantined) == (3, 0)
    assert _changes(app, SECOND_CLOSE) == EXPECTED_MYSQL
    app.store.dispose()


def test_a_mysql_snapshot_row_after_a_closed_change_is_stale(tmp_path: Path) -> None:
    snapshot, update, _ = (
        (FIXTURES / "debezium" / "mysql_schemaless.jsonl").read_bytes().split(b"\n", 2)
    )
    app = _app(tmp_path, MYSQL_FIELDS)
    (tmp_path / "update.jsonl").write_bytes(update + b"\n")
    (tmp_path / "snapshot.jsonl").write_bytes(snapshot + b"\n")
    app.ingest_files([tmp_path / "update.jsonl"])
    app.close(SECOND_CLOSE)
    late = app.ingest_files([tmp_path / "snapshot.jsonl"])
    assert late.stale == 1  # never overwrites the change it predates
    assert _changes(app, datetime(2026, 8, 3, 17, tzinfo=UTC)) == {}
    app.store.dispose()


def test_a_mysql_delete_and_its_null_tombstone(tmp_path: Path) -> None:
    app = _app(tmp_path, MYSQL_FIELDS)
    app.ingest_files([FIXTURES / "debezium" / "mysql_schemaless.jsonl"])
    app.close(SECOND_CLOSE)
    stats = app.ingest_files([FIXTURES / "debezium" / "mysql_delete.jsonl"])
    assert (stats.accepted, stats.skipped, stats.quarantined) == (1, 1, 0)
    changes = _changes(app, datetime(2026, 8, 3, 17, tzinfo=UTC))
    assert changes[("T1", "1")]["kind"] == "deleted"
    assert changes[("T1", "1")]["fields"]["wte"] == ("0.8", None)
    app.store.dispose()


DMS_FIELDS = {
    "trainee_id": "string",
    "site": "string",
    "date_from": "date",
    "wte": "decimal",
    "hours": "int",
    "on_call": "bool",
    "notes": "string",
}


@pytest.mark.parametrize("capture", ["cdc.jsonl", "cdc_pretty.json"])
def test_dms_typed_json_with_before_images(tmp_path: Path, capture: str) -> None:
    app = _app(tmp_path, DMS_FIELDS)
    assert app.ingest_files([FIXTURES / "dms" / "load.jsonl"]).accepted == 3
    assert _changes(app, FIRST_CLOSE) == {}

    stats = app.ingest_files([FIXTURES / "dms" / capture])
    # control, begin, commit and an awsdms_apply_exceptions row skipped; the key change is
    # two events (a delete of 102 and an insert of 104) from one record.
    assert (stats.skipped, stats.quarantined, stats.accepted) == (4, 0, 4)
    assert dict(stats.skipped_by_reason) == {
        "DMS's own table": 1,
        "control record": 1,
        "transaction record": 2,
    }
    changes = _changes(app, SECOND_CLOSE)
    assert changes[("T1", "101")] == {
        "kind": "updated",
        "fields": {
            "date_from": ("2026-08-03", "2026-08-10"),
            "wte": ("1", "0.8"),
            "hours": (40, 32),
        },  # notes was left out (NULL or unchanged, DMS cannot say): kept
    }
    assert changes[("T2", "103")] == {
        "kind": "updated",
        "fields": {"wte": ("0.6", "0.8"), "on_call": (False, True)},  # no BI_ columns
    }
    assert changes[("T1", "102")]["kind"] == "deleted"
    assert changes[("T1", "104")]["kind"] == "created"
    assert changes[("T1", "104")]["fields"]["date_from"] == (None, "2026-09-01")
    assert set(changes) == {("T1", "101"), ("T2", "103"), ("T1", "102"), ("T1", "104")}
    app.store.dispose()


def test_dms_absent_columns_as_null_when_configured(tmp_path: Path) -> None:
    app = _app(tmp_path, DMS_FIELDS, sources={"dms": {"absent": "null"}})
    app.ingest_files([FIXTURES / "dms" / "load.jsonl"])
    app.close(FIRST_CLOSE)
    app.ingest_files([FIXTURES / "dms" / "cdc.jsonl"])
    changes = _changes(app, SECOND_CLOSE)
    assert changes[("T1", "101")]["fields"]["notes"] == ("night rota", None)
    app.store.dispose()
