"""The fold: an entity's pending events applied onto its baseline in ``seq`` order."""

from __future__ import annotations

from datetime import UTC, datetime
from itertools import permutations
from typing import Any

from tidings.ledger.fold import Step, fold
from tidings.model import ChangeEvent, Op


def step(seq: int, op: str = "upsert", data: dict[str, Any] | None = None, ident: str = "") -> Step:
    return Step(ident or f"e{seq}", seq, op, data)


# --- ordering ---------------------------------------------------------------------------------


def test_steps_apply_in_seq_order_whatever_the_arrival_order() -> None:
    steps = [
        step(3, "patch", {"site": "C"}),
        step(1, "upsert", {"site": "A", "grade": "F1"}),
        step(2, "patch", {"site": "B", "grade": "F2"}),
    ]

    result = fold(None, None, steps)

    assert result.current == {"site": "C", "grade": "F2"}
    assert [s.seq for s in result.applied] == [1, 2, 3]


def test_every_permutation_of_distinct_seqs_gives_the_same_state() -> None:
    steps = [
        step(1, "upsert", {"a": 1, "b": 1}),
        step(2, "patch", {"a": 2}),
        step(3, "delete"),
        step(4, "patch", {"b": 4}),
    ]

    results = {
        tuple(sorted((fold(None, None, p).current or {}).items())) for p in permutations(steps)
    }

    assert results == {(("b", 4),)}


def test_equal_seqs_keep_their_arrival_order() -> None:
    first = step(5, "patch", {"site": "first"}, ident="x")
    second = step(5, "patch", {"site": "second"}, ident="y")

    forward = fold({"site": "old"}, 1, [first, second])
    backward = fold({"site": "old"}, 1, [second, first])

    assert forward.current == {"site": "second"}
    assert [s.id for s in forward.applied] == ["x", "y"]
    assert backward.current == {"site": "first"}
    assert [s.id for s in backward.applied] == ["y", "x"]


# --- stale events -----------------------------------------------------------------------------


def test_a_step_at_or_below_the_baseline_seq_is_stale_and_not_applied() -> None:
    baseline = {"site": "A"}
    at_seq = step(10, "patch", {"site": "equal"})
    below = step(7, "upsert", {"site": "below"})
    newer = step(11, "patch", {"grade": "F2"})

    result = fold(baseline, 10, [newer, below, at_seq])

    assert result.current == {"site": "A", "grade": "F2"}
    assert [s.seq for s in result.stale] == [7, 10]
    assert [s.seq for s in result.applied] == [11]
    assert result.seq == 11


def test_only_stale_steps_leave_state_baseline_and_seq_unchanged() -> None:
    baseline = {"site": "A"}

    result = fold(baseline, 5, [step(5, "delete"), step(2, "upsert", {"site": "Z"})])

    assert result.current == {"site": "A"}
    assert result.baseline == {"site": "A"}
    assert result.seq == 5
    assert result.applied == ()
    assert len(result.stale) == 2


def test_nothing_is_stale_when_the_entity_has_no_baseline_seq() -> None:
    result = fold(None, None, [step(0, "upsert", {"a": 1}), step(-3, "patch", {"b": 2})])

    assert result.stale == ()
    assert result.current == {"a": 1}  # -3 applies first, then the upsert at 0 replaces it
    assert result.seq == 0


# --- what each op does ------------------------------------------------------------------------


def test_upsert_replaces_the_whole_record() -> None:
    result = fold({"site": "A", "grade": "F1", "wte": "1"}, 1, [step(2, "upsert", {"site": "B"})])

    assert result.current == {"site": "B"}


def test_patch_sets_only_the_listed_fields() -> None:
    result = fold({"site": "A", "grade": "F1"}, 1, [step(2, "patch", {"grade": "F2", "wte": "1"})])

    assert result.current == {"site": "A", "grade": "F2", "wte": "1"}


def test_patch_with_null_sets_the_field_to_null() -> None:
    result = fold({"site": "A", "grade": "F1"}, 1, [step(2, "patch", {"grade": None})])

    assert result.current == {"site": "A", "grade": None}


def test_patch_on_an_absent_entity_creates_it_with_just_those_fields() -> None:
    result = fold(None, None, [step(1, "patch", {"site": "A"})])

    assert result.current == {"site": "A"}
    assert result.baseline is None


