"""A PostgreSQL database as a live source: a consistent snapshot, then logical replication.

Set-up, on every start: the configured tables are checked (they exist, have the entity's key
column, and a replica identity that lets a delete name its row), the slot is looked up, and
the publication is created if missing (``FOR TABLE ...``, inserts, updates and deletes, and
``publish_via_partition_root`` so that a partitioned table's changes come under its own name;
an existing publication without it is refused when a configured table is partitioned).

**The snapshot, and why a crash during it is safe.** The replication slot (``slot``) is
created only once the snapshot is complete, and its existence is the durable mark that it
is:

1. On a replication connection, ``CREATE_REPLICATION_SLOT <slot>_snapshot TEMPORARY LOGICAL
   pgoutput EXPORT_SNAPSHOT`` gives a position P and a snapshot of the database exactly at P.
   That connection then stays idle, which keeps the snapshot (and the temporary slot) alive.
2. On a normal connection, ``BEGIN ISOLATION LEVEL REPEATABLE READ; SET TRANSACTION SNAPSHOT``
   reads every table as it was at P: ``load`` events with ``seq`` = P - 1 (a transaction
   streamed later may commit exactly at P), ingested in batches. Only the columns that
   pgoutput sends are read (no generated columns, nor those a publication's column list
   leaves out), so a load and a streamed change of a row carry the same fields. A stop is
   honoured after any batch; the permanent slot is then not made (step 3).
3. ``pg_copy_logical_replication_slot('<slot>_snapshot', '<slot>', false)`` makes the
   permanent slot, starting exactly at P (the copy keeps the source slot's confirmed
   position): streaming from it gives every transaction committed from P on, none before, so
   there is no gap and no overlap.

A crash before step 3 loses the temporary slot with its connection; the permanent slot does
not exist, so the next start takes the snapshot again from a new position (the loads already
stored are superseded by the new ones, which have a later ``seq``). A crash after step 3
finds the slot: the snapshot was complete. No marker table or file is needed, and nothing is
written to the source database but the publication.

**Streaming.** ``pgoutput`` (protocol 1) messages are collected a transaction at a time
(``changes.Assembler``): each transaction's events share ``seq`` = its commit LSN, so any
streamed change wins over the snapshot and over earlier transactions. Whole transactions are
gathered up to ``batch_size`` changes (or until the stream is idle for a moment) and handed to
ingest as native-format lines (their origin ``postgres:NAME/<commit LSN>``, or
``postgres:NAME/snapshot@P`` for the snapshot, each numbered from 1 within it, is what a
quarantine entry shows); only once ingest has returned (Tidings has committed) is the slot
told, with the batch's last commit end position, that the server may forget them. A
crash before that re-reads the batch: event ids come from WAL positions, so ingest finds
duplicates, never gaps.

psycopg2 moves the confirmed position on by itself to a keepalive's WAL position when the
last message received has been confirmed; a keepalive arriving while a complete transaction
still waits for ingest could then confirm it unread. So whenever a message arrives that the
confirmed position already covers (a new transaction that began before the last confirmed
commit, or a relation description), waiting transactions are ingested and confirmed first.

**Heartbeats.** On a database whose tables are quiet, the WAL still moves (other databases,
the server's own records; Amazon RDS writes a heartbeat every few minutes). The server sends
a keepalive with its position whenever it has read WAL past what the slot has confirmed, and
psycopg2 answers it every ``heartbeat_seconds``; when nothing is waiting or in flight, the
capture also confirms the last keepalive's position itself. So the slot advances without
writing anything to the source database: a ``pg_logical_emit_message`` would only help a
cluster that writes no WAL at all, and such a cluster retains none either.
"""

from __future__ import annotations

import itertools
import logging
import re
import select
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import closing, contextmanager
from threading import Event as StopEvent
from typing import Any

import orjson
import psycopg2
import psycopg2.errors
import psycopg2.extensions
import psycopg2.extras
from psycopg2 import sql

from tidings.capture import Ingest, Kind, SourceStatus
from tidings.capture.postgres import catalog
from tidings.capture.postgres.changes import Assembler, Loader, Table
from tidings.capture.postgres.pgoutput import (
    Begin,
    Commit,
    Relation,
    decode,
    lsn_text,
    parse_lsn,
)
from tidings.config import Config
from tidings.errors import ConfigError, SourceError
from tidings.ingest.validate import Line
from tidings.model import IngestStats
from tidings.sources import Format
from tidings.sourcespec import PostgresSource

