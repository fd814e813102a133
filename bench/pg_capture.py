"""Benchmark: rows changed per second in PostgreSQL by a plain client, beside the rows per
second Tidings captures from its logical replication stream, in the same run.

Starts its own PostgreSQL with ``wal_level=logical`` (tests/pgserver.py; data under
``--out``). Each round, on a fresh database:

1. Tidings sets up the source (publication, snapshot of the empty table, slot);
2. the client (psycopg 3) inserts N rows, 1,000 rows a transaction (``executemany``);
3. Tidings captures them: ``PostgresCapture.run(until_idle=True)`` into a SQLite store,
   decoding pgoutput, ingesting as native events and confirming the slot;
4. the client updates the N rows, 1,000 a transaction, each row to a new value;
5. Tidings captures those.

Each capture runs in a process of its own (so its peak memory is its own); the median of the
rounds is reported. Usage:
    python bench/pg_capture.py [--rows N] [--runs N] [--out DIR]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import uuid
from pathlib import Path

from rich.console import Console
from rich.table import Table

from phases import median, peak_mb, run_phase

ROOT = Path(__file__).resolve().parent.parent
CONFIG = """
timezone = "UTC"
[store]
url = "sqlite:///{store}"
[ingest]
batch_size = 10000
[entities.placement]
key = "id"
recipient = "trainee_id"
[entities.placement.fields]
trainee_id = "string"
site = "string"
wte = "decimal"
date_from = "date"
updated_at = "datetime"
[sources.postgres.bench]
url = "{url}"
tables = ["placement"]
batch_size = 10000
"""
TABLE = """CREATE TABLE placement (
    id int PRIMARY KEY, trainee_id text NOT NULL, site text, wte numeric(4, 2),
    date_from date, updated_at timestamptz)"""
SITES = ["Leeds General", "Hull Royal", "York Hospital", "St James's", "Airedale"]
PER_TRANSACTION = 1000


def phase_capture(config: Path) -> dict[str, float]:
    """Everything waiting in the slot, into Tidings (until idle)."""
    import threading

    from tidings.api import Tidings
    from tidings.capture import captures

    with Tidings.open(config) as app:
        [capture] = captures(app.config, app.ingest_batch, {})
        started = time.perf_counter()
        stats = capture.run(threading.Event(), until_idle=True)
        seconds = time.perf_counter() - started
    return {
        "seconds": seconds,
        "accepted": stats.accepted,
        "quarantined": stats.quarantined,
        "peak_mb": peak_mb(),
    }


def write(url: str, rows: int, update: bool) -> dict[str, float]:
    """The plain client: ``rows`` inserts (or updates), 1,000 a transaction."""
    import psycopg

    with psycopg.connect(url) as conn:
        started = time.perf_counter()
        with conn.cursor() as cur:
            for start in range(1, rows + 1, PER_TRANSACTION):
                ids = range(start, min(start + PER_TRANSACTION, rows + 1))
                if update:
                    cur.executemany(
                        "UPDATE placement SET site = %s, wte = %s, updated_at = now()"
                        " WHERE id = %s",
                        [(SITES[(n + 1) % 5], "0.80", n) for n in ids],
                    )
                else:
                    cur.executemany(
                        "INSERT INTO placement VALUES (%s, %s, %s, %s, %s, now())",
                        [(n, f"T{n % 40000:06d}", SITES[n % 5], "1.00", "2026-08-03") for n in ids],
                    )
                conn.commit()
        seconds = time.perf_counter() - started
    return {"seconds": seconds, "rows": rows}


def one_round(server: str, out: Path, rows: int) -> dict[str, dict[str, float]]:
    import psycopg

    dbname = f"bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(f"{server}/postgres", autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{dbname}"')
    url = f"{server}/{dbname}"
    store = out / f"{dbname}.db"
    config = out / f"{dbname}.toml"
    config.write_text(CONFIG.format(store=store, url=url))
    try:
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(TABLE)
        script = str(Path(__file__))
        setup = run_phase(script, "capture", str(config))  # empty snapshot: makes the slot
        assert setup["accepted"] == 0, setup
        result = {"insert": write(url, rows, update=False)}
        result["capture_insert"] = run_phase(script, "capture", str(config))
        result["update"] = write(url, rows, update=True)
        result["capture_update"] = run_phase(script, "capture", str(config))
        for phase in ("capture_insert", "capture_update"):
            assert result[phase]["accepted"] == rows, result[phase]
        return result
    finally:
        with psycopg.connect(f"{server}/postgres", autocommit=True) as conn:
            conn.execute(
                "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots"
                " WHERE database = %s",
                (dbname,),
            )
            conn.execute(f'DROP DATABASE "{dbname}" WITH (FORCE)')
        for path in (store, config):
            path.unlink(missing_ok=True)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--runs", type=int, default=3, help="rounds; the median is reported")
    parser.add_argument("--out", type=Path, default=Path("bench-out"))
    parser.add_argument("--phase", nargs="*")
    args = parser.parse_args()
    if args.phase:
        name, *rest = args.phase
        assert name == "capture", name
        print(json.dumps(phase_capture(Path(rest[0]))))
        return
    console = Console()
    out: Path = args.out.resolve()
    out.mkdir(exist_ok=True)
    sys.path.insert(0, str(ROOT))
    from sqlalchemy.engine import make_url

    from tests.pgserver import ensure_postgres

    found = make_url(ensure_postgres(out / "pg-logical", logical=True, dbname="postgres"))
    server = f"postgresql://{found.username}@{found.host}:{found.port}"
    rounds = []
    for n in range(args.runs):
        console.print(f"round {n + 1} of {args.runs} ({args.rows:,} rows)")
        rounds.append(one_round(server, out, args.rows))

    table = Table(title=f"PostgreSQL: {args.rows:,} rows changed, then captured by Tidings")
    for column in ("change", "client writes (rows/s)", "Tidings captures (rows/s)", "ratio"):
        table.add_column(column, justify="left" if column == "change" else "right")
    figures = {}
    for change in ("insert", "update"):
        wrote = median(r[change] for r in rounds)
        captured = median(r[f"capture_{change}"] for r in rounds)
        client = args.rows / wrote["seconds"]
        tidings = args.rows / captured["seconds"]
        figures[change] = {
            "client_rows_per_s": round(client),
            "tidings_rows_per_s": round(tidings),
            "capture_peak_mb": round(captured["peak_mb"]),
        }
        table.add_row(change, f"{client:,.0f}", f"{tidings:,.0f}", f"{tidings / client:.2f}")
    console.print(table)
    console.print(
        f"{args.runs} rounds, median; client: psycopg 3 executemany, {PER_TRANSACTION:,} rows a "
        "transaction; Tidings: pgoutput decoded, ingested into SQLite and confirmed "
        f"(capture peak memory {max(f['capture_peak_mb'] for f in figures.values())} MB)"
    )
    (out / "pg_capture.json").write_text(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
