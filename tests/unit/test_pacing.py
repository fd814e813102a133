"""Pacing: retry backoff, token buckets, and the per-channel / per-domain pacer."""

from __future__ import annotations

import random
import statistics

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tidings.config import DeliveryConfig, WebhookChannel
from tidings.outbox.pacing import (
    DOMAIN_BURST,
    MIN_BACKOFF,
    MIN_WAIT,
    Pacer,
    TokenBucket,
    backoff_delay,
    email_domain,
)


class Lowest(random.Random):
    """An rng whose every draw is the lowest possible, to pin the bounds exactly."""

    def uniform(self, a: float, b: float) -> float:
        return a


class Highest(random.Random):
    def uniform(self, a: float, b: float) -> float:
        return b


# --- backoff ----------------------------------------------------------------------------------


def test_first_retry_waits_between_half_base_and_base() -> None:
    assert backoff_delay(1, base=30, cap=21600, rng=Lowest()) == 15.0
    assert backoff_delay(1, base=30, cap=21600, rng=Highest()) == 30.0


def test_backoff_doubles_per_attempt_until_the_cap() -> None:
    highest = [backoff_delay(n, base=30, cap=600, rng=Highest()) for n in range(1, 8)]
    lowest = [backoff_delay(n, base=30, cap=600, rng=Lowest()) for n in range(1, 8)]
    assert highest == [30, 60, 120, 240, 480, 600, 600]
    assert lowest == [15, 30, 60, 120, 240, 300, 300]


def test_backoff_never_exceeds_the_cap_even_for_huge_attempts() -> None:
    rng = random.Random(1)
    for attempt in (20, 64, 1_000, 100_000):
        delay = backoff_delay(attempt, base=30, cap=21600, rng=rng)
        assert 10800 <= delay <= 21600


def test_backoff_has_a_floor_unless_the_cap_is_lower() -> None:
    assert backoff_delay(1, base=0.01, cap=60, rng=Lowest()) == MIN_BACKOFF
    assert backoff_delay(1, base=0.01, cap=0.5, rng=Highest()) == 0.5


def test_backoff_is_deterministic_for_a_seeded_rng() -> None:
    def run(seed: int) -> list[float]:
        rng = random.Random(seed)
        return [backoff_delay(n, base=30, cap=21600, rng=rng) for n in range(1, 10)]

    assert run(42) == run(42)
    assert run(42) != run(43)


def test_backoff_jitter_spreads_evenly_over_the_upper_half() -> None:
    rng = random.Random(2024)
    delays = [backoff_delay(3, base=10, cap=3600, rng=rng) for _ in range(20_000)]
    assert min(delays) >= 20
    assert max(delays) <= 40
    assert statistics.fmean(delays) == pytest.approx(30, abs=0.2)
    quartiles = statistics.quantiles(delays, n=4)
    assert quartiles == pytest.approx([25, 30, 35], abs=0.3)


@pytest.mark.parametrize(
    ("attempt", "base", "cap"), [(0, 30, 60), (1, 0, 60), (1, 30, 0), (1, -1, 60)]
)
def test_backoff_rejects_nonsense(attempt: int, base: float, cap: float) -> None:
    with pytest.raises(ValueError, match=r"attempt|positive"):
        backoff_delay(attempt, base=base, cap=cap, rng=random.Random(0))


# --- token bucket -----------------------------------------------------------------------------


def test_bucket_allows_a_burst_then_paces_at_its_rate() -> None:
    bucket = TokenBucket(2, burst=4)
    assert [bucket.take(100.0) for _ in range(4)] == [0, 0, 0, 0]
    assert bucket.take(100.0) == 0.5
    assert bucket.take(100.0) == 0.5  # a refusal consumes nothing
    assert bucket.take(100.25) == 0.25
    assert bucket.take(100.5) == 0
    assert bucket.take(100.5) == 0.5


def test_bucket_refills_only_up_to_its_burst() -> None:
    bucket = TokenBucket(2, burst=4)
    for _ in range(4):
        bucket.take(0.0)
    assert bucket.take(1000.0) == 0
    assert [bucket.take(1000.0) for _ in range(3)] == [0, 0, 0]
    assert bucket.take(1000.0) == 0.5


def test_bucket_takes_several_at_once() -> None:
    bucket = TokenBucket(4, burst=8)
    assert bucket.take(0.0, n=6) == 0
    assert bucket.take(0.0, n=4) == 0.5  # 2 left, 2 more at 4 a second
    assert bucket.take(0.5, n=4) == 0
    with pytest.raises(ValueError, match="burst"):
        bucket.take(1.0, n=9)


