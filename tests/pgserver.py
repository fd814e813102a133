"""Find or start a PostgreSQL server for the test suite.

``ensure_postgres(workdir)`` returns a SQLAlchemy URL
(``postgresql+psycopg://USER@HOST:PORT/DBNAME``) for a ready server, chosen in this order:

1. ``$TIDINGS_TEST_PG_URL`` if set, used as-is (an unreachable URL is an error, never a
   silent fall-back);
2. a server already listening on 127.0.0.1:5432 that accepts ``postgres`` with trust auth;
3. a private server started from the installed PostgreSQL binaries, with its data directory
   under ``workdir`` (re-used when already initialised) and stopped again at interpreter exit.

In every case the dedicated test database (``tidings_test`` by default) is created if missing.

``logical=True`` asks for a server that can do logical replication (``wal_level=logical``, with
room for replication slots and WAL senders): always a private server, since neither the
environment's nor the machine's server is known to have it. Several processes (pytest-xdist
workers) given the same ``workdir`` share one such server; the last of them to exit stops it.

PostgreSQL refuses to run as root, so when this process is root the private server is
initialised and run as the ``postgres`` system user (or a dedicated system user created with
``useradd``), via ``runuser``/``su``.
"""

from __future__ import annotations

import atexit
import contextlib
import fcntl
import os
import pwd
import re
import shlex
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql
from sqlalchemy.engine import make_url

__all__ = ["ensure_postgres"]

ENV_URL = "TIDINGS_TEST_PG_URL"
DEFAULT_DBNAME = "tidings_test"

_LOCAL_HOST = "127.0.0.1"
_LOCAL_PORT = 5432
_SUPERUSER = "postgres"
_MAINTENANCE_DB = "postgres"
_CONNECT_TIMEOUT_S = 2  # libpq's minimum effective connect_timeout
_FALLBACK_SYSTEM_USER = "tidings-pg"
_MARKER = "tidings-test-cluster"
_LOG_NAME = "server.log"
_LOG_TAIL_LINES = 40
_START_TIMEOUT_S = 60
_START_ATTEMPTS = 4  # a free port can be taken by someone else before the server binds it
_SUN_PATH_MAX = 107  # sizeof(sockaddr_un.sun_path) - 1 on Linux

_lock = threading.Lock()
_url_cache: dict[tuple[str, bool, str, str | None, bool], str] = {}
_servers: dict[Path, _PrivateServer] = {}


def ensure_postgres(
    workdir: Path,
    *,
    prefer_running: bool = True,
    dbname: str = DEFAULT_DBNAME,
    logical: bool = False,
) -> str:
    """Return a SQLAlchemy URL for a ready PostgreSQL server with database ``dbname``.

    ``prefer_running=False`` skips ``$TIDINGS_TEST_PG_URL`` and 127.0.0.1:5432 and always
    uses (starting it if needed) the private server whose data lives under ``workdir``.
    Repeated calls in one process with the same arguments return the cached URL.
    ``logical=True``: a private server with ``wal_level=logical``, shared by every process
    that asks for one under the same ``workdir`` (``prefer_running`` is then ignored).
    """
    workdir = Path(workdir).resolve()
    if logical:
        prefer_running = False
    env_url = (os.environ.get(ENV_URL) or None) if prefer_running else None
    key = (str(workdir), prefer_running, dbname, env_url, logical)
    with _lock:
        cached = _url_cache.get(key)
        if cached is not None:
            return cached
        if env_url is not None:
            url = _use_env_url(env_url, dbname)
        elif prefer_running and _local_server_ready():
            _ensure_database(_local_params(_LOCAL_PORT), dbname)
            url = _local_url(_LOCAL_PORT, dbname)
        else:
            port = _ensure_private_server(workdir, logical=logical)
            _ensure_database(_local_params(port), dbname)
            url = _local_url(port, dbname)
        _url_cache[key] = url
        return url


# --------------------------------------------------------------------------- connections


def _connect(params: dict[str, Any]) -> psycopg.Connection[Any]:
    return psycopg.connect(connect_timeout=_CONNECT_TIMEOUT_S, autocommit=True, **params)


def _check(params: dict[str, Any]) -> None:
    with _connect(params) as conn:
        conn.execute("SELECT 1").fetchone()


