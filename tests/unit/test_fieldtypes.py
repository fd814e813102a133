"""Field types: values normalised so that equal meaning gives equal values."""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from tests.conftest import PLACEMENT_CONFIG
from tidings.config import EntityType, FieldType, parse_config
from tidings.errors import InputError
from tidings.fieldtypes import BadValue, RecordNormaliser, canonical_decimal, normaliser_for

LONDON = ZoneInfo("Europe/London")
CONFIG = parse_config(PLACEMENT_CONFIG)


def norm(kind: FieldType, value: Any) -> Any:
    return normaliser_for(kind, LONDON)(value)


# --- decimal ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "canonical"),
    [
        ("1.0", "1"),
        ("1", "1"),
        ("0.10", "0.1"),
        ("1E+2", "100"),
        ("1e-7", "0.0000001"),
        ("-0", "0"),
        ("-0.00", "0"),
        ("0.000", "0"),
        (" 2.50 ", "2.5"),
        ("-3.140", "-3.14"),
        (5, "5"),
        (0.1, "0.1"),
        (2.0, "2"),
    ],
)
def test_decimal_is_canonical(raw: Any, canonical: str) -> None:
    assert norm(FieldType.DECIMAL, raw) == canonical


def test_decimal_representations_of_one_value_are_equal() -> None:
    assert norm(FieldType.DECIMAL, "1.0") == norm(FieldType.DECIMAL, "1")
    assert norm(FieldType.DECIMAL, "1E+2") == norm(FieldType.DECIMAL, 100)


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ("abc", "expected a decimal number"),
        (True, "expected a decimal number, got a boolean"),
        ([1], "expected a decimal number"),
        ("NaN", "expected a finite decimal number"),
        ("Infinity", "expected a finite decimal number"),
        (float("inf"), "expected a finite decimal number"),
        ("1e100000000", "has an exponent of 100,000,000; it must lie within ±100"),
        ("1e-5000000", "has an exponent of -5,000,000; it must lie within ±100"),
        ("1" * 101, "has 101 significant digits; at most 100 are allowed"),
        (2**64, "is outside the 64-bit integer range; send it as a string"),
        (1.2345678901234568e29, "is too large to read exactly as a number; send it as a string"),
    ],
)
def test_decimal_rejects_non_numbers_and_absurd_sizes(raw: Any, message: str) -> None:
    with pytest.raises(BadValue, match=f"^{re.escape(message)}$"):
        norm(FieldType.DECIMAL, raw)


def test_decimal_limits_admit_long_money_and_measurements() -> None:
    assert norm(FieldType.DECIMAL, "1" * 100) == "1" * 100
    assert norm(FieldType.DECIMAL, "1e100") == "1" + "0" * 100
    assert norm(FieldType.DECIMAL, "1e-100") == "0." + "0" * 99 + "1"


def test_a_rejected_value_is_kept_apart_from_the_reason() -> None:
    with pytest.raises(BadValue) as caught:
        norm(FieldType.DECIMAL, "lots")

    assert caught.value.reason == "expected a decimal number"
    assert caught.value.value == "lots"
    assert "lots" not in str(caught.value)


@pytest.mark.parametrize(
    ("one", "other"),
    [
        ("12345678901234567890123456789", "12345678901234567890123456788"),
        ("1.00000000000000000000000000001", "1"),
    ],
)
def test_distinct_long_decimals_stay_distinct(one: str, other: str) -> None:
    assert norm(FieldType.DECIMAL, one) != norm(FieldType.DECIMAL, other)


def test_canonical_decimal_of_zero_has_no_sign_or_exponent() -> None:
    assert canonical_decimal(Decimal("-0E+3")) == "0"
    assert canonical_decimal(Decimal("12.3400")) == "12.34"


