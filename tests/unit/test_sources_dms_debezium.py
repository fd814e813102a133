"""The AWS DMS and Debezium parsers, and format detection across all three formats."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest

from tidings.config import Config, parse_config
from tidings.errors import InputError
from tidings.model import Op, Skip
from tidings.sources import Format, debezium, detect, dms

CONFIG = parse_config({})
PLACEMENT_KEYED = parse_config({"entities": {"Placement": {"key": "placementId"}}})


def _raw(record: dict[str, Any]) -> bytes:
    return json.dumps(record).encode()


# --- AWS DMS ---------------------------------------------------------------------------------


_DROP = object()  # as a field value in the builders below: leave the field out


def dms_record(operation: str = "update", **changes: Any) -> dict[str, Any]:
    record: dict[str, Any] = {
        "data": {"id": "1632184", "dateFrom": "2019-04-03", "placementId": "P-7"},
        "metadata": {
            "timestamp": "2022-06-23T13:00:43.879686Z",
            "record-type": "data",
            "operation": operation,
            "partition-key-type": "schema-table",
            "schema-name": "tcs",
            "table-name": "Placement",
            "transaction-id": 8589934592,
        },
    }
    # ``metadata__schema_name`` stands for metadata["schema-name"], ``data__id`` for data["id"].
    for path, value in changes.items():
        container, _, name = path.partition("__")
        if container == "metadata":
            name = name.replace("_", "-")
        if value is _DROP:
            del record[container][name]
        else:
            record[container][name] = value
    return record


def parse_dms(record: dict[str, Any], config: Config = CONFIG) -> Any:
    return dms.parse(record, _raw(record), config)


@pytest.mark.parametrize(
    ("operation", "op"),
    # DMS leaves NULL columns out of an update by default: it is a patch of those it carries.
    [("load", Op.LOAD), ("insert", Op.UPSERT), ("update", Op.PATCH)],
)
def test_dms_row_operations_map_to_ops_with_the_whole_row(operation: str, op: Op) -> None:
    record = dms_record(operation)
    event = parse_dms(record)
    assert event.op is op
    assert (event.source, event.entity, event.key) == ("tcs", "Placement", "1632184")
    assert event.data == record["data"]
    assert event.data["dateFrom"] == "2019-04-03"  # values stay as they came


def test_dms_delete_needs_only_the_key_and_carries_no_data() -> None:
    event = parse_dms(dms_record("delete") | {"data": {"id": "1632184"}})
    assert event.op is Op.DELETE
    assert event.key == "1632184"
    assert event.data is None


def test_dms_timestamp_becomes_exact_microsecond_seq_and_aware_at() -> None:
    event = parse_dms(dms_record())
    at = datetime(2022, 6, 23, 13, 0, 43, 879686, tzinfo=UTC)
    assert event.at == at
    assert event.at.utcoffset() is not None
    assert event.seq == 1655989243879686
    # Adjacent microseconds stay distinct and ordered (a float would blur them).
    later = parse_dms(dms_record(metadata__timestamp="2022-06-23T13:00:43.879687Z"))
    assert later.seq == event.seq + 1


def test_dms_timestamp_without_a_zone_is_utc() -> None:
    event = parse_dms(dms_record(metadata__timestamp="2022-06-23T13:00:43.879686"))
    assert event.at == datetime(2022, 6, 23, 13, 0, 43, 879686, tzinfo=UTC)
    assert event.seq == 1655989243879686


def test_dms_timestamp_with_an_offset_is_converted_to_utc() -> None:
    event = parse_dms(dms_record(metadata__timestamp="2022-06-23T14:00:43.879686+01:00"))
    assert event.at == datetime(2022, 6, 23, 13, 0, 43, 879686, tzinfo=UTC)
    assert event.seq == 1655989243879686


def test_dms_control_records_are_skipped() -> None:
    record = {
        "control": {"table-def": {}},
        "metadata": {
            "timestamp": "2022-06-23T13:00:43.879686Z",
            "record-type": "control",
            "operation": "create-table",
            "schema-name": "tcs",
            "table-name": "Placement",
        },
    }
    assert dms.parse(record, _raw(record), CONFIG) is Skip.CONTROL


def test_dms_event_ids_are_deterministic_by_raw_bytes() -> None:
    first = parse_dms(dms_record()).id
    assert first.startswith("dms:")
    assert parse_dms(dms_record()).id == first
    assert parse_dms(dms_record(data__dateFrom="2019-04-04")).id != first


def test_dms_key_field_comes_from_config() -> None:
    event = parse_dms(dms_record(), PLACEMENT_KEYED)
    assert event.key == "P-7"


def test_dms_undeclared_entity_is_keyed_by_id() -> None:
    event = parse_dms(dms_record(metadata__table_name="Unknown"), PLACEMENT_KEYED)
    assert (event.entity, event.key) == ("Unknown", "1632184")


def test_dms_integer_key_becomes_a_string() -> None:
    assert parse_dms(dms_record(data__id=42)).key == "42"


@pytest.mark.parametrize(
    ("record", "field", "reason"),
    [
        ({"data": {}}, "metadata", "expected an object"),
        (dms_record(metadata__record_type="ddl"), "metadata.record-type", "'data', 'control' or"),
        (dms_record(metadata__record_type=_DROP), "metadata.record-type", "'data', 'control'"),
        (dms_record("merge"), "metadata.operation", "expected one of load, insert"),
        (dms_record(metadata__schema_name=_DROP), "metadata.schema-name", "non-empty string"),
        (dms_record(metadata__table_name=""), "metadata.table-name", "found an empty string"),
        (dms_record(metadata__timestamp="yesterday"), "metadata.timestamp", "ISO 8601"),
        (dms_record(metadata__timestamp=1655989243), "metadata.timestamp", "timestamp string"),
        (dms_record(data__id=_DROP), "data.id", "found nothing"),
        (dms_record(data__id=None), "data.id", "found nothing"),
        (dms_record(data__id=True), "data.id", "string or integer, found a value of type bool"),
        (dms_record() | {"data": None}, "data", "expected an object"),
        (dms_record("delete") | {"data": None}, "data", "expected an object"),
    ],
)
def test_dms_rejections_name_the_field(record: dict[str, Any], field: str, reason: str) -> None:
    with pytest.raises(InputError) as caught:
        parse_dms(record)
    assert caught.value.field == field
    assert reason in caught.value.reason


def test_a_dms_rejection_keeps_the_value_apart_from_its_reason() -> None:
    with pytest.raises(InputError) as caught:
        parse_dms(dms_record(metadata__timestamp="yesterday"))
    assert caught.value.value == "'yesterday'"
    assert "yesterday" not in caught.value.reason


def test_a_dms_timestamp_off_the_calendar_is_rejected() -> None:
    with pytest.raises(InputError) as caught:
        parse_dms(dms_record(metadata__timestamp="9999-12-31T23:59:59-23:59"))
    assert caught.value.field == "metadata.timestamp"
    assert "outside the years" in caught.value.reason


def test_dms_missing_configured_key_names_that_field() -> None:
    record = dms_record(data__placementId=_DROP)
    with pytest.raises(InputError) as caught:
        parse_dms(record, PLACEMENT_KEYED)
    assert caught.value.field == "data.placementId"


# --- Debezium --------------------------------------------------------------------------------


def debezium_payload(op: str = "u", **source: Any) -> dict[str, Any]:
    meta: dict[str, Any] = {
        "version": "2.5.0.Final",
        "connector": "postgresql",
        "name": "tcs",
        "db": "tcsdb",
        "schema": "public",
        "table": "Placement",
        "ts_ms": 1655989243879,
        "lsn": 24023128,
    }
    for name, value in source.items():
        if value is _DROP:
            del meta[name]
        else:
            meta[name] = value
    return {
        "before": {"id": 1632184},
        "after": {"id": 1632184, "dateFrom": 17989, "placementId": "P-7"},
        "op": op,
        "source": meta,
        "ts_ms": 1655989244000,
    }


def wrapped(payload: dict[str, Any]) -> dict[str, Any]:
    return {"schema": {"type": "struct"}, "payload": payload}


def parse_debezium(record: dict[str, Any], config: Config = CONFIG) -> Any:
    return debezium.parse(record, _raw(record), config)


@pytest.mark.parametrize(("code", "op"), [("c", Op.UPSERT), ("u", Op.UPSERT), ("r", Op.LOAD)])
def test_debezium_row_ops_map_to_ops_with_after_as_data(code: str, op: Op) -> None:
    payload = debezium_payload(code)
    event = parse_debezium(payload)
    assert event.op is op
    assert (event.source, event.entity, event.key) == ("tcs", "Placement", "1632184")
    assert event.data == payload["after"]
    assert event.data["dateFrom"] == 17989  # values stay as they came


def test_debezium_delete_takes_the_key_from_before() -> None:
    payload = debezium_payload("d") | {"after": None}
    event = parse_debezium(payload)
    assert event.op is Op.DELETE
    assert event.key == "1632184"
    assert event.data is None


def test_debezium_wrapped_envelope_parses_like_the_bare_payload() -> None:
    bare = parse_debezium(debezium_payload())
    event = parse_debezium(wrapped(debezium_payload()))
    assert (event.source, event.entity, event.key, event.op, event.seq, event.at) == (
        bare.source,
        bare.entity,
        bare.key,
        bare.op,
        bare.seq,
        bare.at,
    )
    assert event.id != bare.id  # different raw bytes


@pytest.mark.parametrize(("code", "why"), [("t", Skip.TRUNCATE), ("m", Skip.MESSAGE)])
def test_debezium_truncate_and_message_are_skipped(code: str, why: Skip) -> None:
    payload = {"op": code, "source": {"name": "tcs", "table": "Placement"}, "ts_ms": 1}
    assert parse_debezium(payload) is why
    assert parse_debezium(wrapped(payload)) is why


def test_debezium_tombstone_is_skipped() -> None:
    assert parse_debezium({"schema": None, "payload": None}) is Skip.TOMBSTONE


def test_debezium_seq_is_the_lsn_and_at_the_source_time() -> None:
    event = parse_debezium(debezium_payload())
    assert event.seq == 24023128
    assert event.at == datetime(2022, 6, 23, 13, 0, 43, 879000, tzinfo=UTC)


def test_debezium_lsn_may_be_a_numeric_string() -> None:
    assert parse_debezium(debezium_payload(lsn="98765432109876")).seq == 98765432109876


def test_debezium_without_lsn_orders_by_source_time() -> None:
    assert parse_debezium(debezium_payload(lsn=_DROP)).seq == 1655989243879
    assert parse_debezium(debezium_payload(lsn=None)).seq == 1655989243879


def test_debezium_without_source_time_falls_back_to_top_level_ts_ms() -> None:
    event = parse_debezium(debezium_payload(lsn=_DROP, ts_ms=_DROP))
    assert event.seq == 1655989244000
    assert event.at == datetime(2022, 6, 23, 13, 0, 44, tzinfo=UTC)


def test_debezium_source_falls_back_to_db() -> None:
    assert parse_debezium(debezium_payload(name=_DROP)).source == "tcsdb"


def test_debezium_event_ids_are_deterministic_by_raw_bytes() -> None:
    first = parse_debezium(debezium_payload()).id
    assert first.startswith("debezium:")
    assert parse_debezium(debezium_payload()).id == first
    assert parse_debezium(debezium_payload(lsn=24023129)).id != first


def test_debezium_key_field_comes_from_config() -> None:
    assert parse_debezium(debezium_payload(), PLACEMENT_KEYED).key == "P-7"


def test_debezium_delete_with_configured_key_reads_it_from_before() -> None:
    payload = debezium_payload("d") | {"before": {"placementId": "P-7"}, "after": None}
    assert parse_debezium(payload, PLACEMENT_KEYED).key == "P-7"


def _without(payload: dict[str, Any], name: str) -> dict[str, Any]:
    return {k: v for k, v in payload.items() if k != name}


@pytest.mark.parametrize(
    ("record", "field", "reason"),
    [
        (debezium_payload("x"), "op", "expected one of c, u, d, r"),
        (wrapped(debezium_payload("x")), "payload.op", "expected one of c, u, d"),
        (debezium_payload() | {"op": ["d"]}, "op", "expected one of c, u, d"),
        ({"schema": None, "payload": [1]}, "payload", "expected an object"),
        (debezium_payload() | {"source": None}, "source", "expected an object"),
        (debezium_payload(table=_DROP), "source.table", "non-empty string"),
        (wrapped(debezium_payload(table="")), "payload.source.table", "found an empty string"),
        (debezium_payload(name=_DROP, db=_DROP), "source.name", "name or db"),
        (debezium_payload() | {"after": None}, "after", "expected an object"),
        (wrapped(debezium_payload("d") | {"before": None}), "payload.before", "found nothing"),
        (debezium_payload() | {"after": {"x": 1}}, "after.id", "found nothing"),
        (debezium_payload("d") | {"before": {}}, "before.id", "found nothing"),
        (debezium_payload(lsn="0/16B3748"), "source.lsn", "string of digits"),
        (wrapped(debezium_payload(lsn=1.5)), "payload.source.lsn", "string of digits"),
        (debezium_payload(ts_ms="soon"), "source.ts_ms", "string of digits"),
        (debezium_payload(ts_ms=10**18), "source.ts_ms", "outside the years 1900 to 2199"),
        (debezium_payload(ts_ms=-(10**15)), "source.ts_ms", "outside the years 1900 to 2199"),
        (debezium_payload(lsn=2**63), "source.lsn", "outside the 64-bit integer range"),
        (
            _without(debezium_payload(ts_ms=_DROP), "ts_ms"),
            "source.ts_ms",
            "source.ts_ms or ts_ms",
        ),
        (
            wrapped(_without(debezium_payload(ts_ms=_DROP), "ts_ms")),
            "payload.source.ts_ms",
            "found neither",
        ),
    ],
)
def test_debezium_rejections_name_the_field(
    record: dict[str, Any], field: str, reason: str
) -> None:
    with pytest.raises(InputError) as caught:
        parse_debezium(record)
    assert caught.value.field == field
    assert reason in caught.value.reason


def test_debezium_missing_configured_key_names_that_field() -> None:
    with pytest.raises(InputError) as caught:
        parse_debezium(debezium_payload() | {"after": {"id": 1}}, PLACEMENT_KEYED)
    assert caught.value.field == "after.placementId"


# --- detection -------------------------------------------------------------------------------


NATIVE = {
    "id": "e1",
    "source": "tcs",
    "entity": "Placement",
    "key": "1",
    "op": "upsert",
    "seq": 1,
    "at": "2022-06-23T13:00:43Z",
    "data": {"id": "1"},
}


@pytest.mark.parametrize(
    ("record", "fmt"),
    [
        (dms_record(), Format.DMS),
        (dms_record(metadata__record_type="control"), Format.DMS),
        (debezium_payload(), Format.DEBEZIUM),
        (wrapped(debezium_payload()), Format.DEBEZIUM),
        (NATIVE, Format.NATIVE),
    ],
)
def test_detect_chooses_the_format_from_the_shape(record: dict[str, Any], fmt: Format) -> None:
    assert detect(record) is fmt