def _local_params(port: int, dbname: str = _MAINTENANCE_DB) -> dict[str, Any]:
    return {"host": _LOCAL_HOST, "port": port, "user": _SUPERUSER, "dbname": dbname}


def _local_url(port: int, dbname: str) -> str:
    return f"postgresql+psycopg://{_SUPERUSER}@{_LOCAL_HOST}:{port}/{dbname}"


def _ensure_database(maintenance: dict[str, Any], dbname: str) -> None:
    with _connect(maintenance) as conn:
        if conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (dbname,)).fetchone():
            return
        # A concurrent creator may win the race: both errors mean "it exists now".
        with contextlib.suppress(psycopg.errors.DuplicateDatabase, psycopg.errors.UniqueViolation):
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(dbname)))


def _tcp_open(host: str, port: int, timeout: float) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def _local_server_ready() -> bool:
    if not _tcp_open(_LOCAL_HOST, _LOCAL_PORT, timeout=1.0):
        return False
    try:
        _check(_local_params(_LOCAL_PORT))
    except psycopg.Error:
        return False
    return True


def _use_env_url(raw: str, dbname: str) -> str:
    """Path 1: the URL from the environment, which must work (no fall-back)."""
    try:
        url = make_url(raw)
    except Exception as exc:
        raise RuntimeError(f"${ENV_URL} is not a valid SQLAlchemy URL: {exc}") from exc
    shown = url.render_as_string(hide_password=True)
    if not url.drivername.startswith("postgresql"):
        raise RuntimeError(f"${ENV_URL}={shown} is not a PostgreSQL URL")
    if not url.database:
        url = url.set(database=dbname)
        raw = url.render_as_string(hide_password=False)
    params: dict[str, Any] = {
        "host": url.host,
        "port": url.port,
        "user": url.username,
        "password": url.password,
        "dbname": url.database,
    }
    for name, value in url.query.items():
        params[name] = value if isinstance(value, str) else value[-1]
    try:
        _check(params)
        return raw
    except psycopg.Error as exc:
        first_error = exc
    # Perhaps only the database is missing: create it through the maintenance database.
    try:
        _ensure_database({**params, "dbname": _MAINTENANCE_DB}, str(url.database))
        _check(params)
    except psycopg.Error:
        raise RuntimeError(
            f"${ENV_URL}={shown} is not reachable (not falling back to another server): "
            f"{first_error}"
        ) from first_error
    return raw


# --------------------------------------------------------------------------- private server


@dataclass
class _Binaries:
    initdb: Path
    pg_ctl: Path
    postgres: Path
    major: str


@dataclass
class _PrivateServer:
    bins: _Binaries
    datadir: Path
    port: int
    run_as: str | None
    owner_pid: int = field(default_factory=os.getpid)
    cleanup: list[Path] = field(default_factory=list)
    stopped: bool = False
    # A shared (logical) server: the file listing the processes using it; the last one stops it.
    users: Path | None = None

    def stop(self) -> None:
        """Stop the server (idempotent; a forked child never stops its parent's server)."""
        if self.stopped or os.getpid() != self.owner_pid:
            return
        self.stopped = True
        _run(
            [str(self.bins.pg_ctl), "stop", "-D", str(self.datadir), "-m", "fast", "-w"],
            self.run_as,
            timeout=_START_TIMEOUT_S,
        )

    def stop_and_clean_up(self) -> None:
        """Stop the server, then remove the temporary directories it used (at exit)."""
        if os.getpid() != self.owner_pid:
            return
        if self.users is None:
            try:
                self.stop()
            finally:
                _remove(self.cleanup)
            return
        # Shared: under the set-up lock, so no one joins while the last user stops it.
        with _file_lock(self.users.parent / ".pgserver.lock"):
            if not _leave(self.users):
                return  # another process still uses it
            try:
                self.stop()
            finally:
                _remove(self.cleanup)


def _remove(paths: list[Path]) -> None:
    for path in paths:
        if path.is_symlink():
            path.unlink(missing_ok=True)
        else:
            shutil.rmtree(path, ignore_errors=True)


