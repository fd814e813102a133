"""AWS DMS records as DMS writes them: typed values, before images, key changes, records
that are not row changes, and the pretty-printed ``MessageFormat=JSON`` form."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tidings.config import parse_config
from tidings.ingest import Line, Validator, read_lines
from tidings.model import Op, Skip

CONFIG = parse_config(
    {
        "entities": {
            "placement": {
                "key": "id",
                "recipient": "trainee_id",
                "fields": {
                    "trainee_id": "string",
                    "wte": "decimal",
                    "hours": "int",
                    "on_call": "bool",
                },
            }
        }
    }
)


def _record(
    operation: str, data: dict[str, Any], table: str = "placement", **extra: Any
) -> dict[str, Any]:
    meta = {
        "timestamp": "2026-08-02T09:00:00.123456Z",
        "record-type": "data",
        "operation": operation,
        "partition-key-type": "schema-table",
        "schema-name": "tcs",
        "table-name": table,
        "transaction-id": 8589934600,
    }
    return {"data": data, "metadata": meta, **extra}


def _events(record: Any, config: Any = CONFIG) -> Any:
    return Validator(config).validate_events(Line("dms", 1, json.dumps(record).encode()))


def test_typed_values_stay_typed_and_read_by_field_type() -> None:
    (event,) = _events(
        _record(
            "insert", {"id": 101, "trainee_id": "T1", "wte": 0.8, "hours": 32, "on_call": False}
        )
    )
    assert event.key == "101"
    assert event.data == {
        "id": 101,
        "trainee_id": "T1",
        "wte": "0.8",
        "hours": 32,
        "on_call": False,
    }


def test_an_update_is_a_patch_of_the_columns_it_carries_by_default() -> None:
    (event,) = _events(_record("update", {"id": 101, "wte": 0.8}))
    assert event.op is Op.PATCH


def test_an_update_replaces_the_record_when_absent_means_null() -> None:
    config = CONFIG.model_copy(
        update={"sources": parse_config({"sources": {"dms": {"absent": "null"}}}).sources}
    )
    (event,) = _events(_record("update", {"id": 101, "wte": 0.8}), config)
    assert event.op is Op.UPSERT


def test_bi_columns_are_the_before_state_never_fields() -> None:
    (event,) = _events(_record("update", {"id": 101, "wte": 0.8, "BI_id": 101, "BI_wte": 1.0}))
    assert event.data == {"id": 101, "wte": "0.8"}


def test_a_key_change_is_a_delete_of_the_old_key_and_an_insert_of_the_new() -> None:
    record = _record(
        "update", {"id": 104, "trainee_id": "T1", "wte": 1}, **{"before-image": {"id": 102}}
    )
    old, new = _events(record)
    assert (old.key, old.op, old.data) == ("102", Op.DELETE, None)
    assert (new.key, new.op) == ("104", Op.UPSERT)
    assert new.data == {"id": 104, "trainee_id": "T1", "wte": "1"}
    assert old.id != new.id
    assert old.seq == new.seq


def test_a_key_change_through_bi_columns_too() -> None:
    old, new = _events(_record("update", {"id": 104, "BI_id": 102}))
    assert (old.key, new.key) == ("102", "104")


def test_a_before_image_with_the_same_key_is_an_ordinary_update() -> None:
    (event,) = _events(
        _record("update", {"id": 101, "wte": 0.8}, **{"before-image": {"id": 101, "wte": 1.0}})
    )
    assert event.key == "101"
    assert "before-image" not in event.data


@pytest.mark.parametrize(
    ("record", "why"),
    [
        (
            {
                "control": {},
                "metadata": {
                    "record-type": "control",
                    "operation": "create-table",
                    "timestamp": "2026-08-02T09:00:00Z",
                },
            },
            Skip.CONTROL,
        ),
        (
            {"metadata": {"record-type": "transaction", "operation": "begin", "transaction-id": 1}},
            Skip.TRANSACTION,
        ),
        (
            {
                "metadata": {
                    "record-type": "transaction",
                    "operation": "commit",
                    "transaction-id": 1,
                }
            },
            Skip.TRANSACTION,
        ),
        (
            _record(
                "insert",
                {"task_name": "T", "error": "RetCode: SQL_ERROR"},
                table="awsdms_apply_exceptions",
            ),
            Skip.DMS_TABLE,
        ),
        (_record("update", {"id": 1}, table="awsdms_status"), Skip.DMS_TABLE),
    ],
)
def test_records_that_are_not_row_changes_are_skipped_with_the_reason(
    record: dict[str, Any], why: Skip
) -> None:
    assert _events(record) is why


def test_pretty_printed_records_are_read_whole_and_numbered_by_their_first_line() -> None:
    one = json.dumps(_record("insert", {"id": 1}), indent="\t") + "\n"
    two = json.dumps(_record("insert", {"id": 2})) + "\n"
    three = json.dumps(_record("insert", {"id": 3}), indent=2) + "\n"
    stream = (one + two + three).encode().splitlines(keepends=True)
    lines = list(read_lines("cdc.json", stream))
    assert [line.number for line in lines] == [1, one.count("\n") + 1, one.count("\n") + 2]
    assert [json.loads(line.raw)["data"]["id"] for line in lines] == [1, 2, 3]


def test_a_pretty_record_cut_short_is_handed_on_to_be_quarantined() -> None:
    stream = [b"{\n", b'\t"data": {\n']
    (line,) = read_lines("cut.json", stream)
    assert line.number == 1
    assert not isinstance(Validator(CONFIG).validate_events(line), tuple)
