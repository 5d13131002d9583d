"""The store: one SQL database and a repository per table group, as attributes
(``store.flows``, ``store.flow_runs``, ``store.task_runs``, ``store.runs``,
``store.logs``, ``store.schedules``, ``store.recovery``, ``store.browse``,
``store.events``, ``store.retention``, ``store.stats``, ``store.restarts``), plus
its sessions and its
migrations; the database is the source of truth for runs. Imports SQLAlchemy, the
standard library and the sibling modules of :mod:`orchestrator.db`."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from sqlalchemy import Engine
from sqlalchemy.orm import Session

import orchestrator.db.migrate as migrate
from orchestrator.db.browse import Browse
from orchestrator.db.database import Database
from orchestrator.db.events import Events
from orchestrator.db.flow_runs import FlowRuns
from orchestrator.db.flows import Flows
from orchestrator.db.limits import Limits
from orchestrator.db.logs import Logs
from orchestrator.db.recovery import Recovery
from orchestrator.db.restarts import Restarts
from orchestrator.db.retention import Retention
from orchestrator.db.runs import Runs
from orchestrator.db.schedules import Schedules
from orchestrator.db.stats import Stats
from orchestrator.db.task_runs import TaskRuns


class Store:
    """Runs and flows in one SQL database.

    Args:
        url: an SQLAlchemy URL (``sqlite:///path`` or ``postgresql+psycopg://...``).
        auto_migrate: apply pending migrations at once (the embedded default).

    Attributes:
        url: the database URL.
        is_sqlite: whether it is an SQLite file.
        engine: its SQLAlchemy engine.
        flows: projects and flow versions.
        flow_runs: flow runs, their states, listings and history.
        task_runs: task runs, their claims, leases and states.
        runs: the transactions spanning a flow run and its task runs.
        logs: the task runs' captured log lines.
        schedules: schedule bookmarks, pauses and due runs.
        recovery: what the sweeper looks for.
        browse: pages of runs, run trees and their logs (the server, ``runs --roots``).
        events: the state-event feed (the server's live updates).
        restarts: restarting a finished run and its failed children in place.

    Raises:
        ConfigurationError: the URL is malformed or its driver is missing.
    """

    def __init__(self, url: str, auto_migrate: bool = False) -> None:
        self._db = Database(url)
        self.url = url
        self.is_sqlite = self._db.is_sqlite
        self.engine: Engine = self._db.engine
        self.flows = Flows(self._db)
        self.flow_runs = FlowRuns(self._db)
        self.task_runs = TaskRuns(self._db)
        self.runs = Runs(self._db)
        self.logs = Logs(self._db)
        self.schedules = Schedules(self._db, self.flows)
        self.recovery = Recovery(self._db)
        self.limits = Limits(self._db)
        self.browse = Browse(self._db)
        self.events = Events(self._db)
        self.retention = Retention(self._db)
        self.stats = Stats(self._db)
        self.restarts = Restarts(self._db)
        if auto_migrate:
            self.upgrade()

    def close(self) -> None:
        """Close every pooled connection."""
        self._db.close()

    def after_fork(self) -> None:
        """In a forked process: forget the parent's pooled connections, unclosed."""
        self._db.after_fork()

    @contextlib.contextmanager
    def reading(self) -> Iterator[Session]:
        """A read-only ORM session."""
        with self._db.reading() as session:
            yield session

    @contextlib.contextmanager
    def writing(self) -> Iterator[Session]:
        """An ORM session in one write transaction, committed at the end of the block."""
        with self._db.writing() as session:
            yield session

    def upgrade(self) -> str:
        """Apply every pending migration; returns the head revision."""
        return migrate.upgrade(self._db)

    def current_revision(self) -> str | None:
        """The revision the database is at, or None before any migration."""
        return migrate.current_revision(self._db)

    def head_revision(self) -> str:
        """The newest migration this code knows."""
        return migrate.head_revision(self._db)

    def check_migrated(self) -> None:
        """Raise a clear error when the schema is behind this code.

        Raises:
            ConfigurationError: the database is not at the head revision.
        """
        migrate.check_migrated(self._db)
