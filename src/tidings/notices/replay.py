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
from tidings.ledger.netchange import address
from tidings.model import NoticeItem
from tidings.notices.compose import NoticePlanner, item_from_json
from tidings.store import held as held_store
from tidings.store.codec import loads, to_us
from tidings.store.database import Database
from tidings.store.schema import HELD_NO_RECIPIENT


@dataclass(frozen=True, slots=True)
class ReplayResult:
    replayed: tuple[int, ...]  # held changes now routed (sent, or deliberately not sent)
    still_held: tuple[tuple[int, str], ...]  # (id, why) of those that still cannot be
    notices: int  # notices written for them


def replay_held(
    db: Database,
    config: Config,
    planner: NoticePlanner,
    ids: Sequence[int] | None,
    now: datetime,
) -> ReplayResult:
    """Route the open held changes ``ids`` (all open ones when ``None``) again."""
    with db.write() as conn:
        found = held_store.held(conn, ids, limit=100_000)
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
                pairs, _ = address(etype, ref, item.before, item.after)
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
        stats = planner.plan(
            conn,
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
            held_store.still_held(conn, held_id, reason)
        done = [c.id for c in found if c.id not in still]
        held_store.resolve(conn, done, held_store.REPLAYED, to_us(now))
    return ReplayResult(tuple(done), tuple(sorted(still.items())), stats.notices)


def dismiss_held(db: Database, ids: Sequence[int], now: datetime) -> int:
    """Decide, by hand, that held changes are not to be sent."""
    with db.write() as conn:
        return held_store.resolve(conn, ids, held_store.DISMISSED, to_us(now))
