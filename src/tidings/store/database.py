"""The SQL store: engine set-up per backend, migrations, transactions, locks, and errors.

SQLite runs in WAL mode with ``BEGIN IMMEDIATE`` for writing transactions, so a writer holds
the lock from its first statement and never fails half-way on a busy database. PostgreSQL uses
an advisory lock: ingest takes it shared, a window close exclusive, so no event can be added to
the entities a close is folding between its read and its update.
"""

from __future__ import annotations

import contextlib
import sqlite3
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import cached_property
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from sqlalchemy import URL, Connection, Engine, create_engine, event, inspect, make_url, text
from sqlalchemy.exc import SQLAlchemyError

from tidings.errors import StoreConflict, StoreDataError, StoreError, StoreMissing
from tidings.store.access import SqlAccess
from tidings.store.deferred import SqlDeferred
from tidings.store.events import SqlEvents
from tidings.store.held import SqlHeld
from tidings.store.inbox import SqlInbox
from tidings.store.ledger import SqlLedger
from tidings.store.outbox import SqlOutbox
from tidings.store.preferences import SqlPreferences
from tidings.store.quarantine import SqlQuarantine
from tidings.store.reminders import SqlReminders
from tidings.store.stats import SqlStats

if TYPE_CHECKING:
    from alembic.config import Config as AlembicConfig

_LOCK_KEY = 0x7469_6469  # "tidi": the advisory lock that orders ingests and closes
_READ_ONLY = "tidings_read_only"
# PostgreSQL's answers to writers that raced each other: a deadlock, a serialization failure.
# Run again, the work sees the winner. (A unique key another transaction committed first is a
# ``StoreConflict``: the caller decides, as ingest does by looking up what is stored.)
_RACED = frozenset({"40P01", "40001"})
_ATTEMPTS = 5
T = TypeVar("T")


def _sqlite_engine(url: str) -> Engine:
    # The default pool keeps connections open: closing the last one checkpoints the WAL.
    engine = create_engine(url, hide_parameters=True)
    # ``?timeout=SECONDS`` in the URL (SQLAlchemy's own option) sets how long a writer waits
    # for another one's lock; 30 s otherwise.
    own_timeout = "timeout" in make_url(url).query

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        # Let SQLAlchemy's "begin" event decide how each transaction starts (see below).
        dbapi_conn.isolation_level = None
        cursor = dbapi_conn.cursor()
        # Larger pages for a new database (a no-op on an existing one): records of a few
        # kilobytes (rendered notices, JSON baselines) then rarely spill into overflow pages.
        cursor.execute("PRAGMA page_size=16384")
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        if not own_timeout:
            cursor.execute("PRAGMA busy_timeout=30000")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA cache_size=-65536")
        # Memory-mapped reads: the close's scans read pages without copying them (1 GiB of
        # address space, not memory; pages are shared with the OS cache).
        cursor.execute("PRAGMA mmap_size=1073741824")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        read_only = conn.get_execution_options().get(_READ_ONLY, False)
        conn.exec_driver_sql("BEGIN" if read_only else "BEGIN IMMEDIATE")

    return engine


class SqlStore:
    """A migrated SQLite or PostgreSQL database, and transactions on it (``Store``)."""

    def __init__(self, engine: Engine, url: str) -> None:
        self.engine = engine
        self._url = url
        self.is_sqlite = engine.dialect.name == "sqlite"

    @property
    def url(self) -> str:
        return self._url

    @property
    def kind(self) -> str:
        return "sqlite" if self.is_sqlite else "postgresql"

    @contextmanager
    def write(self, *, exclusive: bool = False) -> Iterator[SqlTx]:
        """A writing transaction; ``exclusive`` keeps out every other writer (window close)."""
        with _mapped("database write failed"), self.engine.begin() as conn:
            if not self.is_sqlite:
                lock = "pg_advisory_xact_lock" if exclusive else "pg_advisory_xact_lock_shared"
                conn.execute(text(f"SELECT {lock}(:k)"), {"k": _LOCK_KEY})
            yield SqlTx(conn, self.is_sqlite)

    def write_retrying(self, work: Callable[[SqlTx], T]) -> T:
        """``work`` in a writing transaction, run again (from scratch, in a new transaction)
        when it lost a race with a concurrent writer on PostgreSQL, such as two ingest workers
        storing the same event id from different batches."""
        for attempt in range(1, _ATTEMPTS + 1):
            try:
                with self.write() as tx:
                    return work(tx)
            except StoreError as exc:
                if attempt == _ATTEMPTS or _sqlstate(exc.__cause__) not in _RACED:
                    raise
        raise AssertionError("unreachable")

    @contextmanager
    def read(self) -> Iterator[SqlTx]:
        """A read-only transaction with a consistent view."""
        with _mapped("database read failed"), self.engine.connect() as raw:
            conn = raw.execution_options(**{_READ_ONLY: True})
            with conn.begin():
                if not self.is_sqlite:
                    conn.exec_driver_sql(
                        "SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY"
                    )
                yield SqlTx(conn, self.is_sqlite)

    def checkpoint(self) -> None:
        """SQLite only: copy the write-ahead log into the database file and truncate it."""
        if not self.is_sqlite:
            return
        with self.engine.connect() as conn:
            raw = conn.connection.dbapi_connection  # outside any transaction, as SQLite needs
            assert raw is not None
            # Busy with a reader or writer: it is only an optimisation, so try next time.
            with contextlib.suppress(sqlite3.OperationalError):
                raw.execute("PRAGMA wal_checkpoint(TRUNCATE)")

    def schema_problem(self) -> str | None:
        """Why this database's schema is not the newest migration (``None``: it is)."""
        from alembic.migration import MigrationContext

        with _mapped("database read failed"), self.engine.connect() as conn:
            current = MigrationContext.configure(conn).get_current_revision()
        if current != self._head:
            return (
                f"the database schema is at migration {current or 'none'}, not {self._head}; "
                "run any tidings command against it to migrate it"
            )
        return None

    @cached_property
    def _head(self) -> str | None:
        from alembic.script import ScriptDirectory

        return ScriptDirectory.from_config(alembic_config(self.engine)).get_current_head()

    def dispose(self) -> None:
        self.engine.dispose()


