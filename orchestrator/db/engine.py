"""Creating the SQLAlchemy engine of a database URL: the SQLite pragmas (WAL, our own
``BEGIN IMMEDIATE`` for writes) and, for a database server, a pool checkout guard that
pings a pooled connection only when there is reason to doubt it (see
:func:`guard_checkouts`), not on every checkout as ``pool_pre_ping`` would. An
SQLite file in a folder this process cannot write is opened read-only. Imports
SQLAlchemy, the standard library, and the core's errors and config."""

from __future__ import annotations

import os
import select
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import quote

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.exc import DisconnectionError

from orchestrator.config import hide_password
from orchestrator.errors import ConfigurationError

#: ping a connection that sat idle in the pool longer than this
IDLE_PING_SECONDS = 10.0

_IDLE_SINCE = "orchestrator_idle_since"


def make_engine(url: str) -> Engine:
    """The engine of a database URL, with the pragmas or the checkout guard it needs.

    Args:
        url: an SQLAlchemy URL (``sqlite:///path`` or ``postgresql+psycopg://...``).

    Raises:
        ConfigurationError: the URL is malformed or its driver is missing.
    """
    is_sqlite = url.startswith("sqlite")
    kwargs: dict[str, Any] = {}
    read_only = False
    if is_sqlite:
        path = url.split("///", 1)[-1]
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
            read_only = _read_only_file(Path(path))
        kwargs["connect_args"] = {"timeout": 60, "check_same_thread": False}
        if read_only:
            kwargs["creator"] = _read_only_creator(Path(path))
    else:
        kwargs["connect_args"] = {"connect_timeout": 10} if "psycopg" in url else {}
        kwargs["pool_size"] = 5
    try:
        engine = create_engine(url, **kwargs)
    except Exception as exc:  # bad URL, missing driver
        raise ConfigurationError(
            f"database URL {hide_password(url)} is not usable: {exc}".splitlines()[0]
        ) from None
    if is_sqlite:
        sqlite_pragmas(engine, read_only)
    else:  # a file has no server to go away; a server connection is checked
        guard_checkouts(engine)
    return engine


def _read_only_file(path: Path) -> bool:
    """Whether an existing SQLite file sits in a folder this process cannot write
    (a read-only home): SQLite could create no journal or lock files beside it."""
    return path.is_file() and not os.access(path.parent, os.W_OK)


def _read_only_creator(path: Path) -> Callable[[], sqlite3.Connection]:
    """Connections that only read ``path``: ``mode=ro``, and ``immutable`` when no
    writer holds it open (no ``-wal`` file, which a writer would have created)."""

    def connect() -> sqlite3.Connection:
        wal = path.with_name(path.name + "-wal").exists()
        uri = f"file:{quote(str(path))}?mode=ro" + ("" if wal else "&immutable=1")
        return sqlite3.connect(uri, uri=True, timeout=60, check_same_thread=False)

    return connect


def sqlite_pragmas(engine: Engine, read_only: bool = False) -> None:
    """WAL and a busy timeout on every SQLite connection (WAL left as it is on a
    read-only file); transactions begun by us (``BEGIN IMMEDIATE`` for writers,
    none for one-statement reads)."""

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None  # we issue BEGIN ourselves
        cur = dbapi_conn.cursor()
        if not read_only:
            cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.execute("PRAGMA busy_timeout=60000")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        options = conn.get_execution_options()
        if options.get("isolation_level") == "AUTOCOMMIT":
            return  # a one-statement read: SQLite's own implicit transaction
        conn.exec_driver_sql("BEGIN IMMEDIATE" if options.get("immediate") else "BEGIN")


def _readable(dbapi_conn: Any) -> bool:
    """Whether the connection's socket has bytes waiting (True when unknown)."""
    try:
        fd = dbapi_conn.fileno()
    except Exception:
        return True
    poller = select.poll()  # not select(): no limit on the descriptor's number
    try:
        poller.register(fd, select.POLLIN)
        return bool(poller.poll(0))
    except (OSError, ValueError):
        return True


def guard_checkouts(engine: Engine, idle_ping_seconds: float = IDLE_PING_SECONDS) -> None:
    """Ping a pooled server connection at checkout only when it may be stale.

    SQLAlchemy's ``pool_pre_ping`` sends a ``SELECT 1`` on every checkout: a round
    trip per statement on the hot path (about half a millisecond each on loopback
    PostgreSQL). Here a checkout pings only when its socket has something to read
    while it sat idle in the pool (a server that restarts or terminates the backend
    sends an error and closes the socket; a dead peer shows as end-of-file), when it
    sat idle longer than ``idle_ping_seconds`` (a silent drop by a firewall sends
    nothing), or when its driver has no socket to look at. A failed ping raises
    :class:`~sqlalchemy.exc.DisconnectionError`, and the pool replaces the
    connection (up to three times), as with pre-ping. A connection that breaks while
    in use fails its statement as before.

    Args:
        engine: the engine whose pool is guarded.
        idle_ping_seconds: always ping a connection idle in the pool this long.
    """

    @event.listens_for(engine, "checkin")
    def _on_checkin(_dbapi_conn: Any, record: Any) -> None:
        if record is not None:
            record.info[_IDLE_SINCE] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _on_checkout(dbapi_conn: Any, record: Any, _proxy: Any) -> None:
        idle_since = record.info.pop(_IDLE_SINCE, None)
        if idle_since is None:
            return  # just connected
        stale = time.monotonic() - idle_since > idle_ping_seconds
        if not stale and not _readable(dbapi_conn):
            return
        try:
            engine.dialect.do_ping(dbapi_conn)
        except Exception as exc:
            raise DisconnectionError(f"pooled connection failed its ping: {exc}") from exc
