"""From a window close to people's mailboxes and inboxes: rules, recipients, preferences,
the outbox, and delivery over a real SMTP server, on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import asdict
from datetime import UTC, datetime, timedelta

import pytest

from tests.conftest import FakeClock
from tests.helpers import event, lines
from tests.notify_setup import advance, bootstrap, dispatch, notify_config, person
from tidings.api import Tidings
from tidings.channels.inapp import InAppInbox
from tidings.demo.smtp_server import LocalSmtpServer
from tidings.errors import ConfigError, InputError
from tidings.notices import preferences
from tidings.outbox.attention import attention, counts, undeliverable_addresses

DAY1 = datetime(2025, 8, 6, 17, 0, tzinfo=UTC)  # 18:00 in London
BOOT = datetime(2025, 8, 1, 17, 0, tzinfo=UTC)


@pytest.fixture
def smtp() -> Iterator[LocalSmtpServer]:
    with LocalSmtpServer() as server:
        yield server


@pytest.fixture
def region(store_url: str, smtp: LocalSmtpServer, clock: FakeClock) -> Iterator[Tidings]:
    app = Tidings(notify_config(store_url, smtp.port), clock=clock)
    advance(clock, BOOT + timedelta(minutes=1))
    bootstrap(app, [("T1", "t1@nhs.example"), ("T2", "t2@gmail.example"), ("T3", None)], BOOT)
    advance(clock, DAY1 + timedelta(minutes=1))
    yield app
    app.store.dispose()


def placement(key: str, trainee: str, seq: int, **data: object) -> dict[str, object]:
    record = {"traineeId": trainee, "site": "Leeds", "dateFrom": "2025-09-01", **data}
    return event(f"{key}-{seq}", key, "upsert", seq, "2025-08-06T10:00:00+01:00", record)


def notice_rows(app: Tidings) -> list[dict[str, object]]:
    with app.store.read() as tx:
        return [asdict(n) for n in tx.outbox.all()]


def test_a_close_writes_one_notice_per_recipient_and_channel_and_dispatch_delivers_them(
    region: Tidings, smtp: LocalSmtpServer
) -> None:
    region.ingest_lines(
        lines(
            placement("P1", "T1", 1),
            placement("P1", "T1", 2, site="York"),  # a burst: one net change
            placement("P2", "T1", 1, site="Hull"),
            placement("P3", "T2", 1),
        )
    )
    region.close(DAY1)
    rows = notice_rows(region)
    assert sorted((r["recipient"], r["channel"], r["changes"]) for r in rows) == [
        ("T1", "email", 2),
        ("T1", "inbox", 2),
        ("T2", "email", 1),
        ("T2", "inbox", 1),
    ]
    assert all(len(str(r["idem_key"])) == 64 for r in rows)
    first = next(r for r in rows if r["recipient"] == "T1" and r["channel"] == "email")
    assert first["address"] == "t1@nhs.example"
    assert "York" in str(first["body"])
    assert "Hull" in str(first["body"])

    stats = dispatch(region)

    assert stats.delivered == 4
    assert sorted(m["To"] for m in smtp.messages) == ["t1@nhs.example", "t2@gmail.example"]
    t1 = next(m for m in smtp.messages if m["To"] == "t1@nhs.example")
    assert t1["Subject"] == first["subject"]
    inbox = InAppInbox("inbox", region.store, region.clock)
    assert [m.state for m in inbox.messages("T1")] == ["unread"]
    assert counts(region.store)["delivered"] == 4


def test_closing_again_creates_nothing_and_dispatching_again_sends_nothing(
    region: Tidings, smtp: LocalSmtpServer
) -> None:
    region.ingest_lines(lines(placement("P1", "T1", 1)))
    region.close(DAY1)
    dispatch(region)
    region.close(DAY1)
    again = dispatch(region)
    assert again.delivered == 0
    assert len(notice_rows(region)) == 2
    assert len(smtp.messages) == 1


def test_a_condition_and_an_exclusion_decide_what_matters(region: Tidings) -> None:
    region.ingest_lines(
        lines(
            placement("P1", "T1", 1, dateTo="2025-07-31"),  # already ended: not told
            placement("P2", "T1", 1, site="Test site"),  # excluded
            placement("P3", "T2", 1, dateTo="2026-07-31"),
        )
    )
    region.close(DAY1)
    assert {r["recipient"] for r in notice_rows(region)} == {"T2"}


def test_related_contacts_get_their_own_digest_with_their_template(
    region: Tidings, smtp: LocalSmtpServer
) -> None:
    contact = event(
        "C1-1",
        "C1",
        "load",
        1,
        "2025-08-06T08:00:00+01:00",
        {"organisationId": "ORG9", "email": "hr@trust.example", "name": "HR team"},
        entity="Contact",
    )
    region.ingest_lines(lines(contact, placement("P1", "T1", 1, employingBodyId="ORG9")))
    region.close(DAY1)
    rows = {(r["recipient"], r["channel"]): r for r in notice_rows(region)}
    assert rows[("Contact:C1", "email")]["template"] == "contact"
    assert rows[("Contact:C1", "email")]["address"] == "hr@trust.example"
    dispatch(region)
    assert "hr@trust.example" in {m["To"] for m in smtp.messages}


def test_opting_out_of_a_channel_drops_it_but_critical_categories_cannot_be_opted_out_of(
    region: Tidings, clock: FakeClock
) -> None:
    config = region.config
    preferences.change(region.store, config, "T1", "placements", now=clock(), opt_out=["email"])
    with pytest.raises(InputError, match="critical"):
        preferences.change(
            region.store, region.config, "T1", "details", now=clock(), opt_out=["email"]
        )
    region.ingest_lines(
        lines(
            placement("P1", "T1", 1),
            person("T1", "new@nhs.example", seq=2, at="2025-08-06T11:00:00+01:00")
            | {"op": "upsert"},
        )
    )
    region.close(DAY1)
    got = sorted((r["channel"], r["category"]) for r in notice_rows(region))
    # Placements reach T1 only in the inbox; the critical change of details still by email.
    assert got == [("email", "details"), ("inbox", "placements")]


def test_weekly_digests_wait_for_the_weekly_day_and_net_out_over_the_week(
    region: Tidings, clock: FakeClock
) -> None:
    preferences.change(
        region.store, region.config, "T1", "placements", now=clock(), frequency="weekly"
    )
    # Wednesday: P1 created; Thursday: its site changes and P2 is created then deleted on Friday.
    region.ingest_lines(lines(placement("P1", "T1", 1)))
    region.close(DAY1)
    assert notice_rows(region) == []
    thursday = DAY1 + timedelta(days=1)
    advance(clock, thursday + timedelta(minutes=1))
    region.ingest_lines(
        lines(
            event("P1-2", "P1", "patch", 2, "2025-08-07T10:00:00+01:00", {"site": "York"}),
            event(
                "P2-1",
                "P2",
                "upsert",
                1,
                "2025-08-07T10:00:00+01:00",
                {"traineeId": "T1", "site": "Hull"},
            ),
        )
    )
    region.close(thursday)
    friday = thursday + timedelta(days=1)
    advance(clock, friday + timedelta(minutes=1))
    region.ingest_lines(lines(event("P2-2", "P2", "delete", 2, "2025-08-08T10:00:00+01:00")))
    region.close(friday)
    assert notice_rows(region) == []
    monday = DAY1 + timedelta(days=5)
    advance(clock, monday + timedelta(minutes=1))
    region.close(monday)
    rows = notice_rows(region)
    assert sorted((r["channel"], r["changes"]) for r in rows) == [("email", 1), ("inbox", 1)]
    body = str(rows[0]["body"])
    assert "York" in body
    assert "Hull" not in body


def test_no_address_holds_the_notice_until_the_person_gets_one(
    region: Tidings, clock: FakeClock, smtp: LocalSmtpServer
) -> None:
    region.ingest_lines(lines(placement("P1", "T3", 1)))
    region.close(DAY1)
    held = [n for n in attention(region.store) if n.channel == "email"]
    assert [(n.recipient, n.status) for n in held] == [("T3", "held")]
    assert "no email address" in str(held[0].reason)
    dispatch(region)
    assert smtp.messages == []

    next_day = DAY1 + timedelta(days=1)
    advance(clock, next_day + timedelta(minutes=1))
    region.ingest_lines(
        lines(
            person("T3", "t3@nhs.example", seq=2, at="2025-08-07T09:00:00+01:00") | {"op": "upsert"}
        )
    )
    region.close(next_day)
    assert region.last_notices() is not None
    assert region.last_notices().released == 1
    dispatch(region)
    # The held placement digest, and the (critical) news of the new address itself.
    assert [m["To"] for m in smtp.messages] == ["t3@nhs.example", "t3@nhs.example"]
    released = next(r for r in notice_rows(region) if r["id"] == held[0].id)
    assert released["status"] == 2
    assert released["address"] == "t3@nhs.example"


def test_a_bounce_marks_the_address_and_holds_later_notices_until_it_changes(
    region: Tidings, clock: FakeClock, smtp: LocalSmtpServer
) -> None:
    smtp.set_reply("t1@nhs.example", 550, "5.1.1 no such user")
    region.ingest_lines(lines(placement("P1", "T1", 1)))
    region.close(DAY1)
    stats = dispatch(region)
    assert stats.failed == 1
    assert [a for a, *_ in undeliverable_addresses(region.store)] == ["t1@nhs.example"]
    failed = [n for n in attention(region.store) if n.status == "failed"]
    assert len(failed) == 1
    assert "550" in str(failed[0].reason)

    # The next day's notice to the same address is held, not sent.
    day2 = DAY1 + timedelta(days=1)
    advance(clock, day2 + timedelta(minutes=1))
    region.ingest_lines(
        lines(event("P1-2", "P1", "patch", 2, "2025-08-07T10:00:00+01:00", {"site": "York"}))
    )
    region.close(day2)
    assert [n.status for n in attention(region.store) if n.channel == "email"] == ["failed", "held"]

    # The trainee's address is corrected upstream: the held notice goes to the new one.
    smtp.clear_replies()
    day3 = day2 + timedelta(days=1)
    advance(clock, day3 + timedelta(minutes=1))
    region.ingest_lines(
        lines(
            person("T1", "t1@nhs-new.example", seq=2, at="2025-08-08T09:00:00+01:00")
            | {"op": "upsert"}
        )
    )
    region.close(day3)
    dispatch(region)
    assert "t1@nhs-new.example" in [m["To"] for m in smtp.messages]


def test_a_transient_reply_is_retried_with_backoff(
    region: Tidings, clock: FakeClock, smtp: LocalSmtpServer
) -> None:
    smtp.set_reply("t1@nhs.example", 452, "4.2.2 mailbox full")
    region.ingest_lines(lines(placement("P1", "T1", 1)))
    region.close(DAY1)
    first = dispatch(region)
    assert first.retrying == 1
    assert smtp.messages == []
    row = next(r for r in notice_rows(region) if r["channel"] == "email")
    assert row["outcome"] == "transient"
    assert "452" in str(row["reason"])
    assert int(str(row["due_us"])) > int(str(row["created_us"]))  # waits: nothing due now
    assert dispatch(region).retrying == 0

    smtp.clear_replies()
    advance(clock, clock() + timedelta(hours=1))
    assert dispatch(region).delivered == 1
    assert [m["To"] for m in smtp.messages] == ["t1@nhs.example"]


def test_gives_up_after_max_attempts_and_lists_it_for_attention(
    region: Tidings, clock: FakeClock, smtp: LocalSmtpServer
) -> None:
    smtp.set_reply("t1@nhs.example", 451, "4.3.0 try later")
    region.ingest_lines(lines(placement("P1", "T1", 1)))
    region.close(DAY1)
    for _ in range(3):
        dispatch(region)
        advance(clock, clock() + timedelta(hours=2))
    failed = [n for n in attention(region.store) if n.channel == "email"]
    assert [(n.status, n.attempts) for n in failed] == [("failed", 3)]
    assert "gave up after 3 attempts" in str(failed[0].reason)


def test_invalid_cel_is_reported_at_start_up_with_the_rule_name(
    store_url: str, smtp: LocalSmtpServer, clock: FakeClock
) -> None:
    config = notify_config(store_url, smtp.port)
    broken = config.rules[1].model_copy(update={"when": "after.site == "})
    config = config.model_copy(update={"rules": (config.rules[0], broken, config.rules[2])})
    with pytest.raises(ConfigError) as caught:
        Tidings(config, clock=clock)
    assert caught.value.problems[0][0] == "rules.1.when"
    assert "current-placements" in caught.value.problems[0][1]


def test_a_prompt_rule_sends_once_the_record_is_quiet_and_the_rest_waits_for_the_daily_digest(
    store_url: str, smtp: LocalSmtpServer, clock: FakeClock
) -> None:
    base = notify_config(store_url, smtp.port)
    moved = {
        "name": "start-date-moves",
        "entity": "Placement",
        "kinds": ["updated"],
        "fields": ["dateFrom"],
        "prompt": True,
        "prompt_delay": "60m",
        "category": "placements",
        "channels": ["email"],
        "template": "default",
    }
    rules = [r.model_dump(by_alias=True, exclude_none=True) for r in base.rules]
    config = notify_config(store_url, smtp.port, rules=[moved, *rules])
    app = Tidings(config, clock=clock)
    try:
        advance(clock, BOOT + timedelta(minutes=1))
        bootstrap(app, [("T1", "t1@nhs.example")], BOOT)
        created = placement("P1", "T1", 1) | {"at": "2025-08-02T10:00:00+01:00"}
        app.ingest_lines(lines(created))
        app.close(BOOT + timedelta(days=1))
        dispatch(app)
        smtp.messages.clear()
        before = len(notice_rows(app))

        # 10:00 the start date moves; at 10:30 the record is not quiet yet; at 11:01 it is.
        app.ingest_lines(lines(placement("P1", "T1", 2, dateFrom="2025-09-08", site="York")))
        assert app.close_prompt(datetime(2025, 8, 6, 9, 30, tzinfo=UTC)) is not None
        assert len(notice_rows(app)) == before
        app.close_prompt(datetime(2025, 8, 6, 10, 1, tzinfo=UTC))
        prompt_rows = notice_rows(app)[before:]
        assert [(r["channel"], r["template"]) for r in prompt_rows] == [("email", "default")]
        assert "8 September 2025" in str(prompt_rows[0]["body"])

        # The daily close tells the inbox (no prompt rule covers it); email is not told twice.
        app.close(DAY1)
        daily_rows = notice_rows(app)[before + 1 :]
        assert [r["channel"] for r in daily_rows] == ["inbox"]
        assert "York" in str(daily_rows[0]["body"])
    finally:
        app.store.dispose()


def test_a_digest_uses_the_template_of_the_first_rule_in_the_file_whatever_the_order(
    store_url: str, smtp: LocalSmtpServer, clock: FakeClock
) -> None:
    # Person changes (rule 2, template "contact") arrive before placements (rule 1, "default")
    # in the close; both go by email to T1: the email uses rule 1's template.
    base = notify_config(store_url, smtp.port)
    rules = [r.model_dump(by_alias=True, exclude_none=True) for r in base.rules]
    rules[2] = {**rules[2], "template": "contact", "category": "placements"}
    app = Tidings(notify_config(store_url, smtp.port, rules=rules), clock=clock)
    try:
        advance(clock, BOOT + timedelta(minutes=1))
        bootstrap(app, [("T1", "t1@nhs.example")], BOOT)
        advance(clock, DAY1 + timedelta(minutes=1))
        app.ingest_lines(
            lines(
                person("T1", "t1@nhs.example", seq=2, at="2025-08-06T09:00:00+01:00")
                | {
                    "op": "upsert",
                    "data": {
                        "forenames": "Trainee T1",
                        "surname": "Jones",
                        "email": "t1@nhs.example",
                        "mobile": None,
                    },
                },
                placement("P1", "T1", 1),
            )
        )
        app.close(DAY1)
        email = next(r for r in notice_rows(app) if r["channel"] == "email")
        assert (email["template"], email["changes"]) == ("default", 2)
    finally:
        app.store.dispose()


class _Rollback(Exception):
    pass


def test_a_large_close_renders_part_in_a_worker_and_writes_the_same_notices(
    region: Tidings,
) -> None:
    from tidings.model import Change, EntityRef, FieldChange, Kind, NoticeItem
    from tidings.notices.composer import NoticeComposer
    from tidings.notices.rendering import template_renderer

    items = []
    for n, trainee in enumerate(["T1", "T2", "T3"] * 4):
        before = {"traineeId": trainee, "site": "Leeds", "dateFrom": "2025-09-03"}
        after = {**before, "dateFrom": f"2025-09-{10 + n}"}
        fields = {"dateFrom": FieldChange(before["dateFrom"], after["dateFrom"])}
        change = Change(EntityRef("tcs", "Placement", f"P{n}"), Kind.UPDATED, fields)
        items.append((trainee, NoticeItem(change, before, after)))
    delivery = region.require_delivery()

    def planned(composer: NoticeComposer) -> list[dict[str, object]]:
        try:
            with region.store.write() as tx:
                composer.compose(tx, window_id=1, closes_at=DAY1, now=DAY1, addressed=items)
                rows = sorted(tx.outbox.all(), key=lambda n: n.idem_key)
                # ids differ on PostgreSQL (sequences are not rolled back)
                raise _Rollback([{**asdict(n), "id": None} for n in rows])
        except _Rollback as done:
            return list(done.args[0])

    renderer = delivery.composer._renderer
    serial = NoticeComposer(region.config, delivery.rules, renderer)
    # Runs of two digests: the worker's runs and ours are written as each is rendered.
    parallel = NoticeComposer(
        region.config,
        delivery.rules,
        renderer,
        parallel=template_renderer,
        parallel_from=1,
        run=2,
    )
    expected = planned(serial)
    assert len(expected) == 6  # three trainees, email and inbox
    assert planned(parallel) == expected
    in_runs = NoticeComposer(region.config, delivery.rules, renderer, run=4)
    assert planned(in_runs) == expected
