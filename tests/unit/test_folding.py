"""What a close works out per record, without a store: ``fold_pending`` and ``settle``."""

from __future__ import annotations

from tests.conftest import make_config
from tidings.model import EntityRef, Kind
from tidings.store.codec import loads
from tidings.store.records import PendingRecord
from tidings.window.folding import Tally, fold_pending, settle

CONFIG = make_config("memory://")
REF = EntityRef("tcs", "Placement", "P1")
BASE = {"id": "P1", "traineeId": "T1", "site": "Leeds"}


def _event(n: int, seq: int, op: str, data: object, at_us: int) -> list[object]:
    return [f"e{n}", seq, op, data, at_us, n]


def test_only_events_at_or_before_the_close_fold_and_later_ones_wait() -> None:
    record = PendingRecord(
        REF,
        BASE,
        1,
        [
            _event(1, 2, "patch", {"site": "Hull"}, 100),
            _event(2, 3, "patch", {"site": "York"}, 300),
        ],
    )

    folding = fold_pending(record, until_us=200)

    assert folding is not None
    assert folding.folder.result().current == {**BASE, "site": "Hull"}
    assert folding.later == [("e2", 3)]
    assert fold_pending(record, until_us=50) is None  # nothing due yet


def test_settle_gives_net_changes_new_baselines_and_counts() -> None:
    changed = fold_pending(
        PendingRecord(REF, BASE, 1, [_event(1, 2, "patch", {"site": "Hull"}, 1)]), 9
    )
    reverted = fold_pending(
        PendingRecord(
            EntityRef("tcs", "Placement", "P2"),
            {**BASE, "id": "P2"},
            1,
            [
                _event(2, 2, "patch", {"site": "York"}, 1),
                _event(3, 3, "patch", {"site": "Leeds"}, 2),
            ],
        ),
        9,
    )
    assert changed is not None
    assert reverted is not None
    tally = Tally()

    results = settle(
        [changed, reverted], CONFIG.entities, tally, people_entity=None, with_items=True
    )

    assert (tally.entities, tally.folded, tally.net_changes, tally.vanished) == (2, 3, 1, 1)
    [(recipient, change)] = tally.addressed
    assert (recipient, change.kind, change.ref) == ("T1", Kind.UPDATED, REF)
    assert [who for who, _ in tally.items] == ["T1"]
    assert [(ref, loads(b), seq, dirty) for ref, b, seq, dirty in results] == [
        (REF, {**BASE, "site": "Hull"}, 2, 0),
        (EntityRef("tcs", "Placement", "P2"), {**BASE, "id": "P2"}, 3, 0),
    ]


def test_an_event_the_fold_overtook_goes_stale_and_a_later_one_keeps_the_record_dirty() -> None:
    record = PendingRecord(
        REF,
        BASE,
        1,
        [
            _event(1, 5, "patch", {"site": "Hull"}, 100),
            _event(2, 4, "patch", {"site": "Old"}, 300),  # after the close, below seq 5
            _event(3, 9, "patch", {"site": "York"}, 300),  # after the close, above it
        ],
    )
    folding = fold_pending(record, until_us=200)
    assert folding is not None
    tally = Tally()

    [(_, _, seq, dirty)] = settle(
        [folding], CONFIG.entities, tally, people_entity=None, with_items=False
    )

    assert (seq, dirty) == (5, 1)
    assert tally.stale_ids == ["e2"]
    assert tally.items == []  # only when notices are composed


def test_a_change_naming_nobody_is_counted_and_kept_when_notices_are_composed() -> None:
    nameless = fold_pending(
        PendingRecord(REF, None, None, [_event(1, 1, "upsert", {"id": "P1"}, 1)]), 9
    )
    assert nameless is not None
    tally = Tally()

    settle([nameless], CONFIG.entities, tally, people_entity=None, with_items=True)

    assert tally.unaddressed == 1
    assert [item.change.kind for item in tally.nobody] == [Kind.CREATED]


def test_a_workers_tally_crosses_as_encoded_rows_and_still_counts() -> None:
    folding = fold_pending(
        PendingRecord(REF, BASE, 1, [_event(1, 2, "patch", {"site": "Hull"}, 1)]), 9
    )
    assert folding is not None
    theirs = Tally()
    settle([folding], CONFIG.entities, theirs, people_entity=None, with_items=False)

    theirs.encode_addressed()
    stats = Tally().merged(theirs).stats()

    assert theirs.addressed == []
    assert (stats.recipients, stats.by_kind) == (1, (("updated", 1),))
