"""Pooled connections to a database server, checked cheaply when taken from the pool.

SQLAlchemy's ``pool_pre_ping`` sends a ``SELECT 1`` on every checkout: a round trip
per statement on the hot path (about half a millisecond each on loopback
PostgreSQL). Here a checkout pings only when there is reason to doubt the
connection:

- its socket has something to read while it sat idle in the pool: a server that
  restarts or terminates the backend sends an error and closes the socket, a
  dead peer shows as end-of-file, so the socket is readable;
- it sat idle longer than ``idle_ping_seconds`` (a silent drop by a firewall or a
  network timeout sends nothing);
- its driver has no socket to look at.

A failed ping raises :class:`~sqlalchemy.exc.DisconnectionError`, and the pool
replaces the connection with a fresh one (up to three times), as with pre-ping.
A connection that breaks while in use fails its statement as before, and the
pool is invalidated by SQLAlchemy's disconnect handling.
"""

from __future__ import annotations

import select
import time
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DisconnectionError

#: ping a connection that sat idle in the pool longer than this
IDLE_PING_SECONDS = 10.0

_IDLE_SINCE = "orchestrator_idle_since"


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
    """Ping a pooled server connection at checkout only when it may be stale."""

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
