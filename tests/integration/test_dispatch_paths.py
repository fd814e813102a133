"""The dispatcher's paths end to end, from a window close to a real receiver: a signed webhook
(retries, rate limits), GOV.UK Notify (against the fake Notify API) and its delivery receipts,
pacing a large close to one email domain, the ``serve`` loop behind ``tidings run``, and
configuration mistakes found at start-up. Real SQLite and PostgreSQL, real SMTP and HTTP."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import FakeClock
from tests.fakes.notify_server import FakeNotify
from tests.fakes.webhook_receiver import Receiver, Reply
from tests.helpers import event, lines
from tests.notify_setup import advance, bootstrap, dispatch, notify_config
from tidings.api import Tidings
from tidings.channels.inapp import InAppInbox
from tidings.channels.notify import apply_notify_callback
from tidings.channels.webhook import verify
from tidings.delivery import serve
from tidings.demo.smtp_server import LocalSmtpServer
from tidings.errors import ConfigError, InputError
from tidings.outbox.attention import undeliverable_addresses
from tidings.outbox.dispatcher import Dispatcher, DispatchStats
from tidings.outbox.pacing import DOMAIN_BURST
from tidings.store.codec import from_us, to_us
from tidings.store.records import DELIVERED, FAILED, HELD, PENDING

BOOT = datetime(2025, 8, 5, 17, 0, tzinfo=UTC)  # 18:00 in London, the day before
DAY1 = datetime(2025, 8, 6, 17, 0, tzinfo=UTC)  # 18:00 in London
SECRET = "webhook-Shared-Signing-Secret"

PLACEMENT_RULE: dict[str, Any] = {
    "name": "placements",
    "entity": "Placement",
    "category": "placements",
    "template": "default",
}


@pytest.fixture(autouse=True)
def _no_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    # httpx and requests honour proxy variables; every server here is on loopback.
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)


def placement(key: str, trainee: str, seq: int = 1, **data: object) -> dict[str, object]:
    record = {"traineeId": trainee, "site": "Leeds", "dateFrom": "2025-09-01", **data}
    return event(f"{key}-{seq}", key, "upsert", seq, "2025-08-06T10:00:00+01:00", record)


def notice_rows(app: Tidings) -> list[Any]:
    with app.store.read() as tx:
        return list(tx.outbox.all())


def one_notice(app: Tidings, recipient: str) -> Any:
    [row] = [r for r in notice_rows(app) if r.recipient == recipient]
    return row


def region(
    store_url: str,
    clock: FakeClock,
    people: list[tuple[str, str | None]],
    *,
    environ: dict[str, str] | None = None,
    **overrides: Any,
) -> Tidings:
    """A Tidings on ``notify_config`` with ``overrides``, people loaded at BOOT, the clock
    just after DAY1's cutoff."""
    app = Tidings(notify_config(store_url, 2525, **overrides), clock=clock, environ=environ)
    advance(clock, BOOT + timedelta(minutes=1))
    bootstrap(app, people, BOOT)
    advance(clock, DAY1 + timedelta(minutes=1))
    return app


# --- a real local HTTP receiver ------------------------------------------------------------


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with Receiver(numbered=True) as r:
        yield r


@pytest.fixture
def smtp() -> Iterator[LocalSmtpServer]:
    with LocalSmtpServer() as server:
        yield server


# --- 1. the webhook channel through the dispatcher ---------------------------------------


@pytest.fixture
def hooked(store_url: str, clock: FakeClock, receiver: Receiver) -> Iterator[Tidings]:
    app = region(
        store_url,
        clock,
        [("T1", "t1@nhs.example"), ("T2", "t2@trust.example")],
        environ={"HOOK_SECRET": SECRET},
        channels={
            "hook": {
                "kind": "webhook",
                "url": receiver.url,
                "secret_env": "HOOK_SECRET",
                "backoff": "1m",
                "max_attempts": 3,
                "timeout": 5,
            }
        },
        rules=[{**PLACEMENT_RULE, "channels": ["hook"]}],
    )
    yield app
    app.store.dispose()