log = logging.getLogger(__name__)

# Every session reads values in one fixed form, whatever the server's defaults.
_SESSION = (
    "-c DateStyle=ISO -c TimeZone=UTC -c IntervalStyle=postgres -c extra_float_digits=3"
    " -c bytea_output=hex -c client_encoding=UTF8"
)
_CONNECT_TIMEOUT_S = 10
_STATUS_TIMEOUT_S = 3
_SLOT_NAME = re.compile(r"[a-z0-9_]{1,63}")
_SNAPSHOT_SUFFIX = "_snapshot"
_FETCH_ROWS = 2000
# How long the stream may be quiet before waiting transactions are ingested, and how long
# a transaction waits at most for its batch to fill on a busy stream.
_IDLE_S = 0.05
_LONGEST_WAIT_S = 1.0
_POLL_S = 0.5
_REPLY_EVERY_S = 0.2  # while draining to a target (until_idle), ask the server where it is
_INACTIVE_WARN_S = 600
_INACTIVE_WARN_BYTES = 16 * 1024 * 1024
_MB = 1024 * 1024


class PostgresCapture:
    """One ``[sources.postgres.NAME]``: see the module docstring."""

    kind: Kind = "postgres"

    def __init__(
        self,
        name: str,
        settings: PostgresSource,
        config: Config,
        ingest: Ingest,
        environ: Mapping[str, str],
    ) -> None:
        self.name = name
        self.settings = settings
        self._config = config
        self._ingest = ingest
        self._environ = environ
        self._where = f"sources.postgres.{name}"
        # Quarantined lines say where they came from: postgres:NAME/<commit LSN>, or
        # postgres:NAME/snapshot@<LSN>, and the change's place in it (within 300 characters).
        self._origin = f"postgres:{name[:200]}"
        problems: list[tuple[str, str]] = []
        for what, slot_name in (("slot", settings.slot),):
            if not _SLOT_NAME.fullmatch(slot_name) or len(slot_name) > 63 - len(_SNAPSHOT_SUFFIX):
                problems.append(
                    (
                        f"{self._where}.{what}",
                        "use lower-case letters, digits and _ only, at most "
                        f"{63 - len(_SNAPSHOT_SUFFIX)} characters",
                    )
                )
        if settings.url is None and settings.url_env is None:
            problems.append((f"{self._where}.url_env", "give url_env (or url)"))
        self.tables: tuple[Table, ...] = tuple(self._table(t, problems) for t in settings.tables)
        if problems:
            raise ConfigError(problems)

    def _table(self, written: str, problems: list[tuple[str, str]]) -> Table:
        schema, _, name = written.rpartition(".")
        schema = schema or "public"
        entities = self.settings.entities
        entity = entities.get(written) or entities.get(name) or entities.get(f"{schema}.{name}")
        entity = entity or name
        etype = self._config.entities.get(entity)
        if etype is None:
            if entity not in self._config.ingest.skip_entities:
                problems.append(
                    (
                        f"{self._where}.tables",
                        f"table {written}'s entity {entity!r} is not declared; add "
                        f"[entities.{entity}], or map the table to an entity in "
                        f"[{self._where}.entities]",
                    )
                )
            return Table(schema, name, entity, "id")
        return Table(schema, name, entity, etype.key, declared=frozenset(etype.fields))

    # ------------------------------------------------------------------ connections

    def _dsn(self) -> str:
        settings = self.settings
        if settings.url is not None:
            raw, key = settings.url, f"{self._where}.url"
        else:
            variable = str(settings.url_env)
            key = f"{self._where}.url_env"
            found = self._environ.get(variable)
            if not found:
                raise ConfigError(
                    [
                        (
                            key,
                            f"the environment variable {variable} is not set (it should hold "
                            "the database's URL)",
                        )
                    ]
                )
            raw = found
        # A SQLAlchemy URL names its driver: postgresql+psycopg:// is postgresql:// to libpq.
        raw = re.sub(r"^postgres(?:ql)?\+\w+://", "postgresql://", raw.strip())
        try:
            psycopg2.extensions.parse_dsn(raw)
        except psycopg2.ProgrammingError:
            raise ConfigError(
                [(key, "is not a PostgreSQL connection URL (postgresql://user@host/db)")]
            ) from None
        return raw

    def _connect(self, dsn: str, *, replication: bool = False, timeout: int = 0) -> Any:
        params = psycopg2.extensions.parse_dsn(dsn)
        params["options"] = f"{params.get('options', '')} {_SESSION}".strip()
        params.setdefault("connect_timeout", str(timeout or _CONNECT_TIMEOUT_S))
        params.setdefault("application_name", f"tidings-{self.name}")
        factory = psycopg2.extras.LogicalReplicationConnection if replication else None
        try:
            conn = psycopg2.connect(connection_factory=factory, **params)
        except psycopg2.Error as exc:
            raise SourceError(
                f"postgres source {self.name}: cannot connect: {catalog.primary(exc)}"
            ) from None
        if not replication:
            conn.autocommit = True
        return conn

    # ------------------------------------------------------------------ run

    def run(
        self,
        stop: StopEvent,
        *,
        until_idle: bool = False,
        on_batch: Callable[[IngestStats], None] | None = None,
    ) -> IngestStats:
        dsn = self._dsn()
        total = IngestStats()
        try:
            with closing(self._connect(dsn)) as conn:
                cur = conn.cursor()
                target: int | None = None
                if until_idle:
                    cur.execute("SELECT pg_current_wal_insert_lsn()::text")
                    target = parse_lsn(cur.fetchone()[0])
                slot = catalog.slot_info(cur, self.settings.slot)
                tables = self._prepare(cur, established=slot is not None)
                if slot is None:
                    if self.settings.snapshot:
                        total += self._snapshot(dsn, cur, tables, stop, on_batch)
                        if stop.is_set():
                            return total  # not finished: the next start takes it again
                    else:
                        self._create_slot(dsn)
                else:
                    self._check_slot(cur, slot)
            return total + self._stream(dsn, tables, stop, target, on_batch)
        except psycopg2.Error as exc:
            raise SourceError(
                f"postgres source {self.name}: {catalog.primary(exc)} (reading resumes from "
                "the last confirmed position)"
            ) from None

    def _prepare(self, cur: Any, *, established: bool) -> tuple[Table, ...]:
        info = catalog.describe_tables(cur, self.tables)
        catalog.check_tables(self.tables, info)
        publication = self.settings.publication
        others = catalog.ensure_publication(
            cur,
            publication,
            self.tables,
            partitioned=[t for t in self.tables if info[(t.schema, t.name)].kind == "p"],
            established=established,
        )
        if others:
            log.warning(
                "postgres source %s: publication %s also publishes %s; their changes are ignored",
                self.name,
                self.settings.publication,
                ", ".join(others),
            )
        return tuple(
            Table(
                t.schema,
                t.name,
                t.entity,
                t.key,
                catalog.published_columns(cur, publication, t, info[(t.schema, t.name)]),
                t.declared,
            )
            for t in self.tables
        )

    def _check_slot(self, cur: Any, slot: catalog.SlotInfo) -> None:
        cur.execute("SELECT current_database()")
        database = cur.fetchone()[0]
        name = self.settings.slot
        if slot.database != database:
            raise SourceError(
                f"replication slot {name!r} belongs to database {slot.database!r}, not "
                f"{database!r} (slot names are the server's); set another slot name for "
                "this source"
            )
        if slot.plugin != "pgoutput":
            raise SourceError(
                f"replication slot {name!r} is not a pgoutput slot (it uses {slot.plugin!r}); "
                "set another slot name for this source"
            )
        if slot.wal_status == "lost":
            raise SourceError(
                f"replication slot {name!r} has lost WAL it needed (wal_status lost): changes "
                f"were missed. Drop it (SELECT pg_drop_replication_slot('{name}')) and start "
                "again for a fresh snapshot"
            )

    def _create_slot(self, dsn: str) -> None:
        with closing(self._connect(dsn, replication=True)) as repl:
            command = sql.SQL("CREATE_REPLICATION_SLOT {} LOGICAL pgoutput NOEXPORT_SNAPSHOT")
            with self._creating():
                repl.cursor().execute(command.format(sql.Identifier(self.settings.slot)))
        log.info("postgres source %s: created slot %s (no snapshot)", self.name, self.settings.slot)

    @contextmanager
    def _creating(self) -> Iterator[None]:
        try:
            yield
        except psycopg2.errors.DuplicateObject:
            raise SourceError(
                f"postgres source {self.name}: another process is setting up slot "
                f"{self.settings.slot!r} right now; start again once it is done"
            ) from None
        except psycopg2.Error as exc:
            raise SourceError(
                f"postgres source {self.name}: cannot create a replication slot: "
                f"{catalog.primary(exc)} (the user needs the REPLICATION attribute, or "
                "rds_replication on Amazon RDS, and the server wal_level = logical)"
            ) from None

    # ------------------------------------------------------------------ snapshot

    def _snapshot(
        self,
        dsn: str,
        cur: Any,
        tables: Sequence[Table],
        stop: StopEvent,
        on_batch: Callable[[IngestStats], None] | None,
    ) -> IngestStats:
        slot = self.settings.slot
        temporary = f"{slot}{_SNAPSHOT_SUFFIX}"
        total = IngestStats()
        started = time.monotonic()
        with closing(self._connect(dsn, replication=True)) as repl:
            command = sql.SQL(
                "CREATE_REPLICATION_SLOT {} TEMPORARY LOGICAL pgoutput EXPORT_SNAPSHOT"
            )
            rcur = repl.cursor()
            with self._creating():
                rcur.execute(command.format(sql.Identifier(temporary)))
            _, point_text, snapshot_name, _ = rcur.fetchone()
            point = parse_lsn(point_text)
            # ``repl`` now stays idle: that keeps the exported snapshot valid.
            with closing(self._connect(dsn)) as snap:
                snap.autocommit = False
                snap.set_session(isolation_level="REPEATABLE READ", readonly=True)
                scur = snap.cursor()
                scur.execute("SET TRANSACTION SNAPSHOT %s", (snapshot_name,))
                scur.execute("SELECT now()")
                at = scur.fetchone()[0].isoformat()
                origin = (f"{self._origin}/snapshot@{point_text}", itertools.count(1))
                for number, table in enumerate(tables):
                    total += self._load(snap, number, table, point, at, origin, stop, on_batch)
                    if stop.is_set():
                        return total  # no permanent slot: the next start takes it again
                snap.rollback()
            cur.execute("SELECT pg_copy_logical_replication_slot(%s, %s, false)", (temporary, slot))
        log.info(
            "postgres source %s: snapshot at %s of %d table(s): %d records in %.1f s; slot %s "
            "created",
            self.name,
            point_text,
            len(tables),
            total.lines,
            time.monotonic() - started,
            slot,
        )
        return total

    def _load(
        self,
        snap: Any,
        number: int,
        table: Table,
        point: int,
        at: str,
        origin: tuple[str, Iterator[int]],
        stop: StopEvent,
        on_batch: Callable[[IngestStats], None] | None,
    ) -> IngestStats:
        cur = snap.cursor()
        cur.execute(
            "SELECT attname, atttypid FROM pg_attribute WHERE attrelid = %s::regclass"
            " AND attnum > 0 AND NOT attisdropped ORDER BY attnum",
            (sql.Identifier(table.schema, table.name).as_string(snap),),
        )
        # Only the columns its changes carry (not generated ones, nor those a publication's
        # column list leaves out): a streamed upsert would otherwise drop them as changed.
        columns = [(str(n), int(t)) for n, t in cur.fetchall() if n in table.columns]
        # Every column as the server's text output, the form pgoutput sends too, so a
        # snapshot row and a streamed change of it read alike.
        as_text = psycopg2.extensions.new_type(
            tuple({t for _, t in columns}), f"TIDINGS_TEXT_{number}", lambda value, _: value
        )
        psycopg2.extensions.register_type(as_text, snap)
        loader = Loader.of(self.name, self.settings.slot, table, columns, point, at)
        rows = snap.cursor(name=f"tidings_snapshot_{number}")
        rows.itersize = _FETCH_ROWS
        rows.execute(
            sql.SQL("SELECT {} FROM {}").format(
                sql.SQL(", ").join(sql.Identifier(n) for n, _ in columns),
                sql.Identifier(table.schema, table.name),
            )
        )
        total = IngestStats()
        where, numbers = origin
        dumps = orjson.dumps
        batch: list[Line] = []
        for row in rows:
            batch.append(Line(where, next(numbers), dumps(loader.event(row))))
            if len(batch) >= self.settings.batch_size:
                total += self._send(batch, on_batch)
                batch = []
                if stop.is_set():
                    break  # the snapshot is not finished: the next start takes it again
        if batch and not stop.is_set():
            total += self._send(batch, on_batch)
        rows.close()
        return total

    # ------------------------------------------------------------------ streaming

    def _send(
        self, lines: Sequence[Line], on_batch: Callable[[IngestStats], None] | None
    ) -> IngestStats:
        """Ingest native lines; returns once Tidings has committed them."""
        stats = self._ingest(lines, Format.NATIVE)
        if on_batch is not None:
            on_batch(stats)
        return stats

    def _stream(
        self,
        dsn: str,
        tables: Sequence[Table],
        stop: StopEvent,
        target: int | None,
        on_batch: Callable[[IngestStats], None] | None,
    ) -> IngestStats:
        settings = self.settings
        assembler = Assembler(
            self.name,
            settings.slot,
            {(t.schema, t.name): t for t in tables},
            self._warn,
        )
        total = IngestStats()
        with closing(self._connect(dsn, replication=True)) as repl:
            cur = repl.cursor()
            try:
                cur.start_replication(
                    slot_name=settings.slot,
                    decode=False,
                    start_lsn=0,  # from the slot's confirmed position
                    options={
                        "proto_version": "1",
                        "publication_names": sql.Identifier(settings.publication).as_string(repl),
                    },
                    status_interval=max(1.0, settings.heartbeat_seconds),  # psycopg2 minimum
                )
            except psycopg2.errors.ObjectInUse:
                raise SourceError(
                    f"postgres source {self.name}: slot {settings.slot!r} is being read by "
                    "another process; run one consumer per source"
                ) from None
            waiting: list[Line] = []  # complete transactions, not yet ingested
            waiting_changes = 0
            waiting_end = 0  # end of the last complete transaction received
            waiting_since = 0.0
            confirmed = 0
            last_heartbeat = last_reply = time.monotonic()

            def flush() -> None:
                nonlocal waiting, waiting_changes, confirmed, total
                if waiting:
                    total += self._send(waiting, on_batch)
                    waiting, waiting_changes = [], 0
                if waiting_end > confirmed:
                    cur.send_feedback(flush_lsn=waiting_end, force=True)
                    confirmed = waiting_end

            while not stop.is_set():
                message = cur.read_message()
                if message is not None:
                    payload = message.payload
                    if waiting_end > confirmed and message.data_start <= confirmed:
                        flush()  # see the module docstring: psycopg2's keepalive shortcut
                    decoded = decode(payload)
                    events = assembler.handle(decoded)
                    if events is not None:
                        assert isinstance(decoded, Commit)
                        if waiting_end <= confirmed:
                            waiting_since = time.monotonic()
                        where = f"{self._origin}/{lsn_text(decoded.commit_lsn)}"
                        waiting.extend(
                            Line(where, number, orjson.dumps(event))
                            for number, event in enumerate(events, 1)
                        )
                        waiting_changes += len(events)
                        waiting_end = max(waiting_end, decoded.end_lsn)
                        if (
                            waiting_changes >= settings.batch_size
                            or time.monotonic() - waiting_since > _LONGEST_WAIT_S
                        ):
                            flush()
                    elif not isinstance(decoded, Begin | Relation) and (
                        assembler.changes > 4 * settings.batch_size
                        and assembler.changes % settings.batch_size == 0
                    ):
                        log.info(
                            "postgres source %s: a large transaction: %d changes so far",
                            self.name,
                            assembler.changes,
                        )
                    continue
                # Nothing to read right now: a batch waits only for a quiet moment.
                if waiting_end > confirmed or waiting:
                    if not _readable(cur, _IDLE_S):
                        flush()
                    continue
                now = time.monotonic()
                due = now - last_heartbeat >= settings.heartbeat_seconds or target is not None
                if due and not assembler.in_transaction and cur.wal_end > confirmed:
                    # Everything received is stored: the server's position is safe.
                    confirmed = int(cur.wal_end)
                    cur.send_feedback(flush_lsn=confirmed, force=True)
                    last_heartbeat = now
                if target is not None and not assembler.in_transaction:
                    if confirmed >= target:
                        break
                    if now - last_reply >= _REPLY_EVERY_S:
                        cur.send_feedback(reply=True)  # the answer carries its position
                        last_reply = now
                _readable(cur, _REPLY_EVERY_S if target is not None else _POLL_S)
            if waiting_end > confirmed:
                flush()  # stopping: store what has been read rather than read it again
        return total

    def _warn(self, message: str, fields: Mapping[str, object]) -> None:
        shown = ", ".join(f"{k}={v}" for k, v in fields.items())
        log.warning("postgres source %s: %s (%s)", self.name, message, shown)

    # ------------------------------------------------------------------ status

    def status(self) -> SourceStatus:
        settings = self.settings
        slot = settings.slot
        base: dict[str, object] = {"slot": slot, "publication": settings.publication}
        try:
            dsn = self._dsn()
            with closing(self._connect(dsn, timeout=_STATUS_TIMEOUT_S)) as conn:
                cur = conn.cursor()
                cur.execute("SET statement_timeout = '5s'")
                info = catalog.slot_info(cur, slot)
                present = catalog.describe_tables(cur, self.tables)
                cur.execute(
                    "SELECT 1 FROM pg_publication WHERE pubname = %s", (settings.publication,)
                )
                publication = cur.fetchone() is not None
        except (ConfigError, SourceError) as exc:
            return self._unreachable(str(exc), base)
        except psycopg2.Error as exc:
            return self._unreachable(f"cannot read the server: {catalog.primary(exc)}", base)
        warnings: list[str] = []
        gone = [t.qualified for t in self.tables if (t.schema, t.name) not in present]
        if gone:
            warnings.append(f"table {', '.join(gone)} no longer exists: its changes cannot be read")
        if info is None:
            if not publication:
                warnings.append(f"publication {settings.publication!r} does not exist yet")
            warnings.append(
                f"replication slot {slot!r} does not exist: `tidings consume --source {self.name}` "
                "creates it, after a snapshot of the tables"
            )
            return SourceStatus(
                self.name, "postgres", "", None, "bytes", None, tuple(warnings), True, base
            )
        detail = {
            **base,
            "active": info.active,
            "confirmed_flush_lsn": info.confirmed_flush_lsn,
            "restart_lsn": info.restart_lsn,
            "current_wal_lsn": info.current_lsn,
            "wal_status": info.wal_status,
            "safe_wal_size": info.safe_wal_size,
        }
        retained = info.retained_bytes
        if retained is not None and retained > settings.warn_retained_mb * _MB:
            warnings.append(
                f"slot {slot!r} holds back {retained / _MB:,.0f} MB of WAL on the server "
                f"(warn_retained_mb = {settings.warn_retained_mb}): make sure Tidings reads "
                f"this source, or drop the slot if it is retired "
                f"(SELECT pg_drop_replication_slot('{slot}'))"
            )
        if info.wal_status == "unreserved":
            size = (
                "" if info.safe_wal_size is None else f" ({info.safe_wal_size / _MB:,.0f} MB left)"
            )
            warnings.append(
                f"slot {slot!r} is about to lose WAL it needs (wal_status unreserved{size}): "
                "the server will remove it at the next checkpoint unless Tidings catches up"
            )
        elif info.wal_status == "lost":
            warnings.append(
                f"slot {slot!r} has lost WAL it needed (wal_status lost): changes were "
                f"missed; drop it (SELECT pg_drop_replication_slot('{slot}')) and consume "
                "again for a fresh snapshot"
            )
        if not info.active:
            idle = info.inactive_seconds
            behind = info.lag_bytes or 0
            if (idle is not None and idle > _INACTIVE_WARN_S) or (
                idle is None and behind > _INACTIVE_WARN_BYTES
            ):
                since = "" if idle is None else f" for {idle / 60:,.0f} minutes"
                warnings.append(
                    f"slot {slot!r} is not being read{since} and is "
                    f"{behind / _MB:,.1f} MB behind: is the Tidings service running?"
                )
        return SourceStatus(
            self.name,
            "postgres",
            info.confirmed_flush_lsn or "",
            info.lag_bytes,
            "bytes",
            retained,
            tuple(warnings),
            True,
            detail,
        )

    def _unreachable(self, reason: str, detail: Mapping[str, object]) -> SourceStatus:
        return SourceStatus(
            self.name,
            "postgres",
            "",
            None,
            "bytes",
            None,
            (reason,),
            False,
            dict(detail),
        )


def _readable(cur: Any, timeout: float) -> bool:
    readable, _, _ = select.select([cur], [], [], timeout)
    return bool(readable)


__all__ = ["PostgresCapture"]