def test_patch_after_delete_recreates_the_entity_from_the_patch_alone() -> None:
    steps = [step(2, "delete"), step(3, "patch", {"grade": "F2"})]

    result = fold({"site": "A", "grade": "F1"}, 1, steps)

    assert result.current == {"grade": "F2"}


def test_delete_makes_the_entity_absent() -> None:
    result = fold({"site": "A"}, 1, [step(2, "delete")])

    assert result.current is None
    assert result.baseline == {"site": "A"}


def test_delete_of_an_absent_entity_stays_absent() -> None:
    result = fold(None, None, [step(1, "delete")])

    assert result.current is None
    assert result.applied == (step(1, "delete"),)


def test_fold_does_not_mutate_the_baseline_or_the_step_data() -> None:
    baseline = {"site": "A"}
    upsert_data = {"site": "B"}
    steps = [step(2, "upsert", upsert_data), step(3, "patch", {"grade": "F2"})]

    result = fold(baseline, 1, steps)

    assert result.current == {"site": "B", "grade": "F2"}
    assert baseline == {"site": "A"}
    assert upsert_data == {"site": "B"}


# --- load -------------------------------------------------------------------------------------


def test_load_replaces_both_state_and_baseline() -> None:
    result = fold({"site": "A"}, 1, [step(2, "load", {"site": "L", "grade": "F1"})])

    assert result.current == {"site": "L", "grade": "F1"}
    assert result.baseline == {"site": "L", "grade": "F1"}


def test_events_before_a_load_in_the_same_fold_do_not_show_against_the_baseline() -> None:
    steps = [
        step(4, "load", {"site": "L"}),
        step(2, "patch", {"site": "B"}),
        step(3, "patch", {"grade": "F9"}),
    ]

    result = fold({"site": "A"}, 1, steps)

    assert result.baseline == result.current == {"site": "L"}


def test_events_after_a_load_change_current_but_not_the_loaded_baseline() -> None:
    steps = [step(2, "load", {"site": "L"}), step(3, "patch", {"site": "M"})]

    result = fold(None, None, steps)

    assert result.baseline == {"site": "L"}
    assert result.current == {"site": "M"}


def test_load_then_delete_keeps_the_loaded_baseline() -> None:
    result = fold(None, None, [step(1, "load", {"site": "L"}), step(2, "delete")])

    assert result.baseline == {"site": "L"}
    assert result.current is None


def test_without_a_load_the_baseline_is_returned_unchanged() -> None:
    baseline = {"site": "A"}

    result = fold(baseline, 1, [step(2, "upsert", {"site": "B"})])

    assert result.baseline == {"site": "A"}


# --- seq bookkeeping --------------------------------------------------------------------------


def test_seq_is_the_highest_applied_seq() -> None:
    result = fold({"a": 1}, 3, [step(9, "patch", {"a": 9}), step(4, "patch", {"a": 4})])

    assert result.seq == 9


def test_seq_is_the_baseline_seq_when_nothing_is_applied() -> None:
    assert fold({"a": 1}, 3, []).seq == 3
    assert fold(None, None, []).seq is None


def test_no_steps_leave_the_state_as_the_baseline() -> None:
    result = fold({"a": 1}, 3, [])

    assert result.current == {"a": 1}
    assert result.baseline == {"a": 1}
    assert result.applied == ()
    assert result.stale == ()


def test_seq_from_none_is_set_by_the_first_applied_step() -> None:
    result = fold(None, None, [step(42, "patch", {"a": 1})])

    assert result.seq == 42


def test_applied_and_stale_partition_the_steps() -> None:
    steps = [step(s, "patch", {"n": s}) for s in (8, 1, 6, 3, 5, 9)]

    result = fold({"n": 0}, 5, steps)

    assert sorted(s.seq for s in result.applied) == [6, 8, 9]
    assert sorted(s.seq for s in result.stale) == [1, 3, 5]
    assert result.current == {"n": 9}


def test_fold_accepts_any_iterable_such_as_a_generator() -> None:
    result = fold(None, None, (step(s, "patch", {"n": s}) for s in (2, 1)))

    assert result.current == {"n": 2}


def test_step_of_change_event_keeps_id_seq_op_value_and_data() -> None:
    event = ChangeEvent(
        "ev-1", "tis", "Placement", "1", Op.PATCH, 7, datetime(2025, 8, 6, tzinfo=UTC), {"a": 1}
    )

    assert Step.of(event) == Step("ev-1", 7, "patch", {"a": 1})
    assert isinstance(Step.of(event).op, str)
