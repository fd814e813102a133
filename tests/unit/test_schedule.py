"""When windows close: daily cutoffs in a timezone (DST-safe) and quiet periods."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest

from tidings.config import WindowConfig
from tidings.errors import WindowError
from tidings.window.schedule import (
    DailyCutoff,
    QuietPeriod,
    default_close_time,
    local_instant,
    schedule_for,
)

LONDON = ZoneInfo("Europe/London")
SIX_PM = DailyCutoff(time(18, 0), LONDON)


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


# --- daily cutoff -----------------------------------------------------------------------------


def test_last_close_is_todays_cutoff_once_it_has_passed() -> None:
    # 6 August 2025 is BST: 18:00 local is 17:00 UTC.
    assert SIX_PM.last_close(utc(2025, 8, 6, 20, 0)) == utc(2025, 8, 6, 17, 0)


def test_last_close_is_yesterdays_cutoff_before_todays() -> None:
    assert SIX_PM.last_close(utc(2025, 8, 6, 9, 0)) == utc(2025, 8, 5, 17, 0)


def test_next_close_is_todays_cutoff_before_it() -> None:
    assert SIX_PM.next_close(utc(2025, 8, 6, 9, 0)) == utc(2025, 8, 6, 17, 0)


def test_next_close_is_tomorrows_cutoff_after_todays() -> None:
    assert SIX_PM.next_close(utc(2025, 8, 6, 20, 0)) == utc(2025, 8, 7, 17, 0)


def test_exactly_at_the_cutoff_it_is_the_last_close_and_the_next_is_a_day_later() -> None:
    now = utc(2025, 8, 6, 17, 0)

    assert SIX_PM.last_close(now) == now
    assert SIX_PM.next_close(now) == utc(2025, 8, 7, 17, 0)


def test_cutoff_in_winter_is_in_gmt() -> None:
    assert SIX_PM.last_close(utc(2025, 12, 1, 20, 0)) == utc(2025, 12, 1, 18, 0)


def test_now_in_another_offset_is_compared_as_an_instant() -> None:
    # 23:00 at UTC-10 on 6 August is 10:00 BST on 7 August: the last close is 6 August 18:00.
    hawaii_late = datetime(2025, 8, 6, 23, 0, tzinfo=timezone(timedelta(hours=-10)))

    assert SIX_PM.last_close(hawaii_late) == utc(2025, 8, 6, 17, 0)
    assert SIX_PM.next_close(hawaii_late) == utc(2025, 8, 7, 17, 0)


def test_local_midnight_cutoff_just_after_local_midnight() -> None:
    midnight = DailyCutoff(time(0, 0), LONDON)
    # 23:30 UTC on 6 August is 00:30 BST on 7 August.
    now = utc(2025, 8, 6, 23, 30)

    assert midnight.last_close(now) == utc(2025, 8, 6, 23, 0)
    assert midnight.next_close(now) == utc(2025, 8, 7, 23, 0)


# --- across DST changes -----------------------------------------------------------------------


def test_window_containing_the_spring_change_lasts_23_hours() -> None:
    now = utc(2026, 3, 29, 12, 0)

    last, nxt = SIX_PM.last_close(now), SIX_PM.next_close(now)

    assert last == utc(2026, 3, 28, 18, 0)  # GMT
    assert nxt == utc(2026, 3, 29, 17, 0)  # BST
    assert nxt - last == timedelta(hours=23)


def test_window_containing_the_autumn_change_lasts_25_hours() -> None:
    now = utc(2026, 10, 25, 12, 0)

    last, nxt = SIX_PM.last_close(now), SIX_PM.next_close(now)

    assert last == utc(2026, 10, 24, 17, 0)  # BST
    assert nxt == utc(2026, 10, 25, 18, 0)  # GMT
    assert nxt - last == timedelta(hours=25)


def test_a_cutoff_inside_the_spring_gap_closes_at_the_first_instant_after_it() -> None:
    # 01:30 does not exist on 29 March 2026 in London: clocks jump from 01:00 GMT to 02:00 BST.
    half_past_one = DailyCutoff(time(1, 30), LONDON)

    closes = half_past_one.next_close(utc(2026, 3, 28, 12, 0))

    assert closes == utc(2026, 3, 29, 1, 0)
    assert closes.astimezone(LONDON).strftime("%H:%M %Z") == "02:00 BST"


def test_the_day_after_the_gap_the_cutoff_is_normal_again() -> None:
    half_past_one = DailyCutoff(time(1, 30), LONDON)

    assert half_past_one.next_close(utc(2026, 3, 29, 1, 0)) == utc(2026, 3, 30, 0, 30)
    assert half_past_one.last_close(utc(2026, 3, 29, 1, 0)) == utc(2026, 3, 29, 1, 0)


def test_a_cutoff_that_happens_twice_in_autumn_closes_at_its_first_occurrence() -> None:
    # 01:30 happens twice on 25 October 2026: at 00:30 UTC (BST) and at 01:30 UTC (GMT).
    half_past_one = DailyCutoff(time(1, 30), LONDON)

    assert half_past_one.next_close(utc(2026, 10, 24, 12, 0)) == utc(2026, 10, 25, 0, 30)
    # The second 01:30 is not a close: after the first, the next is the following day.
    assert half_past_one.next_close(utc(2026, 10, 25, 0, 30)) == utc(2026, 10, 26, 1, 30)
    assert half_past_one.last_close(utc(2026, 10, 25, 1, 45)) == utc(2026, 10, 25, 0, 30)


def test_local_instant_in_the_gap_and_the_overlap() -> None:
    assert local_instant(datetime(2026, 3, 29).date(), time(1, 30), LONDON) == utc(2026, 3, 29, 1)
    assert local_instant(datetime(2026, 3, 29).date(), time(1, 0), LONDON) == utc(2026, 3, 29, 1)
    assert local_instant(datetime(2026, 10, 25).date(), time(1, 30), LONDON) == utc(
        2026, 10, 25, 0, 30
    )
    assert local_instant(datetime(2026, 10, 25).date(), time(18, 0), LONDON).tzinfo is not None


def test_a_cutoff_in_a_zone_with_a_half_hour_gap() -> None:
    # Lord Howe Island moves its clocks by 30 minutes: on 5 October 2025 02:00 becomes 02:30.
    lord_howe = ZoneInfo("Australia/Lord_Howe")
    cutoff = DailyCutoff(time(2, 15), lord_howe)

    closes = cutoff.next_close(utc(2025, 10, 4, 0, 0))

    assert closes.astimezone(lord_howe).strftime("%Y-%m-%d %H:%M") == "2025-10-05 02:30"


@pytest.mark.parametrize("method", ["last_close", "next_close"])
def test_a_naive_now_raises_window_error(method: str) -> None:
    with pytest.raises(WindowError, match="has no timezone"):
        getattr(SIX_PM, method)(datetime(2025, 8, 6, 20, 0))


# --- quiet period -----------------------------------------------------------------------------

QUIET = QuietPeriod(quiet=timedelta(minutes=60), max_wait=timedelta(hours=24))


def test_due_when_the_newest_event_is_quiet_long_enough() -> None:
    first, last = utc(2025, 8, 6, 9, 0), utc(2025, 8, 6, 10, 0)

    assert QUIET.is_due(first, last, utc(2025, 8, 6, 11, 0)) is True
    assert QUIET.is_due(first, last, utc(2025, 8, 6, 10, 59, 59)) is False


def test_due_when_the_oldest_event_waited_max_wait_despite_a_steady_trickle() -> None:
    first = utc(2025, 8, 6, 9, 0)
    last = utc(2025, 8, 7, 8, 50)  # an edit ten minutes ago

    assert QUIET.is_due(first, last, utc(2025, 8, 7, 9, 0)) is True
    assert QUIET.is_due(first, last, utc(2025, 8, 7, 8, 59)) is False


# --- from config ------------------------------------------------------------------------------


def test_schedule_for_a_cutoff_is_a_daily_cutoff_in_the_zone() -> None:
    schedule = schedule_for(WindowConfig(cutoff="18:30"), LONDON)

    assert schedule == DailyCutoff(time(18, 30), LONDON)


def test_schedule_for_the_default_window_is_17_00_daily() -> None:
    assert schedule_for(WindowConfig(), LONDON) == DailyCutoff(time(17, 0), LONDON)


def test_schedule_for_a_quiet_period_defaults_max_wait_to_a_day() -> None:
    assert schedule_for(WindowConfig(quiet="90m"), LONDON) == QuietPeriod(
        timedelta(minutes=90), timedelta(days=1)
    )


def test_schedule_for_a_quiet_period_with_max_wait() -> None:
    assert schedule_for(WindowConfig(quiet="1h", max_wait="1h30m"), LONDON) == QuietPeriod(
        timedelta(hours=1), timedelta(hours=1, minutes=30)
    )


def test_default_close_time_of_a_daily_cutoff_is_the_last_close() -> None:
    assert default_close_time(SIX_PM, utc(2025, 8, 6, 9, 0)) == utc(2025, 8, 5, 17, 0)


def test_default_close_time_of_a_quiet_period_is_now() -> None:
    now = utc(2025, 8, 6, 9, 17, 3)

    assert default_close_time(QUIET, now) == now


@pytest.mark.parametrize("schedule", [SIX_PM, QUIET])
def test_default_close_time_refuses_a_naive_now(schedule: DailyCutoff | QuietPeriod) -> None:
    with pytest.raises(WindowError, match="give times with an offset"):
        default_close_time(schedule, datetime(2025, 8, 6, 9, 0))
