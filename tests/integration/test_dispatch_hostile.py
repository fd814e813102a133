"""A hostile or broken receiver never breaks the dispatcher: absurd ``Retry-After`` values are
held to the configured bounds, "slow down" replies have a budget of their own, ``--once``
always ends, one notice's trouble never costs another its outcome, and a channel that cannot
be reached is paused and reported. A real local HTTP receiver and SMTP port, both stores."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tests.conftest import FakeClock
from tests.fakes.webhook_receiver import Receiver, Reply
from tests.helpers import event, lines
from tests.notify_setup import advance, bootstrap, dispatch, notify_config
from tidings.api import Tidings
from tidings.delivery import serve
from tidings.outbox import attention
from tidings.outbox.channel import (
    Delivered,
    Message,
    Outcome,
    RateLimited,
)
from tidings.outbox.dispatcher import DispatchStats
from tidings.store.codec import from_us
from tidings.store.records import DELIVERED, FAILED, PENDING, SENDING

BOOT = datetime(2025, 8, 5, 17, 0, tzinfo=UTC)
DAY1 = datetime(2025, 8, 6, 17, 0, tzinfo=UTC)
SECRET = "webhook-Shared-Signing-Secret"
PEOPLE = [(f"T{n}", f"t{n}@nhs.example") for n in range(1, 21)]


@pytest.fixture(autouse=True)
def _no_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)


def _rule(channel: str) -> dict[str, Any]:
    return {
        "name": "placements",
        "entity": "Placement",
        "category": "placements",
        "template": "default",
        "channels": [channel],
    }


def _region(
    store_url: str,
    clock: FakeClock,
    channels: dict[str, Any],
    *,
    environ: dict[str, str] | None = None,
    injected: dict[str, Any] | None = None,
    **overrides: Any,
) -> Tidings:
    name = next(iter(channels))
    config = notify_config(store_url, 2525, channels=channels, rules=[_rule(name)], **overrides)
    app = Tidings(config, clock=clock, environ=environ, channels=injected)
    advance(clock, BOOT + timedelta(minutes=1))
    bootstrap(app, PEOPLE, BOOT)
    advance(clock, DAY1 + timedelta(minutes=1))
    app.ingest_lines(
        lines(
            *(
                event(
                    f"P{n}",
                    f"P{n}",
                    "upsert",
                    1,
                    "2025-08-06T10:00:00+01:00",
                    {"traineeId": f"T{n}", "site": "Leeds"},
                )
                for n in range(1, 21)
            )
        )
    )
    app.close(DAY1)
    return app


def _rows(app: Tidings) -> dict[str, Any]:
    with app.store.read() as tx:
        return {n.recipient: n for n in tx.outbox.all()}


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with Receiver(numbered=True) as r:
        yield r


def _hooked(store_url: str, clock: FakeClock, receiver: Receiver, **delivery: Any) -> Tidings:
    hook = {
        "kind": "webhook",
        "url": receiver.url,
        "secret_env": "HOOK_SECRET",
        "max_attempts": 3,
        "max_rate_limits": 3,
        "timeout": 5,
    }
    return _region(
        store_url,
        clock,
        {"hook": hook},
        environ={"HOOK_SECRET": SECRET},
        delivery={"max_retry_after": "1h", "domain_rate_per_minute": 100_000, **delivery},
    )


@pytest.mark.parametrize("status", [429, 503])
def test_an_absurd_retry_after_is_held_to_the_maximum_and_loses_no_other_outcome(
    store_url: str, clock: FakeClock, receiver: Receiver, status: int
) -> None:
    app = _hooked(store_url, clock, receiver)
    # The third request of the round is answered with a wait of 31,000 years.
    receiver.queued = [Reply(), Reply(), Reply(status, {"Retry-After": "1000000000000"})]

    stats = dispatch(app)

    rows = _rows(app)
    told = stats.delivered + stats.rate_limited + stats.retrying + stats.deferred
    assert told == 20
    assert stats.rate_limited + stats.retrying == 1
    [refused] = [r for r in rows.values() if r.outcome in ("rate_limited", "transient")]
    assert (refused.status, refused.lease_us) == (PENDING, None)
    assert from_us(refused.due_us) - clock() == timedelta(hours=1)  # max_retry_after
    # Every outcome was recorded: nothing is left claimed to be sent again by a lease expiry.
    assert not [r for r in rows.values() if r.status == SENDING]
    advance(clock, clock() + timedelta(minutes=30))
    assert dispatch(app) == DispatchStats()
    advance(clock, clock() + timedelta(minutes=31))
    dispatch(app)
    assert {r.status for r in _rows(app).values()} == {DELIVERED}
    keys = [r.json["id"] for r in receiver.requests]
    assert len(keys) == 21  # 20 notices, one of them sent again after its wait
    assert len(set(keys)) == 20
    app.store.dispose()


def test_a_retry_after_of_zero_cannot_make_once_loop(
    store_url: str, clock: FakeClock, receiver: Receiver
) -> None:
    app = _hooked(store_url, clock, receiver)
    receiver.reply = Reply(429, {"Retry-After": "0"})

    stats = dispatch(app)  # ends: each notice is tried once

    assert stats.rate_limited >= 1
    assert len(receiver.requests) == stats.rate_limited <= 20
    for row in _rows(app).values():
        assert row.status == PENDING
        assert from_us(row.due_us) > clock()  # at least min_retry_after away
    app.store.dispose()


def test_rate_limits_have_a_budget_after_which_the_notice_needs_attention(
    store_url: str, clock: FakeClock, receiver: Receiver
) -> None:
    app = _hooked(store_url, clock, receiver)
    receiver.reply = Reply(429, {"Retry-After": "99999999999"})

    for _ in range(100):  # max_rate_limits = 3: the fourth reply gives up
        dispatch(app)
        if {r.status for r in _rows(app).values()} == {FAILED}:
            break
        advance(clock, clock() + timedelta(hours=1, seconds=1))

    rows = _rows(app)
    assert {r.status for r in rows.values()} == {FAILED}
    assert all("gave up after 3 rate-limited replies" in r.reason for r in rows.values())
    assert all(r.attempts == 0 and r.rate_limits == 4 for r in rows.values())
    assert {n.id for n in attention.attention(app.store)} == {r.id for r in rows.values()}
    app.store.dispose()


# --- one notice's trouble is its own ----------------------------------------------------------


class _Troubled:
    """A channel (injected) that answers one recipient with an outcome the dispatcher cannot
    make sense of, and everyone else with a delivery."""

    name = "inbox"

    def __init__(self, troubled: str) -> None:
        self.troubled = troubled
        self.sent: list[str] = []

    async def send(self, message: Message) -> Outcome:
        self.sent.append(message.recipient)
        if message.recipient == self.troubled:
            return RateLimited(retry_after=float("nan"), reason="NUL\x00 and \x1b[2J escape")
        return Delivered(provider_ref=f"ref-{message.recipient}")

    async def aclose(self) -> None:
        return None


def test_an_outcome_that_cannot_be_worked_out_is_that_notices_technical_failure(
    store_url: str, clock: FakeClock
) -> None:
    channel = _Troubled("T7")
    app = _region(store_url, clock, {"inbox": {"kind": "inapp"}}, injected={"inbox": channel})

    stats = dispatch(app)

    rows = _rows(app)
    assert stats.delivered == 19
    assert rows["T7"].status == FAILED
    assert rows["T7"].reason.startswith("technical failure")
    assert "\x00" not in rows["T7"].reason
    assert "\x1b" not in rows["T7"].reason
    assert all(r.status == DELIVERED for k, r in rows.items() if k != "T7")
    assert not [r for r in rows.values() if r.status == SENDING]
    app.store.dispose()


def test_the_service_loop_survives_a_failing_round(store_url: str, clock: FakeClock) -> None:
    class Flaky:
        """A dispatcher whose first run fails with a bug, and which then runs normally."""

        def __init__(self) -> None:
            self.runs = 0

        async def run(self, stop: asyncio.Event) -> DispatchStats:
            self.runs += 1
            if self.runs == 1:
                raise RuntimeError("a bug in one round")
            stop.set()
            return DispatchStats(delivered=1)

    flaky = Flaky()

    async def main() -> DispatchStats:
        stop = asyncio.Event()
        return await serve(
            lambda at: None,
            DAY1 + timedelta(days=1),
            lambda at: at + timedelta(days=1),
            flaky,  # type: ignore[arg-type]
            clock,
            stop,
            tick=timedelta(milliseconds=10),
            pause_after_error=0.01,
        )

    stats = asyncio.run(asyncio.wait_for(main(), timeout=10))

    assert flaky.runs == 2
    assert stats.delivered == 1


# --- a channel that cannot be reached ---------------------------------------------------------


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_an_unreachable_smtp_server_is_reported_paused_and_listed_for_attention(
    store_url: str, clock: FakeClock
) -> None:
    email = {
        "kind": "smtp",
        "host": "127.0.0.1",
        "port": _closed_port(),
        "security": "none",
        "from": "tidings@region.example",
        "backoff": "1m",
        "max_attempts": 3,
    }
    app = _region(store_url, clock, {"email": email}, delivery={"concurrency": 2})

    stats = dispatch(app)

    assert list(stats.unreachable) == ["email"]
    assert "Connect call failed" in stats.unreachable["email"]
    rows = _rows(app)
    tried = [r for r in rows.values() if r.attempts == 1]
    # Once the channel is known to be down, the rest wait without using an attempt.
    assert 1 <= len(tried) <= 2
    assert {r.status for r in rows.values()} == {PENDING}
    retrying = attention.retrying(app.store)
    assert {n.id for n in retrying} == {r.id for r in tried}
    for n in retrying:
        assert "connecting to 127.0.0.1" in (n.reason or "")
        assert n.due is not None
        assert n.due > clock()
    app.store.dispose()
