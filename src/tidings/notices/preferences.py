"""Preferences per recipient and category: channels opted out of, and daily or weekly digests.

Categories marked critical cannot be opted out of or delayed: setting that is refused, and a
stored preference is ignored for them. Deciding is pure (``Preferences.choice``,
``apply_preferences``); ``show`` and ``change`` read and write through the store.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from tidings.config import Config
from tidings.errors import InputError
from tidings.notices.routing import Group, GroupKey
from tidings.store import Store, Tx
from tidings.store.codec import to_us
from tidings.store.records import PreferenceRecord

Frequency = Literal["daily", "weekly"]


@dataclass(frozen=True, slots=True)
class Preference:
    recipient: str
    category: str
    opted_out: frozenset[str]
    frequency: Frequency | None  # None: the category's default

    def to_json(self) -> dict[str, object]:
        return {
            "recipient": self.recipient,
            "category": self.category,
            "opted_out": sorted(self.opted_out),
            "frequency": self.frequency,
        }


def _preference(record: PreferenceRecord) -> Preference:
    frequency = record.frequency if record.frequency in ("daily", "weekly") else None
    return Preference(record.recipient, record.category, record.opted_out, frequency)  # type: ignore[arg-type]


@dataclass(frozen=True, slots=True)
class Choice:
    """What to do with one recipient's changes of one category on one channel."""

    send: bool
    weekly: bool


class Preferences:
    """The stored preferences of the recipients in one close, applied with the config."""

    def __init__(self, config: Config, stored: Mapping[tuple[str, str], Preference]) -> None:
        self._config = config
        self._stored = stored

    @classmethod
    def load(cls, tx: Tx, config: Config, recipients: Iterable[str]) -> Preferences:
        records = tx.preferences.of_recipients(recipients)
        return cls(config, {(r.recipient, r.category): _preference(r) for r in records})

    def choice(self, recipient: str, category: str, channel: str) -> Choice:
        spec = self._config.categories.get(category)
        default_weekly = spec is not None and spec.frequency == "weekly"
        if spec is not None and spec.critical:
            return Choice(send=True, weekly=default_weekly)
        pref = self._stored.get((recipient, category))
        if pref is None:
            return Choice(send=True, weekly=default_weekly)
        weekly = pref.frequency == "weekly" if pref.frequency else default_weekly
        return Choice(send=channel not in pref.opted_out, weekly=weekly)


def apply_preferences(
    groups: Mapping[GroupKey, Group], prefs: Preferences, *, weekly_due: bool
) -> tuple[dict[GroupKey, Group], list[Group], list[Group]]:
    """Groups to send now, groups for the weekly digest (only when ``weekly_due`` is not
    today), and the groups dropped by opt-outs. Each group is one recipient's changes of one
    category on one channel: preferences are per category."""
    kept: dict[GroupKey, Group] = {}
    weekly: list[Group] = []
    opted_out: list[Group] = []
    for key, group in groups.items():
        choice = prefs.choice(group.recipient, group.category, group.channel)
        if not choice.send:
            opted_out.append(group)
        elif choice.weekly and weekly_due:
            weekly.append(group)
        else:
            kept[key] = group
    return kept, weekly, opted_out


def show(store: Store, recipient: str) -> list[Preference]:
    with store.read() as tx:
        return [_preference(r) for r in tx.preferences.of(recipient)]


def change(
    store: Store,
    config: Config,
    recipient: str,
    category: str,
    *,
    now: datetime,
    opt_out: Iterable[str] = (),
    opt_in: Iterable[str] = (),
    frequency: Frequency | None = None,
) -> Preference:
    """Opt ``recipient`` out of (or back into) channels of ``category``, or set its frequency."""
    spec = config.categories.get(category)
    if spec is None:
        known = ", ".join(sorted(config.categories)) or "none are configured"
        raise InputError(f"no such category; known: {known}", field="category", record=recipient)
    out, back = set(opt_out), set(opt_in)
    for name in out | back:
        if name not in config.channels:
            raise InputError(
                f"no such channel {name!r}; known: {', '.join(sorted(config.channels))}",
                field="channel",
                record=recipient,
            )
    if spec.critical and (out or frequency == "weekly"):
        raise InputError(
            f"category {category!r} is critical: it cannot be opted out of or made weekly",
            field="category",
            record=recipient,
        )
    with store.write() as tx:
        stored = {p.category: p for p in tx.preferences.of(recipient)}
        current = stored.get(category) or PreferenceRecord(recipient, category, frozenset(), None)
        updated = PreferenceRecord(
            recipient,
            category,
            (current.opted_out | out) - back,
            frequency or current.frequency,
        )
        tx.preferences.put(updated, to_us(now))
    return _preference(updated)


@dataclass(frozen=True, slots=True)
class ChannelOptOut:
    """What opting a recipient out of a channel did (``tidings unsubscribe``), by category."""

    recipient: str
    channel: str
    opted_out: tuple[str, ...]  # now opted out
    already: tuple[str, ...]  # opted out before: nothing changed
    critical: tuple[str, ...]  # cannot be opted out of: still sent

    def to_json(self) -> dict[str, object]:
        return {
            "recipient": self.recipient,
            "channel": self.channel,
            "opted_out": list(self.opted_out),
            "already": list(self.already),
            "critical": list(self.critical),
        }


def sent_categories(config: Config) -> list[str]:
    """Every category something may be sent in: the configured ones, and those rules,
    reminders and managers' digests name (``general`` by default, configured or not)."""
    named = [
        *config.categories,
        *(r.category for r in config.rules if not r.exclude),
        *(r.category for r in config.reminders),
        *(r.digest.category for r in config.reports if r.digest is not None),
    ]
    return sorted(set(named))


def opt_out_of_channel(
    store: Store, config: Config, recipient: str, channel: str, *, now: datetime
) -> ChannelOptOut:
    """Opt ``recipient`` out of ``channel`` in every category that allows it, in one
    transaction; idempotent (a second call changes nothing and says so)."""
    if channel not in config.channels:
        raise InputError(
            f"channel {channel!r} is no longer configured; opt the recipient out by hand "
            "with tidings prefs",
            field="channel",
        )
    done: list[str] = []
    already: list[str] = []
    kept: list[str] = []
    with store.write() as tx:
        stored = {p.category: p for p in tx.preferences.of(recipient)}
        for category in sent_categories(config):
            spec = config.categories.get(category)
            if spec is not None and spec.critical:
                kept.append(category)
                continue
            current = stored.get(category) or PreferenceRecord(
                recipient, category, frozenset(), None
            )
            if channel in current.opted_out:
                already.append(category)
                continue
            updated = PreferenceRecord(
                recipient, category, current.opted_out | {channel}, current.frequency
            )
            tx.preferences.put(updated, to_us(now))
            done.append(category)
    return ChannelOptOut(recipient, channel, tuple(done), tuple(already), tuple(kept))