def test_a_webhook_gets_one_signed_post_per_recipient_carrying_the_close_digest(
    hooked: Tidings, receiver: Receiver
) -> None:
    hooked.ingest_lines(
        lines(
            placement("P1", "T1"),
            placement("P2", "T1", site="Hull"),
            placement("P3", "T2", dateTo="2026-08-31"),
        )
    )
    result = hooked.close(DAY1)
    digests = {d["recipient"]: d["changes"] for d in result.to_json()["digests"]}
    assert sorted(digests) == ["T1", "T2"]

    stats = dispatch(hooked)

    assert (stats.delivered, stats.by_channel) == (2, {"hook": 2})
    assert len(receiver.requests) == 2
    rows = {r.recipient: r for r in notice_rows(hooked)}
    for request in receiver.requests:
        headers = {k.lower(): v for k, v in request.headers.items()}
        assert headers["content-type"] == "application/json"
        assert verify(
            SECRET.encode(),
            headers["x-tidings-timestamp"],
            headers["x-tidings-signature"],
            request.body,
            now=time.time(),
        )
        assert not verify(
            b"another secret",
            headers["x-tidings-timestamp"],
            headers["x-tidings-signature"],
            request.body,
            now=time.time(),
        )
        body = request.json
        recipient = body["recipient"]
        row = rows[recipient]
        assert body["id"] == headers["idempotency-key"] == row.idem_key
        assert body["channel"] == "hook"
        assert body["digest"]["recipient"] == recipient
        assert body["digest"]["changes"] == digests[recipient]
        assert datetime.fromisoformat(body["digest"]["closes_at"]) == DAY1
        assert body["text"] == f"{len(digests[recipient])} change" + (
            "s" if len(digests[recipient]) != 1 else ""
        )
    assert sorted(r.recipient for r in notice_rows(hooked)) == ["T1", "T2"]
    assert {r.status for r in rows.values()} == {DELIVERED}
    assert sorted(r.provider_ref for r in rows.values()) == ["r-1", "r-2"]


def test_a_503_is_retried_after_a_backoff_and_delivered_once_the_clock_moves_on(
    hooked: Tidings, receiver: Receiver, clock: FakeClock
) -> None:
    hooked.ingest_lines(lines(placement("P1", "T1")))
    hooked.close(DAY1)
    receiver.queued = [Reply(503)]

    first = dispatch(hooked)

    assert (first.delivered, first.retrying) == (0, 1)
    row = one_notice(hooked, "T1")
    assert (row.status, row.outcome, row.attempts, row.lease_us) == (PENDING, "transient", 1, None)
    assert "503" in row.reason
    # backoff "1m", first retry: between half of it and all of it from now.
    wait = from_us(row.due_us) - clock()
    assert timedelta(seconds=30) <= wait <= timedelta(seconds=60)

    assert dispatch(hooked) == DispatchStats()  # nothing is due yet
    assert len(receiver.requests) == 1

    advance(clock, clock() + timedelta(seconds=61))
    again = dispatch(hooked)

    assert again.delivered == 1
    row = one_notice(hooked, "T1")
    assert (row.status, row.attempts, row.provider_ref) == (DELIVERED, 2, "r-2")
    first_key, second_key = (r.json["id"] for r in receiver.requests)
    assert first_key == second_key == row.idem_key  # the receiver can drop a repeat


def test_a_429_waits_its_retry_after_without_using_up_attempts(
    hooked: Tidings, receiver: Receiver, clock: FakeClock
) -> None:
    hooked.ingest_lines(lines(placement("P1", "T1")))
    hooked.close(DAY1)
    # More rate limits in a row than max_attempts (3): none of them counts as an attempt.
    receiver.queued = [Reply(429, {"Retry-After": "120"}) for _ in range(4)]

    for _ in range(4):
        stats = dispatch(hooked)
        assert (stats.rate_limited, stats.retrying, stats.failed) == (1, 0, 0)
        row = one_notice(hooked, "T1")
        assert (row.status, row.outcome, row.attempts) == (PENDING, "rate_limited", 0)
        assert row.due_us == to_us(clock() + timedelta(seconds=120))
        assert dispatch(hooked) == DispatchStats()  # not before the provider said
        advance(clock, clock() + timedelta(seconds=121))

    assert dispatch(hooked).delivered == 1
    row = one_notice(hooked, "T1")
    assert (row.status, row.attempts) == (DELIVERED, 1)
    assert len(receiver.requests) == 5


# --- 2. GOV.UK Notify through the dispatcher, and its delivery receipts -----------------


@pytest.fixture
def notify() -> Iterator[FakeNotify]:
    with FakeNotify() as server:
        yield server


@pytest.fixture
def notified(store_url: str, clock: FakeClock, notify: FakeNotify) -> Iterator[Tidings]:
    app = region(
        store_url,
        clock,
        [("T1", "t1@nhs.net"), ("T2", "t2@trust.org"), ("T3", "not an address")],
        environ={"NOTIFY_KEY": notify.api_key},
        channels={
            "notify": {
                "kind": "notify_email",
                "template_id": notify.email_template_id,
                "base_url": notify.base_url,
                "api_key_env": "NOTIFY_KEY",
            }
        },
        rules=[{**PLACEMENT_RULE, "channels": ["notify"]}],
    )
    yield app
    app.store.dispose()


