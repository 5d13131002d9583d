"""Recovery, for the sweeper (``workers/sweeper.py``): Running flow runs that made no
progress and hold no live lease, and runs whose start or wake-up message may be lost;
and for the takeover of dead workers (``workers/takeover.py``): ending the leases they
held, and the run to send again for each of their runs. Imports SQLAlchemy, the
standard library, the sibling modules database and models, and the core's states."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

from sqlalchemy import exists, or_, select, update
from sqlalchemy.orm import Session, aliased

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
        lease, no retry due after ``cutoff``, and no Running child run they wait for.

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
        # a retry waiting for its delay is progress, until it has been due for long
        retry_due = exists().where(
            TaskRun.flow_run_id == FlowRun.id,
            TaskRun.state == State.RETRYING.value,
            TaskRun.not_before > cutoff,
        )
        running_child = exists().where(
            TaskRun.flow_run_id == FlowRun.id,
            TaskRun.state == State.RUNNING.value,
            TaskRun.child_flow_run_id == child.id,
            child.state == State.RUNNING.value,
        )
        q = (
            select(FlowRun.id)
            .where(FlowRun.state == State.RUNNING.value, FlowRun.updated < cutoff)
            .where(~recent_event, ~live_lease, ~running_child, ~retry_due)
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

    def release_leases(self, workers: Sequence[str], now: datetime) -> list[str]:
        """End the leases that dead worker processes held on Running task runs, so
        the next delivery of their nodes claims them at once.

        Args:
            workers: the dead processes, as task runs name them (``host:pid``).
            now: the current time (aware); the leases end just before it.

        Returns:
            The ids of the Running flow runs those task runs belong to.
        """
        if not workers:
            return []
        stmt = (
            update(TaskRun)
            .where(
                TaskRun.worker.in_(list(workers)),
                TaskRun.state == State.RUNNING.value,
                TaskRun.lease_owner.is_not(None),
                TaskRun.child_flow_run_id.is_(None),
            )
            .values(lease_until=now - timedelta(seconds=1))
            .returning(TaskRun.flow_run_id)
            .execution_options(synchronize_session=False)
        )
        with self._db.writing() as s:
            ids = sorted({row[0] for row in s.execute(stmt).all()})
        if not ids:
            return []
        q = select(FlowRun.id).where(FlowRun.id.in_(ids), FlowRun.state == State.RUNNING.value)
        with self._db.reading() as s:
            return list(s.scalars(q).all())

    def spliced_root(self, flow_run_id: str) -> str:
        """The run to send again for a flow run: the top of the waiting parents it is
        spliced under (their canvases splice it in again), or the run itself.

        Returns:
            A flow run id.
        """
        with self._db.reading() as s:
            current = flow_run_id
            for _ in range(64):
                parent = _waiting_parent(s, current)
                if parent is None:
                    break
                current = parent
            return current


def _waiting_parent(s: Session, flow_run_id: str) -> str | None:
    """The Running parent whose unfinished task run waits for this run, if any."""
    run = s.get(FlowRun, flow_run_id)
    if run is None or not run.parent_task_run_id or not run.parent_flow_run_id:
        return None
    task = s.get(TaskRun, run.parent_task_run_id)
    if task is None or task.child_flow_run_id != run.id or State(task.state).is_final:
        return None
    parent = s.get(FlowRun, run.parent_flow_run_id)
    if parent is None or parent.state != State.RUNNING.value:
        return None
    return parent.id