class SqlTx:
    """One transaction's named operations (``Tx``), each aggregate's made on first use."""

    def __init__(self, conn: Connection, is_sqlite: bool) -> None:
        self.conn = conn
        self.is_sqlite = is_sqlite

    @cached_property
    def events(self) -> SqlEvents:
        return SqlEvents(self.conn)

    @cached_property
    def ledger(self) -> SqlLedger:
        return SqlLedger(self.conn, self.is_sqlite)

    @cached_property
    def outbox(self) -> SqlOutbox:
        return SqlOutbox(self.conn, self.is_sqlite)

    @cached_property
    def deferred(self) -> SqlDeferred:
        return SqlDeferred(self.conn)

    @cached_property
    def preferences(self) -> SqlPreferences:
        return SqlPreferences(self.conn, self.is_sqlite)

    @cached_property
    def inbox(self) -> SqlInbox:
        return SqlInbox(self.conn, self.is_sqlite)

    @cached_property
    def quarantine(self) -> SqlQuarantine:
        return SqlQuarantine(self.conn)

    @cached_property
    def held(self) -> SqlHeld:
        return SqlHeld(self.conn)

    @cached_property
    def reminders(self) -> SqlReminders:
        return SqlReminders(self.conn, self.is_sqlite)

    @cached_property
    def access(self) -> SqlAccess:
        return SqlAccess(self.conn)

    @cached_property
    def stats(self) -> SqlStats:
        return SqlStats(self.conn)


@contextmanager
def _mapped(action: str) -> Iterator[None]:
    """The one place a driver's error becomes a ``StoreError`` (see ``store_error``)."""
    try:
        yield
    except Exception as exc:
        if not _is_database_error(exc) and not isinstance(exc, OverflowError):
            raise
        raise store_error(action, exc) from exc


# What a driver says, mapped to what to do about it. Matched on SQLite's message (its error
# codes are not exposed before Python 3.11's sqlite_errorcode, and are the same words).
_SQLITE_ADVICE = (
    ("database is locked", "the database is locked by another process (another tidings "
     "command, or a long close); try again when it has finished"),
    ("readonly database", "the database file is read-only; check its permissions and those "
     "of its folder (SQLite writes a -wal file beside it)"),
    ("unable to open database file", "the database file cannot be opened; check that its "
     "folder exists and is writable"),
    ("database or disk is full", "the disk is full; free some space and run the command "
     "again (nothing was half-written)"),
    ("disk i/o error", "the disk reported an I/O error; check the disk, then run the command "
     "again (nothing was half-written)"),
    ("file is not a database", "the file is not a SQLite database; check [store] url"),
    ("database disk image is malformed", "the database file is damaged; restore it from a "
     "backup"),
)  # fmt: skip
# PostgreSQL SQLSTATE classes that mean "this value was refused", not "the server is unwell".
_DATA_CLASSES = ("22", "23")


def store_error(action: str, exc: BaseException) -> StoreError:
    """A driver's error as a ``StoreError`` that says what to do, never quoting stored values.

    PostgreSQL's full message can quote a row (a key in ``DETAIL``, a COPY line in
    ``CONTEXT``): only its primary message is kept. A refused value is a ``StoreDataError``.
    """
    driver = getattr(exc, "orig", None) or exc
    name = type(driver).__name__
    state = _sqlstate(driver)
    if state is not None:
        diag = getattr(driver, "diag", None)
        primary = getattr(diag, "message_primary", None) or name
        text = f"{action}: {name}: {primary} (SQLSTATE {state})"
        if state == "23505":
            return StoreConflict(text)
        if state[:2] in _DATA_CLASSES:
            return StoreDataError(text)
        return StoreError(text)
    if isinstance(driver, OverflowError):
        return StoreDataError(f"{action}: a number is too large for the database")
    advice = _advice(driver)
    if advice is not None:
        return StoreError(f"{action}: {advice}")
    message = _message(driver)
    if isinstance(driver, sqlite3.IntegrityError) and "UNIQUE" in message:
        return StoreConflict(f"{action}: {name}: {message}")
    if isinstance(driver, sqlite3.IntegrityError | sqlite3.DataError):
        return StoreDataError(f"{action}: {name}: {message}")
    if isinstance(exc, SQLAlchemyError) and not isinstance(driver, sqlite3.Error):
        return StoreError(f"{action}: {name}")  # its text would quote the statement
    return StoreError(f"{action}: {name}: {message}")


