"""The store's named operations behave the same on every store: in memory, SQLite, PostgreSQL.

The higher-level suites run on all three too; these pin down the operations themselves, so
the in-memory store stays a faithful stand-in for fast tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tidings.errors import StoreConflict
from tidings.model import EntityRef
from tidings.store import Store, open_store
from tidings.store.codec import dumps
from tidings.store.records import (
    ACCEPTED,
    DELIVERED,
    FAILED,
    HELD,
    NOTICE_COLUMNS,
    OPEN,
    PENDING,
    SENDING,
    STALE,
    PreferenceRecord,
    Rejected,
    WindowCounts,
)

P1, P2, P3 = (EntityRef("tcs", "Placement", f"P{n}") for n in (1, 2, 3))


@pytest.fixture
def store(store_url: str) -> Iterator[Store]:
    opened = open_store(store_url)
    yield opened
    opened.dispose()


def _event(
    event_id: str, ref: EntityRef, seq: int, at_us: int = 100, status: int = ACCEPTED
) -> tuple:  # type: ignore[type-arg]
    return (event_id, *ref, seq, "upsert", at_us, dumps({"site": event_id}), f"f:{seq}", status, 1)


def test_events_are_appended_found_and_their_records_flagged(store: Store) -> None:
    with store.write() as tx:
        tx.events.append([_event("e1", P1, 1), _event("e2", P1, 2), _event("e3", P2, 1)])
        tx.events.mark_dirty({P1, P2})
    with store.read() as tx:
        assert tx.events.stored(["e1", "x", "e3"]) == {
            "e1": ("tcs", "Placement", "P1", 1, "upsert", 100, dumps({"site": "e1"})),
            "e3": ("tcs", "Placement", "P2", 1, "upsert", 100, dumps({"site": "e3"})),
        }
        states = tx.events.states([P1, P2, P3])
        assert sorted(states) == [P1, P2]
        assert states[P1] == (None, True)
        assert tx.events.pending_count() == 3
        assert tx.events.count() == 3
        assert [e.id for e in tx.events.of_record(P1)] == ["e1", "e2"]
        assert tx.ledger.dirty_count() == 2
        assert tx.ledger.record_count() == 2


def test_an_event_id_stored_twice_is_a_conflict_and_nothing_is_kept(store: Store) -> None:
    with store.write() as tx:
        tx.events.append([_event("e1", P1, 1)])
    with pytest.raises(StoreConflict), store.write() as tx:
        tx.events.append([_event("e9", P2, 1), _event("e1", P2, 2)])
    with store.read() as tx:
        assert tx.events.count() == 1  # the failed transaction left nothing


def test_the_pending_scan_folds_in_key_order_within_bounds(store: Store) -> None:
    with store.write() as tx:
        tx.events.append([_event("b", P2, 2, 50), _event("a", P2, 1, 40), _event("c", P1, 1)])
        tx.events.append([_event("s", P3, 1, status=STALE)])
        tx.events.mark_dirty({P1, P2, P3})
    with store.read() as tx:
        scanned = list(tx.ledger.scan_pending(["Placement"]))
        assert [(r.ref, [e[0] for e in r.events]) for r in scanned] == [
            (P1, ["c"]),
            (P2, ["a", "b"]),  # seq order, whatever the arrival
        ]
        assert [r.ref for r in tx.ledger.scan_pending(["Placement"], (P2, None))] == [P2]
        assert [r.ref for r in tx.ledger.scan_pending(["Placement"], (None, P2))] == [P1]
        assert list(tx.ledger.scan_pending(["Person"])) == []
        spans = {s.ref: (s.first_us, s.last_us) for s in tx.ledger.pending_spans()}
        assert spans == {P1: (100, 100), P2: (40, 50)}
        assert tx.ledger.split_point(["Placement"], 1) == P2


def test_a_close_writes_baselines_windows_and_who_was_told(store: Store) -> None:
    with store.write() as tx:
        tx.events.append([_event("e1", P1, 1), _event("e2", P2, 1)])
        tx.events.mark_dirty({P1, P2})
        window = tx.ledger.open_window(1000, 1001)
        tx.ledger.apply_baselines([(P1, dumps({"site": "e1"}), 1, 0), (P2, None, 1, 1)], window)
        tx.ledger.mark_stale(["e2"])
        tx.ledger.write_told(window, [("T1", *P1, "created", "{}", "rule 'r' sends it")])
        tx.ledger.finish_window(window, WindowCounts(2, 2, 1, 1, 0, 0, 1))
    with store.read() as tx:
        assert tx.ledger.baseline(P1) is not None
        assert tx.ledger.baseline(P1).record == {"site": "e1"}  # type: ignore[union-attr]
        assert tx.ledger.dirty_count() == 1
        assert tx.events.pending_count() == 0  # e1 folded, e2 stale
        assert [
            (t.recipient, t.kind, t.closes_at_us, t.route) for t in tx.ledger.told_about(P1)
        ] == [("T1", "created", 1000, "rule 'r' sends it")]
        assert (tx.ledger.window_at(1000), tx.ledger.window_at(999)) == (window, None)
        [closed] = tx.ledger.windows()
        assert (closed.closes_at_us, closed.counts.digests) == (1000, 1)
        assert tx.ledger.latest_close_us() == 1000
        assert tx.ledger.records("Placement", ["P1", "P2", "P9"]) == {"P1": {"site": "e1"}}
        assert list(tx.ledger.all_records("Placement")) == [("P1", {"site": "e1"})]
    with store.write() as tx:
        assert tx.events.prune(before_us=2) == 2  # folded and stale, ingested at 1


def _notice(key: str, recipient: str, address: str | None = "t@x.example", due: int = 0) -> tuple:  # type: ignore[type-arg]
    values = {
        "idem_key": key, "window_id": 1, "recipient": recipient, "channel": "email",
        "medium": "email", "category": "c", "template": "default", "address": address,
        "subject": "s", "body": "b", "html": None, "payload": "{}", "changes": 1,
        "status": PENDING, "attempts": 0, "due_us": due, "created_us": 0, "reason": None,
        "outcome": None,
    }  # fmt: skip
    return tuple(values[c] for c in NOTICE_COLUMNS)


def test_notices_are_claimed_once_settled_under_their_lease_and_held_for_bad_addresses(
    store: Store,
) -> None:
    with store.write() as tx:
        tx.outbox.add([_notice("k1", "T1"), _notice("k2", "T2", due=500), _notice("k1", "T9")])
        assert len(tx.outbox.all()) == 2  # the repeated key is not written twice
    with store.write() as tx:
        [claim] = tx.outbox.claim(["email"], due_by_us=100, lease_us=900, limit=10)
        assert (claim.idem_key, claim.recipient) == ("k1", "T1")
        assert tx.outbox.claim(["email"], due_by_us=100, lease_us=900, limit=10) == []
    with store.write() as tx:
        stale_lease = (DELIVERED, None, 5, "delivered", None, "ref-1", 1, 0, claim.id, 1)
        ours = (FAILED, None, None, "failed", "550 no", None, 1, 0, claim.id, 900)
        assert tx.outbox.record([stale_lease, ours], 1) == [False, True]
        assert tx.outbox.mark_undeliverable("t@x.example", "email", "550 no", claim.id, 7) == 1
    with store.read() as tx:
        by_key = {n.idem_key: n for n in tx.outbox.all()}
        assert (by_key["k1"].status, by_key["k2"].status) == (FAILED, HELD)
        assert tx.outbox.undeliverable_among(["t@x.example", "y"]) == {"t@x.example": "550 no"}
        assert [n.idem_key for n in tx.outbox.attention(10)] == ["k1", "k2"]
        assert [n.idem_key for n in tx.outbox.held_for(["T2"])] == ["k2"]
        assert tx.outbox.counts() == {FAILED: 1, HELD: 1}
        # Only the outcome whose claim held is kept as an attempt, at the time given.
        assert [
            (a.at_us, a.attempt, a.status, a.reason, a.kind)
            for a in tx.outbox.attempts_of(claim.id)
        ] == [(1, 1, FAILED, "550 no", "attempt")]
    with store.write() as tx:
        assert tx.outbox.forget("t@x.example", 50) == 1
        assert tx.outbox.forget("t@x.example", 50) is None
        assert tx.outbox.retry([by_key["k1"].id], 60) == 1
    with store.read() as tx:
        assert {n.status for n in tx.outbox.all()} == {PENDING}
        assert tx.outbox.due_count() == 2
    with store.write() as tx:
        claims = tx.outbox.claim(["email"], due_by_us=1000, lease_us=2000, limit=1)
        tx.outbox.hand_back(claims[0].id, 2000, 5000, "paced")
    with store.read() as tx:
        handed = next(n for n in tx.outbox.all() if n.id == claims[0].id)
        assert (handed.status, handed.due_us, handed.outcome) == (PENDING, 5000, "paced")


def test_a_claim_whose_lease_ran_out_can_be_taken_over(store: Store) -> None:
    with store.write() as tx:
        tx.outbox.add([_notice("k1", "T1")])
        tx.outbox.claim(["email"], due_by_us=10, lease_us=20, limit=5)
    with store.write() as tx:
        assert tx.outbox.claim(["email"], due_by_us=15, lease_us=40, limit=5) == []
        [again] = tx.outbox.claim(["email"], due_by_us=25, lease_us=40, limit=5)
    with store.read() as tx:
        assert [(n.status, n.lease_us) for n in tx.outbox.all()] == [(SENDING, 40)]
    assert again.idem_key == "k1"


def test_deferred_preferences_and_the_inbox(store: Store) -> None:
    with store.write() as tx:
        tx.deferred.add(
            [
                ("T1", "email", "c", "default", 10, "{}", 0),
                ("T2", "email", "c", "default", 99, "{}", 0),
            ]
        )
        assert [d.recipient for d in tx.deferred.take_due(50)] == ["T1"]
        assert tx.deferred.take_due(50) == []
        tx.preferences.put(PreferenceRecord("T1", "c", frozenset({"email"}), "weekly"), 1)
        tx.preferences.put(PreferenceRecord("T1", "c", frozenset(), None), 2)
        first = tx.inbox.deliver(1, "T1", "title", "body", 3)
        assert tx.inbox.deliver(1, "T1", "title", "body", 4) == first  # once per notice
        assert tx.inbox.mark("T1", first, "read", 5)
        assert not tx.inbox.mark("T2", first, "read", 5)  # only the recipient's own
    with store.read() as tx:
        assert tx.preferences.of("T1") == [PreferenceRecord("T1", "c", frozenset(), None)]
        assert [(m.id, m.state) for m in tx.inbox.messages("T1", include_archived=False)] == [
            (first, "read")
        ]
        assert tx.inbox.messages("T2", include_archived=True) == []


def test_quarantine_and_held_changes(store: Store) -> None:
    line = Rejected("f.jsonl", 3, "native", "e1", "seq", "is missing", b'{"id": "e1"}\n')
    nul = Rejected("f.jsonl", 4, "native", None, None, "not valid JSON", b"\x00\xff")
    with store.write() as tx:
        assert tx.quarantine.add([line, nul, line], 1) == 2
        assert tx.quarantine.add([line], 2) == 0  # the same line of the same file again
    with store.read() as tx:
        entries = tx.quarantine.entries(OPEN, 10, None)
        assert [(e.line, e.exact) for e in entries] == [(3, b'{"id": "e1"}'), (4, b"\x00\xff")]
        assert tx.quarantine.open_count() == 2
    with store.write() as tx:
        tx.quarantine.mark_replayed(entries[0].id, b'{"id": "e1", "seq": 1}', 5)
        assert tx.quarantine.discard([entries[1].id], 6) == 1
        assert tx.quarantine.open_count() == 0
        assert tx.quarantine.prune(before_us=100) == 2
    from tidings.store.records import Hold

    hold = Hold("condition", "r", "T1", *P1, "{}", "rule 'r': failed")
    with store.write() as tx:
        assert tx.held.hold(1, [hold, hold], 1) == 2
        [first, second] = tx.held.held()
        tx.held.still_held(first.id, "still failing")
        assert tx.held.resolve([second.id], "dismissed", 2) == 1
    with store.read() as tx:
        [left] = tx.held.held()
        assert (left.id, left.reason) == (first.id, "still failing")
        assert len(tx.held.held(status=None)) == 2