def test_notify_email_is_sent_and_its_receipts_confirm_or_fail_the_notice(
    notified: Tidings, notify: FakeNotify, clock: FakeClock
) -> None:
    notified.ingest_lines(lines(placement("P1", "T1"), placement("P2", "T2")))
    notified.close(DAY1)

    stats = dispatch(notified)

    assert stats.delivered == 2
    sent = {n.to: n for n in notify.notifications}
    assert sorted(sent) == ["t1@nhs.net", "t2@trust.org"]
    t1, t2 = one_notice(notified, "T1"), one_notice(notified, "T2")
    for row, item in ((t1, sent["t1@nhs.net"]), (t2, sent["t2@trust.org"])):
        assert row.status == DELIVERED
        assert row.provider_ref == item.id
        assert item.reference == row.idem_key
        assert item.subject == row.subject
        assert item.personalisation["body"] == row.body

    # T1's mail bounces for good: the notice fails and the address is marked.
    notify.set_status(t1.provider_ref, "permanent-failure")
    assert apply_notify_callback(notified.store, notify.callback_body(t1.provider_ref), clock())
    t1 = one_notice(notified, "T1")
    assert (t1.status, t1.outcome) == (FAILED, "failed")
    assert "permanent-failure" in t1.reason
    assert [(a, c) for a, c, *_ in undeliverable_addresses(notified.store)] == [
        ("t1@nhs.net", "notify")
    ]

    # T2's arrives: the notice stays delivered, now confirmed.
    notify.set_status(t2.provider_ref, "delivered")
    assert apply_notify_callback(notified.store, notify.callback_body(t2.provider_ref), clock())
    t2 = one_notice(notified, "T2")
    assert (t2.status, t2.outcome) == (DELIVERED, "confirmed")

    # A receipt for a notification that is not ours, or not final yet, changes nothing.
    stranger = {**notify.callback_body(t2.provider_ref), "id": str(uuid.uuid4())}
    assert apply_notify_callback(notified.store, stranger, clock()) is False
    notify.set_status(t2.provider_ref, "sending")
    assert not apply_notify_callback(notified.store, notify.callback_body(t2.provider_ref), clock())
    assert one_notice(notified, "T2").outcome == "confirmed"

    # Malformed bodies are refused, naming the field.
    with pytest.raises(InputError) as missing:
        apply_notify_callback(notified.store, {"status": "delivered"}, clock())
    assert missing.value.field == "id"
    with pytest.raises(InputError) as unknown:
        apply_notify_callback(notified.store, {"id": t2.provider_ref, "status": "lost"}, clock())
    assert unknown.value.field == "status"

    # The next day's notice to the bounced address is held, not sent.
    day2 = DAY1 + timedelta(days=1)
    advance(clock, day2 + timedelta(minutes=1))
    notified.ingest_lines(
        lines(event("P1-2", "P1", "patch", 2, "2025-08-07T10:00:00+01:00", {"site": "York"}))
    )
    notified.close(day2)
    later = [r for r in notice_rows(notified) if r.recipient == "T1"][-1]
    assert (later.status, later.address) == (HELD, "t1@nhs.net")
    assert "undeliverable" in later.reason
    assert dispatch(notified).delivered == 0
    assert len(notify.notifications) == 2


def test_an_address_notify_rejects_fails_at_once_and_is_marked_undeliverable(
    notified: Tidings, notify: FakeNotify
) -> None:
    notified.ingest_lines(lines(placement("P3", "T3")))
    notified.close(DAY1)

    stats = dispatch(notified)

    assert (stats.delivered, stats.failed) == (0, 1)
    row = one_notice(notified, "T3")
    assert (row.status, row.attempts) == (FAILED, 1)
    assert "rejected the address" in row.reason
    assert [a for a, *_ in undeliverable_addresses(notified.store)] == ["not an address"]
    assert notify.notifications == []


# --- 3. pacing a large close to one domain ------------------------------------------------


class FakeTimer:
    """Pacing time that passes only in sleeps, without compounding: sleepers started together
    each wake at their own deadline, as they would on a real clock (the test moves it too)."""

    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        deadline = self.now + seconds
        await asyncio.sleep(0)
        self.now = max(self.now, deadline)


