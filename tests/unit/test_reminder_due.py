"""When reminders fall due (pure): local times across daylight-saving changes, spread slots,
late dates, and a property test against a plain reference model."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

from hypothesis import given
from hypothesis import strategies as st

from tidings.config import ReminderConfig
from tidings.model import EntityRef
from tidings.reminders.due import Dated, decide, moments, read_date
from tidings.store.codec import to_us

LONDON = ZoneInfo("Europe/London")
REF = EntityRef("tcs", "Placement", "P1")


def _rule(**overrides: object) -> ReminderConfig:
    spec: dict[str, object] = {
        "name": "start",
        "entity": "Placement",
        "field": "dateFrom",
        "days_before": [7, 0],
        "channels": ["inbox"],
    }
    return ReminderConfig.model_validate({**spec, **overrides})


def _dated(day: date, known: datetime = datetime(2025, 1, 1, tzinfo=UTC)) -> Dated:
    return Dated(REF, day, to_us(known), "T1")


def test_due_times_stay_at_nine_across_both_clock_changes() -> None:
    # Spring forward 30 March 2025, fall back 26 October 2025.
    spring = moments(_rule(days_before=[1, 0]), _dated(date(2025, 3, 30)), LONDON)
    autumn = moments(_rule(days_before=[1, 0]), _dated(date(2025, 10, 26)), LONDON)
    assert [m.due_at.isoformat() for m in spring] == [
        "2025-03-29T09:00:00+00:00",
        "2025-03-30T09:00:00+01:00",
    ]
    assert [m.due_at.isoformat() for m in autumn] == [
        "2025-10-25T09:00:00+01:00",
        "2025-10-26T09:00:00+00:00",
    ]


def test_a_time_inside_the_spring_gap_is_due_at_the_change() -> None:
    (moment,) = moments(_rule(days_before=[0], at="01:30"), _dated(date(2025, 3, 30)), LONDON)
    assert moment.due_at.isoformat() == "2025-03-30T02:00:00+01:00"


def test_spread_slots_are_deterministic_per_person_and_day_and_inside_the_window() -> None:
    rule = _rule(spread="09:00-12:00", days_before=[0])
    slots = set()
    for n in range(200):
        dated = Dated(REF, date(2025, 9, 1), 0, f"T{n}")
        (first,) = moments(rule, dated, LONDON)
        (again,) = moments(rule, dated, LONDON)
        assert first.due_at == again.due_at
        local = first.due_at.astimezone(LONDON)
        assert (9, 0) <= (local.hour, local.minute) < (12, 0)
        slots.add(local.time())
    assert len(slots) > 50  # spread out, not one burst


def test_days_after_are_negative_offsets() -> None:
    rule = _rule(days_before=[], days_after=[3])
    (moment,) = moments(rule, _dated(date(2025, 9, 1)), LONDON)
    assert (moment.days_before, moment.due_at.date()) == (-3, date(2025, 9, 4))


def test_late_moments_are_skipped_or_the_newest_sent_once_when_known() -> None:
    known = datetime(2025, 8, 30, 12, 0, tzinfo=UTC)
    at = datetime(2025, 8, 31, tzinfo=UTC)
    skipping = decide(
        _rule(days_before=[14, 7, 0]), _dated(date(2025, 9, 1), known), LONDON, at, set()
    )
    assert [m.days_before for m in skipping.skipped] == [14, 7]
    assert [m.days_before for m in skipping.upcoming] == [0]
    assert skipping.due == ()
    sending = decide(
        _rule(days_before=[14, 7, 0], late="send"),
        _dated(date(2025, 9, 1), known),
        LONDON,
        at,
        set(),
    )
    assert [(m.days_before, m.late, m.due_at) for m in sending.due] == [(7, True, known)]
    assert [m.days_before for m in sending.skipped] == [14]


def test_dates_and_datetimes_are_read_as_local_dates() -> None:
    assert read_date("2025-09-01", LONDON) == date(2025, 9, 1)
    assert read_date("2025-08-31T23:30:00+00:00", LONDON) == date(2025, 9, 1)
    assert read_date("soon", LONDON) is None


@given(
    offsets=st.sets(st.integers(0, 60), min_size=1, max_size=4),
    day=st.dates(date(2024, 1, 1), date(2027, 12, 31)),
    known_days=st.integers(-90, 30),
    at_days=st.integers(-90, 30),
    done=st.sets(st.integers(0, 60), max_size=3),
)
def test_due_matches_a_plain_reference_model(
    offsets: set[int], day: date, known_days: int, at_days: int, done: set[int]
) -> None:
    rule = _rule(days_before=sorted(offsets))
    known = datetime.combine(day, datetime.min.time(), UTC) + timedelta(days=known_days)
    at = datetime.combine(day, datetime.min.time(), UTC) + timedelta(days=at_days, hours=12)
    decided = decide(
        rule, _dated(day, known), LONDON, at, {(REF, d, day.isoformat()) for d in done}
    )
    # The model: 09:00 London on each offset's day; due if at or before `at`, at or after
    # `known`, and never decided.
    expected = set()
    for offset in offsets:
        moment = datetime.combine(day - timedelta(days=offset), datetime.min.time()).replace(
            hour=9, tzinfo=LONDON
        )
        if offset not in done and moment <= at and moment >= known:
            expected.add(offset)
    assert {m.days_before for m in decided.due} == expected
    assert all(m.due_at <= at for m in decided.due)
    assert {m.days_before for m in decided.upcoming}.isdisjoint(expected)
