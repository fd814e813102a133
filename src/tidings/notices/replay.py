"""Replaying held changes once the cause is fixed: a rule whose condition failed on them was
corrected, or the recipient field the records actually use was configured.

Each held change is routed again with the configuration as it is now, exactly as the close
would have routed it, and its notices are written in one transaction with marking it replayed.
One that still cannot be sent stays held, with the newest reason.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from tidings.config import Config
from tidings.ledger.netchange import changes_by_recipient
from tidings.model import NoticeItem
from tidings.notices.composer import NoticeComposer
from tidings.notices.items import item_from_json
from tidings.store import Store
from tidings.store.codec import loads, to_us
from tidings.store.records import DISMISSED, HELD_NO_RECIPIENT, REPLAYED


@dataclass(frozen=True, slots=True)
class ReplayResult:
    replayed: tuple[int, ...]  # held changes now routed (sent, or deliberately not sent)
    still_held: tuple[tuple[int, str], ...]  # (id, why) of those that still cannot be
    notices: int  # notices written for them


def replay_held(
    store: Store,
    config: Config,
    composer: NoticeComposer,
    ids: Sequence[int] | None,
    now: datetime,
) -> ReplayResult:
    """Route the open held changes ``ids`` (all open ones when ``None``) again."""
    with store.write() as tx:
        found = tx.held.held(ids, limit=100_000)
        if not found:
            return ReplayResult((), (), 0)
        addressed: list[tuple[str, NoticeItem]] = []
        owner: dict[tuple[str, str, str, str], int] = {}  # routed change -> its held id
        still: dict[int, str] = {}
        for change in found:
            item = item_from_json(loads(change.item))
            ref = item.change.ref
            if change.cause == HELD_NO_RECIPIENT:
                etype = config.entities.get(ref.entity)
                if etype is None:
                    still[change.id] = f"entity type {ref.entity!r} is no longer in the config"
                    continue
                pairs, _ = changes_by_recipient(etype, ref, item.before, item.after)
                told = [(who, NoticeItem(c, item.before, item.after)) for who, c in pairs if who]
                if not told:
                    field = etype.recipient
                    still[change.id] = f"the record still names nobody in its field {field!r}"
                    continue
            else:
                told = [(change.recipient or "", item)]
            for who, routed in told:
                addressed.append((who, routed))
                owner[(who, ref.source, ref.entity, ref.key)] = change.id
        key = "held:" + ",".join(str(c.id) for c in found)
        stats = composer.compose(
            tx,
            window_id=None,
            closes_at=now,
            now=now,
            addressed=addressed,
            window_key=key,
            record_holds=False,
        )
        for hold in stats.unrouted:
            held_id = owner.get((hold.recipient or "", hold.source, hold.entity, hold.key))
            if held_id is not None:
                still[held_id] = hold.reason
        for held_id, reason in still.items():
            tx.held.still_held(held_id, reason)
        done = [c.id for c in found if c.id not in still]
        tx.held.resolve(done, REPLAYED, to_us(now))
    return ReplayResult(tuple(done), tuple(sorted(still.items())), stats.notices)


def dismiss_held(store: Store, ids: Sequence[int], now: datetime) -> int:
    """Decide, by hand, that held changes are not to be sent."""
    with store.write() as tx:
        return tx.held.resolve(ids, DISMISSED, to_us(now))