def test_a_clock_stepping_back_mints_no_tokens() -> None:
    bucket = TokenBucket(1, burst=1)
    assert bucket.take(50.0) == 0
    assert bucket.take(40.0) == 11.0  # ready at 51, measured from the stepped-back now
    assert bucket.take(50.5) == 0.5
    assert bucket.take(51.0) == 0


def test_bucket_never_asks_for_a_vanishingly_short_wait() -> None:
    bucket = TokenBucket(1000, burst=1)
    bucket.take(0.0)
    assert bucket.take(0.0009999) == MIN_WAIT


@pytest.mark.parametrize(("rate", "burst"), [(0, 1), (-1, 1), (1, 0.5), (float("inf"), 1)])
def test_bucket_rejects_nonsense(rate: float, burst: float) -> None:
    with pytest.raises(ValueError, match=r"rate|burst"):
        TokenBucket(rate, burst)


@settings(max_examples=300, deadline=None)
@given(
    rate=st.floats(0.05, 50),
    burst=st.integers(1, 10),
    gaps=st.lists(st.floats(0, 3), min_size=1, max_size=120),
    start=st.floats(0, 2e9),
)
def test_allowed_takes_in_any_interval_never_exceed_rate_times_interval_plus_burst(
    rate: float, burst: int, gaps: list[float], start: float
) -> None:
    bucket = TokenBucket(rate, burst)
    now = start
    allowed: list[float] = []
    for gap in gaps:
        now += gap
        if bucket.take(now) == 0:
            allowed.append(now)
    for i in range(len(allowed)):
        for j in range(i, len(allowed)):
            # Allow for float rounding of the times themselves, nothing more.
            slack = 1e-9 + rate * 4e-16 * abs(allowed[j])
            assert j - i + 1 <= rate * (allowed[j] - allowed[i]) + burst + slack


@settings(max_examples=200, deadline=None)
@given(rate=st.floats(0.05, 500), burst=st.integers(1, 10), start=st.floats(0, 2e9))
def test_waiting_as_told_is_enough(rate: float, burst: int, start: float) -> None:
    bucket = TokenBucket(rate, burst)
    now = start
    for _ in range(burst):
        assert bucket.take(now) == 0
    for _ in range(5):
        wait = bucket.take(now)
        assert wait > 0
        now += wait
        # At most one more minimal wait to absorb float rounding of ``now + wait``.
        again = bucket.take(now)
        if again:
            assert again == MIN_WAIT
            now += again
            assert bucket.take(now) == 0


# --- email domains ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("address", "domain"),
    [
        ("alice@Example.ORG", "example.org"),
        ("odd@name@nhs.net", "nhs.net"),
        (" bob@gmail.com. ", "gmail.com"),
        ("+447700900123", None),
        ("T-1001", None),
        ("nobody@", None),
        ("", None),
    ],
)
def test_email_domain(address: str, domain: str | None) -> None:
    assert email_domain(address) == domain


# --- pacer ------------------------------------------------------------------------------------


def pacer(**domain_rates: int) -> Pacer:
    # Domain default 60 a minute = 1 a second, burst 5.
    return Pacer({"email": 100, "notify": 100, "sms": 2, "slow": 0.5}, 60, domain_rates)


def test_channel_allows_about_a_seconds_worth_then_its_rate() -> None:
    p = pacer()
    assert [p.wait_for("sms", "+447700900123", 0.0) for _ in range(2)] == [0, 0]
    assert p.wait_for("sms", "+447700900123", 0.0) == 0.5
    assert p.wait_for("sms", "+447700900999", 0.5) == 0
    # Slower than one a second: a burst of one.
    assert p.wait_for("slow", "T-1", 0.0) == 0
    assert p.wait_for("slow", "T-2", 0.0) == 2.0


def test_a_domain_gets_a_few_at_once_then_its_per_minute_rate() -> None:
    p = pacer()
    sent = [p.wait_for("email", f"p{i}@gmail.com", 0.0) for i in range(DOMAIN_BURST)]
    assert sent == [0] * DOMAIN_BURST
    assert p.wait_for("email", "late@gmail.com", 0.0) == 1.0
    assert p.wait_for("email", "late@gmail.com", 1.0) == 0
    assert p.wait_for("email", "later@GMAIL.com", 1.0) == 1.0  # case does not matter


def test_domains_are_limited_independently() -> None:
    p = pacer()
    for i in range(DOMAIN_BURST):
        p.wait_for("email", f"p{i}@gmail.com", 0.0)
    assert p.wait_for("email", "x@gmail.com", 0.0) == 1.0
    assert p.wait_for("email", "x@nhs.net", 0.0) == 0
    assert p.wait_for("email", "x@hee.nhs.uk", 0.0) == 0


