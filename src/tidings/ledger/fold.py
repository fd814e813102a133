"""Fold an entity's pending events onto its baseline, in ``seq`` order.

The rules (DESIGN.md, "Net change"): events apply in ``seq`` order whatever order they arrived
in; an event whose ``seq`` is not greater than the baseline's is stale (counted, not applied);
``upsert`` replaces the record, ``patch`` sets the listed fields (``null`` is a value; a patch
to an absent entity creates it with just those fields), ``delete`` makes it absent, and ``load``
replaces the record *and* the baseline, so that nobody is told about a bulk reload.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import NamedTuple

from tidings.model import ChangeEvent, Op, Record


class Step(NamedTuple):
    """The part of a change event the fold needs (cheap to build from a database row)."""

    id: str
    seq: int
    op: str  # an ``Op`` value
    data: Record | None

    @classmethod
    def of(cls, event: ChangeEvent) -> Step:
        return cls(event.id, event.seq, event.op.value, event.data)


@dataclass(frozen=True, slots=True)
class Folded:
    """The result of a fold: the (possibly reloaded) baseline, the new state, and the new seq."""

    baseline: Record | None
    current: Record | None
    seq: int | None
    applied: tuple[Step, ...]
    stale: tuple[Step, ...]


def _by_seq(step: Step) -> int:
    return step.seq


def fold(baseline: Record | None, baseline_seq: int | None, steps: Iterable[Step]) -> Folded:
    """Apply ``steps`` to ``baseline``; a stable sort keeps arrival order among equal seqs."""
    base = baseline
    state: dict[str, object] | None = dict(baseline) if baseline is not None else None
    applied: list[Step] = []
    stale: list[Step] = []
    seq = baseline_seq
    for step in sorted(steps, key=_by_seq):
        if baseline_seq is not None and step.seq <= baseline_seq:
            stale.append(step)
            continue
        op, data = step.op, step.data
        if op == Op.PATCH:
            if state is None:
                state = {}
            state.update(data or {})
        elif op == Op.DELETE:
            state = None
        else:  # upsert or load
            state = dict(data or {})
            if op == Op.LOAD:
                base = dict(state)
        applied.append(step)
        seq = step.seq if seq is None or step.seq > seq else seq
    return Folded(base, state, seq, tuple(applied), tuple(stale))
