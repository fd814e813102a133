"""Building the tracked-field index for fields the config tracks but the store does not hold
yet (a reminder, relation or access scope added to a running deployment)."""

from __future__ import annotations

from datetime import datetime

from tidings.ingest.tracking import TrackSpec, rebuilt_rows
from tidings.store import Store
from tidings.store.codec import to_us


def ensure_index(store: Store, spec: TrackSpec, now: datetime) -> int:
    """Build the missing (entity, field) pairs of ``spec`` from the log and baselines; the
    number of index rows written (0 when nothing was missing)."""
    with store.read() as tx:
        missing = spec.pairs() - tx.reminders.built_fields()
    if not missing:
        return 0
    rows = 0
    with store.write() as tx:
        for entity in sorted({e for e, _ in missing}):
            names = tuple(sorted(f for e, f in missing if e == entity))
            built = rebuilt_rows(
                entity, names, tx.reminders.history(entity), tx.reminders.baselines(entity)
            )
            tx.reminders.track(built)
            rows += len(built)
        tx.reminders.mark_built(missing, to_us(now))
    return rows
