"""The database tables, as SQLAlchemy 2 typed ORM classes; schema changes go through the
Alembic migrations in ``orchestrator/db/migrations``. Imports only SQLAlchemy and the
standard library."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    false,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class Base(DeclarativeBase):
    """The declarative base of every table."""


class Project(Base):
    """A named group of flows."""

    __tablename__ = "projects"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    created: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class FlowVersion(Base):
    """One registered version of a flow."""

    __tablename__ = "flows"
    __table_args__ = (UniqueConstraint("project_id", "name", "version"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id"))
    name: Mapped[str] = mapped_column(String(200))
    version: Mapped[int] = mapped_column(Integer)
    archived: Mapped[bool] = mapped_column(Boolean, default=False)
    import_ref: Mapped[str] = mapped_column(Text)
    parameters: Mapped[list[dict[str, Any]]] = mapped_column(JSON)
    schedule: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    #: Unused since migration 0004 (always False): a pause belongs to the flow, not to
    #: one version, and lives in ``schedule_pauses``.
    schedule_paused: Mapped[bool] = mapped_column(Boolean, default=False)
    labels: Mapped[list[str]] = mapped_column(JSON)
    structure_hash: Mapped[str] = mapped_column(String(64))
    structure: Mapped[dict[str, Any]] = mapped_column(JSON)
    created: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class FlowRun(Base):
    """One run of a flow version."""

    __tablename__ = "flow_runs"
    __table_args__ = (
        # children by parent; partial, so that a query for the roots (IS NULL) takes
        # ix_flow_runs_roots, in order, even on SQLite (no statistics) (migration 0004)
        Index(
            "ix_flow_runs_parent",
            "parent_flow_run_id",
            postgresql_where=text("parent_flow_run_id IS NOT NULL"),
            sqlite_where=text("parent_flow_run_id IS NOT NULL"),
        ),
        # newest-first keyset pages (migration 0004)
        Index("ix_flow_runs_created_id", "created", "id"),
        Index("ix_flow_runs_state_created", "state", "created", "id"),
        Index("ix_flow_runs_flow_created", "flow_id", "created", "id"),
        Index(
            "ix_flow_runs_roots",
            "created",
            "id",
            postgresql_where=text("parent_flow_run_id IS NULL"),
            sqlite_where=text("parent_flow_run_id IS NULL"),
        ),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    flow_id: Mapped[str] = mapped_column(ForeignKey("flows.id"))
    name: Mapped[str | None] = mapped_column(String(200), nullable=True)
    state: Mapped[str] = mapped_column(String(20))
    message: Mapped[str | None] = mapped_column(Text, nullable=True)
    parameters: Mapped[dict[str, Any]] = mapped_column(JSON)
    labels: Mapped[list[str]] = mapped_column(JSON)
    idempotency_key: Mapped[str | None] = mapped_column(String(400), unique=True, nullable=True)
    parent_flow_run_id: Mapped[str | None] = mapped_column(String(36), nullable=True)
    parent_task_run_id: Mapped[str | None] = mapped_column(String(36), nullable=True)
    scheduled_start_time: Mapped[datetime | None] = mapped_column(
        DateTime(timezone=True), nullable=True
    )
    start_time: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    end_time: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    created: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    updated: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    #: A schedule slot's run held back by its overlap policy (``buffer_one``,
    #: ``buffer_all``): beat sends it once no earlier run of the schedule is active.
    buffered: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    #: The trace context of the run's span (W3C ``traceparent`` of the span and of the
    #: one it hangs under), kept so that every worker and redelivery continues one
    #: trace; None without tracing (migration 0008).
    trace_context: Mapped[dict[str, str] | None] = mapped_column(
        JSON(none_as_null=True), nullable=True
    )


class TaskRun(Base):
    """One run of one task (one element, for a mapped task) in a flow run."""

    __tablename__ = "task_runs"
    __table_args__ = (UniqueConstraint("flow_run_id", "slug", "map_index"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    flow_run_id: Mapped[str] = mapped_column(ForeignKey("flow_runs.id"), index=True)
    slug: Mapped[str] = mapped_column(String(200))
    map_index: Mapped[int] = mapped_column(Integer, default=-1)
    name: Mapped[str] = mapped_column(String(200))
    state: Mapped[str] = mapped_column(String(20))
    message: Mapped[str | None] = mapped_column(Text, nullable=True)
    result: Mapped[Any] = mapped_column(JSON, nullable=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    child_flow_run_id: Mapped[str | None] = mapped_column(String(36), nullable=True)
    worker: Mapped[str | None] = mapped_column(String(200), nullable=True)
    lease_owner: Mapped[str | None] = mapped_column(String(100), nullable=True)
    lease_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    #: A Retrying task run's next attempt is due then, not before: a claim refuses it
    #: earlier (a duplicate delivery of an earlier attempt's message, a message the
    #: broker redelivered after its visibility timeout) (migration 0006).
    not_before: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    start_time: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    end_time: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class StateEvent(Base):
    """One recorded state change of a flow run or task run (the history)."""

    __tablename__ = "state_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    flow_run_id: Mapped[str] = mapped_column(String(36), index=True)
    task_run_id: Mapped[str | None] = mapped_column(String(36), nullable=True)
    state: Mapped[str] = mapped_column(String(20))
    message: Mapped[str | None] = mapped_column(Text, nullable=True)
    timestamp: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class ScheduleMark(Base):
    """How far beat has handled a scheduled flow: every slot up to ``handled_until``.

    One row per flow (project and name, across its versions), so a restarted or a
    second beat knows which slots were dealt with and which were missed;
    ``schedule_hash`` tells which schedule the bookmark is for (a changed schedule
    fires from when beat first sees it, without backfilling).
    """

    __tablename__ = "schedule_marks"

    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id"), primary_key=True)
    flow_name: Mapped[str] = mapped_column(String(200), primary_key=True)
    handled_until: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    schedule_hash: Mapped[str | None] = mapped_column(String(64), nullable=True)
    updated: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class SchedulePause(Base):
    """A paused schedule: who paused it, when and why. One row per flow (project and
    name, across its versions), so a new version of a paused flow stays paused;
    resuming deletes the row."""

    __tablename__ = "schedule_pauses"

    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id"), primary_key=True)
    flow_name: Mapped[str] = mapped_column(String(200), primary_key=True)
    paused_by: Mapped[str] = mapped_column(String(200))
    paused_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    note: Mapped[str | None] = mapped_column(Text, nullable=True)


class TaskRunLog(Base):
    """One captured log line of a task run attempt: a ``logging`` record or a
    printed line of the task's code (see :mod:`orchestrator.logcapture`)."""

    __tablename__ = "task_run_logs"
    __table_args__ = (Index("ix_task_run_logs_run", "flow_run_id", "task_run_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    flow_run_id: Mapped[str] = mapped_column(String(36))
    task_run_id: Mapped[str] = mapped_column(String(36))
    attempt: Mapped[int] = mapped_column(Integer)
    line: Mapped[int] = mapped_column(Integer)
    timestamp: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    level: Mapped[str] = mapped_column(String(20))
    logger: Mapped[str | None] = mapped_column(String(200), nullable=True)
    message: Mapped[str] = mapped_column(Text)


class ConcurrencyLimit(Base):
    """A label's concurrency limit: the source of truth, cached in Redis, where the
    slots live (a flushed Redis loads the limits again from here) (migration 0007)."""

    __tablename__ = "concurrency_limits"

    label: Mapped[str] = mapped_column(String(200), primary_key=True)
    slots: Mapped[int] = mapped_column(Integer)
    updated: Mapped[datetime] = mapped_column(DateTime(timezone=True))
