"""Fuzzing ingest: arbitrary JSON values, strings and bytes, and events with hostile values,
on both stores. Whatever arrives, no exception escapes, every line read is counted once
(accepted + duplicates + stale + quarantined + skipped = lines read), every quarantined line is
kept exactly as it arrived, and reading the same input again changes nothing."""

from __future__ import annotations

import json
import sys
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime
from itertools import count
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import FakeClock, make_config
from tests.helpers import event, lines
from tidings.api import Tidings
from tidings.ingest import Line

# --- what arrives ------------------------------------------------------------------------------

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**64), max_value=2**64)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=30),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)
edge_texts = st.sampled_from(
    ["", "P1", "e1", "x" * 199, "x" * 200, "x" * 201, "a\u0000b", "\u001b[2J", "[/]", "P[/]9", "é"]
) | st.text(max_size=12)
edge_ints = st.sampled_from(
    [0, 1, 2, -1, 2**63 - 1, 2**63, -(2**63), -(2**63) - 1, 2**64 - 1, 10**18]
) | st.integers(min_value=-5, max_value=50)
edge_times = st.sampled_from(
    [
        "2025-08-06T09:00:00+01:00",
        "2025-08-06T09:00:00Z",
        "2025-08-06T09:00:00",
        "1900-01-01T00:00:00+00:00",
        "1899-12-31T23:59:59+00:00",
        "2199-12-31T23:59:59Z",
        "0001-01-01T00:00:00+23:59",
        "9999-12-31T23:59:59-23:59",
        "yesterday",
    ]
)
edge_decimals = st.sampled_from(
    ["1", "1.0", "0.5", "1e100000000", "1e-5000000", "NaN", "-Infinity", "1" * 120, "x"]
) | st.decimals(allow_nan=False, allow_infinity=False).map(str)