def _message(exc: BaseException) -> str:
    return str(exc.args[0]) if exc.args else str(exc)


def _advice(exc: BaseException) -> str | None:
    lowered = _message(exc).lower()
    for words, advice in _SQLITE_ADVICE:
        if words in lowered:
            return advice
    return None


def _is_database_error(exc: Exception) -> bool:
    """From a statement run through SQLAlchemy, or on the driver's own connection (COPY)."""
    if isinstance(exc, SQLAlchemyError | sqlite3.Error):
        return True
    psycopg = sys.modules.get("psycopg")  # not imported (its import costs 0.1 s) for SQLite
    return psycopg is not None and isinstance(exc, psycopg.Error)


def _sqlstate(exc: BaseException | None) -> str | None:
    # A driver error as SQLAlchemy wraps it, or as a COPY on the driver's connection raises it.
    driver_error = getattr(exc, "orig", exc)
    state = getattr(driver_error, "sqlstate", None)
    return state if isinstance(state, str) else None


def alembic_config(engine: Engine) -> AlembicConfig:
    from alembic.config import Config as AlembicConfig  # only when migrating: faster start-up

    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(resources.files("tidings.store") / "migrations"))
    cfg.attributes["engine"] = engine
    return cfg


def open_store(url: str, *, migrate: bool = True, create: bool = True) -> SqlStore:
    """Connect to ``url`` and bring its schema to the newest migration. With ``create=False``
    (commands that only read) a store that does not exist yet is an error, not made."""
    if not create:
        _must_exist(url)
    try:
        if url.startswith("sqlite"):
            engine = _sqlite_engine(url)
        else:
            # Bound parameters are people's data: errors and logs never show them. psycopg
            # prepares a statement run often; PostgreSQL would then settle on one generic plan
            # for it, chosen while the tables were still small (a sequential scan, slower with
            # every batch of a bulk load: 0.6 s per look-up at 40,000 records). Planning each
            # run with its own values keeps index look-ups.
            engine = create_engine(
                _with_option(url, "plan_cache_mode=force_custom_plan"),
                pool_pre_ping=True,
                hide_parameters=True,
            )
        if migrate:
            _upgrade(engine)
    except SQLAlchemyError as exc:
        where = f"cannot open the store at {engine_url_for_humans(url)}"
        mapped = store_error(where, exc)
        advised = _advice(getattr(exc, "orig", None) or exc) is not None
        hint = "" if advised else "; check [store] url in the config"
        raise StoreError(f"{mapped}{hint}") from exc
    return SqlStore(engine, url)


def _with_option(url: str, setting: str) -> URL:
    """``url`` with a server setting added to any ``options`` it already gives libpq."""
    parsed = make_url(url)
    given = parsed.query.get("options", "")
    options = " ".join([*([given] if isinstance(given, str) else given), f"-c {setting}"])
    return parsed.update_query_dict({"options": options.strip()})


def _must_exist(url: str) -> None:
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        path = parsed.database or ""
        if path in ("", ":memory:") or Path(path).is_file():
            return
        raise StoreMissing(
            f"there is no database at {path} yet (nothing has been ingested, or [store] url "
            "points elsewhere); this command only reads, so it does not create one"
        )
    engine = create_engine(url, hide_parameters=True)
    try:
        with engine.connect() as conn:
            if not inspect(conn).has_table("alembic_version"):
                raise StoreMissing(
                    f"the store at {engine_url_for_humans(url)} has no Tidings tables yet "
                    "(nothing has been ingested); this command only reads, so it does not "
                    "create them"
                )
    except SQLAlchemyError as exc:
        raise store_error(f"cannot open {engine_url_for_humans(url)}", exc) from exc
    finally:
        engine.dispose()


def _upgrade(engine: Engine) -> None:
    from alembic import command
    from alembic.migration import MigrationContext
    from alembic.script import ScriptDirectory

    cfg = alembic_config(engine)
    head = ScriptDirectory.from_config(cfg).get_current_head()
    with engine.connect() as conn:
        current = MigrationContext.configure(conn).get_current_revision()
    if current != head:
        command.upgrade(cfg, "head")


def engine_url_for_humans(url: str) -> str:
    """The URL without its password, safe to print."""
    return make_url(url).render_as_string(hide_password=True)
