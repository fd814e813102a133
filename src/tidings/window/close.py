"""Closing a window: fold each due entity's pending events, diff, address, persist.

The steps, and why their order is safe:

1. Take the lock (SQLite ``BEGIN IMMEDIATE``; PostgreSQL an exclusive advisory lock that every
   ingest takes shared), so no event can join an entity between steps 3 and 5.
2. Find the entities that are due: pending events at or before ``closes_at`` (for a quiet
   period, only entities that have been quiet long enough or waited too long).
3. For each chunk of entities, read the baseline and those pending events.
4. Fold them in ``seq`` order and diff the result against the baseline (pure code).
5. In the same transaction: mark the events folded (or stale), make the result each entity's
   new baseline, and write every recipient's changes. Commit makes all of it visible at once; a
   crash before commit leaves everything pending, so the next close does the same work again.

A preview runs steps 2-4 in a read-only transaction and writes nothing.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, and_, func, select, tuple_, update

from tidings.config import Config
from tidings.ledger.fold import Step, fold
from tidings.ledger.netchange import address, digests
from tidings.model import Change, CloseResult, CloseStats, EntityRef, Op, Record
from tidings.store.codec import dumps, from_us, loads, to_us
from tidings.store.database import Database
from tidings.store.schema import (
    FOLDED,
    PENDING,
    STALE,
    digest_changes,
    entities,
    events,
    windows,
)
from tidings.window.schedule import QuietPeriod, Schedule, schedule_for

Clock = Callable[[], datetime]
Ref = tuple[str, str, str]
_CHUNK = 500  # entities per read: three parameters each, far inside every backend's limit


@dataclass
class _Tally:
    entities: int = 0
    folded: int = 0
    stale: int = 0
    net_changes: int = 0
    vanished: int = 0
    unaddressed: int = 0
    addressed: list[tuple[str, Change]] = field(default_factory=list)

    def stats(self) -> CloseStats:
        return CloseStats(
            self.entities,
            self.folded,
            self.stale,
            self.net_changes,
            self.vanished,
            self.unaddressed,
        )


@dataclass(frozen=True, slots=True)
class _Outcome:
    """What step 4 decided for one entity, for step 5 to write."""

    ref: Ref
    baseline: Record | None
    seq: int | None
    stale_ids: tuple[str, ...]


class WindowCloser:
    def __init__(self, db: Database, config: Config, clock: Clock) -> None:
        self._db = db
        self._config = config
        self._clock = clock
        self._schedule: Schedule = schedule_for(config.window, config.tz)

    def preview(self, closes_at: datetime) -> CloseResult:
        """What closing at ``closes_at`` would produce; changes nothing."""
        with self._db.read() as conn:
            return self._run(conn, closes_at, persist=False)

    def close(
        self, closes_at: datetime, on_progress: Callable[[int, int], None] | None = None
    ) -> CloseResult:
        """Close the window at ``closes_at`` and persist its digests, all in one transaction."""
        with self._db.write(exclusive=True) as conn:
            return self._run(conn, closes_at, persist=True, on_progress=on_progress)

    def _run(
        self,
        conn: Connection,
        closes_at: datetime,
        *,
        persist: bool,
        on_progress: Callable[[int, int], None] | None = None,
    ) -> CloseResult:
        until = to_us(closes_at)
        refs = self._due(conn, until)
        window_id = self._open_window(conn, closes_at) if persist else None
        tally = _Tally()
        for done, start in enumerate(range(0, len(refs), _CHUNK)):
            chunk = refs[start : start + _CHUNK]
            outcomes = self._fold_chunk(conn, chunk, until, tally)
            if window_id is not None:
                self._write_chunk(conn, chunk, outcomes, until, window_id)
            if on_progress is not None:
                on_progress(min((done + 1) * _CHUNK, len(refs)), len(refs))
        result_digests = digests(tally.addressed)
        if window_id is not None:
            self._write_digests(conn, window_id, tally.addressed)
            self._finish_window(conn, window_id, tally, len(result_digests))
        local = closes_at.astimezone(self._config.tz)
        return CloseResult(local, result_digests, tally.stats(), window_id)

    # Step 2
    def _due(self, conn: Connection, until: int) -> list[Ref]:
        pending = and_(events.c.status == PENDING, events.c.at_us <= until)
        declared = events.c.entity.in_(list(self._config.entities))
        cols = (events.c.source, events.c.entity, events.c.key)
        if isinstance(self._schedule, QuietPeriod):
            query = (
                select(*cols, func.min(events.c.at_us), func.max(events.c.at_us))
                .where(pending, declared)
                .group_by(*cols)
            )
            now = from_us(until)
            refs = [
                (s, e, k)
                for s, e, k, first, last in conn.execute(query)
                if self._schedule.is_due(from_us(first), from_us(last), now)
            ]
        else:
            refs = [
                (s, e, k)
                for s, e, k in conn.execute(select(*cols).where(pending, declared).distinct())
            ]
        refs.sort()
        return refs

    # Steps 3 and 4
    def _fold_chunk(
        self, conn: Connection, chunk: Sequence[Ref], until: int, tally: _Tally
    ) -> list[_Outcome]:
        ref_cols = tuple_(entities.c.source, entities.c.entity, entities.c.key)
        baselines: dict[Ref, tuple[Record | None, int | None]] = {
            (s, e, k): (loads(b), seq)
            for s, e, k, b, seq in conn.execute(
                select(
                    entities.c.source,
                    entities.c.entity,
                    entities.c.key,
                    entities.c.baseline,
                    entities.c.seq,
                ).where(ref_cols.in_(chunk))
            )
        }
        steps: dict[Ref, list[Step]] = defaultdict(list)
        query = (
            select(
                events.c.source,
                events.c.entity,
                events.c.key,
                events.c.id,
                events.c.seq,
                events.c.op,
                events.c.data,
            )
            .where(
                events.c.status == PENDING,
                events.c.at_us <= until,
                tuple_(events.c.source, events.c.entity, events.c.key).in_(chunk),
            )
            .order_by(
                events.c.source, events.c.entity, events.c.key, events.c.seq, events.c.ingested_us
            )
        )
        for s, e, k, event_id, seq, op, data in conn.execute(query):
            steps[(s, e, k)].append(Step(event_id, seq, op, loads(data)))
        outcomes = []
        for ref in chunk:
            baseline, baseline_seq = baselines.get(ref, (None, None))
            ref_steps = steps.get(ref, [])
            folded = fold(baseline, baseline_seq, ref_steps)
            etype = self._config.entities[ref[1]]
            addressed, changed = address(etype, EntityRef(*ref), folded.baseline, folded.current)
            tally.entities += 1
            tally.folded += len(folded.applied)
            tally.stale += len(folded.stale)
            if changed:
                tally.net_changes += 1
            elif any(step.op != Op.LOAD for step in folded.applied):
                tally.vanished += 1
            for recipient, change in addressed:
                if recipient is None:
                    tally.unaddressed += 1
                else:
                    tally.addressed.append((recipient, change))
            outcomes.append(
                _Outcome(ref, folded.current, folded.seq, tuple(s.id for s in folded.stale))
            )
        return outcomes

    # Step 5
    def _open_window(self, conn: Connection, closes_at: datetime) -> int:
        zero: dict[str, Any] = dict.fromkeys(
            (
                "entities",
                "events_folded",
                "events_stale",
                "net_changes",
                "vanished",
                "unaddressed",
                "digests",
            ),
            0,
        )
        row = conn.execute(
            windows.insert()
            .values(closes_at_us=to_us(closes_at), closed_us=to_us(self._clock()), **zero)
            .returning(windows.c.id)
        ).scalar_one()
        return int(row)

    def _write_chunk(
        self,
        conn: Connection,
        chunk: Sequence[Ref],
        outcomes: Sequence[_Outcome],
        until: int,
        window_id: int,
    ) -> None:
        stale_ids = [{"event_id": i} for o in outcomes for i in o.stale_ids]
        if stale_ids:
            conn.execute(
                update(events)
                .where(events.c.id == _bind("event_id"))
                .values(status=STALE, window_id=window_id),
                stale_ids,
            )
        conn.execute(
            update(events)
            .where(
                events.c.status == PENDING,
                events.c.at_us <= until,
                tuple_(events.c.source, events.c.entity, events.c.key).in_(chunk),
            )
            .values(status=FOLDED, window_id=window_id)
        )
        upsert = self._db.insert(entities)
        upsert = upsert.on_conflict_do_update(
            index_elements=[entities.c.source, entities.c.entity, entities.c.key],
            set_={
                "baseline": upsert.excluded.baseline,
                "seq": upsert.excluded.seq,
                "window_id": upsert.excluded.window_id,
            },
        )
        conn.execute(
            upsert,
            [
                {
                    "source": o.ref[0],
                    "entity": o.ref[1],
                    "key": o.ref[2],
                    "baseline": None if o.baseline is None else dumps(o.baseline),
                    "seq": o.seq,
                    "window_id": window_id,
                }
                for o in outcomes
            ],
        )

    @staticmethod
    def _write_digests(
        conn: Connection, window_id: int, addressed: Sequence[tuple[str, Change]]
    ) -> None:
        rows = [
            {
                "window_id": window_id,
                "recipient": recipient,
                "source": change.ref.source,
                "entity": change.ref.entity,
                "key": change.ref.key,
                "kind": change.kind.value,
                "fields": dumps(change.to_json()["fields"]),
            }
            for recipient, change in addressed
        ]
        for start in range(0, len(rows), 10_000):
            conn.execute(digest_changes.insert(), rows[start : start + 10_000])

    @staticmethod
    def _finish_window(conn: Connection, window_id: int, tally: _Tally, digest_count: int) -> None:
        conn.execute(
            update(windows)
            .where(windows.c.id == window_id)
            .values(
                entities=tally.entities,
                events_folded=tally.folded,
                events_stale=tally.stale,
                net_changes=tally.net_changes,
                vanished=tally.vanished,
                unaddressed=tally.unaddressed,
                digests=digest_count,
            )
        )


def _bind(name: str) -> Any:
    from sqlalchemy import bindparam

    return bindparam(name)
