"""A provider's ``Retry-After`` (RFC 9110: delay-seconds or an HTTP-date), read by one parser
for every channel: never raises, never negative, absurd values merely large (the dispatcher
holds waits to its configured bounds)."""

from __future__ import annotations

from datetime import UTC, datetime
from email.utils import format_datetime

import pytest

from tidings.outbox.channel import parse_retry_after

NOW = datetime(2025, 7, 31, 22, 13, 20, tzinfo=UTC).timestamp()
LONGEST = 10.0**9


@pytest.mark.parametrize(
    ("header", "seconds"),
    [
        ("0", 0.0),
        ("120", 120.0),
        (" 2.5 ", 2.5),
        (format_datetime(datetime(2025, 7, 31, 22, 15, tzinfo=UTC), usegmt=True), 100.0),
        ("Thu, 31 Jul 2025 22:15:00 -0000", 100.0),
        ("Mon, 01 Jan 1900 00:00:00 GMT", 0.0),  # in the past: now
        ("Fri, 31 Dec 9999 23:59:59 GMT", LONGEST),
        ("1000000000000", LONGEST),
        ("99999999999", LONGEST),
    ],
)
def test_both_forms_are_read(header: str, seconds: float) -> None:
    assert parse_retry_after(header, now=NOW) == seconds


@pytest.mark.parametrize(
    "header", [None, "", "   ", "soon", "-1", "-3", "nan", "inf", "1e400", "9" * 5000, "Thu, 99"]
)
def test_anything_else_is_no_advice(header: str | None) -> None:
    assert parse_retry_after(header, now=NOW) is None
