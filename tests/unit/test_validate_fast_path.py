"""The validator's short path for common native lines must accept exactly what the careful
path accepts, and store it identically; anything else must fall through to the careful path,
which names the field and the reason."""

from __future__ import annotations

from typing import Any

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.conftest import PLACEMENT_CONFIG
from tidings.config import parse_config
from tidings.ingest.validate import Line, Rejection, Validator, prepared, validate_batch
from tidings.sources import Format

CONFIG = parse_config({**PLACEMENT_CONFIG, "ingest": {"skip_entities": ["Audit"]}})

_ANY = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**40), 2**40),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=6),
    st.sampled_from(["", "1.0", "0.80", "2025-09-03", "2025-09-03T10:00:00", "true", "Z"]),
    st.lists(st.integers(-100, 100), max_size=2),
)
_AT = st.one_of(
    st.sampled_from(
        [
            "2025-08-06T09:30:00Z",
            "2025-08-06T09:30:00z",
            "2025-08-06T09:30:00+01:00",
            "2025-08-06T09:30:00.123456-05:00",
            "2025-08-06 09:30:00+00:00",
            "2025-08-06T09:30:00",
            "2025-08-06",
            "yesterday",
        ]
    ),
    _ANY,
)
_DATA_VALUES = {
    "id": st.one_of(st.just("K1"), st.just("K2"), st.integers(0, 3), _ANY),
    "traineeId": st.one_of(st.just("T1"), _ANY),
    "site": st.one_of(st.just("Leeds"), _ANY),
    "dateFrom": st.one_of(st.sampled_from(["2025-09-03", "2025-09-03T00:00:00Z"]), _ANY),
    "wte": st.one_of(st.sampled_from(["1.0", "0.8", "1", 1, 0.5]), _ANY),
    "hours": st.one_of(st.integers(0, 60), _ANY),
    "onCall": st.one_of(st.booleans(), _ANY),
    "confirmedAt": st.one_of(st.just("2025-08-06T09:30:00"), _AT),
    "updatedAt": _ANY,
    "unknown": _ANY,
}
_DATA = st.fixed_dictionaries({}, optional=_DATA_VALUES)
_RECORD = st.fixed_dictionaries(
    {},
    optional={
        "id": st.one_of(st.sampled_from(["ev-1", "ev-2"]), _ANY),
        "source": st.one_of(st.just("tis"), _ANY),
        "entity": st.one_of(st.sampled_from(["Placement", "Person", "Audit", "Nope"]), _ANY),
        "key": st.one_of(st.just("K1"), st.integers(0, 3), _ANY),
        "op": st.one_of(st.sampled_from(["upsert", "patch", "load", "delete", "merge"]), _ANY),
        "seq": st.one_of(st.integers(-3, 2**40), _ANY),
        "at": _AT,
        "data": st.one_of(_DATA, _ANY),
    },
)
# Mostly well-formed records, so the short path is taken often, with every kind of damage.
_WELL_FORMED = st.fixed_dictionaries(
    {
        "id": st.sampled_from(["ev-1", "ev-2"]),
        "source": st.just("tis"),
        "entity": st.sampled_from(["Placement", "Person", "Audit"]),
        "key": st.just("K1"),
        "op": st.sampled_from(["upsert", "patch", "load"]),
        "seq": st.integers(0, 100),
        "at": _AT,
        "data": _DATA,
    }
)


def careful(validator: Validator, line: Line) -> tuple[list[Any], list[Rejection], int]:
    outcome = validator.validate(line)
    if outcome is None:
        return [], [], 1
    if isinstance(outcome, Rejection):
        return [], [outcome], 0
    return [prepared(outcome, f"{line.origin}:{line.number}")], [], 0


@settings(max_examples=600, deadline=None)
@given(record=st.one_of(_WELL_FORMED, _RECORD), fmt=st.sampled_from([Format.AUTO, Format.NATIVE]))
def test_short_path_agrees_with_the_careful_path(record: dict[str, Any], fmt: Format) -> None:
    validator = Validator(CONFIG, fmt)
    line = Line("in.jsonl", 3, orjson.dumps(record) + b"\n")

    batch = validate_batch(validator, [line])

    rows, rejected, skipped = careful(validator, line)
    assert (batch.rows, batch.rejected, batch.skipped, batch.lines) == (rows, rejected, skipped, 1)


def test_a_common_line_is_stored_normalised_with_its_origin() -> None:
    raw = orjson.dumps(
        {
            "id": "ev-9",
            "source": "tis",
            "entity": "Placement",
            "key": "K1",
            "op": "patch",
            "seq": 4,
            "at": "2025-08-06T10:30:00+01:00",
            "data": {"wte": "0.80", "dateFrom": "2025-09-03T00:00:00Z", "amendedBy": "x"},
        }
    )

    batch = validate_batch(Validator(CONFIG), [("f.jsonl", 12, raw)])

    assert batch.rows == [
        (
            "ev-9",
            "tis",
            "Placement",
            "K1",
            4,
            "patch",
            1754472600000000,
            '{"amendedBy":"x","dateFrom":"2025-09-03","wte":"0.8"}',
            "f.jsonl:12",
        )
    ]


def test_blank_and_broken_lines_take_the_careful_path() -> None:
    lines = [("f", 1, b"\n"), ("f", 2, b"{not json\n"), ("f", 3, b"[1]\n")]

    batch = validate_batch(Validator(CONFIG), lines)

    assert batch.rows == []
    assert [(r.line.number, r.reason) for r in batch.rejected] == [
        (
            2,
            "not valid JSON: unexpected character, expected a string key "
            "at character 2 of the line",
        ),
        (3, "expected a JSON object on each line"),
    ]
    assert batch.lines == 3
