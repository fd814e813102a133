"""Poison input: every line is stored or quarantined with its place, field and reason, on both
stores, and one bad line never costs the other lines of its batch."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import orjson
import pytest
from sqlalchemy import text

from tests.conftest import FakeClock, make_config
from tests.helpers import event, lines
from tidings.api import Tidings
from tidings.errors import InputError
from tidings.ingest import Line
from tidings.model import ChangeEvent, Op
from tidings.store.database import SqlStore

AT = "2025-08-06T09:00:00+01:00"


def _native(n: int, **changes: Any) -> dict[str, Any]:
    record = event(f"e{n}", f"P{n}", "upsert", 1, AT, {"traineeId": "T1", "site": "Leeds"})
    for name, value in changes.items():
        if name.startswith("data__"):
            record["data"][name.removeprefix("data__")] = value
        else:
            record[name] = value
    return record


def _nested(depth: int) -> dict[str, Any]:
    value: dict[str, Any] = {"leaf": 1}
    for _ in range(depth):
        value = {"a": value}
    return value


def _debezium(**source: Any) -> dict[str, Any]:
    return {
        "before": None,
        "after": {"id": "D1", "traineeId": "T1"},
        "op": "c",
        "source": {"name": "tcs", "table": "Placement", "lsn": 100, "ts_ms": 1754467200000}
        | source,
        "ts_ms": 1754467200000,
    }


def _dms(timestamp: str) -> dict[str, Any]:
    return {
        "data": {"id": "M1", "traineeId": "T1"},
        "metadata": {
            "timestamp": timestamp,
            "record-type": "data",
            "operation": "insert",
            "schema-name": "tcs",
            "table-name": "Placement",
        },
    }


# Each poison line from the hardening report, with the field its rejection must name.
POISON: list[tuple[str, dict[str, Any] | str, str]] = [
    ("nesting", _native(1, data__extra=_nested(300)), "data.extra"),
    ("seq 2**63", _native(2, seq=2**63), "seq"),
    ("seq below -2**63", _native(3, seq=-(2**63) - 1), "seq"),
    ("lsn 2**63", _debezium(lsn=2**63), "source.lsn"),
    ("ts_ms 10**18", _debezium(ts_ms=10**18), "source.ts_ms"),
    ("ts_ms -10**15", _debezium(ts_ms=-(10**15)), "source.ts_ms"),
    ("dms far future", _dms("9999-12-31T23:59:59-23:59"), "metadata.timestamp"),
    ("int field 25 digits", _native(4, data__hours="9" * 25), "data.hours"),
    ("int field as a number", _native(5, data__hours=2**64 - 1), "data.hours"),
    ("long key", _native(6, key="K" * 201), "key"),
    ("long id", _native(7, id="I" * 201), "id"),
    ("NUL in key", _native(8, key="P\u00008"), "key"),
    ("NUL in a value", _native(9, data__site="Leeds\u0000"), "data.site"),
    ("control in source", _native(10, source="tcs\u001b[2J"), "source"),
    ("calendar edge", _native(11, at="0001-01-01T00:00:00+23:59"), "at"),
    ("decimal exponent", _native(12, data__wte="1e100000000"), "data.wte"),
    ("decimal tiny", _native(13, data__wte="1e-5000000"), "data.wte"),
    (
        "datetime edge",
        _native(14, data__confirmedAt="0001-01-01T00:00:00+23:59"),
        "data.confirmedAt",
    ),
]


@pytest.mark.parametrize(("name", "poison", "field"), POISON, ids=[p[0] for p in POISON])
def test_a_poison_line_is_quarantined_and_its_batch_is_stored(
    make_app: Callable[..., Tidings], name: str, poison: dict[str, Any] | str, field: str
) -> None:
    app = make_app(ingest={"workers": 0, "batch_size": 500})
    good = [_native(1000 + n) for n in range(400)]
    line = json.dumps(poison)  # the standard encoder nests deeper than orjson will
    records: list[dict[str, Any] | str] = [*good[:200], line, *good[200:]]

    stats = app.ingest_lines(lines(*records, origin="poison.jsonl"))

    assert (stats.accepted, stats.quarantined) == (400, 1), name
    [entry] = app.quarantined()
    assert (entry.origin, entry.line, entry.field) == ("poison.jsonl", 201, field)
    assert entry.reason
    assert entry.exact == line.encode()
    # Reading the same file again changes nothing.
    again = app.ingest_lines(lines(*records, origin="poison.jsonl"))
    assert (again.accepted, again.duplicates, again.quarantined) == (0, 400, 1)
    assert len(app.quarantined()) == 1


def test_a_raw_nul_byte_in_a_line_is_kept_exactly(app: Tidings) -> None:
    raw = b'{"id": "x\x00y", broken'
    stats = app.ingest_lines([Line("nul.jsonl", 1, raw), *lines(_native(1), origin="ok")])

    assert (stats.accepted, stats.quarantined) == (1, 1)
    [entry] = app.quarantined()
    assert "\x00" not in entry.raw  # shown as \u0000
    assert entry.exact == raw
    assert "not valid JSON" in entry.reason


def test_invalid_utf8_is_kept_exactly_for_replay(app: Tidings) -> None:
    raw = b'{"id": "\xff\xfe"}'
    app.ingest_lines([Line("latin.jsonl", 1, raw)])

    [entry] = app.quarantined()
    assert entry.exact == raw


def test_times_at_the_edges_of_the_accepted_range_can_be_explained(app: Tidings) -> None:
    early = _native(1, at="1900-01-01T00:00:00+00:00")
    late = _native(2, at="2199-12-31T23:59:59+00:00", data__confirmedAt="2199-12-31T23:59:59Z")
    stats = app.ingest_lines(lines(early, late))
    assert stats.accepted == 2

    for key in ("P1", "P2"):
        explained = app.explain("tcs", "Placement", key, datetime(2200, 1, 1, tzinfo=UTC))
        assert explained.current is not None
        assert explained.to_json()["pending"]


def test_replaying_a_poison_line_with_a_poison_fix_is_rejected_cleanly(app: Tidings) -> None:
    app.ingest_lines(lines(_native(1, seq=2**63)))
    [entry] = app.quarantined()

    [outcome] = app.replay([entry.id], json.dumps(_native(1, data__extra=_nested(300))).encode())

    assert not outcome.accepted
    assert "nested more than" in (outcome.reason or "")
    [fixed] = app.replay([entry.id], orjson.dumps(_native(1)))
    assert fixed.accepted


def test_a_replacement_line_for_several_entries_is_an_input_error(app: Tidings) -> None:
    app.ingest_lines(lines("{", "{", origin="two.jsonl"))
    ids = [e.id for e in app.quarantined()]

    with pytest.raises(InputError, match="one quarantine entry"):
        app.replay(ids, b"{}")


def test_the_python_api_refuses_values_no_store_can_hold(app: Tidings) -> None:
    moment = datetime(2025, 8, 6, 9, tzinfo=UTC)
    huge = ChangeEvent("api-1", "tcs", "Placement", "P1", Op.UPSERT, 1, moment, {"n": 2**70})
    odd = ChangeEvent("api-2", "tcs", "Placement", "P2", Op.UPSERT, 1, moment, {"n": {1, 2}})

    for bad, field in ((huge, "data.n"), (odd, "data.n")):
        with pytest.raises(InputError) as caught:
            app.ingest_events([bad])
        assert caught.value.field == field
    assert app.pending_count() == 0


# --- one event id, one change ----------------------------------------------------------------


def test_an_id_seen_again_with_other_content_is_quarantined_as_a_conflict(app: Tidings) -> None:
    first = _native(1)
    same = _native(1)
    other = _native(1, data__site="Hull")

    stats = app.ingest_lines(lines(first, same, origin="a.jsonl"))
    assert (stats.accepted, stats.duplicates, stats.quarantined) == (1, 1, 0)
    later = app.ingest_lines(lines(same, other, origin="b.jsonl"))

    assert (later.accepted, later.duplicates, later.quarantined) == (0, 1, 1)
    [entry] = app.quarantined()
    assert (entry.origin, entry.line, entry.field, entry.record) == ("b.jsonl", 2, "id", "e1")
    assert "other content" in entry.reason
    assert "data" in entry.reason
    assert entry.exact == orjson.dumps(other)


def test_a_conflict_within_one_batch_is_found_too(app: Tidings) -> None:
    stats = app.ingest_lines(lines(_native(1), _native(1, seq=2), origin="c.jsonl"))

    assert (stats.accepted, stats.quarantined) == (1, 1)
    [entry] = app.quarantined()
    assert entry.line == 2
    assert "seq" in entry.reason


# --- the database refuses a value: only that line is set apart -----------------------------


@pytest.fixture
def sql_app(sql_url: str, clock: FakeClock) -> Iterator[Tidings]:
    app = Tidings(make_config(sql_url), clock=clock)
    yield app
    app.store.dispose()


def _refuse_key(app: Tidings, key: str) -> None:
    """A constraint of the database's own that refuses one key, standing for any value the
    store might refuse that validation let through."""
    store = app.store
    assert isinstance(store, SqlStore)
    with store.engine.begin() as conn:
        if store.is_sqlite:
            conn.execute(
                text(
                    "CREATE TRIGGER refuse BEFORE INSERT ON events "
                    f"WHEN NEW.key = '{key}' BEGIN SELECT RAISE(ABORT, 'refused'); END"
                )
            )
        else:
            conn.execute(text(f"ALTER TABLE events ADD CONSTRAINT refuse CHECK (key <> '{key}')"))


def test_a_value_the_database_refuses_costs_only_its_own_line(sql_app: Tidings) -> None:
    app = sql_app
    _refuse_key(app, "P1017")
    records = [_native(1000 + n) for n in range(100)]

    stats = app.ingest_lines(lines(*records, origin="refused.jsonl"))

    assert (stats.accepted, stats.quarantined) == (99, 1)
    [entry] = app.quarantined()
    assert (entry.origin, entry.line, entry.record) == ("refused.jsonl", 18, "e1017")
    assert entry.reason.startswith("the database refused this event")
    assert "P1017" not in entry.reason  # the store's message never quotes the row
    assert entry.exact == orjson.dumps(records[17])
    assert app.pending_count() == 99


def test_refused_events_given_through_the_api_are_quarantined_as_native_lines(
    sql_app: Tidings,
) -> None:
    app = sql_app
    _refuse_key(app, "P2")
    moment = datetime(2025, 8, 6, 9, tzinfo=UTC)
    events = [
        ChangeEvent(f"api-{n}", "tcs", "Placement", f"P{n}", Op.UPSERT, 1, moment, {"site": "X"})
        for n in range(1, 4)
    ]

    stats = app.ingest_events(events)

    assert (stats.accepted, stats.quarantined) == (2, 1)
    [entry] = app.quarantined()
    assert orjson.loads(entry.exact)["key"] == "P2"
    assert entry.format == "api"
