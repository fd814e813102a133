"""The one exception tree of Tidings.

Every error Tidings raises on purpose is a ``TidingsError``; its message says what went wrong
and what to do. Foreign errors (SQLAlchemy, TOML, JSON) are mapped at the edge::

    TidingsError
    ├── ConfigError            the configuration file is missing or invalid (names the key)
    ├── InputError             one input record cannot be accepted (names record, field, reason)
    │   └── UnknownFormatError     the record matches no known change-event format
    ├── TemplateRenderError    a template failed on real data (held, with file and line)
    ├── StoreError             the database cannot be reached, migrated or written
    │   └── StoreDataError         the database refused a value (ingest isolates its line)
    │       └── StoreConflict          a row with that key is there already
    ├── WindowError            a window cannot be closed as asked (for example a bad --at time)
    ├── LinkError              a link's token is malformed, altered, or not signed by us
    ├── AccessError            a sign-in, API key or grant was refused (names no secret)
    ├── SourceError            a live source (Kafka, PostgreSQL) refused or failed for good
    └── ListenError            tidings serve cannot listen where [serve] says (port taken...)
"""

from __future__ import annotations


class TidingsError(Exception):
    """Base class for every error Tidings raises on purpose."""


class ConfigError(TidingsError):
    """The configuration is missing or invalid; ``problems`` lists each ``(key, reason)``."""

    def __init__(self, problems: list[tuple[str, str]], path: str | None = None) -> None:
        self.problems = tuple(problems)
        self.path = path
        where = f" in {path}" if path else ""
        lines = "\n".join(f"  {key}: {reason}" for key, reason in problems)
        super().__init__(f"invalid configuration{where}:\n{lines}")


class InputError(TidingsError):
    """One input record was rejected. It is quarantined, never dropped.

    ``reason`` never quotes the input: the offending ``value`` (a short excerpt) is kept apart,
    so messages and logs show the field and the reason, not people's data.
    """

    def __init__(
        self,
        reason: str,
        *,
        field: str | None = None,
        record: str | None = None,
        value: str | None = None,
    ) -> None:
        self.reason = reason
        self.field = field
        self.record = record
        self.value = value
        parts = []
        if record:
            parts.append(f"record {record}")
        if field:
            parts.append(f"field {field!r}")
        prefix = ", ".join(parts)
        super().__init__(f"{prefix}: {reason}" if prefix else reason)


class UnknownFormatError(InputError):
    """The record looks like none of the accepted formats (native, DMS, Debezium)."""


class TemplateRenderError(TidingsError):
    """A template failed on real data (it passed on sample data at start-up); the digest is
    held for attention with the template's file and line."""


class StoreError(TidingsError):
    """The store cannot be opened, migrated or written; the message says which and why."""


class StoreMissing(StoreError):
    """A command that only reads found no store (it never creates one)."""


class StoreDataError(StoreError):
    """The database refused a value it was given (too long, out of range, a constraint).

    Input limits are checked before writing, so this is rare; ingest then stores the rest of
    the batch and quarantines just the line the database refused.
    """


class StoreConflict(StoreDataError):
    """A write found a row with the same unique key already stored (an event id used for
    another record, say); ingest then looks up every id of the batch and writes it again."""


class WindowError(TidingsError):
    """A window cannot be closed as asked."""


class LinkError(TidingsError):
    """A signed link's token (``tidings unsubscribe TOKEN``) is incomplete, altered, signed
    with another secret or made for another purpose; the message never quotes the token."""


class AccessError(TidingsError):
    """A sign-in, key or grant was refused: unknown user, wrong password, locked account,
    revoked key, a role or scope that does not exist. The message names no secret."""


class SourceError(TidingsError):
    """A live source cannot go on: the broker or server refused us (authentication, access,
    a missing topic) or failed for good. Passing trouble (a broker restarting) is retried,
    not raised; the message names the source and what to check, never a secret."""


class ListenError(TidingsError):
    """``tidings serve`` cannot listen on the configured address: the port is taken, the host
    unknown, or a privileged port needs rights the process lacks."""