def _stop_private_server(workdir: Path) -> bool:
    """Stop the private server this process started for ``workdir`` (for tests).

    Returns whether there was one to stop. Cached URLs are forgotten; the data directory is
    kept, so a later ``ensure_postgres(workdir, ...)`` starts the server on it again.
    """
    with _lock:
        server = _servers.pop(Path(workdir).resolve(), None)
        _url_cache.clear()
    if server is None:
        return False
    server.stop()
    return True


def _version_key(path: Path) -> tuple[int, ...]:
    return tuple(int(part) for part in re.findall(r"\d+", path.parent.name))


def _find_binaries() -> _Binaries:
    names = ("initdb", "pg_ctl", "postgres")
    candidates = sorted(Path("/usr/lib/postgresql").glob("*/bin"), key=_version_key, reverse=True)
    for bindir in candidates:
        paths = [bindir / name for name in names]
        if all(os.access(p, os.X_OK) for p in paths):
            return _binaries(*paths)
    found = [shutil.which(name) for name in names]
    if all(found):
        return _binaries(*(Path(str(p)) for p in found))
    raise RuntimeError(
        "no PostgreSQL server binaries found (looked for initdb, pg_ctl and postgres in "
        "/usr/lib/postgresql/*/bin and on PATH); install PostgreSQL (e.g. "
        f"`apt-get install postgresql`) or set ${ENV_URL}"
    )


def _binaries(initdb: Path, pg_ctl: Path, postgres: Path) -> _Binaries:
    out = subprocess.run(
        [str(postgres), "--version"], capture_output=True, text=True, check=True, timeout=30
    ).stdout
    match = re.search(r"(\d+)(?:\.(\d+))?", out)
    if match is None:
        raise RuntimeError(f"cannot parse `{postgres} --version` output: {out!r}")
    # PG_VERSION holds "15" from version 10 on, "9.6" before.
    major = match.group(1) if int(match.group(1)) >= 10 else match.group(0)
    return _Binaries(initdb, pg_ctl, postgres, major)


def _sbin(name: str) -> str | None:
    found = shutil.which(name)
    if found:
        return found
    for directory in ("/usr/sbin", "/sbin", "/usr/bin", "/bin"):
        candidate = Path(directory) / name
        if os.access(candidate, os.X_OK):
            return str(candidate)
    return None


