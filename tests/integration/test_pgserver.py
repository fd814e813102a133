"""tests/pgserver.py: finding a running PostgreSQL, or starting a private one."""

from __future__ import annotations

import socket
from pathlib import Path

import psycopg
import pytest
import sqlalchemy as sa
from sqlalchemy.engine import make_url

from tests import pgserver


def _can_connect(url: str) -> bool:
    parsed = make_url(url)
    try:
        with psycopg.connect(
            host=parsed.host,
            port=parsed.port,
            user=parsed.username,
            dbname=parsed.database,
            connect_timeout=2,
        ):
            return True
    except psycopg.OperationalError:
        return False


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_private_server_runs_queries_keeps_data_and_stops(tmp_path: Path) -> None:
    url = pgserver.ensure_postgres(tmp_path, prefer_running=False)
    try:
        assert pgserver.ensure_postgres(tmp_path, prefer_running=False) == url  # cached
        parsed = make_url(url)
        assert parsed.drivername == "postgresql+psycopg"
        assert parsed.host == "127.0.0.1"
        assert parsed.port != 5432
        assert parsed.database == pgserver.DEFAULT_DBNAME

        engine = sa.create_engine(url)
        try:
            with engine.begin() as conn:
                conn.execute(sa.text("CREATE TABLE probe (id int PRIMARY KEY, note text)"))
                conn.execute(sa.text("INSERT INTO probe VALUES (1, 'héllo'), (2, 'world')"))
            with engine.connect() as conn:
                assert conn.execute(sa.text("SELECT current_database()")).scalar_one() == (
                    pgserver.DEFAULT_DBNAME
                )
                rows = conn.execute(sa.text("SELECT id, note FROM probe ORDER BY id")).all()
                assert [tuple(r) for r in rows] == [(1, "héllo"), (2, "world")]
        finally:
            engine.dispose()
    finally:
        assert pgserver._stop_private_server(tmp_path)
    assert not _can_connect(url)
    assert not pgserver._stop_private_server(tmp_path)  # nothing left to stop

    # Starting again re-uses the initialised data directory (the port may differ).
    url2 = pgserver.ensure_postgres(tmp_path, prefer_running=False)
    try:
        engine = sa.create_engine(url2)
        try:
            with engine.connect() as conn:
                assert conn.execute(sa.text("SELECT count(*) FROM probe")).scalar_one() == 2
        finally:
            engine.dispose()
    finally:
        assert pgserver._stop_private_server(tmp_path)
    assert not _can_connect(url2)


def test_default_choice_gives_a_working_database(tmp_path: Path) -> None:
    url = pgserver.ensure_postgres(tmp_path, dbname="tidings_test_pgserver")
    try:
        engine = sa.create_engine(url)
        try:
            with engine.connect() as conn:
                name = conn.execute(sa.text("SELECT current_database()")).scalar_one()
            assert name == make_url(url).database
        finally:
            engine.dispose()
    finally:
        pgserver._stop_private_server(tmp_path)  # only if it had to start one


def test_unreachable_env_url_is_an_error_not_a_fallback(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    dead = f"postgresql+psycopg://postgres@127.0.0.1:{_free_port()}/tidings_test"
    monkeypatch.setenv(pgserver.ENV_URL, dead)
    with pytest.raises(RuntimeError, match=pgserver.ENV_URL):
        pgserver.ensure_postgres(tmp_path)