# --- int --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "canonical"),
    [("12", 12), (" 12 ", 12), ("-4", -4), ("1.0", 1), ("1e3", 1000), (12, 12), (12.0, 12)],
)
def test_int_accepts_whole_numbers_in_any_form(raw: Any, canonical: int) -> None:
    result = norm(FieldType.INT, raw)

    assert result == canonical
    assert type(result) is int


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ("1.5", "expected a whole number"),
        (1.5, "expected a whole number"),
        ("twelve", "expected a whole number"),
        ("NaN", "expected a whole number"),
        (True, "expected a whole number, got a boolean"),
        (False, "expected a whole number, got a boolean"),
        (2**63, "is outside the 64-bit integer range"),
        (-(2**63) - 1, "is outside the 64-bit integer range"),
        ("9" * 25, "is outside the 64-bit integer range"),
        ("9" * 5000, "is outside the 64-bit integer range"),
        ("1e100000000", "expected a whole number"),
    ],
)
def test_int_rejects_fractions_text_and_booleans(raw: Any, message: str) -> None:
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        norm(FieldType.INT, raw)


@pytest.mark.parametrize("raw", ["Infinity", "-Infinity", "sNaN"])
def test_int_rejects_infinity_and_signalling_nan_as_a_value_error(raw: str) -> None:
    with pytest.raises(ValueError, match="expected a whole number"):
        norm(FieldType.INT, raw)


# --- date -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "raw",
    [
        "2025-08-06",
        "2025-08-06T00:00:00",
        "2025-08-06 00:00:00Z",
        "2025-08-06T00:00:00.000000",
        "2025-08-06T00:00:00+00:00",
    ],
)
def test_date_accepts_a_date_or_a_midnight_timestamp(raw: str) -> None:
    assert norm(FieldType.DATE, raw) == "2025-08-06"


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (
            "2025-08-06T09:30:00",
            "expected a date, got a time of day; declare the field as datetime",
        ),
        ("garbage", "expected a date like 2025-08-06"),
        ("2025-02-30", "expected a date like 2025-08-06"),
        (20250806, "expected a date like 2025-08-06"),
    ],
)
def test_date_rejects_times_of_day_and_garbage(raw: Any, message: str) -> None:
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        norm(FieldType.DATE, raw)


# --- datetime ---------------------------------------------------------------------------------


def test_naive_datetime_is_read_in_the_configured_zone() -> None:
    # 6 August is British Summer Time (UTC+1): 09:30 local is 08:30 UTC.
    assert norm(FieldType.DATETIME, "2025-08-06T09:30:00") == "2025-08-06T08:30:00+00:00"
    # 6 January is GMT (UTC+0).
    assert norm(FieldType.DATETIME, "2025-01-06T09:30:00") == "2025-01-06T09:30:00+00:00"


def test_naive_datetime_follows_the_zone_given() -> None:
    tokyo = normaliser_for(FieldType.DATETIME, ZoneInfo("Asia/Tokyo"))

    assert tokyo("2025-08-06T09:30:00") == "2025-08-06T00:30:00+00:00"


@pytest.mark.parametrize(
    "raw",
    [
        "2025-08-06T09:30:00Z",
        "2025-08-06T09:30:00z",
        "2025-08-06 09:30:00Z",
        "2025-08-06T09:30:00.000Z",
        "2025-08-06T10:30:00+01:00",
        "2025-08-06T09:30:00+00:00",
    ],
)
def test_aware_datetimes_become_one_utc_string(raw: str) -> None:
    assert norm(FieldType.DATETIME, raw) == "2025-08-06T09:30:00+00:00"


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ("soon", "expected a date and time like 2025-08-06T09:30:00Z"),
        (1754472600, "expected a date and time like 2025-08-06T09:30:00Z"),
        ("0001-01-01T00:00:00+23:59", "is outside the years 1900 to 2199"),
        ("9999-12-31T23:59:59-23:59", "is outside the years 1900 to 2199"),
        ("0001-01-01T00:00:00", "is outside the years 1900 to 2199"),
    ],
)
def test_datetime_rejects_garbage(raw: Any, message: str) -> None:
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        norm(FieldType.DATETIME, raw)


# --- bool -------------------------------------------------------------------------------------


@pytest.mark.parametrize("raw", [True, 1, "true", "TRUE", " True ", "t", "1", "yes", "Y"])
def test_bool_true_variants(raw: Any) -> None:
    assert norm(FieldType.BOOL, raw) is True