def _service_user() -> str | None:
    """The user to run the server as, or None to run it as ourselves (non-root)."""
    if os.geteuid() != 0:
        return None
    for name in (_SUPERUSER, _FALLBACK_SYSTEM_USER):
        with contextlib.suppress(KeyError):
            pwd.getpwnam(name)
            return name
    useradd = _sbin("useradd")
    if useradd is None:
        raise RuntimeError(
            "running as root, but there is no `postgres` user and no useradd to create "
            f"{_FALLBACK_SYSTEM_USER!r}; PostgreSQL refuses to run as root"
        )
    proc = subprocess.run(
        [
            useradd,
            "--system",
            "--user-group",
            "--no-create-home",
            "--home-dir",
            "/nonexistent",
            "--shell",
            "/usr/sbin/nologin",
            _FALLBACK_SYSTEM_USER,
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    try:
        pwd.getpwnam(_FALLBACK_SYSTEM_USER)  # a concurrent useradd may have won
    except KeyError:
        raise RuntimeError(
            f"could not create system user {_FALLBACK_SYSTEM_USER!r}: {proc.stderr.strip()}"
        ) from None
    return _FALLBACK_SYSTEM_USER


def _as_user(cmd: list[str], user: str | None) -> list[str]:
    if user is None:
        return cmd
    runuser = _sbin("runuser")
    if runuser is not None:
        return [runuser, "-u", user, "--", *cmd]
    su = _sbin("su")
    if su is not None:
        return [su, "-s", "/bin/sh", "-c", shlex.join(cmd), user]
    raise RuntimeError("running as root, but neither runuser nor su is available")


def _run(cmd: list[str], user: str | None, *, timeout: float) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    env.setdefault("LC_ALL", "C")
    return subprocess.run(
        _as_user(cmd, user),
        capture_output=True,
        text=True,
        env=env,
        cwd="/",  # the service user may not be allowed into our cwd (e.g. /root)
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )


def _chown(path: Path, user: str | None) -> None:
    if user is not None:
        entry = pwd.getpwnam(user)
        os.chown(path, entry.pw_uid, entry.pw_gid)


def _user_can_enter(path: Path, user: str) -> bool:
    return _run(["test", "-x", str(path)], user, timeout=30).returncode == 0


def _log_tail(datadir: Path) -> str:
    try:
        lines = (datadir / _LOG_NAME).read_text(errors="replace").splitlines()
    except OSError as exc:
        return f"(no server log: {exc})"
    return "\n".join(lines[-_LOG_TAIL_LINES:]) or "(server log is empty)"


def _fail(what: str, proc: subprocess.CompletedProcess[str], datadir: Path) -> RuntimeError:
    return RuntimeError(
        f"{what} failed (exit {proc.returncode}): {shlex.join(proc.args)}\n"
        f"--- output ---\n{(proc.stdout + proc.stderr).strip()}\n"
        f"--- tail of {datadir / _LOG_NAME} ---\n{_log_tail(datadir)}"
    )


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((_LOCAL_HOST, 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _data_location(workdir: Path, user: str | None) -> tuple[Path, list[Path]]:
    """Where the data directory lives, and what to delete when the server stops.

    Normally ``workdir/pgdata``. When running as root and the service user cannot reach
    ``workdir`` (pytest's ``/tmp/pytest-of-root`` is mode 0700, so is ``/root``), the data
    goes into a fresh temporary directory instead, linked from ``workdir/pgdata`` and removed
    again when the server is stopped.
    """
    link = workdir / "pgdata"
    if link.is_symlink():
        target = link.resolve()
        if target.is_dir():
            return target, [target, link]
        link.unlink()
    if user is None or _user_can_enter(workdir, user):
        return link, []
    if link.exists():
        raise RuntimeError(
            f"{link} exists, but user {user!r} cannot reach it (no search permission on "
            f"{workdir} or a parent); delete it or use another workdir"
        )
    holder = Path(tempfile.mkdtemp(prefix="tidings-pg-"))
    holder.chmod(0o755)
    if not _user_can_enter(holder, user):
        shutil.rmtree(holder, ignore_errors=True)
        raise RuntimeError(
            f"user {user!r} can reach neither {workdir} nor {holder.parent}; "
            "PostgreSQL cannot run there"
        )
    datadir = holder / "pgdata"
    link.symlink_to(datadir, target_is_directory=True)
    return datadir, [holder, link]


def _running_port(datadir: Path, logical: bool = False) -> int | None:
    """The port of a server already running on ``datadir`` that we can use, if any."""
    try:
        lines = (datadir / "postmaster.pid").read_text().splitlines()
        port = int(lines[3])
    except (OSError, IndexError, ValueError):
        return None
    try:
        with _connect(_local_params(port)) as conn:
            row = conn.execute("SHOW wal_level").fetchone()
    except psycopg.Error:
        return None
    if logical and (row is None or row[0] != "logical"):
        raise RuntimeError(
            f"a server without wal_level=logical runs on {datadir}; stop it or use another workdir"
        )
    return port


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _users(path: Path) -> set[int]:
    """The live processes listed in a shared server's users file (the dead are forgotten:
    a worker killed without running its exit handlers must not keep the server up)."""
    try:
        pids = {int(p) for p in path.read_text().split()}
    except (OSError, ValueError):
        pids = set()
    return {pid for pid in pids if _alive(pid)}


def _join(path: Path) -> None:
    """Add this process to a shared server's users (the caller holds the set-up lock)."""
    pids = _users(path) | {os.getpid()}
    path.write_text("".join(f"{pid}\n" for pid in sorted(pids)))


def _leave(path: Path) -> bool:
    """Take this process off the users list (the caller holds the set-up lock); whether it
    was the last one."""
    pids = _users(path) - {os.getpid()}
    path.write_text("".join(f"{pid}\n" for pid in sorted(pids)))
    return not pids


def _initdb(bins: _Binaries, datadir: Path, user: str | None) -> None:
    marker = datadir / _MARKER
    version_file = datadir / "PG_VERSION"
    if (
        marker.is_file()
        and version_file.is_file()
        and version_file.read_text().strip() == bins.major
    ):
        return
    if datadir.exists():  # half-initialised, or from another major version: start afresh
        shutil.rmtree(datadir)
    datadir.mkdir(mode=0o700, parents=True)
    _chown(datadir, user)
    proc = _run(
        [
            str(bins.initdb),
            "-D",
            str(datadir),
            "-U",
            _SUPERUSER,
            "--auth=trust",
            "--encoding=UTF8",
            "--locale=C",
            "--no-sync",
        ],
        user,
        timeout=300,
    )
    if proc.returncode != 0:
        raise _fail("initdb", proc, datadir)
    marker.write_text("initialised by tests/pgserver.py; safe to delete\n")


def _socket_dir(datadir: Path, user: str | None, cleanup: list[Path]) -> Path:
    """The data directory, unless a socket path in it would be too long for sun_path."""
    if len(f"{datadir}/.s.PGSQL.65535") <= _SUN_PATH_MAX:
        return datadir
    short = Path(tempfile.mkdtemp(prefix="tpg-", dir="/tmp"))
    _chown(short, user)
    cleanup.append(short)
    return short


_LOGICAL_SETTINGS = (
    "wal_level=logical",
    "max_replication_slots=20",
    "max_wal_senders=20",
)


def _start(
    bins: _Binaries, datadir: Path, user: str | None, cleanup: list[Path], logical: bool = False
) -> int:
    sockdir = _socket_dir(datadir, user, cleanup)
    extra = [arg for setting in _LOGICAL_SETTINGS for arg in ("-c", setting)] if logical else []
    last: subprocess.CompletedProcess[str] | None = None
    for _ in range(_START_ATTEMPTS):
        port = _free_port()
        options = shlex.join(
            [
                "-p",
                str(port),
                "-c",
                f"listen_addresses={_LOCAL_HOST}",
                "-c",
                f"unix_socket_directories={sockdir}",
                "-c",
                "fsync=off",
                "-c",
                "synchronous_commit=off",
                "-c",
                "full_page_writes=off",
                *extra,
            ]
        )
        cmd = [str(bins.pg_ctl), "start", "-D", str(datadir), "-l", str(datadir / _LOG_NAME)]
        cmd += ["-w", "-t", str(_START_TIMEOUT_S), "-o", options]
        last = _run(cmd, user, timeout=_START_TIMEOUT_S + 30)
        if last.returncode == 0:
            break
        if "could not bind" not in _log_tail(datadir):
            raise _fail("pg_ctl start", last, datadir)
    else:
        assert last is not None
        raise _fail("pg_ctl start", last, datadir)
    deadline = time.monotonic() + _START_TIMEOUT_S
    while True:
        try:
            _check(_local_params(port))
            return port
        except psycopg.Error as exc:
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"private PostgreSQL on port {port} does not accept connections: {exc}\n"
                    f"--- tail of {datadir / _LOG_NAME} ---\n{_log_tail(datadir)}"
                ) from exc
            time.sleep(0.1)


def _ensure_private_server(workdir: Path, logical: bool = False) -> int:
    server = _servers.get(workdir)
    if server is not None and not server.stopped:
        return server.port
    workdir.mkdir(parents=True, exist_ok=True)
    bins = _find_binaries()
    user = _service_user()
    users = workdir / ".pgserver.users" if logical else None
    # Serialise set-up across processes sharing workdir; the loser re-uses the winner's server.
    with _file_lock(workdir / ".pgserver.lock"):
        datadir, cleanup = _data_location(workdir, user)
        port = _running_port(datadir, logical)
        if port is not None and users is None:
            return port  # started by someone else, who also stops it
        if port is not None and users is not None:
            # Shared: whoever leaves last stops it, whoever started it.
            _join(users)
            server = _PrivateServer(bins, datadir, port, user, cleanup=cleanup, users=users)
            _servers[workdir] = server
            atexit.register(server.stop_and_clean_up)
            return port
        _initdb(bins, datadir, user)
        server = _PrivateServer(bins, datadir, 0, user, cleanup=cleanup, users=users)
        try:
            server.port = _start(bins, datadir, user, cleanup, logical)
            if users is not None:
                _join(users)
        except BaseException:
            # Best effort: pg_ctl may have left a half-started server behind.
            server.stop_and_clean_up()
            raise
    _servers[workdir] = server
    atexit.register(server.stop_and_clean_up)
    return server.port
