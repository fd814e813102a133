"""Records' states read from the store: the latest ingested state (each baseline with its
pending events folded on), and the states at two moments of the past (for a period's net
change), rebuilt from the event log.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import orjson

from tidings.ledger.fold import fold
from tidings.model import EntityRef, Record
from tidings.store import Tx
from tidings.store.records import ACCEPTED, LoggedStep, StoredBaseline


def current_records(tx: Tx, refs: Sequence[EntityRef]) -> dict[EntityRef, Record | None]:
    """Some records' latest ingested states, read in a few queries."""
    bases = tx.ledger.baselines_of(refs)
    logged = tx.events.of_records(refs)
    out: dict[EntityRef, Record | None] = {}
    for ref in refs:
        base = bases.get(ref)
        steps = [(e.id, e.seq, e.op, e.data) for e in logged.get(ref, ()) if e.status == ACCEPTED]
        if base is None:
            out[ref] = fold(None, None, steps).current
        else:
            out[ref] = fold(base.record, base.seq, steps).current
    return out


def entity_states(tx: Tx, entity: str) -> dict[tuple[str, str], Record]:
    """Every present record of ``entity`` in its latest ingested state, by (source, key), in
    no particular order: the closed baselines, with the records that have pending events
    folded on."""
    return {
        (source, key): record
        for batch in entity_batches(tx, entity)
        for source, key, record in batch
    }


def entity_batches(tx: Tx, entity: str) -> Iterator[list[tuple[str, str, Record]]]:
    """Every present record of ``entity`` in its latest ingested state, as batches of
    ``(source, key, record)`` in no particular order, holding only the records with pending
    events in memory."""
    pending: dict[tuple[str, str], Record | None] = {
        (p.ref.source, p.ref.key): fold(p.baseline, p.seq, p.events).current
        for p in tx.ledger.scan_pending([entity])
    }
    for batch in tx.ledger.present(entity):
        if pending:
            batch = [row for row in batch if (row[0], row[1]) not in pending]
        yield batch
    folded = [(s, k, state) for (s, k), state in pending.items() if state is not None]
    if folded:
        yield folded


def states_between(
    tx: Tx, entity: str, start_us: int, end_us: int
) -> Iterator[tuple[EntityRef, Record | None, Record | None]]:
    """Each record of ``entity`` with an event in the log: its state at ``start_us`` and at
    ``end_us`` (event times), folding the events up to each in seq order.

    A closed baseline from before the start stands for the events folded into it (which
    pruning may have removed from the log); events pruned from a later window cannot be
    recovered, so a period older than the audit retention is not reported exactly.
    """
    bases: dict[tuple[str, str], StoredBaseline] = {
        (b.source, b.key): b for b in tx.reminders.baselines(entity) if b.closes_at_us <= start_us
    }
    record: list[LoggedStep] = []
    for step in tx.reminders.history(entity):
        if record and (record[0].source, record[0].key) != (step.source, step.key):
            yield _between(entity, record, bases, start_us, end_us)
            record = []
        record.append(step)
    if record:
        yield _between(entity, record, bases, start_us, end_us)


def _between(
    entity: str,
    steps: list[LoggedStep],
    bases: dict[tuple[str, str], StoredBaseline],
    start_us: int,
    end_us: int,
) -> tuple[EntityRef, Record | None, Record | None]:
    source, key = steps[0].source, steps[0].key
    base = bases.get((source, key))
    initial = orjson.loads(base.baseline) if base and base.baseline else None
    seq = base.seq if base else None
    decoded = [
        (f"{s.seq}", s.seq, s.op, orjson.loads(s.data) if s.data else None, s.at_us) for s in steps
    ]
    before = fold(initial, seq, [d for d in decoded if d[4] <= start_us]).current
    after = fold(initial, seq, [d for d in decoded if d[4] <= end_us]).current
    return EntityRef(source, entity, key), before, after
