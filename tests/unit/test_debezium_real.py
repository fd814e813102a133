"""Debezium values as the JSON converter writes them, decoded by logical type or by the
config's per-field encoding; ordering by log position; what is not a row change."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tidings.config import parse_config
from tidings.errors import ConfigError, InputError
from tidings.ingest import Line, Validator
from tidings.model import ChangeEvent, Op, Skip
from tidings.sources import debezium
from tidings.sources.debezium_types import decoder_for

DAYS_2026_08_03 = 20668


@pytest.mark.parametrize(
    ("schema", "value", "expected"),
    [
        ({"type": "int32", "name": "io.debezium.time.Date"}, DAYS_2026_08_03, "2026-08-03"),
        ({"type": "int32", "name": "org.apache.kafka.connect.data.Date"}, -1, "1969-12-31"),
        ({"type": "int32", "name": "io.debezium.time.Time"}, 34_200_500, "09:30:00.500000"),
        (
            {"type": "int64", "name": "io.debezium.time.MicroTime"},
            34_200_000_001,
            "09:30:00.000001",
        ),
        ({"type": "int64", "name": "io.debezium.time.NanoTime"}, 34_200_000_000_000, "09:30:00"),
        (
            {"type": "int64", "name": "io.debezium.time.Timestamp"},
            1785663000000,
            "2026-08-02T09:30:00",
        ),
        (
            {"type": "int64", "name": "io.debezium.time.MicroTimestamp"},
            1785663000000123,
            "2026-08-02T09:30:00.000123",
        ),
        (
            {"type": "int64", "name": "io.debezium.time.NanoTimestamp"},
            1785663000000123456,
            "2026-08-02T09:30:00.000123",
        ),
        (
            {
                "type": "bytes",
                "name": "org.apache.kafka.connect.data.Decimal",
                "parameters": {"scale": "2", "connect.decimal.precision": "5"},
            },
            "UA==",
            "0.8",
        ),
        (
            {
                "type": "bytes",
                "name": "org.apache.kafka.connect.data.Decimal",
                "parameters": {"scale": "2"},
            },
            "/2o=",
            "-1.5",
        ),
        (
            {
                "type": "bytes",
                "name": "org.apache.kafka.connect.data.Decimal",
                "parameters": {"scale": "4"},
            },
            "B9A=",
            "0.2",
        ),
        (
            {"type": "struct", "name": "io.debezium.data.VariableScaleDecimal"},
            {"scale": 3, "value": "MDk="},
            "12.345",
        ),
    ],
)
def test_logical_types_decode_to_human_values(
    schema: dict[str, Any], value: Any, expected: Any
) -> None:
    decoder = decoder_for(schema)
    assert decoder is not None
    assert decoder(value) == expected


def test_plain_types_are_left_alone() -> None:
    assert decoder_for({"type": "boolean"}) is None
    assert decoder_for({"type": "string", "name": "io.debezium.time.ZonedTimestamp"}) is None


# --- through the parser and validator ---------------------------------------------------------

FIELDS = {
    "trainee_id": "string",
    "date_from": "date",
    "wte": "decimal",
    "on_call": "bool",
    "updated_at": "datetime",
    "notes": "string",
}


def _config(fields: dict[str, Any] | None = None, **extra: Any) -> Any:
    entity = {"key": "id", "recipient": "trainee_id", "fields": fields or FIELDS}
    return parse_config({"entities": {"placement": entity}, **extra})


def _envelope(op: str, after: dict[str, Any] | None, **source: Any) -> dict[str, Any]:
    meta = {
        "connector": "postgresql",
        "name": "tis",
        "db": "tis",
        "table": "placement",
        "ts_ms": 1785662100000,
    }
    return {
        "before": None,
        "after": after,
        "op": op,
        "ts_ms": 1785662100300,
        "source": meta | source,
    }


def _events(record: Any, config: Any = None) -> Any:
    raw = json.dumps(record).encode()
    return Validator(config or _config()).validate_events(Line("feed", 1, raw))


def test_schemaless_fields_decode_by_the_declared_encoding() -> None:
    config = _config(
        FIELDS
        | {
            "date_from": {"type": "date", "encoding": "days"},
            "wte": {"type": "decimal", "encoding": "base64", "scale": 2},
            "updated_at": {"type": "datetime", "encoding": "us"},
        },
        timezone="UTC",
    )
    after = {
        "id": 1,
        "date_from": DAYS_2026_08_03,
        "wte": "UA==",
        "on_call": 1,
        "updated_at": 1785663000000000,
    }
    (event,) = _events(_envelope("c", after, lsn=24023128), config)
    assert event.data == {
        "id": 1,
        "date_from": "2026-08-03",
        "wte": "0.8",
        "on_call": True,  # MySQL TINYINT(1) sends 1
        "updated_at": "2026-08-02T09:30:00+00:00",
    }


@pytest.mark.parametrize("encoding", ["string", "number"])
def test_decimals_sent_as_text_or_numbers_read_as_they_are(encoding: str) -> None:
    config = _config(FIELDS | {"wte": {"type": "decimal", "encoding": encoding}})
    (event,) = _events(
        _envelope("c", {"id": 1, "wte": 0.8 if encoding == "number" else "0.80"}, lsn=1), config
    )
    assert event.data["wte"] == "0.8"


def test_without_an_encoding_a_days_integer_is_quarantined_not_misread() -> None:
    rejection = _events(_envelope("c", {"id": 1, "date_from": DAYS_2026_08_03}, lsn=1))
    assert rejection.field == "data.date_from"


@pytest.mark.parametrize(
    ("field", "reason"),
    [
        ({"type": "string", "encoding": "days"}, "date and datetime"),
        ({"type": "date", "encoding": "base64", "scale": 2}, "decimal and int"),
        ({"type": "decimal", "encoding": "base64"}, "needs the column's scale"),
        ({"type": "decimal", "scale": 2}, "scale goes with"),
    ],
)
def test_encodings_that_do_not_fit_the_field_are_config_errors(
    field: dict[str, Any], reason: str
) -> None:
    with pytest.raises(ConfigError, match=reason):
        _config({"x": field})


@pytest.mark.parametrize(
    "placeholder", ["__debezium_unavailable_value", "X19kZWJleml1bV91bmF2YWlsYWJsZV92YWx1ZQ=="]
)
def test_an_unavailable_toast_value_makes_a_patch_without_that_column(placeholder: str) -> None:
    after = {"id": 1, "trainee_id": "T1", "notes": placeholder, "wte": "0.8"}
    (event,) = _events(_envelope("u", after, lsn=5))
    assert event.op is Op.PATCH
    assert event.data == {"id": 1, "trainee_id": "T1", "wte": "0.8"}


def test_a_whole_update_stays_an_upsert() -> None:
    (event,) = _events(_envelope("u", {"id": 1, "trainee_id": "T1"}, lsn=5))
    assert event.op is Op.UPSERT


@pytest.mark.parametrize("record", [None, {"schema": None, "payload": None}])
def test_tombstones_are_not_events(record: Any) -> None:
    assert _events(record) is Skip.TOMBSTONE


def test_messages_and_truncates_are_skipped_by_default() -> None:
    assert _events(_envelope("m", None, lsn=7)) is Skip.MESSAGE
    assert _events(_envelope("t", None, lsn=8)) is Skip.TRUNCATE


def test_a_truncate_can_be_quarantined_instead() -> None:
    config = _config(sources={"debezium": {"truncate": "quarantine"}})
    rejection = _events(_envelope("t", None, lsn=8), config)
    assert rejection.field == "op"
    assert "names no rows" in rejection.reason


def _parse(record: dict[str, Any]) -> ChangeEvent:
    event = debezium.parse(record, json.dumps(record).encode(), _config())
    assert isinstance(event, ChangeEvent)
    return event


def test_postgres_orders_by_lsn_or_the_sequence_pair() -> None:
    assert _parse(_envelope("c", {"id": 1}, lsn=24023128)).seq == 24023128
    assert _parse(_envelope("c", {"id": 1}, sequence='["24023119","24023128"]')).seq == 24023128


def _mysql(file: str, pos: int, row: int, ts_ms: int) -> dict[str, Any]:
    return _envelope("u", {"id": 1}, connector="mysql", file=file, pos=pos, row=row, ts_ms=ts_ms)


def test_mysql_orders_by_binlog_position_never_ts_ms() -> None:
    snapshot = _parse(_mysql("mysql-bin.000003", 154, 0, ts_ms=1785663300000))
    change = _parse(_mysql("mysql-bin.000003", 1240, 0, ts_ms=1785663000000))
    second_row = _parse(_mysql("mysql-bin.000003", 1240, 1, ts_ms=1785663000000))
    next_file = _parse(_mysql("mysql-bin.000004", 4, 0, ts_ms=1785663000000))
    assert snapshot.seq < change.seq < second_row.seq < next_file.seq
    assert change.seq == (3 << 43) + (1240 << 11)


def test_a_binlog_file_without_a_number_is_refused_with_the_field() -> None:
    with pytest.raises(InputError) as caught:
        _parse(_mysql("binlog", 4, 0, ts_ms=1785663000000))
    assert caught.value.field == "source.file"


def test_a_bad_decimal_names_its_column_and_keeps_the_value_apart() -> None:
    schema = {
        "type": "struct",
        "fields": [
            {
                "field": "after",
                "type": "struct",
                "fields": [
                    {
                        "field": "wte",
                        "type": "bytes",
                        "name": "org.apache.kafka.connect.data.Decimal",
                        "parameters": {"scale": "2"},
                    }
                ],
            }
        ],
    }
    rejection = _events(
        {"schema": schema, "payload": _envelope("c", {"id": 1, "wte": "not base64!"}, lsn=1)}
    )
    assert rejection.field == "payload.after.wte"
    assert "not base64" not in rejection.reason


def _mysql_gtid(gtid: str, row: int, file: str | None = "mysql-bin.000009") -> dict[str, Any]:
    return _envelope("u", {"id": 1}, connector="mysql", file=file, pos=4, row=row, gtid=gtid)


def test_mysql_can_be_ordered_by_gtid_instead() -> None:
    config = _config(sources={"debezium": {"mysql_order": "gtid"}})
    uuid = "3e11fa47-71ca-11e1-9e33-c80aa9429562"

    def seq(record: dict[str, Any]) -> int:
        event = debezium.parse(record, json.dumps(record).encode(), config)
        assert isinstance(event, ChangeEvent)
        return event.seq

    # A binlog reset puts the later change in a lower-numbered file; its GTID still comes later.
    earlier = seq(_mysql_gtid(f"{uuid}:23", 0, "mysql-bin.000009"))
    later = seq(_mysql_gtid(f"{uuid}:24", 0, "mysql-bin.000001"))
    second_row = seq(_mysql_gtid(f"{uuid}:24", 1, "mysql-bin.000001"))
    assert earlier < later < second_row
    assert later == (24 << 11)
    assert seq(_mysql_gtid("0-1-42", 0)) == 42 << 11  # MariaDB's domain-server-number


def test_a_gtid_without_a_binlog_file_orders_by_the_gtid() -> None:
    assert (
        _parse(_mysql_gtid("3e11fa47-71ca-11e1-9e33-c80aa9429562:7", 2, None)).seq == (7 << 11) + 2
    )


def test_an_unreadable_gtid_is_refused_with_the_field() -> None:
    config = _config(sources={"debezium": {"mysql_order": "gtid"}})
    record = _mysql_gtid("not-a-gtid", 0)
    with pytest.raises(InputError) as caught:
        debezium.parse(record, json.dumps(record).encode(), config)
    assert caught.value.field == "source.gtid"