def test_a_domain_limit_is_shared_across_channels() -> None:
    p = pacer()
    for i in range(3):
        assert p.wait_for("email", f"e{i}@nhs.net", 0.0) == 0
    for i in range(2):
        assert p.wait_for("notify", f"n{i}@nhs.net", 0.0) == 0
    assert p.wait_for("notify", "n9@nhs.net", 0.0) == 1.0
    assert p.wait_for("email", "e9@nhs.net", 0.0) == 1.0


def test_domain_rates_override_the_default_per_domain() -> None:
    p = pacer(**{"NHS.net": 6, "bulk.example": 600})
    for i in range(5):
        assert p.wait_for("email", f"p{i}@nhs.net", 0.0) == 0
    assert p.wait_for("email", "p9@nhs.net", 0.0) == 10.0  # 6 a minute
    for i in range(5):
        assert p.wait_for("email", f"p{i}@bulk.example", 0.0) == 0
    assert p.wait_for("email", "p9@bulk.example", 0.0) == 0.1  # 600 a minute


def test_a_domain_allowing_fewer_than_the_burst_a_minute_bursts_only_that_many() -> None:
    p = pacer(**{"tiny.example": 2})
    assert p.wait_for("email", "a@tiny.example", 0.0) == 0
    assert p.wait_for("email", "b@tiny.example", 0.0) == 0
    assert p.wait_for("email", "c@tiny.example", 0.0) == 30.0


def test_phone_numbers_and_ids_have_no_domain_limit() -> None:
    p = pacer()
    assert all(p.wait_for("email", f"T-{i}", 0.0) == 0 for i in range(100))
    assert p.wait_for("email", "T-100", 0.0) == 0.01  # only the channel's own rate


def test_a_refusal_consumes_from_neither_bucket() -> None:
    p = pacer()
    # The channel refuses: the domain keeps its tokens.
    assert p.wait_for("slow", "a@x.example", 0.0) == 0
    assert p.wait_for("slow", "b@x.example", 0.0) == 2.0
    assert [p.wait_for("email", f"{i}@x.example", 0.0) for i in range(4)] == [0] * 4
    assert p.wait_for("email", "z@x.example", 0.0) == 1.0
    # The domain refuses: the channel keeps its tokens.
    q = pacer(**{"y.example": 1})
    assert q.wait_for("sms", "a@y.example", 0.0) == 0
    assert q.wait_for("sms", "b@y.example", 0.0) == 60.0
    assert q.wait_for("sms", "+447700900123", 0.0) == 0
    assert q.wait_for("sms", "+447700900124", 0.0) == 0.5


def test_a_paused_channel_waits_then_resumes_at_its_rate_without_a_burst() -> None:
    p = pacer()
    p.pause("sms", until=30.0)
    assert p.wait_for("sms", "+447700900123", 10.0) == 20.0
    assert p.wait_for("email", "+447700900123", 10.0) == 0  # other channels go on
    p.pause("sms", until=20.0)  # an earlier pause does not shorten it
    assert p.paused_until("sms") == 30.0
    assert p.wait_for("sms", "+447700900123", 29.5) == 0.5
    assert p.wait_for("sms", "+447700900123", 30.0) == 0
    assert p.wait_for("sms", "+447700900123", 30.0) == 0.5
    assert p.paused_until("sms") is None


def test_a_pause_does_not_use_up_the_domain() -> None:
    p = pacer()
    p.pause("email", until=60.0)
    assert p.wait_for("email", "a@gmail.com", 0.0) == 60.0
    assert [p.wait_for("notify", f"{i}@gmail.com", 0.0) for i in range(5)] == [0] * 5


def test_an_unknown_channel_is_an_error() -> None:
    with pytest.raises(KeyError, match="carrier-pigeon"):
        pacer().wait_for("carrier-pigeon", "a@b.c", 0.0)
    with pytest.raises(KeyError, match="carrier-pigeon"):
        pacer().pause("carrier-pigeon", 10.0)


def test_from_config() -> None:
    hook = WebhookChannel.model_validate(
        {"name": "hook", "kind": "webhook", "url": "https://example.org", "secret_env": "S"}
    )
    hook = hook.model_copy(update={"rate_per_second": 3.0})
    delivery = DeliveryConfig.model_validate(
        {"domain_rate_per_minute": 120, "domain_rates": {"nhs.net": 30}}
    )
    p = Pacer.from_config({"hook": hook}, delivery.domain_rate_per_minute, delivery.domain_rates)
    assert [p.wait_for("hook", "T-1", 0.0) for _ in range(4)] == [0, 0, 0, 1 / 3]
    # nhs.net: 30 a minute (0.5 a second), burst 5; the hook refills to 3 each second.
    times = [10.0, 10.0, 10.0, 11.0, 11.0, 11.0]
    assert [p.wait_for("hook", "a@nhs.net", t) for t in times] == [0] * 5 + [1.0]
