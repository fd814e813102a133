"""The database schema, written once in SQLAlchemy Core and created by Alembic migrations.

Times are stored as integer microseconds since the Unix epoch (UTC): portable between SQLite
and PostgreSQL, cheap to compare, and exact. Records are stored as canonical JSON text.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Column,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    SmallInteger,
    String,
    Table,
    Text,
    text,
)

metadata = MetaData()

# The event log: append-only, every accepted event, kept for audit (``tidings prune`` trims it).
events = Table(
    "events",
    metadata,
    Column("id", String(200), primary_key=True),
    Column("source", String(100), nullable=False),
    Column("entity", String(100), nullable=False),
    Column("key", String(200), nullable=False),
    Column("seq", BigInteger, nullable=False),
    Column("op", String(10), nullable=False),
    Column("at_us", BigInteger, nullable=False),
    Column("data", Text, nullable=True),
    Column("status", SmallInteger, nullable=False),
    Column("origin", String(300), nullable=True),
    Column("ingested_us", BigInteger, nullable=False),
    Index("ix_events_entity", "source", "entity", "key", "seq"),
    Index("ix_events_ingested", "ingested_us"),
)

# The ledger: per entity, the baseline as of the last close (``None`` data = absent), and
# whether it has pending events (``dirty``), so a close finds its work through a small index.
entities = Table(
    "entities",
    metadata,
    Column("source", String(100), primary_key=True),
    Column("entity", String(100), primary_key=True),
    Column("key", String(200), primary_key=True),
    Column("baseline", Text, nullable=True),
    Column("seq", BigInteger, nullable=True),
    Column("window_id", Integer, nullable=True),
    Column("dirty", SmallInteger, nullable=False, server_default="0"),
    Index(
        "ix_entities_dirty",
        "source",
        "entity",
        "key",
        sqlite_where=text("dirty = 1"),
        postgresql_where=text("dirty = 1"),
    ),
    # Clustered on the key on SQLite: a close's baseline update is one B-tree search, not two.
    sqlite_with_rowid=False,
)

windows = Table(
    "windows",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("closes_at_us", BigInteger, nullable=False),
    Column("closed_us", BigInteger, nullable=False),
    Column("entities", Integer, nullable=False),
    Column("events_folded", Integer, nullable=False),
    Column("events_stale", Integer, nullable=False),
    Column("net_changes", Integer, nullable=False),
    Column("vanished", Integer, nullable=False),
    Column("unaddressed", Integer, nullable=False),
    Column("digests", Integer, nullable=False),
)

# What each recipient is told, per window: the persisted digests.
digest_changes = Table(
    "digest_changes",
    metadata,
    Column("window_id", Integer, primary_key=True),
    Column("recipient", String(200), primary_key=True),
    Column("source", String(100), primary_key=True),
    Column("entity", String(100), primary_key=True),
    Column("key", String(200), primary_key=True),
    Column("kind", String(10), nullable=False),
    Column("fields", Text, nullable=False),
    # How the rules and preferences routed it (see ``notices/routing.py``); null without rules.
    Column("route", Text, nullable=True),
    Index("ix_digest_changes_recipient", "recipient", "window_id"),
    sqlite_with_rowid=False,
)

# Input that could not be accepted, with where it came from and why; can be replayed.
quarantine = Table(
    "quarantine",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("received_us", BigInteger, nullable=False),
    Column("origin", String(300), nullable=False),
    Column("line", Integer, nullable=False),
    Column("format", String(20), nullable=False),
    Column("record", String(300), nullable=True),
    Column("field", String(200), nullable=True),
    Column("reason", Text, nullable=False),
    # The line as text (a NUL shown as \u0000, bytes that are not UTF-8 replaced); when that
    # text is not the line exactly, ``raw_bytes`` keeps it, so a replay reads what arrived.
    Column("raw", Text, nullable=False),
    Column("status", String(10), nullable=False, server_default="open"),
    Column("resolved_us", BigInteger, nullable=True),
    Column("raw_bytes", LargeBinary, nullable=True),
    # The offending value, kept apart from the reason and shown only when asked for.
    Column("value", Text, nullable=True),
    Index("ix_quarantine_status", "status", "id"),
    Index("ix_quarantine_origin", "origin", "line"),
)

# --- Notifying people ---------------------------------------------------------------------------

# The outbox: written in the same transaction as the window close, drained by the dispatcher.
# ``idem_key`` is deterministic (recipient, channel, window), so a notice can never be created
# twice; ``lease_us`` is how long a dispatcher's claim lasts before another may take over.
notices = Table(
    "notices",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("idem_key", String(64), nullable=False, unique=True),
    Column("window_id", Integer, nullable=True),
    Column("recipient", String(200), nullable=False),
    Column("channel", String(100), nullable=False),
    Column("medium", String(10), nullable=False),
    Column("category", String(100), nullable=False),
    Column("template", String(100), nullable=False),
    Column("address", String(320), nullable=True),
    Column("subject", Text, nullable=True),
    Column("body", Text, nullable=False),
    Column("html", Text, nullable=True),
    Column("payload", Text, nullable=False),
    Column("changes", Integer, nullable=False),
    Column("status", SmallInteger, nullable=False),
    Column("attempts", Integer, nullable=False, server_default="0"),
    Column("due_us", BigInteger, nullable=False),
    Column("lease_us", BigInteger, nullable=True),
    Column("created_us", BigInteger, nullable=False),
    Column("sent_us", BigInteger, nullable=True),
    Column("outcome", String(20), nullable=True),
    Column("reason", Text, nullable=True),
    Column("provider_ref", String(200), nullable=True),
    # Replies asking us to slow down: a budget of their own, as they use up no attempt.
    Column("rate_limits", Integer, nullable=False, server_default="0"),
    Index("ix_notices_due", "status", "due_us"),
    Index("ix_notices_recipient", "recipient", "id"),
    Index("ix_notices_address", "address", "status"),
    Index("ix_notices_provider_ref", "provider_ref"),
)

# Every delivery attempt and later receipt of a notice, for the console's explain page (the
# notice row keeps only the latest).
notice_attempts = Table(
    "notice_attempts",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("notice_id", Integer, nullable=False),
    Column("at_us", BigInteger, nullable=False),
    Column("attempt", Integer, nullable=False),
    Column("status", SmallInteger, nullable=False),
    Column("outcome", String(20), nullable=True),
    Column("reason", Text, nullable=True),
    Column("provider_ref", String(200), nullable=True),
    Column("kind", String(10), nullable=False),
    Index("ix_notice_attempts_notice", "notice_id", "id"),
)

# Addresses a provider said are undeliverable; later notices to them are held.
undeliverable = Table(
    "undeliverable",
    metadata,
    Column("address", String(320), primary_key=True),
    Column("channel", String(100), nullable=False),
    Column("reason", Text, nullable=False),
    Column("since_us", BigInteger, nullable=False),
    Column("notice_id", Integer, nullable=False),
)

# Per recipient and category: channels opted out of, and daily or weekly digests.
preferences = Table(
    "preferences",
    metadata,
    Column("recipient", String(200), primary_key=True),
    Column("category", String(100), primary_key=True),
    Column("opted_out", Text, nullable=False, server_default="[]"),
    Column("frequency", String(10), nullable=True),
    Column("updated_us", BigInteger, nullable=False),
)

# Net changes held back for a later digest (weekly frequency), folded into the one that
# goes out when they fall due.
deferred_items = Table(
    "deferred_items",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("recipient", String(200), nullable=False),
    Column("channel", String(100), nullable=False),
    Column("category", String(100), nullable=False),
    Column("template", String(100), nullable=False),
    Column("due_us", BigInteger, nullable=False),
    Column("item", Text, nullable=False),
    Column("created_us", BigInteger, nullable=False),
    Index("ix_deferred_due", "due_us"),
)

# The in-app inbox; one message per in-app notice.
inbox = Table(
    "inbox",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("notice_id", Integer, nullable=False, unique=True),
    Column("recipient", String(200), nullable=False),
    Column("title", Text, nullable=False),
    Column("body", Text, nullable=False),
    Column("state", String(10), nullable=False, server_default="unread"),
    Column("created_us", BigInteger, nullable=False),
    Column("read_us", BigInteger, nullable=True),
    Index("ix_inbox_recipient", "recipient", "state", "id"),
)

# Net changes a close could not send and that need a person: a rule's condition failed on
# them, or the record names nobody although its type has a recipient field. Kept whole, so
# ``tidings attention replay`` sends them once the config is fixed.
held_changes = Table(
    "held_changes",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("window_id", Integer, nullable=True),
    Column("cause", String(20), nullable=False),
    Column("rule", String(200), nullable=True),
    Column("recipient", String(200), nullable=True),
    Column("source", String(100), nullable=False),
    Column("entity", String(100), nullable=False),
    Column("key", String(200), nullable=False),
    Column("item", Text, nullable=False),
    Column("reason", Text, nullable=False),
    Column("status", String(10), nullable=False, server_default="open"),
    Column("created_us", BigInteger, nullable=False),
    Column("resolved_us", BigInteger, nullable=True),
    Index("ix_held_changes_status", "status", "id"),
)

# The index of tracked fields (reminder dates, recipients, relation keys): per record and
# field, its latest value by seq, and when the event that set that value happened
# (``known_us``). Kept at ingest, so reminders and relations never scan records.
tracked = Table(
    "tracked",
    metadata,
    Column("source", String(100), primary_key=True),
    Column("entity", String(100), primary_key=True),
    Column("key", String(200), primary_key=True),
    Column("field", String(200), primary_key=True),
    Column("value", Text, nullable=True),
    Column("seq", BigInteger, nullable=False),
    Column("known_us", BigInteger, nullable=False),
    Index("ix_tracked_value", "entity", "field", "value"),
)

# Which (entity, field) pairs the index holds: a pair the config starts tracking is built
# once from the event log and the baselines.
tracked_fields = Table(
    "tracked_fields",
    metadata,
    Column("entity", String(100), primary_key=True),
    Column("field", String(200), primary_key=True),
    Column("built_us", BigInteger, nullable=False),
)

# Every reminder decided: sent (with the notice it went in) or skipped, and why; once per
# (record, reminder, offset, date value).
reminder_log = Table(
    "reminder_log",
    metadata,
    Column("source", String(100), primary_key=True),
    Column("entity", String(100), primary_key=True),
    Column("key", String(200), primary_key=True),
    Column("reminder", String(200), primary_key=True),
    Column("days_before", Integer, primary_key=True),
    Column("date", String(10), primary_key=True),
    Column("status", String(10), nullable=False),
    Column("reason", Text, nullable=True),
    Column("recipient", String(200), nullable=True),
    Column("due_us", BigInteger, nullable=False),
    Column("decided_us", BigInteger, nullable=False),
    Column("idem_key", String(64), nullable=True),
)

# Each scheduled managers' digest of a report that went out: once per (report, period).
digest_runs = Table(
    "digest_runs",
    metadata,
    Column("report", String(200), primary_key=True),
    Column("period", String(40), primary_key=True),
    Column("done_us", BigInteger, nullable=False),
    Column("notices", Integer, nullable=False),
)

# --- access (``tidings serve``): staff users, API keys, grants, sessions, the audit log --------

# Staff who sign in to the console: a local argon2 password, or an identity provider's user.
staff_users = Table(
    "staff_users",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("username", String(200), nullable=False, unique=True),
    Column("display_name", String(200), nullable=False),
    Column("password_hash", Text, nullable=True),
    Column("source", String(20), nullable=False),
    Column("active", SmallInteger, nullable=False, server_default="1"),
    Column("created_us", BigInteger, nullable=False),
    Column("last_active_us", BigInteger, nullable=True),
    Column("failed_logins", Integer, nullable=False, server_default="0"),
    Column("locked_until_us", BigInteger, nullable=True),
)

# API keys for systems: shown once, kept as a SHA-256 of their random secret (a 256-bit
# secret needs no slow hash), found by their public prefix.
api_keys = Table(
    "api_keys",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("name", String(200), nullable=False),
    Column("prefix", String(40), nullable=False, unique=True),
    Column("secret_hash", String(64), nullable=False),
    Column("created_by", String(300), nullable=False),
    Column("created_us", BigInteger, nullable=False),
    Column("last_used_us", BigInteger, nullable=True),
    Column("revoked_us", BigInteger, nullable=True),
)

# One role for a user or a key, perhaps within a scope; revoked grants stay, for the record.
grants = Table(
    "grants",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("user_id", Integer, nullable=True),
    Column("key_id", Integer, nullable=True),
    Column("role", String(40), nullable=False),
    Column("scope_name", String(100), nullable=True),
    Column("scope_value", String(200), nullable=True),
    Column("source", String(300), nullable=False),
    Column("granted_by", String(300), nullable=False),
    Column("granted_us", BigInteger, nullable=False),
    Column("revoked_us", BigInteger, nullable=True),
    Column("revoked_by", String(300), nullable=True),
    Index("ix_grants_user", "user_id"),
    Index("ix_grants_key", "key_id"),
)

# Console sessions, by a SHA-256 of the cookie's value (a stolen database holds no cookie).
staff_sessions = Table(
    "staff_sessions",
    metadata,
    Column("id_hash", String(64), primary_key=True),
    Column("user_id", Integer, nullable=False),
    Column("csrf", String(64), nullable=False),
    Column("created_us", BigInteger, nullable=False),
    Column("expires_us", BigInteger, nullable=False),
    Column("last_seen_us", BigInteger, nullable=False),
)

# Every admin action, grant and revocation, and every view of a person's data by staff.
audit_log = Table(
    "audit_log",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("at_us", BigInteger, nullable=False),
    Column("actor", String(300), nullable=False),
    Column("action", String(100), nullable=False),
    Column("target", String(300), nullable=False),
    Column("detail", Text, nullable=False, server_default="{}"),
    Index("ix_audit_at", "at_us"),
    Index("ix_audit_target", "target"),
)