@pytest.mark.parametrize("raw", [False, 0, "false", "False", "f", "0", "no", "N"])
def test_bool_false_variants(raw: Any) -> None:
    assert norm(FieldType.BOOL, raw) is False


@pytest.mark.parametrize(
    ("raw", "message"),
    [(2, "expected true or false"), ("maybe", "expected true or false")],
)
def test_bool_rejects_anything_else(raw: Any, message: str) -> None:
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        norm(FieldType.BOOL, raw)


# --- string -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "canonical"),
    [("Leeds", "Leeds"), ("", ""), (42, "42"), (1.5, "1.5"), (True, "true"), (False, "false")],
)
def test_string_from_text_numbers_and_booleans(raw: Any, canonical: str) -> None:
    assert norm(FieldType.STRING, raw) == canonical


def test_string_rejects_objects() -> None:
    with pytest.raises(ValueError, match=r"^expected text, got an object$"):
        norm(FieldType.STRING, {"a": 1})


# --- RecordNormaliser -------------------------------------------------------------------------


def test_record_normaliser_normalises_each_declared_field() -> None:
    normalise = RecordNormaliser(CONFIG.entities["Placement"], CONFIG.tz)

    result = normalise(
        {
            "traineeId": 1632,
            "dateFrom": "2025-08-06T00:00:00",
            "wte": "1.0",
            "hours": "40",
            "onCall": "yes",
            "confirmedAt": "2025-08-06T09:30:00",
            "updatedAt": "not checked: ignored",
        }
    )

    assert result == {
        "traineeId": "1632",
        "dateFrom": "2025-08-06",
        "wte": "1",
        "hours": 40,
        "onCall": True,
        "confirmedAt": "2025-08-06T08:30:00+00:00",
        "updatedAt": "not checked: ignored",
    }


def test_record_normaliser_keeps_null_for_every_type() -> None:
    normalise = RecordNormaliser(CONFIG.entities["Placement"], CONFIG.tz)
    nulls = dict.fromkeys(["traineeId", "dateFrom", "wte", "hours", "onCall", "confirmedAt"])

    assert normalise(nulls) == nulls


def test_record_normaliser_passes_undeclared_fields_through_unchanged() -> None:
    normalise = RecordNormaliser(CONFIG.entities["Placement"], CONFIG.tz)
    nested = {"a": [1, "2.0"], "b": None}

    result = normalise({"grade": "F1", "extra": nested, "n": "1.0"})

    assert result == {"grade": "F1", "extra": nested, "n": "1.0"}


def test_record_normaliser_with_no_declared_fields_is_the_identity() -> None:
    normalise = RecordNormaliser(EntityType(name="Thing"), LONDON)
    record = {"x": "1.0", "y": 2, "z": None}

    assert normalise(record) == record


@pytest.mark.parametrize(
    ("field", "value", "reason"),
    [
        ("wte", "lots", "expected a decimal number"),
        ("hours", "1.5", "expected a whole number"),
        ("dateFrom", "2025-08-06T09:00:00", "expected a date, got a time of day"),
        ("onCall", "perhaps", "expected true or false"),
        ("confirmedAt", "later", "expected a date and time like"),
        ("traineeId", ["A"], "expected text, got a list"),
    ],
)
def test_record_normaliser_raises_input_error_naming_the_data_field(
    field: str, value: Any, reason: str
) -> None:
    normalise = RecordNormaliser(CONFIG.entities["Placement"], CONFIG.tz)

    with pytest.raises(InputError) as caught:
        normalise({"site": "Leeds", field: value})

    assert caught.value.field == f"data.{field}"
    assert caught.value.reason.startswith(reason)
    assert f"field 'data.{field}'" in str(caught.value)
    assert caught.value.value == repr(value)


def test_record_normaliser_turns_an_infinite_int_into_an_input_error() -> None:
    normalise = RecordNormaliser(CONFIG.entities["Placement"], CONFIG.tz)

    with pytest.raises(InputError) as caught:
        normalise({"hours": "Infinity"})

    assert caught.value.field == "data.hours"
