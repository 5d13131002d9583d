"""The connections every repository shares: ORM sessions for the cold paths, plain Core
connections for the hot path (one-statement reads outside any transaction, and
:class:`Tx`, one write transaction whose state events go in with one statement at its
end), and the translation of a lost database into
:class:`~orchestrator.errors.BackendUnavailable`. Imports SQLAlchemy, the standard
library, the sibling modules engine and statements, and the core's errors, clock,
config and states."""

from __future__ import annotations

import contextlib
import weakref
from collections.abc import Iterator
from typing import Any, cast

from sqlalchemy import Connection, CursorResult, Engine, Row, Table
from sqlalchemy.exc import InterfaceError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

import orchestrator.db.statements as sql
from orchestrator.clock import utcnow
from orchestrator.config import hide_password
from orchestrator.db.engine import make_engine
from orchestrator.errors import BackendUnavailable
from orchestrator.states import State


def rowcount(result: Any) -> int:
    """How many rows an UPDATE or DELETE touched."""
    return int(cast(CursorResult[Any], result).rowcount)


class Tx:
    """One write transaction on a Core connection. State events are kept and
    inserted in one statement when the transaction ends (one round trip for all).

    Attributes:
        conn: the connection, inside its transaction.
        events: the state events to insert at the end.
        now: the transaction's one timestamp.
    """

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self.events: list[dict[str, Any]] = []
        self.now = utcnow()

    def execute(self, statement: Any, params: Any = None) -> Any:
        """Run a statement in this transaction."""
        return self.conn.execute(statement, params)

    def event(
        self,
        flow_run_id: str,
        state: State,
        message: str | None = None,
        task_run_id: str | None = None,
    ) -> None:
        """Record a state change in the history (written at the end of the transaction)."""
        self.events.append(
            {
                "flow_run_id": flow_run_id,
                "task_run_id": task_run_id,
                "state": state.value,
                "message": message,
                "timestamp": self.now,
            }
        )

    def insert_new(self, table: Table, rows: list[dict[str, Any]]) -> None:
        """Insert rows, leaving out those whose unique keys exist already."""
        if rows:
            self.conn.execute(sql.insert_new(self.conn.dialect.name, table, False), rows)

    def insert_one_new(self, table: Table, row: dict[str, Any]) -> bool:
        """Insert a row unless its unique keys exist already; whether it went in."""
        # psycopg reports no row count here: ask for the key back instead
        stmt = sql.insert_new(self.conn.dialect.name, table, True)
        return self.conn.execute(stmt, row).first() is not None


class Database:
    """One SQL database's engine and the ways the repositories talk to it.

    Args:
        url: an SQLAlchemy URL (``sqlite:///path`` or ``postgresql+psycopg://...``).
    """

    def __init__(self, url: str) -> None:
        self.url = url
        self.is_sqlite = url.startswith("sqlite")
        self.engine: Engine = make_engine(url)
        # a database dropped without close() (an evicted cached connection) still
        # closes its pooled connections, rather than leave them to the garbage collector
        weakref.finalize(self, self.engine.dispose)
        self._writer = self.engine.execution_options(immediate=True)
        # one-statement reads need no transaction of their own
        self._reader = self.engine.execution_options(isolation_level="AUTOCOMMIT")
        self._read = sessionmaker(self.engine, expire_on_commit=False)
        self._write = sessionmaker(self._writer, expire_on_commit=False)

    def close(self) -> None:
        """Close every pooled connection."""
        self.engine.dispose()

    def after_fork(self) -> None:
        """In a forked process: drop the pooled connections inherited from the
        parent without closing them (they are the parent's)."""
        self.engine.dispose(close=False)

    @contextlib.contextmanager
    def reading(self) -> Iterator[Session]:
        """A read-only session."""
        with self.translate(), self._read() as session:
            yield session

    @contextlib.contextmanager
    def writing(self) -> Iterator[Session]:
        """A session in one write transaction, committed at the end of the block."""
        with self.translate(), self._write.begin() as session:
            yield session

    @contextlib.contextmanager
    def tx(self) -> Iterator[Tx]:
        """A Core connection in one write transaction, committed at the end of the block."""
        with self.translate(), self._writer.begin() as conn:
            tx = Tx(conn)
            yield tx
            if len(tx.events) == 1:  # one row: no executemany (a pipeline on psycopg)
                conn.execute(sql.INSERT_EVENTS, tx.events[0])
            elif tx.events:
                conn.execute(sql.INSERT_EVENTS, tx.events)

    def one(self, statement: Any, params: dict[str, Any] | None = None) -> Row[Any] | None:
        """The first row of a one-statement read (no transaction of its own)."""
        with self.translate(), self._reader.connect() as conn:
            return conn.execute(statement, params).first()

    def all(self, statement: Any, params: dict[str, Any] | None = None) -> list[Row[Any]]:
        """Every row of a one-statement read (no transaction of its own)."""
        with self.translate(), self._reader.connect() as conn:
            return list(conn.execute(statement, params).all())

    @contextlib.contextmanager
    def translate(self) -> Iterator[None]:
        """Turn a lost or unreachable database into BackendUnavailable (one line)."""
        try:
            yield
        except (OperationalError, InterfaceError) as exc:
            detail = str(exc.orig).strip().splitlines()[0] if exc.orig else str(exc)
            raise BackendUnavailable(
                f"database {hide_password(self.url)} is unreachable: {detail}"
            ) from exc
