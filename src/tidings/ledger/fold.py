"""Fold an entity's pending events onto its baseline, in ``seq`` order.

The rules (the README's "What counts as a change"): events apply in ``seq`` order whatever
order they arrived in; an event whose ``seq`` is not greater than the baseline's is stale
(counted, not applied); ``upsert`` replaces the record, ``patch`` sets the listed fields
(``null`` is a value; a patch to an absent entity creates it with just those fields),
``delete`` makes it absent, and ``load`` replaces the record *and* the baseline, so that
nobody is told about a bulk reload.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

from tidings.model import ChangeEvent, Op, Record

StepTuple = tuple[str, int, str, Record | None]
"""A step as a plain ``(id, seq, op, data)`` tuple: what the close builds per database row,
because building a million named tuples costs more than the fold itself."""

StepLike = Sequence[Any]
"""Any sequence that starts ``(id, seq, op, data)``: a ``StepTuple``, or the longer list the
store's pending scan gives per event (the fold reads it by index)."""

_PATCH, _DELETE, _LOAD = Op.PATCH.value, Op.DELETE.value, Op.LOAD.value


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
    applied: tuple[StepLike, ...]
    stale: tuple[StepLike, ...]


def _by_seq(step: StepLike) -> int:
    seq: int = step[1]
    return seq


class Folder:
    """The fold as an aggregator: start from a baseline, ``apply`` steps in seq order, then
    ``result``. The close feeds it straight from an ordered scan; ``fold`` sorts first."""

    __slots__ = ("_applied", "_base", "_baseline_seq", "_seq", "_stale", "_state")

    def __init__(self, baseline: Record | None, baseline_seq: int | None) -> None:
        self._base = baseline
        self._state: dict[str, object] | None = dict(baseline) if baseline is not None else None
        self._baseline_seq = baseline_seq
        self._seq = baseline_seq
        self._applied: list[StepLike] = []
        self._stale: list[StepLike] = []

    def apply(self, step: StepLike) -> None:
        # By index, so a longer row (the close passes its own) works as well as a StepTuple.
        step_seq, op, data = step[1], step[2], step[3]
        if self._baseline_seq is not None and step_seq <= self._baseline_seq:
            self._stale.append(step)
            return
        if op == _PATCH:
            if self._state is None:
                self._state = {}
            self._state.update(data or {})
        elif op == _DELETE:
            self._state = None
        else:  # upsert or load
            self._state = dict(data or {})
            if op == _LOAD:
                self._base = dict(self._state)
        self._applied.append(step)
        if self._seq is None or step_seq > self._seq:
            self._seq = step_seq

    def result(self) -> Folded:
        return Folded(self._base, self._state, self._seq, tuple(self._applied), tuple(self._stale))


def fold(baseline: Record | None, baseline_seq: int | None, steps: Iterable[StepLike]) -> Folded:
    """Apply ``steps`` to ``baseline``; a stable sort keeps arrival order among equal seqs."""
    folder = Folder(baseline, baseline_seq)
    for step in sorted(steps, key=_by_seq):
        folder.apply(step)
    return folder.result()