def paced_dispatcher(app: Tidings, timer: FakeTimer) -> Dispatcher:
    delivery = app.require_delivery()
    return Dispatcher(
        app.store, app.config, delivery.channels(), clock=app.clock, timer=timer, sleep=timer.sleep
    )


def crowd(store_url: str, clock: FakeClock, smtp: LocalSmtpServer, count: int) -> Tidings:
    people = [(f"T{n:02d}", f"t{n:02d}@trust.example") for n in range(count)]
    people.append(("Z1", "z1@elsewhere.example"))  # the last notice claimed
    app = region(
        store_url,
        clock,
        people,
        channels={
            "email": {
                "kind": "smtp",
                "host": "127.0.0.1",
                "port": smtp.port,
                "security": "none",
                "from": "tidings@region.example",
                "rate_per_second": 100_000,
            }
        },
        rules=[{**PLACEMENT_RULE, "channels": ["email"]}],
        delivery={"domain_rate_per_minute": 60},
    )
    app.ingest_lines(lines(*(placement(f"P{key}", key) for key, _ in people)))
    app.close(DAY1)
    return app


def in_one_loop(app: Tidings, scenario: Callable[[], Awaitable[None]]) -> None:
    """Run ``scenario`` and close the channels in the same event loop (SMTP connections
    belong to the loop that opened them)."""

    async def run() -> None:
        try:
            await scenario()
        finally:
            await app.require_delivery().aclose()

    asyncio.run(run())


CROWD = 20


def test_pacing_sends_about_the_burst_now_and_hands_the_rest_back_with_later_due_times(
    store_url: str, clock: FakeClock, smtp: LocalSmtpServer
) -> None:
    app = crowd(store_url, clock, smtp, CROWD)
    timer = FakeTimer()
    dispatcher = paced_dispatcher(app, timer)
    now = clock()
    rows = notice_rows(app)

    async def scenario() -> None:
        first = await dispatcher.drain()

        # 60 a minute after a burst of 5: waiting up to the dispatcher's hold (2 s) lets a
        # couple more go; the rest would wait long, so they are handed back, not held.
        to_trust = [m for m in smtp.messages if m["To"].endswith("@trust.example")]
        assert DOMAIN_BURST <= len(to_trust) <= DOMAIN_BURST + 3, first
        paced = [r for r in notice_rows(app) if r.status == PENDING]
        assert len(paced) == CROWD - len(to_trust) == first.deferred
        assert all(r.outcome == "paced" and r.lease_us is None for r in paced)
        assert all(r.due_us > to_us(now) for r in paced)
        assert first.delivered + first.deferred == CROWD + 1  # nothing lost

        # Drain after drain as time passes, everyone gets exactly one email.
        for _ in range(CROWD):
            if all(r.status == DELIVERED for r in notice_rows(app)):
                break
            advance(clock, clock() + timedelta(seconds=30))
            timer.now += 30
            await dispatcher.drain()

    try:
        in_one_loop(app, scenario)
        assert all(r.status == DELIVERED for r in notice_rows(app))
        assert sorted(m["To"] for m in smtp.messages) == sorted(r.address for r in rows)
    finally:
        app.store.dispose()


def test_a_slow_domain_does_not_hold_up_mail_to_other_domains_in_the_same_claim(
    tmp_path: Path, clock: FakeClock, smtp: LocalSmtpServer
) -> None:
    app = crowd(f"sqlite:///{tmp_path / 'tidings.db'}", clock, smtp, CROWD)
    dispatcher = paced_dispatcher(app, FakeTimer())

    async def scenario() -> None:
        await dispatcher.drain()

    try:
        in_one_loop(app, scenario)
        order = [m["To"] for m in smtp.messages]
        # Z1's notice is claimed last, but its domain has its whole burst to spare.
        assert order.index("z1@elsewhere.example") < DOMAIN_BURST + 3
    finally:
        app.store.dispose()


# --- 4. serve(): the scheduler and the dispatcher together --------------------------------


def count_windows(app: Tidings) -> int:
    with app.store.read() as tx:
        return len(tx.ledger.windows())


async def until(check: Callable[[], bool], seconds: float = 10.0) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < deadline, "timed out waiting"
        await asyncio.sleep(0.02)


