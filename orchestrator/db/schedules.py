"""Schedules, for Celery beat and ``orchestrator schedules``: the scheduled flows, each
flow's bookmark of the slots dealt with, pausing and resuming a schedule, and the
Scheduled runs that are due. Imports SQLAlchemy, the standard library, the sibling
modules database, models and flows, and the core's errors, clock and states."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, defer

from orchestrator.clock import as_utc, utcnow
from orchestrator.db.database import Database
from orchestrator.db.flows import Flows
from orchestrator.db.models import FlowRun, FlowVersion, Project, ScheduleMark
from orchestrator.errors import BackendUnavailable, ScheduleError
from orchestrator.states import State

#: (handled until, in UTC; hash of the schedule the bookmark is for)
Mark = tuple[datetime, str | None]


class Schedules:
    """The schedules of one database's flows.

    Args:
        db: the database.
        flows: its flows (a schedule is paused on a flow's newest version).
    """

    def __init__(self, db: Database, flows: Flows) -> None:
        self._db = db
        self._flows = flows

    def flows(self, include_paused: bool = False) -> list[tuple[str, FlowVersion]]:
        """The newest non-archived version of every flow that has a schedule.

        Args:
            include_paused: also list flows whose schedule is paused.

        Returns:
            (project name, flow version) pairs, ordered by project and flow name.
        """
        with self._db.reading() as s:
            q = (
                select(Project.name, FlowVersion)
                .join(FlowVersion, FlowVersion.project_id == Project.id)
                .where(FlowVersion.archived.is_(False), FlowVersion.schedule.is_not(None))
                .order_by(Project.name, FlowVersion.name)
                .options(defer(FlowVersion.structure))
            )
            if not include_paused:
                q = q.where(FlowVersion.schedule_paused.is_(False))
            # a JSON null is not SQL NULL on every backend: filter in Python too
            return [(p, f) for p, f in s.execute(q).all() if f.schedule]

    def marks(self) -> dict[tuple[int, str], Mark]:
        """Every flow's bookmark: (project id, flow name) -> (handled until in UTC,
        hash of the schedule it is for)."""
        with self._db.reading() as s:
            rows = s.execute(
                select(
                    ScheduleMark.project_id,
                    ScheduleMark.flow_name,
                    ScheduleMark.handled_until,
                    ScheduleMark.schedule_hash,
                )
            ).all()
        return {(p, n): (as_utc(h), sh) for p, n, h, sh in rows}

    def advance_mark(
        self,
        project_id: int,
        flow_name: str,
        handled_until: datetime,
        schedule_hash: str | None = None,
    ) -> Mark:
        """Move a flow's bookmark forward to ``handled_until`` (never back).

        Args:
            project_id: the flow's project.
            flow_name: the flow's name.
            handled_until: every slot up to this instant is dealt with.
            schedule_hash: when given, the schedule the bookmark is now for.

        Returns:
            The bookmark as stored afterwards: (handled until, schedule hash).
        """
        value = as_utc(handled_until)
        for _ in range(3):
            try:
                with self._db.writing() as s:
                    return _advance(s, project_id, flow_name, value, schedule_hash)
            except IntegrityError:
                continue  # another beat inserted it at the same moment; look again
        raise BackendUnavailable(f"could not record the schedule bookmark of {flow_name!r}")

    def set_paused(
        self, project_name: str, flow_name: str, paused: bool, now: datetime | None = None
    ) -> FlowVersion:
        """Pause or resume the schedule of a flow's newest version.

        Resuming moves the flow's bookmark to ``now`` (default: the current time), so
        the slots that passed while it was paused are neither run nor recorded as
        missed.

        Returns:
            The flow's newest version, as it is now.

        Raises:
            FlowNotFound: no such project or flow.
            ScheduleError: the flow has no schedule.
        """
        flow = self._flows.newest(project_name, flow_name)
        if not flow.schedule:
            raise ScheduleError(f"flow {flow_name!r} in project {project_name!r} has no schedule")
        with self._db.writing() as s:
            s.execute(
                update(FlowVersion).where(FlowVersion.id == flow.id).values(schedule_paused=paused)
            )
        if not paused:
            self.advance_mark(flow.project_id, flow.name, now or utcnow())
        flow.schedule_paused = paused
        return flow

    def due_runs(self, now: datetime, limit: int = 100) -> list[tuple[FlowRun, str]]:
        """Flow runs in Scheduled whose scheduled start time is at or before ``now``.

        Returns:
            (run, flow name) pairs, the earliest first.
        """
        with self._db.reading() as s:
            q = (
                select(FlowRun, FlowVersion.name)
                .join(FlowVersion, FlowVersion.id == FlowRun.flow_id)
                .where(
                    FlowRun.state == State.SCHEDULED.value,
                    FlowRun.scheduled_start_time <= as_utc(now),
                )
                .order_by(FlowRun.scheduled_start_time)
                .limit(limit)
            )
            return [(r, n) for r, n in s.execute(q).all()]


def _advance(
    s: Session, project_id: int, flow_name: str, value: datetime, schedule_hash: str | None
) -> Mark:
    """Move a bookmark forward in session ``s`` (see :meth:`Schedules.advance_mark`)."""
    mark = s.get(ScheduleMark, (project_id, flow_name), with_for_update=True)
    if mark is None:
        mark = ScheduleMark(
            project_id=project_id,
            flow_name=flow_name,
            handled_until=value,
            schedule_hash=schedule_hash,
            updated=utcnow(),
        )
        s.add(mark)
    else:
        if as_utc(mark.handled_until) < value:
            mark.handled_until = value
        if schedule_hash is not None:
            mark.schedule_hash = schedule_hash
        mark.updated = utcnow()
    return as_utc(mark.handled_until), mark.schedule_hash
