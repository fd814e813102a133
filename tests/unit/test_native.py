"""The native JSON Lines format: one change event per line; each rejection names its field."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tests.conftest import PLACEMENT_CONFIG
from tidings.config import parse_config
from tidings.errors import InputError
from tidings.model import ChangeEvent, Op
from tidings.sources import Format, detect, native

CONFIG = parse_config(PLACEMENT_CONFIG)
_DROP = object()


def record(**changes: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "id": "ev-1",
        "source": "tis",
        "entity": "Placement",
        "key": "1632184",
        "op": "upsert",
        "seq": 7,
        "at": "2025-08-06T09:30:00Z",
        "data": {"id": "1632184", "site": "Leeds", "wte": "1.0"},
    }
    base.update(changes)
    return {k: v for k, v in base.items() if v is not _DROP}


def parse(rec: dict[str, Any]) -> ChangeEvent:
    return native.parse(rec, json.dumps(rec).encode(), CONFIG)


def rejection(rec: dict[str, Any]) -> InputError:
    with pytest.raises(InputError) as caught:
        parse(rec)
    return caught.value


# --- happy paths ------------------------------------------------------------------------------


def test_upsert_parses_every_field_and_keeps_data_as_it_came() -> None:
    event = parse(record())

    assert event == ChangeEvent(
        id="ev-1",
        source="tis",
        entity="Placement",
        key="1632184",
        op=Op.UPSERT,
        seq=7,
        at=datetime(2025, 8, 6, 9, 30, tzinfo=UTC),
        data={"id": "1632184", "site": "Leeds", "wte": "1.0"},
    )


@pytest.mark.parametrize("op", [Op.UPSERT, Op.PATCH, Op.LOAD])
def test_ops_with_data(op: Op) -> None:
    event = parse(record(op=op.value, data={"site": None}))

    assert event.op is op
    assert event.data == {"site": None}


def test_patch_with_an_empty_object_is_accepted() -> None:
    assert parse(record(op="patch", data={})).data == {}


def test_delete_without_data_is_accepted() -> None:
    event = parse(record(op="delete", data=_DROP))

    assert event.op is Op.DELETE
    assert event.data is None


def test_delete_with_null_data_is_accepted() -> None:
    assert parse(record(op="delete", data=None)).data is None


def test_delete_with_data_drops_the_data() -> None:
    assert parse(record(op="delete", data={"id": "1632184"})).data is None


def test_at_with_an_offset_keeps_the_offset() -> None:
    event = parse(record(at="2025-08-06T10:30:00+01:00"))

    assert event.at.utcoffset() == timedelta(hours=1)
    assert event.at == datetime(2025, 8, 6, 9, 30, tzinfo=UTC)


def test_at_with_lowercase_z_and_fractions() -> None:
    event = parse(record(at="2025-08-06T09:30:00.123456z"))

    assert event.at == datetime(2025, 8, 6, 9, 30, 0, 123456, tzinfo=UTC)


def test_integer_key_becomes_text() -> None:
    assert parse(record(key=1632184)).key == "1632184"


def test_seq_may_be_zero_or_large() -> None:
    assert parse(record(seq=0)).seq == 0
    assert parse(record(seq=2**62)).seq == 2**62


def test_ref_of_a_parsed_event() -> None:
    assert str(parse(record()).ref) == "tis/Placement/1632184"


def test_a_native_record_is_detected_as_native() -> None:
    assert detect(record()) is Format.NATIVE


def test_parse_at_accepts_an_aware_timestamp() -> None:
    moment = native.parse_at("2025-08-06T09:30:00-05:00", field="metadata.timestamp")

    assert moment.utcoffset() == timedelta(hours=-5)
    assert moment == datetime(2025, 8, 6, 14, 30, tzinfo=UTC)


# --- rejections name the field ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("changes", "field", "reason"),
    [
        ({"id": _DROP}, "id", "is missing"),
        ({"id": ""}, "id", "expected a non-empty string"),
        ({"id": 5}, "id", "expected a non-empty string"),
        ({"source": _DROP}, "source", "is missing"),
        ({"entity": ["Placement"]}, "entity", "expected a non-empty string"),
        ({"key": None}, "key", "is missing"),
        ({"key": True}, "key", "expected a non-empty string"),
        ({"key": 1.5}, "key", "expected a non-empty string"),
        ({"op": "insert"}, "op", "expected one of upsert, patch, delete, load"),
        ({"op": "UPSERT"}, "op", "expected one of upsert"),
        ({"op": _DROP}, "op", "expected one of upsert"),
        ({"op": 1}, "op", "expected one of upsert"),
        ({"seq": True}, "seq", "expected an integer"),
        ({"seq": "7"}, "seq", "expected an integer"),
        ({"seq": 7.0}, "seq", "expected an integer"),
        ({"seq": _DROP}, "seq", "is missing"),
        ({"at": "2025-08-06T09:30:00"}, "at", "has no UTC offset; add Z or +01:00"),
        ({"at": "yesterday"}, "at", "is not an RFC 3339 timestamp"),
        ({"at": 1754472600}, "at", "expected an RFC 3339 timestamp string"),
        ({"at": _DROP}, "at", "expected an RFC 3339 timestamp string"),
        ({"data": _DROP}, "data", "expected an object for upsert"),
        ({"op": "patch", "data": None}, "data", "expected an object for patch"),
        ({"op": "load", "data": ["a"]}, "data", "expected an object for load"),
        ({"op": "upsert", "data": "site=Leeds"}, "data", "expected an object for upsert"),
        ({"op": "delete", "data": "gone"}, "data", "expected an object or nothing for a delete"),
    ],
)
def test_each_rejection_names_its_field(changes: dict[str, Any], field: str, reason: str) -> None:
    error = rejection(record(**changes))

    assert error.field == field
    assert reason in error.reason
    assert f"field {field!r}" in str(error)


def test_the_first_problem_in_field_order_is_reported() -> None:
    error = rejection(record(op="nope", seq="x", at="naive"))

    assert error.field == "op"
