"""Property tests: ``fold`` + ``diff`` + ``address`` against a deliberately simple reference model.

The reference model is the public contract (DESIGN.md, "Net change") written as plainly as
possible: sort one entity's events by seq (stable), skip the stale ones, apply them one at a
time to a dict, then compare baseline and current field by field, treating a missing field as
null and leaving out ignored fields.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from hypothesis import given, settings
from hypothesis import strategies as st

from tidings.config import EntityType, FieldSpec, FieldType
from tidings.fieldtypes import normaliser_for
from tidings.ledger.fold import Step, fold
from tidings.ledger.netchange import changes_by_recipient, diff
from tidings.model import Change, EntityRef, Kind, digests_of

RECIPIENT = "traineeId"
PLAIN = ("site", "grade", "wte")
IGNORED = ("updatedAt", "amendedBy")
FIELDS = (RECIPIENT, *PLAIN, *IGNORED)
ETYPE = EntityType(
    name="Placement",
    key="id",
    recipient=RECIPIENT,
    ignore=frozenset(IGNORED),
    fields={name: FieldSpec(type=FieldType.STRING) for name in FIELDS},
)
KEYS = ("1", "2", "3")

PROFILE = settings(max_examples=200, deadline=None)

Rec = dict[str, Any]


# --- the reference model ----------------------------------------------------------------------


@dataclass(frozen=True)
class Ev:
    key: str
    id: str
    seq: int
    op: str
    data: Rec | None


def ref_apply(baseline: Rec | None, baseline_seq: int | None, events: list[Ev]) -> tuple[Any, Any]:
    """(baseline, current) after applying ``events`` one by one in seq order."""
    base = None if baseline is None else dict(baseline)
    state = None if baseline is None else dict(baseline)
    ordered = sorted(range(len(events)), key=lambda i: (events[i].seq, i))
    for i in ordered:
        ev = events[i]
        if baseline_seq is not None and ev.seq <= baseline_seq:
            continue
        if ev.op == "delete":
            state = None
        elif ev.op == "patch":
            patched = {} if state is None else dict(state)
            for name, value in (ev.data or {}).items():
                patched[name] = value
            state = patched
        elif ev.op == "upsert":
            state = dict(ev.data or {})
        elif ev.op == "load":
            state = dict(ev.data or {})
            base = dict(ev.data or {})
        else:  # pragma: no cover
            raise AssertionError(ev.op)
    return base, state


def visible(record: Rec | None) -> Rec | None:
    """A record over the non-ignored fields, with null fields dropped (missing == null)."""
    if record is None:
        return None
    return {k: v for k, v in record.items() if k not in IGNORED and v is not None}


def ref_diff(before: Rec | None, after: Rec | None) -> tuple[str, list[Any]] | None:
    """The net change as (kind, [(field, before, after), ...]) sorted by field name."""
    if before is None and after is None:
        return None
    if before is None:
        assert after is not None
        return "created", [(k, None, after[k]) for k in sorted(after) if k not in IGNORED]
    if after is None:
        return "deleted", [(k, before[k], None) for k in sorted(before) if k not in IGNORED]
    changed = [
        (k, before.get(k), after.get(k))
        for k in sorted(set(FIELDS) | set(before) | set(after))
        if k not in IGNORED and before.get(k) != after.get(k)
    ]
    return ("updated", changed) if changed else None


def ref_recipient(record: Rec | None) -> str | None:
    if record is None or record.get(RECIPIENT) is None:
        return None
    return str(record[RECIPIENT])


def ref_address(before: Rec | None, after: Rec | None) -> list[tuple[str | None, str]]:
    """(recipient, kind) pairs, in the order the contract lists them (removed before added)."""
    net = ref_diff(before, after)
    if net is None:
        return []
    kind = net[0]
    old, new = ref_recipient(before), ref_recipient(after)
    if kind == "created":
        return [(new, kind)]
    if kind == "deleted":
        return [(old, kind)]
    if old == new:
        return [(new, kind)]
    out: list[tuple[str | None, str]] = []
    if old is not None:
        out.append((old, "removed"))
    if new is not None:
        out.append((new, "added"))
    return out


# --- strategies -------------------------------------------------------------------------------

values = st.sampled_from([None, 0, 1, "A", "B", "x"])
records = st.dictionaries(st.sampled_from(FIELDS), values, max_size=len(FIELDS))
ignored_only = st.dictionaries(st.sampled_from(IGNORED), values, max_size=len(IGNORED))
baseline_seqs = st.none() | st.integers(0, 5)


@st.composite
def event_lists(draw: st.DrawFn, *, keys: tuple[str, ...] = KEYS, unique_seqs: bool = False) -> Any:
    raw = draw(
        st.lists(
            st.tuples(
                st.sampled_from(keys),
                st.sampled_from(["upsert", "patch", "patch", "delete", "load"]),
                st.integers(0, 12),
                records,
            ),
            max_size=12,
            unique_by=(lambda t: (t[0], t[2])) if unique_seqs else None,
        )
    )
    return [
        Ev(key, f"ev-{i}", seq, op, None if op == "delete" else data)
        for i, (key, op, seq, data) in enumerate(raw)
    ]


@st.composite
def worlds(draw: st.DrawFn, *, unique_seqs: bool = False) -> Any:
    """Baselines (record or absent, with a baseline seq) for each key, and events for them."""
    baselines = {key: (draw(st.none() | records), draw(baseline_seqs)) for key in KEYS}
    return baselines, draw(event_lists(unique_seqs=unique_seqs))


def steps_of(events: list[Ev]) -> list[Step]:
    return [Step(e.id, e.seq, e.op, e.data) for e in events]


def by_key(events: list[Ev]) -> dict[str, list[Ev]]:
    grouped: dict[str, list[Ev]] = defaultdict(list)
    for ev in events:
        grouped[ev.key].append(ev)
    return grouped


def ref_of(key: str) -> EntityRef:
    return EntityRef("tis", "Placement", key)


def as_tuple(net: tuple[Kind, dict[str, Any]] | None) -> tuple[str, list[Any]] | None:
    if net is None:
        return None
    kind, fields = net
    return kind.value, [(k, fc.before, fc.after) for k, fc in fields.items()]


# --- (1) fold + diff agree with the reference model ------------------------------------------


@PROFILE
@given(worlds())
def test_fold_and_diff_agree_with_the_reference_model(world: Any) -> None:
    baselines, events = world
    grouped = by_key(events)
    addressed: list[tuple[str, Change]] = []
    expected_addressed: list[tuple[str, str, str]] = []

    for key in KEYS:
        baseline, baseline_seq = baselines[key]
        folded = fold(baseline, baseline_seq, steps_of(grouped[key]))
        ref_base, ref_current = ref_apply(baseline, baseline_seq, grouped[key])

        assert folded.baseline == ref_base
        assert folded.current == ref_current
        assert as_tuple(diff(ETYPE, folded.baseline, folded.current)) == ref_diff(
            ref_base, ref_current
        )

        pairs, changed = changes_by_recipient(ETYPE, ref_of(key), folded.baseline, folded.current)
        assert [(r, c.kind.value) for r, c in pairs] == ref_address(ref_base, ref_current)
        assert changed == (ref_diff(ref_base, ref_current) is not None)
        addressed.extend((r, c) for r, c in pairs if r is not None)
        expected_addressed.extend(
            (r, key, kind) for r, kind in ref_address(ref_base, ref_current) if r is not None
        )

    result = digests_of(addressed)
    assert [(d.recipient, c.ref.key, c.kind.value) for d in result for c in d.changes] == sorted(
        expected_addressed
    )


@PROFILE
@given(worlds())
def test_fold_bookkeeping_matches_the_reference_model(world: Any) -> None:
    baselines, events = world
    for key, group in by_key(events).items():
        baseline, baseline_seq = baselines[key]

        folded = fold(baseline, baseline_seq, steps_of(group))

        stale = [e for e in group if baseline_seq is not None and e.seq <= baseline_seq]
        fresh = [e for e in group if e not in stale]
        assert sorted(s.id for s in folded.stale) == sorted(e.id for e in stale)
        assert sorted(s.id for s in folded.applied) == sorted(e.id for e in fresh)
        assert [s.seq for s in folded.applied] == sorted(e.seq for e in fresh)
        seqs = [e.seq for e in fresh] + ([] if baseline_seq is None else [baseline_seq])
        assert folded.seq == (max(seqs) if seqs else None)


# --- (2) arrival order within a window does not matter ---------------------------------------


@PROFILE
@given(st.data())
def test_any_arrival_order_of_distinct_seqs_gives_the_same_net_change(data: st.DataObject) -> None:
    baselines, events = data.draw(worlds(unique_seqs=True))
    shuffled = data.draw(st.permutations(events))

    for key in KEYS:
        baseline, baseline_seq = baselines[key]
        one = fold(baseline, baseline_seq, steps_of(by_key(events)[key]))
        two = fold(baseline, baseline_seq, steps_of(by_key(shuffled)[key]))

        assert (one.baseline, one.current, one.seq) == (two.baseline, two.current, two.seq)
        assert changes_by_recipient(
            ETYPE, ref_of(key), one.baseline, one.current
        ) == changes_by_recipient(ETYPE, ref_of(key), two.baseline, two.current)


# --- (3) re-delivered and stale events change nothing ----------------------------------------


@PROFILE
@given(worlds())
def test_after_a_close_folding_nothing_gives_no_change(world: Any) -> None:
    baselines, events = world
    for key, group in by_key(events).items():
        baseline, baseline_seq = baselines[key]
        closed = fold(baseline, baseline_seq, steps_of(group))

        again = fold(closed.current, closed.seq, [])

        assert again.current == closed.current
        assert diff(ETYPE, again.baseline, again.current) is None


@PROFILE
@given(worlds())
def test_redelivering_the_same_events_after_a_close_changes_nothing(world: Any) -> None:
    baselines, events = world
    for key, group in by_key(events).items():
        baseline, baseline_seq = baselines[key]
        closed = fold(baseline, baseline_seq, steps_of(group))

        again = fold(closed.current, closed.seq, steps_of(group))

        assert again.applied == ()
        assert len(again.stale) == len(group)
        assert again.current == closed.current
        assert again.seq == closed.seq
        assert diff(ETYPE, again.baseline, again.current) is None


@PROFILE
@given(st.none() | records, st.integers(0, 12), event_lists(keys=("1",)))
def test_stale_events_change_nothing(baseline: Rec | None, baseline_seq: int, events: Any) -> None:
    stale = [e for e in events if e.seq <= baseline_seq]

    folded = fold(baseline, baseline_seq, steps_of(stale))

    assert folded.current == baseline
    assert folded.baseline == baseline
    assert folded.seq == baseline_seq
    assert len(folded.stale) == len(stale)
    assert diff(ETYPE, folded.baseline, folded.current) is None


# --- (4) a digest's changes applied to the baseline give the current state -------------------


def replay(baseline: Rec | None, changes: list[Change]) -> Rec | None:
    """What someone who knew ``baseline`` would believe after reading ``changes``."""
    by_kind = {c.kind: c for c in changes}
    if Kind.ADDED in by_kind:
        return {k: fc.after for k, fc in by_kind[Kind.ADDED].fields.items()}
    if Kind.CREATED in by_kind:
        return {k: fc.after for k, fc in by_kind[Kind.CREATED].fields.items()}
    if Kind.DELETED in by_kind:
        return None
    if Kind.UPDATED in by_kind:
        assert baseline is not None
        state = dict(baseline)
        for name, fc in by_kind[Kind.UPDATED].fields.items():
            assert baseline.get(name) == fc.before
            state[name] = fc.after
        return state
    return baseline


@PROFILE
@given(worlds())
def test_a_digest_applied_to_the_baseline_gives_the_current_state(world: Any) -> None:
    baselines, events = world
    for key, group in by_key(events).items():
        baseline, baseline_seq = baselines[key]
        folded = fold(baseline, baseline_seq, steps_of(group))

        pairs, _ = changes_by_recipient(ETYPE, ref_of(key), folded.baseline, folded.current)
        changes = [c for _, c in pairs]

        if [c.kind for c in changes] == [Kind.REMOVED]:
            # The record now names nobody: the old recipient is told it is no longer theirs.
            assert folded.current is not None
            assert folded.current.get(RECIPIENT) is None
            continue
        assert visible(replay(folded.baseline, changes)) == visible(folded.current)


@PROFILE
@given(worlds())
def test_every_change_reaches_the_old_and_new_recipients(world: Any) -> None:
    baselines, events = world
    for key, group in by_key(events).items():
        baseline, baseline_seq = baselines[key]
        folded = fold(baseline, baseline_seq, steps_of(group))
        old, new = ref_recipient(folded.baseline), ref_recipient(folded.current)

        pairs, changed = changes_by_recipient(ETYPE, ref_of(key), folded.baseline, folded.current)

        told = {r for r, _ in pairs}
        assert told <= {old, new}
        if changed and new is not None:
            assert new in told
        if changed and old is not None:
            assert old in told
        if changed and old is None and new is None:
            assert told == {None}  # counted as unaddressed at close
        for _, change in pairs:
            assert not set(change.fields) & set(IGNORED)
            assert list(change.fields) == sorted(change.fields)


# --- (5) edits to ignored fields only vanish -------------------------------------------------


@st.composite
def ignored_only_events(draw: st.DrawFn, baseline: Rec) -> list[Ev]:
    kept = {k: v for k, v in baseline.items() if k not in IGNORED}
    raw = draw(
        st.lists(
            st.tuples(
                st.sampled_from(["patch", "upsert", "load"]), st.integers(1, 9), ignored_only
            ),
            max_size=8,
        )
    )
    return [
        Ev("1", f"ev-{i}", seq, op, data if op == "patch" else {**kept, **data})
        for i, (op, seq, data) in enumerate(raw)
    ]


@PROFILE
@given(st.data())
def test_sequences_touching_only_ignored_fields_produce_no_change(data: st.DataObject) -> None:
    baseline = data.draw(records)
    events = data.draw(ignored_only_events(baseline))

    folded = fold(baseline, 0, steps_of(events))

    assert diff(ETYPE, folded.baseline, folded.current) is None
    assert changes_by_recipient(ETYPE, ref_of("1"), folded.baseline, folded.current) == ([], False)


# --- normalisation: a change of representation is not a change -------------------------------

# At most 13 significant digits here; long decimals are covered in test_fieldtypes.py.
decimals = st.decimals(
    allow_nan=False, allow_infinity=False, min_value=-(10**6), max_value=10**6, places=6
)


@PROFILE
@given(decimals, st.integers(0, 4), st.booleans())
def test_decimal_representations_of_one_value_normalise_equal(
    value: Decimal, extra_zeros: int, scientific: bool
) -> None:
    normalise = normaliser_for(FieldType.DECIMAL, ZoneInfo("Europe/London"))
    plain = format(value, "f")
    padded = plain + ("." if "." not in plain else "") + "0" * extra_zeros
    other = format(value, "E") if scientific else padded

    assert normalise(plain) == normalise(other)
    assert Decimal(normalise(plain)) == value
