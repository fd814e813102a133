"""PostgreSQL logical replication as a live source, against a real server with
``wal_level=logical`` that the test set-up starts (tests/pgserver.py, one per run, shared by
the xdist workers). Each test has a database of its own; Tidings stores into SQLite.
"""

from __future__ import annotations

import logging
import os
import re
import select
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url

from tests.conftest import FakeClock
from tests.pgserver import ensure_postgres
from tidings.api import Tidings
from tidings.capture import captures
from tidings.capture.postgres import PostgresCapture
from tidings.config import parse_config
from tidings.errors import ConfigError, SourceError
from tidings.model import IngestStats

FIELDS = {
    "site": "string",
    "wte": "decimal",
    "date_from": "date",
    "on_call": "bool",
    "confirmed_at": "datetime",
    "notes": "string",
}
TABLE = """CREATE TABLE {name} (
    id int PRIMARY KEY, site text, wte numeric(4,2), date_from date, on_call bool,
    confirmed_at timestamptz, notes text)"""


@pytest.fixture(scope="session")
def logical_server(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A libpq URL (no database) of the shared logical-replication server."""
    base = tmp_path_factory.getbasetemp()
    # xdist workers share one server: the run's directory, not the worker's own.
    shared = (base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base) / "pg-logical"
    url = make_url(ensure_postgres(shared, logical=True, dbname="postgres"))
    return f"postgresql://{url.username}@{url.host}:{url.port}"


class Source:
    """A fresh database on the logical server, with helpers to change it and to read it."""

    def __init__(self, server: str, tmp_path: Path) -> None:
        self.server = server
        self.dbname = f"cap_{uuid.uuid4().hex[:10]}"
        self.slot = f"s_{self.dbname}"  # slot names are the server's, not the database's
        self.url = f"{server}/{self.dbname}"
        self.tmp_path = tmp_path
        with psycopg.connect(f"{server}/postgres", autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{self.dbname}"')
        self.conn = psycopg.connect(self.url, autocommit=True)
        self._closes = 0

    def sql(self, statement: str, *params: Any) -> list[tuple[Any, ...]]:
        cur = self.conn.execute(statement, params or None)
        return cur.fetchall() if cur.description else []

    def lsn(self) -> str:
        return str(self.sql("SELECT pg_current_wal_insert_lsn()::text")[0][0])

    def config(
        self,
        *,
        tables: tuple[str, ...] = ("placement",),
        fields: dict[str, str] | None = None,
        **source: Any,
    ) -> dict[str, Any]:
        return {
            "timezone": "Europe/London",
            "store": {"url": f"sqlite:///{self.tmp_path / 'tidings.db'}"},
            "entities": {
                "placement": {"key": "id", "recipient": "id", "fields": fields or FIELDS},
                "staff": {"key": "id", "recipient": "id", "fields": FIELDS},
            },
            "sources": {
                "postgres": {
                    "hr": {
                        "url_env": "HR_DB_URL",
                        "tables": list(tables),
                        "slot": self.slot,
                        **source,
                    },
                }
            },
        }

    def app(self, **source: Any) -> tuple[Tidings, PostgresCapture]:
        config = parse_config(self.config(**source))
        app = Tidings(config, clock=FakeClock(datetime.now(UTC) + timedelta(days=2)))
        [capture] = captures(config, app.ingest_batch, {"HR_DB_URL": self.url})
        assert isinstance(capture, PostgresCapture)
        return app, capture

    def records(self, app: Tidings, entity: str = "placement") -> dict[str, dict[str, Any]]:
        """Close a window after everything so far, and return the entity's records."""
        self._closes += 1
        app.close(datetime.now(UTC) + timedelta(hours=self._closes))
        with app.store.read() as tx:
            return {key: dict(record) for key, record in tx.ledger.all_records(entity)}

    def rows(self, table: str = "placement") -> dict[str, dict[str, Any]]:
        """The table as Tidings should hold it (values as they read after normalising)."""
        cur = self.conn.execute(
            f"SELECT id, site, wte::text, date_from::text, on_call, notes,"
            f" to_char(confirmed_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS') FROM {table}"
        )
        out = {}
        for id_, site, wte, date_from, on_call, notes, confirmed in cur.fetchall():
            out[str(id_)] = {
                "id": id_,
                "site": site,
                "wte": wte if wte is None or "." not in wte else wte.rstrip("0").rstrip("."),
                "date_from": date_from,
                "on_call": on_call,
                "notes": notes,
                "confirmed_at": None if confirmed is None else f"{confirmed}+00:00",
            }
        return out

    def drop(self) -> None:
        self.conn.close()
        with psycopg.connect(f"{self.server}/postgres", autocommit=True) as conn:
            conn.execute(
                "SELECT pg_terminate_backend(active_pid) FROM pg_replication_slots"
                " WHERE database = %s AND active_pid IS NOT NULL",
                (self.dbname,),
            )
            for _ in range(50):
                try:
                    conn.execute(
                        "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots"
                        " WHERE database = %s",
                        (self.dbname,),
                    )
                    break
                except psycopg.errors.ObjectInUse:
                    time.sleep(0.1)
            conn.execute(f'DROP DATABASE "{self.dbname}" WITH (FORCE)')


@pytest.fixture
def source(logical_server: str, tmp_path: Path) -> Iterator[Source]:
    db = Source(logical_server, tmp_path)
    yield db
    db.drop()


def _fill(source: Source, count: int, table: str = "placement", start: int = 1) -> None:
    source.sql(
        f"INSERT INTO {table} SELECT g, 'Site ' || mod(g, 7), 1.00, DATE '2026-08-03' + mod(g, 30),"
        " mod(g, 2) = 0, TIMESTAMPTZ '2026-08-01 09:30:00+01', 'n' || g"
        " FROM generate_series(%s::int, %s::int) g",
        start,
        start + count - 1,
    )


def _slot(source: Source, name: str | None = None) -> dict[str, Any] | None:
    rows = source.sql(
        "SELECT slot_name, active, confirmed_flush_lsn, pg_wal_lsn_diff(confirmed_flush_lsn,"
        " '0/0')::int8 FROM pg_replication_slots WHERE database = current_database()"
    )
    found = {r[0]: {"active": r[1], "confirmed": r[2], "confirmed_int": r[3]} for r in rows}
    return found.get(name or source.slot)


# --------------------------------------------------------------------------- snapshot, stream


def test_snapshot_then_stream_has_no_gap_and_no_overlap(source: Source) -> None:
    source.sql(TABLE.format(name="placement"))
    _fill(source, 300)
    app, capture = source.app(batch_size=50)
    writer = psycopg.connect(source.url, autocommit=True)
    wrote: list[int] = []

    def during_snapshot(stats: IngestStats) -> None:
        # Committed while the snapshot is being read: after its position, so these must
        # come from the stream, each exactly once, whether or not the snapshot read the row
        # before the change.
        if not wrote:
            writer.execute("UPDATE placement SET site = 'Moved' WHERE id IN (1, 299)")
            writer.execute("DELETE FROM placement WHERE id = 2")
            writer.execute("INSERT INTO placement (id, site) VALUES (1001, 'New')")
        wrote.append(stats.accepted)

    first = capture.run(threading.Event(), until_idle=True, on_batch=during_snapshot)
    assert wrote[:6] == [50] * 6  # the snapshot, in batches of batch_size
    assert first.accepted >= 300
    second = capture.run(threading.Event(), until_idle=True)
    assert first.accepted + second.accepted == 300 + 4  # each change once: no overlap
    assert (first + second).quarantined == 0
    records = source.records(app)
    assert records == source.rows()  # no gap: the final state of every row
    assert records["299"]["site"] == "Moved"
    assert "2" not in records
    assert _count(app) == 304
    slot = _slot(source)
    assert slot is not None
    assert not slot["active"]
    assert (
        _slot(source, f"{source.slot}_snapshot") is None
    )  # the temporary slot went with its session
    writer.close()


def test_without_a_snapshot_only_later_changes_are_read(source: Source) -> None:
    source.sql(TABLE.format(name="placement"))
    _fill(source, 3)
    app, capture = source.app(snapshot=False)
    assert capture.run(threading.Event(), until_idle=True).accepted == 0
    source.sql("UPDATE placement SET site = 'Hull' WHERE id = 2")
    assert capture.run(threading.Event(), until_idle=True).accepted == 1
    assert list(source.records(app)) == ["2"]


def test_updates_and_deletes_with_default_and_full_replica_identity(source: Source) -> None:
    source.sql(TABLE.format(name="placement"))
    source.sql(TABLE.format(name="person"))
    source.sql("ALTER TABLE person REPLICA IDENTITY FULL")
    _fill(source, 5)
    _fill(source, 5, "person")
    app, capture = source.app(tables=("placement", "public.person"), entities={"person": "staff"})
    capture.run(threading.Event(), until_idle=True)
    for table in ("placement", "person"):
        source.sql(f"UPDATE {table} SET wte = 0.8, on_call = NOT on_call WHERE id = 1")
        source.sql(f"DELETE FROM {table} WHERE id = 2")
        source.sql(f"UPDATE {table} SET id = 50 WHERE id = 3")
        with source.conn.transaction():
            source.sql(f"UPDATE {table} SET site = 'A' WHERE id = 4")
            source.sql(f"UPDATE {table} SET site = 'B' WHERE id = 4")
    stats = capture.run(threading.Event(), until_idle=True)
    # Per table: the update, the delete, the key change (delete + insert), the last of two.
    assert (stats.accepted, stats.quarantined) == (10, 0)
    assert source.records(app, "placement") == source.rows("placement")
    assert source.records(app, "staff") == source.rows("person")
    digest = app.close(datetime.now(UTC) + timedelta(hours=30)).to_json()
    assert digest["digests"] == []  # everything was told at the last close


def test_an_untouched_toast_column_is_not_reported_as_changed(source: Source) -> None:
    source.sql(TABLE.format(name="placement"))
    source.sql("ALTER TABLE placement ALTER COLUMN notes SET STORAGE EXTERNAL")
    _fill(source, 2)
    long_notes = "".join(f"{n:05d}" for n in range(2000))  # 10 kB, stored out of line
    source.sql("UPDATE placement SET notes = %s", long_notes)
    app, capture = source.app()
    capture.run(threading.Event(), until_idle=True)
    source.records(app)
    source.sql("UPDATE placement SET site = 'Hull' WHERE id = 1")
    capture.run(threading.Event(), until_idle=True)
    changes = app.close(datetime.now(UTC) + timedelta(hours=10)).to_json()["digests"]
    assert [c["changes"][0]["fields"] for c in changes] == [
        {"site": {"before": "Site 1", "after": "Hull"}}
    ]
    assert source.records(app)["1"]["notes"] == long_notes  # kept, not lost


def test_a_column_added_keeps_going_and_is_named_once(
    source: Source, caplog: pytest.LogCaptureFixture
) -> None:
    source.sql(TABLE.format(name="placement"))
    _fill(source, 2)
    app, capture = source.app()
    capture.run(threading.Event(), until_idle=True)
    # Read after a restart, the stream describes the table first as it was before the column
    # came (the change to row 2), then with it.
    source.sql("UPDATE placement SET site = 'York' WHERE id = 2")
    source.sql("ALTER TABLE placement ADD COLUMN grade text")
    source.sql("UPDATE placement SET grade = 'ST3' WHERE id = 1")
    source.sql("UPDATE placement SET grade = 'ST4' WHERE id = 2")
    with caplog.at_level(logging.WARNING, logger="tidings.capture"):
        stats = capture.run(threading.Event(), until_idle=True)
    assert (stats.accepted, stats.quarantined) == (3, 0)
    added = [r.getMessage() for r in caplog.records if "column was added" in r.getMessage()]
    assert len(added) == 1
    assert "table=public.placement" in added[0]
    assert "column=grade" in added[0]
    assert "declared=False" in added[0]
    assert "ST3" not in caplog.text
    assert source.records(app)["1"]["grade"] == "ST3"


def test_the_slot_advances_on_a_quiet_database(source: Source) -> None:
    source.sql(TABLE.format(name="placement"))
    source.sql("CREATE TABLE elsewhere (n int)")
    _, capture = source.app(heartbeat_seconds=0.2)
    capture.run(threading.Event(), until_idle=True)
    stop = threading.Event()
    thread = threading.Thread(target=capture.run, args=(stop,))
    thread.start()
    try:
        for n in range(3):  # WAL that the publication does not carry
            source.sql("INSERT INTO elsewhere VALUES (%s)", n)
        wanted = source.lsn()
        deadline = time.monotonic() + 10
        while True:
            slot = _slot(source)
            assert slot is not None
            reached = source.sql("SELECT %s::pg_lsn >= %s::pg_lsn", slot["confirmed"], wanted)
            if reached[0][0]:
                break
            assert time.monotonic() < deadline, f"slot stuck at {slot['confirmed']} < {wanted}"
            time.sleep(0.1)
    finally:
        stop.set()
        thread.join(10)
    assert not thread.is_alive()


def test_status_reports_position_lag_and_retained_wal(source: Source, logical_server: str) -> None:
    source.sql(TABLE.format(name="placement"))
    _fill(source, 3)
    _, capture = source.app(warn_retained_mb=1)
    before = capture.status()
    assert before.reachable
    assert before.lag is None
    assert any("does not exist" in w for w in before.warnings)
    capture.run(threading.Event(), until_idle=True)
    now = capture.status()
    slot = _slot(source)
    assert slot is not None
    assert now.position == slot["confirmed"]
    assert now.lag is not None
    assert 0 <= now.lag < 1024 * 1024
    assert now.retained_bytes is not None
    assert now.retained_bytes >= now.lag
    assert now.detail["wal_status"] in ("reserved", "extended")
    assert now.warnings == ()
    # Nobody reads while the database writes (any table): the slot holds the WAL back.
    source.sql(
        "CREATE TABLE filler AS SELECT md5(g::text) || md5((g + 1)::text) AS t"
        " FROM generate_series(1, 30000) g"
    )
    behind = capture.status()
    assert behind.lag is not None
    assert behind.lag > 1024 * 1024
    assert any("holds back" in w and "warn_retained_mb = 1" in w for w in behind.warnings)
    # An unreachable server answers quickly, without the URL's secrets.
    dead = f"postgresql://tidings:s3cret@127.0.0.1:1/{source.dbname}"
    config = parse_config(source.config())
    [gone] = captures(config, lambda lines, fmt: IngestStats(), {"HR_DB_URL": dead})
    started = time.monotonic()
    status = gone.status()
    assert time.monotonic() - started < 5
    assert not status.reachable
    assert status.warnings
    assert "s3cret" not in repr(status)


def _field_changes(app: Tidings, hours: int) -> list[dict[str, Any]]:
    digests = app.close(datetime.now(UTC) + timedelta(hours=hours)).to_json()["digests"]
    return [change["fields"] for digest in digests for change in digest["changes"]]


def test_generated_and_unpublished_columns_are_not_snapshot(source: Source) -> None:
    # pgoutput sends no generated column (before PostgreSQL 18), nor one a publication's
    # column list leaves out: the load must not carry them either, or the first streamed
    # upsert of the row would report them as removed.
    if source.sql("SELECT current_setting('server_version_num')::int")[0][0] < 150000:
        pytest.skip("publication column lists need PostgreSQL 15")
    source.sql(
        "CREATE TABLE placement (id int PRIMARY KEY, site text, wte numeric(4,2), notes text,"
        " label text GENERATED ALWAYS AS (site || '!') STORED)"
    )
    source.sql("INSERT INTO placement (id, site, wte, notes) VALUES (1, 'York', 1, 'a')")
    source.sql("CREATE PUBLICATION tidings FOR TABLE placement (id, site, wte)")
    app, capture = source.app()
    assert capture.run(threading.Event(), until_idle=True).accepted == 1
    assert source.records(app) == {"1": {"id": 1, "site": "York", "wte": "1"}}
    source.sql("UPDATE placement SET wte = 0.5 WHERE id = 1")
    capture.run(threading.Event(), until_idle=True)
    assert _field_changes(app, 10) == [{"wte": {"before": "1", "after": "0.5"}}]


def test_a_partitioned_table_is_read_under_its_own_name(source: Source) -> None:
    source.sql(TABLE.format(name="placement") + " PARTITION BY RANGE (id)")
    source.sql("CREATE TABLE placement_low PARTITION OF placement FOR VALUES FROM (0) TO (100)")
    source.sql("CREATE TABLE placement_high PARTITION OF placement FOR VALUES FROM (100) TO (999)")
    _fill(source, 3)
    source.sql("CREATE PUBLICATION tidings FOR TABLE placement")  # names the partitions
    app, capture = source.app()
    with pytest.raises(
        SourceError,
        match=r"ALTER PUBLICATION tidings SET \(publish_via_partition_root = true\)",
    ):
        capture.run(threading.Event(), until_idle=True)
    assert _slot(source) is None
    source.sql("DROP PUBLICATION tidings")  # Tidings creates it as it needs it
    assert capture.run(threading.Event(), until_idle=True).accepted == 3
    source.sql("INSERT INTO placement (id, site) VALUES (150, 'Leeds')")
    source.sql("UPDATE placement SET site = 'Hull' WHERE id = 2")
    source.sql("DELETE FROM placement WHERE id = 3")
    assert capture.run(threading.Event(), until_idle=True).accepted == 3
    records = source.records(app)
    assert records == source.rows()
    assert sorted(records, key=int) == ["1", "2", "150"]


def test_a_stop_during_a_table_ends_the_snapshot_after_that_batch(source: Source) -> None:
    source.sql(TABLE.format(name="placement"))
    _fill(source, 300)
    app, capture = source.app(batch_size=50)
    stop = threading.Event()
    batches: list[int] = []

    def stop_now(stats: IngestStats) -> None:
        batches.append(stats.accepted)
        stop.set()

    capture.run(stop, on_batch=stop_now)
    assert batches == [50]  # not the rest of the table
    assert _slot(source) is None  # not finished: the next start takes the snapshot again
    assert capture.run(threading.Event(), until_idle=True).accepted == 300
    assert source.records(app) == source.rows()


def test_a_rejected_change_is_quarantined_saying_where_it_came_from(source: Source) -> None:
    source.sql(TABLE.format(name="placement"))
    source.sql("INSERT INTO placement (id, notes) VALUES (1, '10'), (2, 'x'), (3, '30')")
    app, capture = source.app(fields={**FIELDS, "notes": "int"})
    stats = capture.run(threading.Event(), until_idle=True)
    assert (stats.accepted, stats.quarantined) == (2, 1)
    with source.conn.transaction():
        source.sql("UPDATE placement SET notes = 'y' WHERE id = 1")
        source.sql("UPDATE placement SET site = 'Hull' WHERE id = 3")
    stats = capture.run(threading.Event(), until_idle=True)
    assert (stats.accepted, stats.quarantined) == (1, 1)

    with app.store.engine.connect() as conn:  # type: ignore[attr-defined]
        stored = {str(o): str(op) for o, op in conn.execute(text("SELECT origin, op FROM events"))}
        load_id = conn.execute(
            text("SELECT id FROM events WHERE key = '1' AND op = 'load'")
        ).scalar_one()
    point = load_id.split(":")[3]  # pg:<slot>:load:<P>:placement:1
    with app.store.read() as tx:
        quarantined = {(e.origin, e.line) for e in tx.quarantine.entries(None, 10, None)}
    [commit] = {o.rsplit(":", 1)[0] for o, op in stored.items() if op != "load"}
    assert re.fullmatch(r"postgres:hr/[0-9A-F]+/[0-9A-F]+", commit)  # the commit's LSN
    snapshot = f"postgres:hr/snapshot@{point}"
    # Each change numbered within its snapshot or transaction: row 2 of the snapshot, the
    # first change of the transaction.
    assert quarantined == {(snapshot, 2), (commit, 1)}
    assert set(stored) == {f"{snapshot}:1", f"{snapshot}:3", f"{commit}:2"}
    assert set(source.records(app)) == {"1", "3"}


# --------------------------------------------------------------------------- refusals


def test_set_up_refusals_name_the_problem(source: Source) -> None:
    config = parse_config(source.config())
    with pytest.raises(ConfigError, match="HR_DB_URL"):
        captures(config, lambda lines, fmt: IngestStats(), {})[0].run(threading.Event())
    source.sql("CREATE TABLE placement (id int, site text)")  # no primary key
    _, capture = source.app()
    with pytest.raises(SourceError, match="no replica identity"):
        capture.run(threading.Event(), until_idle=True)
    assert source.sql("SELECT count(*) FROM pg_publication")[0][0] == 0  # nothing published
    source.sql("ALTER TABLE placement ADD PRIMARY KEY (site)")
    with pytest.raises(SourceError, match="deletes carry only its replica identity"):
        capture.run(threading.Event(), until_idle=True)
    source.sql("ALTER TABLE placement REPLICA IDENTITY FULL")
    source.sql("CREATE TABLE other (id int PRIMARY KEY)")
    source.sql("CREATE PUBLICATION tidings FOR TABLE other")
    with pytest.raises(SourceError, match=r"does not publish public\.placement") as refused:
        capture.run(threading.Event(), until_idle=True)
    assert "no baseline" not in str(refused.value)
    assert _slot(source) is None
    # A table added to ``tables`` once the slot exists gets no snapshot: the refusal says so.
    source.sql("ALTER PUBLICATION tidings ADD TABLE placement")
    capture.run(threading.Event(), until_idle=True)
    source.sql("CREATE TABLE person (id int PRIMARY KEY)")
    _, later = source.app(tables=("placement", "person"), entities={"person": "staff"})
    with pytest.raises(SourceError, match=r"does not publish public\.person") as refused:
        later.run(threading.Event(), until_idle=True)
    assert "rows untouched since will have no baseline until loaded" in str(refused.value)


# --------------------------------------------------------------------------- crash safety


def _consume(config: Path, env: dict[str, str], *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "tidings", "consume", "--config", str(config), *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _kill_after_batches(proc: subprocess.Popen[str], batches: int, timeout: float = 30) -> None:
    """SIGKILL the consumer once it has logged ``batches`` stored batches."""
    assert proc.stderr is not None
    seen = 0
    deadline = time.monotonic() + timeout
    while seen < batches:
        left = deadline - time.monotonic()
        assert left > 0, "the consumer stored too few batches"
        ready, _, _ = select.select([proc.stderr], [], [], left)
        if ready:
            line = proc.stderr.readline()
            assert line, f"the consumer ended early (exit {proc.wait()})"
            seen += "batch stored" in line
    proc.send_signal(signal.SIGKILL)
    proc.wait(10)


def test_a_consumer_killed_mid_snapshot_and_mid_stream_loses_and_doubles_nothing(
    source: Source, tmp_path: Path
) -> None:
    source.sql(TABLE.format(name="placement"))
    _fill(source, 2000)
    config = tmp_path / "tidings.toml"
    config.write_text(
        f"""
timezone = "UTC"
[store]
url = "sqlite:///{tmp_path / "tidings.db"}"
[entities.placement]
key = "id"
recipient = "id"
[entities.placement.fields]
site = "string"
wte = "decimal"
[sources.postgres.hr]
url_env = "HR_DB_URL"
tables = ["placement"]
slot = "{source.slot}"
batch_size = 40
"""
    )
    env = {**os.environ, "HR_DB_URL": source.url}
    writes = 0
    stop_writing = threading.Event()

    def write() -> None:
        nonlocal writes
        with psycopg.connect(source.url, autocommit=True) as conn:
            # Once the snapshot is complete (its slot made), so each write is one streamed
            # event, read while the consumer streams and is killed.
            while not conn.execute(
                "SELECT 1 FROM pg_replication_slots WHERE slot_name = %s", (source.slot,)
            ).fetchone():
                if stop_writing.wait(0.02):
                    return
            while not stop_writing.is_set() and writes < 600:
                # One row a transaction, every row in turn: each is one event.
                conn.execute(
                    "UPDATE placement SET wte = %s WHERE id = %s", (writes % 100, writes % 500 + 1)
                )
                writes += 1
                time.sleep(0.002)

    writer = threading.Thread(target=write)
    first = _consume(config, env)
    _kill_after_batches(first, 5)  # 200 of 2,000 rows read: mid-snapshot
    assert _slot(source) is None  # the snapshot did not finish: no slot yet
    writer.start()
    second = _consume(config, env)
    _kill_after_batches(second, 60)  # the snapshot (50 batches), then a few of the stream
    assert _slot(source) is not None
    stop_writing.set()
    writer.join(30)
    last = _consume(config, env, "--until-idle", "--json")
    _, errors = last.communicate(timeout=60)
    assert last.returncode == 0, errors

    parsed = parse_config(
        {
            "timezone": "UTC",
            "store": {"url": f"sqlite:///{tmp_path / 'tidings.db'}"},
            "entities": {"placement": {"key": "id", "recipient": "id", "fields": FIELDS}},
        }
    )
    app = Tidings(parsed, clock=FakeClock(datetime.now(UTC) + timedelta(days=2)))
    expected = {
        key: {"id": row["id"], "site": row["site"], "wte": row["wte"]}
        for key, row in source.rows().items()
    }
    records = source.records(app)
    assert {k: {f: r[f] for f in ("id", "site", "wte")} for k, r in records.items()} == expected
    # Two snapshots' loads (the first one's partly), then each write exactly once.
    loads = _count(app, "load")
    assert _count(app) - loads == writes  # every write once: none lost, none doubled
    assert 2000 + 200 <= loads <= 2000 + 200 + 80  # both snapshots, the first one cut short
    app.store.dispose()


def _count(app: Tidings, op: str | None = None) -> int:
    """Events in Tidings' log (of one ``op``)."""
    where = "" if op is None else " WHERE op = :op"
    with app.store.engine.connect() as conn:  # type: ignore[attr-defined]
        found = conn.execute(text(f"SELECT count(*) FROM events{where}"), {"op": op})
        return int(found.scalar_one())
