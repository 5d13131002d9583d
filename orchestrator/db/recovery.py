"""Recovery, for the sweeper (``workers/sweeper.py``): Running flow runs that made no
progress and hold no live lease, and runs whose start or wake-up message may be lost.
Imports SQLAlchemy, the standard library, the sibling modules database and models, and
the core's states."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import exists, or_, select
from sqlalchemy.orm import aliased

from orchestrator.db.database import Database
from orchestrator.db.models import FlowRun, StateEvent, TaskRun
from orchestrator.states import State


class Recovery:
    """The sweeper's questions to one database.

    Args:
        db: the database.
    """

    def __init__(self, db: Database) -> None:
        self._db = db

    def stale_running(self, now: datetime, cutoff: datetime, limit: int = 100) -> list[str]:
        """Running flow runs with no state change since ``cutoff``, no live task-run
        lease, and no Running child run they wait for.

        A waited-for child that is Running is watched by the sweep itself. One that
        has not started (Submitted, Queued) is started only by its parent's node, so
        a parent whose node was lost with it is stale (the node touches the parent
        while it waits for the child's concurrency slot).

        Args:
            now: leases ending after this are live.
            cutoff: runs changed since this are not stale.
            limit: at most this many ids.

        Returns:
            The ids of the stale runs.
        """
        child = aliased(FlowRun)
        recent_event = exists().where(
            StateEvent.flow_run_id == FlowRun.id, StateEvent.timestamp > cutoff
        )
        live_lease = exists().where(TaskRun.flow_run_id == FlowRun.id, TaskRun.lease_until > now)
        running_child = exists().where(
            TaskRun.flow_run_id == FlowRun.id,
            TaskRun.state == State.RUNNING.value,
            TaskRun.child_flow_run_id == child.id,
            child.state == State.RUNNING.value,
        )
        q = (
            select(FlowRun.id)
            .where(FlowRun.state == State.RUNNING.value, FlowRun.updated < cutoff)
            .where(~recent_event, ~live_lease, ~running_child)
            .limit(limit)
        )
        with self._db.reading() as s:
            return list(s.scalars(q).all())

    def to_redispatch(self, cutoff: datetime, limit: int = 100) -> list[str]:
        """Submitted runs older than ``cutoff`` (their start message may be lost),
        and Queued runs (a wake-up may be lost), oldest first.

        Returns:
            Their ids.
        """
        q = (
            select(FlowRun.id)
            .where(
                or_(
                    (FlowRun.state == State.SUBMITTED.value) & (FlowRun.updated < cutoff),
                    FlowRun.state == State.QUEUED.value,
                )
            )
            .order_by(FlowRun.created)
            .limit(limit)
        )
        with self._db.reading() as s:
            return list(s.scalars(q).all())
