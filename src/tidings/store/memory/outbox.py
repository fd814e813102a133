"""The outbox, deferred changes, preferences and the inbox in memory."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import replace
from typing import Any

from tidings.store.memory.state import State
from tidings.store.records import (
    FAILED,
    HELD,
    NOTICE_COLUMNS,
    PENDING,
    SENDING,
    AttemptRecord,
    Claim,
    DeferredItem,
    DeferredRow,
    InboxRecord,
    NoticeRecord,
    NoticeRow,
    OutcomeRow,
    PreferenceRecord,
    Undeliverable,
    held_as_undeliverable,
    released_address,
    released_to,
    retried_by_hand,
)


def _notice(row: dict[str, Any]) -> NoticeRecord:
    return NoticeRecord(**row)


class MemoryOutbox:
    def __init__(self, state: State) -> None:
        self._s = state

    def add(self, rows: Sequence[NoticeRow]) -> None:
        keys = {n["idem_key"] for n in self._s.notices.values()}
        for row in rows:
            values = dict(zip(NOTICE_COLUMNS, row, strict=True))
            if values["idem_key"] in keys:
                continue
            keys.add(values["idem_key"])
            notice_id = len(self._s.notices) + 1
            self._s.notices[notice_id] = {
                "id": notice_id,
                **values,
                "lease_us": None,
                "sent_us": None,
                "provider_ref": None,
                "rate_limits": 0,
            }

    def _where(self, test: Callable[[dict[str, Any]], bool]) -> list[dict[str, Any]]:
        return [n for _, n in sorted(self._s.notices.items()) if test(n)]

    def claim(
        self, channels: Sequence[str], due_by_us: int, lease_us: int, limit: int
    ) -> list[Claim]:
        wanted = set(channels)
        due = self._where(
            lambda n: (
                n["channel"] in wanted
                and (
                    (n["status"] == PENDING and n["due_us"] <= due_by_us)
                    or (n["status"] == SENDING and (n["lease_us"] or 0) < due_by_us)
                )
            )
        )
        due.sort(key=lambda n: (n["due_us"], n["id"]))
        claims = []
        for n in due[:limit]:
            n["status"], n["lease_us"] = SENDING, lease_us
            claims.append(
                Claim(
                    n["id"],
                    n["idem_key"],
                    n["recipient"],
                    n["channel"],
                    n["address"],
                    n["subject"],
                    n["body"],
                    n["html"],
                    n["payload"],
                    n["attempts"],
                    n["rate_limits"],
                )
            )
        claims.sort(key=lambda c: c.id)
        return claims

    def record(self, rows: Sequence[OutcomeRow], now_us: int) -> list[bool]:
        written = []
        for status, due, sent, outcome, reason, ref, attempts, limits, notice_id, lease in rows:
            n = self._s.notices.get(notice_id)
            if n is None or n["status"] != SENDING or n["lease_us"] != lease:
                written.append(False)
                continue
            n.update(status=status, outcome=outcome, reason=reason, attempts=attempts)
            n.update(rate_limits=limits, lease_us=None)
            if due is not None:
                n["due_us"] = due
            if sent is not None:
                n["sent_us"] = sent
            if ref is not None:
                n["provider_ref"] = ref
            written.append(True)
            self._s.attempts.append(
                AttemptRecord(notice_id, now_us, attempts, status, outcome, reason, ref, "attempt")
            )
        return written

    def attempts_of(self, notice_id: int) -> list[AttemptRecord]:
        return [a for a in self._s.attempts if a.notice_id == notice_id]

    def hand_back(self, notice_id: int, lease_us: int, due_us: int, why: str) -> None:
        n = self._s.notices.get(notice_id)
        if n is not None and n["status"] == SENDING and n["lease_us"] == lease_us:
            n.update(status=PENDING, due_us=due_us, lease_us=None, outcome=why)

    def undeliverable_among(self, addresses: Iterable[str]) -> dict[str, str]:
        bad = self._s.undeliverable
        return {a: bad[a].reason for a in set(addresses) if a in bad}

    def mark_undeliverable(
        self, address: str, channel: str, reason: str, notice_id: int, now_us: int
    ) -> int:
        self._s.undeliverable.setdefault(
            address, Undeliverable(address, channel, reason, now_us, notice_id)
        )
        held = self._where(lambda n: n["address"] == address and n["status"] == PENDING)
        for n in held:
            n.update(held_as_undeliverable(reason))
        return len(held)

    def held_for(self, recipients: Sequence[str]) -> list[NoticeRecord]:
        wanted = set(recipients)
        return [
            _notice(n)
            for n in self._where(lambda n: n["recipient"] in wanted and n["status"] == HELD)
        ]

    def release(self, notice_id: int, address: str, now_us: int) -> None:
        self._s.notices[notice_id].update(released_to(address, now_us))

    def attention(self, limit: int) -> list[NoticeRecord]:
        return [_notice(n) for n in self._where(lambda n: n["status"] in (FAILED, HELD))[:limit]]

    def retrying(self, limit: int) -> list[NoticeRecord]:
        found = self._where(
            lambda n: n["status"] == PENDING and (n["attempts"] > 0 or n["rate_limits"] > 0)
        )
        return [_notice(n) for n in found[:limit]]

    def of_recipient(self, recipient: str, limit: int) -> list[NoticeRecord]:
        found = self._where(lambda n: n["recipient"] == recipient)
        return [_notice(n) for n in reversed(found)][:limit]

    def of_window(self, window_id: int, recipient: str) -> list[NoticeRecord]:
        found = self._where(lambda n: n["window_id"] == window_id and n["recipient"] == recipient)
        return [_notice(n) for n in found]

    def all(self) -> list[NoticeRecord]:
        return [_notice(n) for n in self._where(lambda n: True)]

    def counts(self) -> dict[int, int]:
        counts: dict[int, int] = {}
        for n in self._s.notices.values():
            counts[n["status"]] = counts.get(n["status"], 0) + 1
        return counts

    def due_count(self) -> int:
        return sum(1 for n in self._s.notices.values() if n["status"] in (PENDING, SENDING))

    def retry(self, ids: Sequence[int], now_us: int) -> int:
        wanted = set(ids)
        found = self._where(
            lambda n: (
                n["id"] in wanted and n["status"] in (FAILED, HELD) and n["address"] is not None
            )
        )
        for n in found:
            n.update(retried_by_hand(now_us))
        return len(found)

    def undeliverable(self) -> list[Undeliverable]:
        return sorted(self._s.undeliverable.values(), key=lambda u: u.since_us)

    def forget(self, address: str, now_us: int) -> int | None:
        if self._s.undeliverable.pop(address, None) is None:
            return None
        found = self._where(lambda n: n["address"] == address and n["status"] == HELD)
        for n in found:
            n.update(released_address(now_us))
        return len(found)

    def by_id(self, notice_id: int) -> NoticeRecord | None:
        found = self._s.notices.get(notice_id)
        return None if found is None else _notice(found)

    def by_provider_ref(self, provider_ref: str) -> NoticeRecord | None:
        found = self._where(lambda n: n["provider_ref"] == provider_ref)
        return _notice(found[0]) if found else None

    def set_outcome(self, notice_id: int, values: Mapping[str, Any], now_us: int) -> None:
        n = self._s.notices[notice_id]
        n.update(values)
        self._s.attempts.append(
            AttemptRecord(
                notice_id,
                now_us,
                n["attempts"],
                n["status"],
                n.get("outcome"),
                n.get("reason"),
                n.get("provider_ref"),
                "receipt",
            )
        )


class MemoryDeferred:
    def __init__(self, state: State) -> None:
        self._s = state

    def add(self, rows: Sequence[DeferredRow]) -> None:
        for recipient, channel, category, template, due_us, item, _created in rows:
            item_id = self._s.next_id()
            self._s.deferred[item_id] = DeferredItem(
                item_id, recipient, channel, category, template, due_us, item
            )

    def take_due(self, until_us: int) -> list[DeferredItem]:
        due = [d for _, d in sorted(self._s.deferred.items()) if d.due_us <= until_us]
        for item in due:
            del self._s.deferred[item.id]
        return due


class MemoryPreferences:
    def __init__(self, state: State) -> None:
        self._s = state

    def of_recipients(self, recipients: Iterable[str]) -> list[PreferenceRecord]:
        wanted = set(recipients)
        return [p for (r, _), p in sorted(self._s.preferences.items()) if r in wanted]

    def of(self, recipient: str) -> list[PreferenceRecord]:
        return self.of_recipients([recipient])

    def put(self, preference: PreferenceRecord, now_us: int) -> None:
        self._s.preferences[(preference.recipient, preference.category)] = preference


class MemoryInbox:
    def __init__(self, state: State) -> None:
        self._s = state

    def deliver(self, notice_id: int, recipient: str, title: str, body: str, now_us: int) -> int:
        for message in self._s.inbox.values():
            if message.notice_id == notice_id:
                return message.id
        message_id = len(self._s.inbox) + 1
        self._s.inbox[message_id] = InboxRecord(
            message_id, notice_id, recipient, title, body, "unread", now_us
        )
        return message_id

    def messages(self, recipient: str, *, include_archived: bool) -> list[InboxRecord]:
        found = [
            m
            for _, m in sorted(self._s.inbox.items(), reverse=True)
            if m.recipient == recipient and (include_archived or m.state != "archived")
        ]
        return found

    def mark(self, recipient: str, message_id: int, state: str, now_us: int) -> bool:
        message = self._s.inbox.get(message_id)
        if message is None or message.recipient != recipient:
            return False
        self._s.inbox[message_id] = replace(message, state=state)
        return True

    def all(self) -> list[InboxRecord]:
        return [m for _, m in sorted(self._s.inbox.items())]