def mostly(good: st.SearchStrategy[Any], bad: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """Usually a good value, now and then a hostile one: enough whole events get through to
    exercise storing, duplicates, conflicts and staleness, not just rejection."""
    return st.integers(0, 11).flatmap(lambda n: bad if n == 0 else good)


placement_data = st.fixed_dictionaries(
    {},
    optional={
        "id": mostly(st.sampled_from(["P1", "P2"]), edge_texts),
        "traineeId": mostly(st.sampled_from(["T1", "T2"]), edge_texts | edge_ints),
        "site": mostly(st.sampled_from(["Leeds", "Hull"]), edge_texts | json_values),
        "wte": mostly(st.sampled_from(["1", "0.5", 1]), edge_decimals | edge_ints),
        "hours": mostly(st.integers(0, 60), edge_ints | edge_texts),
        "dateFrom": mostly(st.sampled_from(["2025-08-06"]), edge_times | st.dates().map(str)),
        "confirmedAt": mostly(st.sampled_from(["2025-08-06T09:00:00Z"]), edge_times),
        "onCall": mostly(st.booleans(), edge_texts),
        "extra": mostly(st.sampled_from(["x", 1, None]), json_values),
    },
)


_fresh_ids = st.integers(0, 2**40).map(lambda n: f"u{n}")


@st.composite
def native_events(draw: st.DrawFn) -> dict[str, Any]:
    key = draw(mostly(st.sampled_from(["P1", "P2", "P3"]), edge_texts))
    record = event(
        draw(mostly(_fresh_ids, st.sampled_from(["e1", "e2", "e3"]) | edge_texts)),
        key,
        draw(mostly(st.sampled_from(["upsert", "patch", "delete", "load"]), st.just("UPSERT"))),
        draw(mostly(st.integers(0, 9), edge_ints)),
        draw(mostly(st.just("2025-08-06T09:00:00+01:00"), edge_times)),
        draw(placement_data),
        entity=draw(mostly(st.sampled_from(["Placement", "Person"]), st.just("Mystery"))),
        source=draw(mostly(st.just("tcs"), edge_texts)),
    )
    if draw(st.booleans()):
        record["data"]["id"] = key
    return record


@st.composite
def dms_records(draw: st.DrawFn) -> dict[str, Any]:
    return {
        "data": draw(placement_data) | {"id": draw(edge_texts | edge_ints)},
        "metadata": {
            "timestamp": draw(edge_times),
            "record-type": draw(st.sampled_from(["data", "data", "control", "ddl"])),
            "operation": draw(st.sampled_from(["load", "insert", "update", "delete", "merge"])),
            "schema-name": draw(st.sampled_from(["tcs", ""])),
            "table-name": draw(st.sampled_from(["Placement", "Person", "Mystery"])),
        },
    }


@st.composite
def debezium_records(draw: st.DrawFn) -> dict[str, Any]:
    row = draw(placement_data) | {"id": draw(edge_texts | edge_ints)}
    payload = {
        "before": row if draw(st.booleans()) else None,
        "after": row,
        "op": draw(st.sampled_from(["c", "u", "d", "r", "t", "m", "x"])),
        "source": {
            "name": "tcs",
            "table": draw(st.sampled_from(["Placement", "Mystery"])),
            "lsn": draw(edge_ints | st.none()),
            "ts_ms": draw(edge_ints | st.sampled_from([1754467200000, -(10**15)])),
        },
    }
    return {"schema": None, "payload": payload} if draw(st.booleans()) else payload


def _encode(record: Any) -> bytes:
    return json.dumps(record, ensure_ascii=False).encode("utf-8", "surrogatepass")


input_lines = st.one_of(
    st.binary(max_size=60),
    st.text(max_size=60).map(lambda t: t.encode("utf-8", "surrogatepass")),
    json_values.map(_encode),
    native_events().map(_encode),
    dms_records().map(_encode),
    debezium_records().map(_encode),
    st.just(b""),
    st.just(b"null"),
).map(lambda raw: raw.replace(b"\n", b" "))

# --- the property ------------------------------------------------------------------------------

FIGURES: Counter[str] = Counter()
_files = count(1)


def _counts(app: Tidings) -> tuple[int, int, int]:
    with app.store.read() as tx:
        return tx.events.count(), tx.quarantine.count(), tx.ledger.record_count()


@pytest.fixture
def fuzz_app(store_url: str) -> Iterator[Tidings]:
    config = make_config(store_url, ingest={"workers": 0, "batch_size": 7})
    app = Tidings(config, clock=FakeClock(datetime(2025, 8, 6, 20, 0, tzinfo=UTC)))
    # Some records already closed, so events with low seqs are stale.
    base = [
        event(f"base-{k}", k, "upsert", 5, "2025-08-06T08:00:00+01:00", {"traineeId": "T1"})
        for k in ("P1", "P2")
    ]
    app.ingest_lines(lines(*base, origin="base.jsonl"))
    app.close(datetime(2025, 8, 6, 18, tzinfo=UTC))
    yield app
    app.store.dispose()


def _quarantined_from(app: Tidings, origin: str) -> list[tuple[int, bytes, str]]:
    """(line, the line exactly as kept, reason) of each entry from ``origin``."""
    found = app.quarantined(None, 1_000_000)
    return [(e.line, e.exact, e.reason) for e in found if e.origin == origin]


def _fuzz(app: Tidings, raws: list[bytes]) -> None:
    origin = f"fuzz-{next(_files)}.jsonl"
    batch = [Line(origin, n, raw) for n, raw in enumerate(raws, start=1)]
    before = _counts(app)

    first = app.ingest_lines(batch)

    assert first.lines == len(raws)
    after_first = _counts(app)
    new_entries = after_first[1] - before[1]
    assert new_entries <= first.quarantined
    for number, kept, reason in _quarantined_from(app, origin):
        assert kept == raws[number - 1].rstrip(b"\n")
        assert reason
    second = app.ingest_lines(batch)

    assert second.lines == len(raws)
    assert (second.accepted, second.stale) == (0, 0)
    assert second.duplicates == first.accepted + first.stale + first.duplicates
    assert second.quarantined == first.quarantined
    assert _counts(app) == after_first
    FIGURES.update(
        cases=1,
        lines=len(raws),
        accepted=first.accepted,
        stale=first.stale,
        duplicates=first.duplicates,
        quarantined=first.quarantined,
        skipped=first.skipped,
    )


_FUZZ = settings(
    max_examples=200,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@_FUZZ
@given(raws=st.lists(input_lines, min_size=1, max_size=25))
def test_whatever_arrives_is_stored_or_quarantined_exactly_once(
    fuzz_app: Tidings, raws: list[bytes]
) -> None:
    _fuzz(fuzz_app, raws)


@_FUZZ
@given(raws=st.lists(native_events().map(_encode), min_size=1, max_size=25))
def test_hostile_native_events_are_stored_or_quarantined_exactly_once(
    fuzz_app: Tidings, raws: list[bytes]
) -> None:
    _fuzz(fuzz_app, raws)


def teardown_module() -> None:
    # The closing note's figures: `pytest -s tests/integration/test_ingest_fuzz.py`.
    escaped = 0  # any exception would have failed the test it escaped from
    figures = ", ".join(f"{k} {v:,}" for k, v in sorted(FIGURES.items()))
    print(f"\ningest fuzz: {figures}, escaped exceptions {escaped}", file=sys.stderr)