def test_serve_closes_the_window_at_the_cutoff_and_delivers_its_notices(
    store_url: str, clock: FakeClock, smtp: LocalSmtpServer
) -> None:
    config = notify_config(store_url, smtp.port)
    app = Tidings(config, clock=clock)
    try:
        advance(clock, BOOT + timedelta(minutes=1))
        bootstrap(app, [("T1", "t1@nhs.example")], BOOT)
        advance(clock, DAY1 - timedelta(seconds=30))
        app.ingest_lines(lines(placement("P1", "T1")))
        first = app.first_close_due()
        assert first == DAY1
        delivery = app.require_delivery()

        async def scenario() -> DispatchStats:
            stop = asyncio.Event()
            task = asyncio.create_task(
                serve(
                    app.close,
                    first,
                    app.next_close_after,
                    delivery.dispatcher(),
                    clock,
                    stop,
                    each_tick=[("prompt close", app.close_prompt)],
                    tick=timedelta(milliseconds=50),
                )
            )
            try:
                await asyncio.sleep(0.3)
                assert count_windows(app) == 1  # before the cutoff: only the boot window
                assert notice_rows(app) == []

                advance(clock, DAY1 + timedelta(seconds=1))
                await until(lambda: len(smtp.messages) == 1)
                await until(lambda: {r.status for r in notice_rows(app)} == {DELIVERED})
                with app.store.read() as tx:
                    closed = tx.ledger.windows()
                assert [from_us(w.closes_at_us) for w in closed] == [BOOT, DAY1]
                assert closed[-1].counts.digests == 1

                # The next day's cutoff closes again, with nothing to send.
                advance(clock, DAY1 + timedelta(days=1, seconds=1))
                await until(lambda: count_windows(app) == 3)
            finally:
                stop.set()
                stats = await asyncio.wait_for(task, timeout=5)
                await delivery.aclose()
            return stats

        stats = asyncio.run(scenario())

        assert (stats.delivered, stats.by_channel) == (2, {"email": 1, "inbox": 1})
        assert [m["To"] for m in smtp.messages] == ["t1@nhs.example"]
        assert [m.state for m in InAppInbox("inbox", app.store, clock).messages("T1")] == ["unread"]
        assert len(notice_rows(app)) == 2
    finally:
        app.store.dispose()


# --- 5. mistakes found at start-up ---------------------------------------------------------


def test_a_rule_naming_a_template_missing_for_one_of_its_media_fails_at_start_up(
    tmp_path: Path, clock: FakeClock
) -> None:
    folder = tmp_path / "templates"
    folder.mkdir()
    # An email version only: the rule also sends to the in-app inbox.
    (folder / "mine.email.j2").write_text('{% extends "default.email.j2" %}\n', encoding="utf-8")
    config = notify_config(
        f"sqlite:///{tmp_path / 'tidings.db'}",
        2525,
        templates=str(folder),
        rules=[
            {**PLACEMENT_RULE, "name": "email-only", "channels": ["email"], "template": "mine"},
            {**PLACEMENT_RULE, "name": "both", "channels": ["email", "inbox"], "template": "mine"},
            {**PLACEMENT_RULE, "name": "nowhere", "channels": ["inbox"], "template": "nosuch"},
        ],
    )

    with pytest.raises(ConfigError) as caught:
        Tidings(config, clock=clock)

    problems = dict(caught.value.problems)
    assert sorted(problems) == ["rules.1.template", "rules.2.template"]
    assert "mine.inapp.j2" in problems["rules.1.template"]
    assert "nosuch.inapp.j2" in problems["rules.2.template"]


def test_a_broken_template_file_is_reported_with_its_file_and_line(
    tmp_path: Path, clock: FakeClock
) -> None:
    folder = tmp_path / "templates"
    folder.mkdir()
    (folder / "syntax.email.j2").write_text(
        "{% block subject %}Changes{% endblock %}\n"
        "{% block text %}\n"
        "{% for change in changes %}\n"
        "{{ change }\n"
        "{% endblock %}\n"
        "{% block html %}<p>x</p>{% endblock %}\n",
        encoding="utf-8",
    )
    (folder / "crash.inapp.j2").write_text(
        "{% block title %}Changes{% endblock %}\n{% block body %}\n{{ 1 // 0 }}\n{% endblock %}\n",
        encoding="utf-8",
    )
    config = notify_config(
        f"sqlite:///{tmp_path / 'tidings.db'}",
        2525,
        templates=str(folder),
        rules=[
            {**PLACEMENT_RULE, "name": "a", "channels": ["email"], "template": "syntax"},
            {**PLACEMENT_RULE, "name": "b", "channels": ["inbox"], "template": "crash"},
        ],
    )

    with pytest.raises(ConfigError) as caught:
        Tidings(config, clock=clock)

    problems = dict(caught.value.problems)
    assert "syntax.email.j2 line 4" in problems["rules.0.template"]
    assert "crash.inapp.j2 line 3" in problems["rules.1.template"]
    assert "ZeroDivisionError" in problems["rules.1.template"]
