"""Schedules, for Celery beat, backfills and ``orchestrator schedules``: the scheduled
flows, each flow's bookmark of the slots dealt with, pausing (who, when, why) and
resuming a schedule, a schedule's unfinished and recent slot runs (what the overlap
policy looks at), and the Scheduled runs that are due or held back. Imports
SQLAlchemy, the standard library, the sibling modules database, models and flows,
and the core's errors, clock, states and schedule slot keys."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, defer

from orchestrator.clock import as_utc, utcnow
from orchestrator.db.database import Database
from orchestrator.db.flows import Flows
from orchestrator.db.models import FlowRun, FlowVersion, Project, ScheduleMark, SchedulePause
from orchestrator.errors import BackendUnavailable, ScheduleError
from orchestrator.schedules.slots import SLOT_KEY_PREFIX
from orchestrator.states import FINAL_STATES, State

#: (handled until, in UTC; hash of the schedule the bookmark is for)
Mark = tuple[datetime, str | None]
#: The stored states of runs that have not finished.
_UNFINISHED = sorted(s.value for s in State if s not in FINAL_STATES)


@dataclass(frozen=True)
class Pause:
    """A paused schedule: who paused it, when (UTC) and why."""

    by: str
    at: datetime
    note: str | None


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
                paused = select(SchedulePause.project_id).where(
                    SchedulePause.project_id == FlowVersion.project_id,
                    SchedulePause.flow_name == FlowVersion.name,
                )
                q = q.where(~paused.exists())
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

    def pause(
        self,
        project_name: str,
        flow_name: str,
        note: str | None = None,
        by: str | None = None,
        now: datetime | None = None,
    ) -> tuple[FlowVersion, Pause]:
        """Pause a flow's schedule, recording who, when and why (again: replaces that).

        The pause belongs to the flow, not to a version: registering a new version
        keeps it.

        Args:
            project_name: the flow's project.
            flow_name: the flow's name.
            note: why.
            by: who (default ``"unknown"``).
            now: when (default: the current time).

        Returns:
            The flow's newest version, and the pause as recorded.

        Raises:
            FlowNotFound: no such project or flow.
            ScheduleError: the flow has no schedule.
        """
        flow = self._scheduled(project_name, flow_name)
        pause = Pause(by=by or "unknown", at=as_utc(now or utcnow()), note=note or None)
        with self._db.writing() as s:
            s.execute(delete(SchedulePause).where(*_pause_of(flow.project_id, flow.name)))
            s.add(
                SchedulePause(
                    project_id=flow.project_id,
                    flow_name=flow.name,
                    paused_by=pause.by,
                    paused_at=pause.at,
                    note=pause.note,
                )
            )
        return flow, pause

    def resume(
        self, project_name: str, flow_name: str, now: datetime | None = None
    ) -> tuple[FlowVersion, Pause | None]:
        """Resume a flow's schedule.

        Resuming moves the flow's bookmark to ``now`` (default: the current time), so
        the slots that passed while it was paused are neither run nor recorded as
        missed.

        Returns:
            The flow's newest version, and the pause it had (None when it had none).

        Raises:
            FlowNotFound: no such project or flow.
            ScheduleError: the flow has no schedule.
        """
        flow = self._scheduled(project_name, flow_name)
        with self._db.writing() as s:
            row = s.scalar(select(SchedulePause).where(*_pause_of(flow.project_id, flow.name)))
            was = _pause(row) if row is not None else None
            s.execute(delete(SchedulePause).where(*_pause_of(flow.project_id, flow.name)))
        self.advance_mark(flow.project_id, flow.name, now or utcnow())
        return flow, was

    def pauses(self) -> dict[tuple[int, str], Pause]:
        """Every paused schedule: (project id, flow name) -> its pause."""
        with self._db.reading() as s:
            rows = s.scalars(select(SchedulePause)).all()
            return {(r.project_id, r.flow_name): _pause(r) for r in rows}

    def _scheduled(self, project_name: str, flow_name: str) -> FlowVersion:
        flow = self._flows.newest(project_name, flow_name)
        if not flow.schedule:
            raise ScheduleError(f"flow {flow_name!r} in project {project_name!r} has no schedule")
        return flow

    # --- a schedule's runs -----------------------------------------------------------

    def unfinished(self, project_id: int, flow_name: str, now: datetime) -> list[FlowRun]:
        """A schedule's slot runs that are due (slot at or before ``now``) and not final:
        what its overlap policy looks at. Runs created by hand do not count.

        Returns:
            The runs, oldest slot first.
        """
        with self._db.reading() as s:
            q = (
                _slot_runs(project_id, flow_name)
                .where(
                    FlowRun.state.in_(_UNFINISHED),
                    FlowRun.scheduled_start_time <= as_utc(now),
                )
                .order_by(FlowRun.scheduled_start_time)
            )
            return list(s.scalars(q).all())

    def slot_runs(self, project_id: int, flow_name: str, limit: int = 20) -> list[FlowRun]:
        """A schedule's most recent slots as recorded: runs, buffered runs, and slots
        recorded as skipped or missed.

        Returns:
            At most ``limit`` runs, the latest slot first.
        """
        with self._db.reading() as s:
            q = (
                _slot_runs(project_id, flow_name)
                .order_by(FlowRun.scheduled_start_time.desc())
                .limit(limit)
            )
            return list(s.scalars(q).all())

    def buffering(self, now: datetime) -> list[tuple[int, str]]:
        """The schedules holding buffered runs in Scheduled whose slot is at or before
        ``now``: (project id, flow name) pairs, by project and name."""
        with self._db.reading() as s:
            q = (
                select(FlowVersion.project_id, FlowVersion.name)
                .join(FlowRun, FlowRun.flow_id == FlowVersion.id)
                .where(
                    FlowRun.state == State.SCHEDULED.value,
                    FlowRun.buffered.is_(True),
                    FlowRun.scheduled_start_time <= as_utc(now),
                )
                .distinct()
                .order_by(FlowVersion.project_id, FlowVersion.name)
            )
            return [(p, n) for p, n in s.execute(q).all()]

    def due_runs(self, now: datetime, limit: int = 100) -> list[tuple[FlowRun, str]]:
        """Flow runs in Scheduled whose scheduled start time is at or before ``now``,
        but for buffered ones (:meth:`held_due`).

        Returns:
            (run, flow name) pairs, the earliest first.
        """
        with self._db.reading() as s:
            q = (
                select(FlowRun, FlowVersion.name)
                .join(FlowVersion, FlowVersion.id == FlowRun.flow_id)
                .where(
                    FlowRun.state == State.SCHEDULED.value,
                    FlowRun.buffered.is_(False),
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


def _slot_runs(project_id: int, flow_name: str) -> Any:
    """The runs of a schedule's slots (keyed by slot), of any version of the flow."""
    return (
        select(FlowRun)
        .join(FlowVersion, FlowVersion.id == FlowRun.flow_id)
        .where(
            FlowVersion.project_id == project_id,
            FlowVersion.name == flow_name,
            FlowRun.idempotency_key.startswith(SLOT_KEY_PREFIX, autoescape=True),
        )
    )


def _pause_of(project_id: int, flow_name: str) -> tuple[Any, Any]:
    """The where clauses of a flow's pause row."""
    return SchedulePause.project_id == project_id, SchedulePause.flow_name == flow_name


def _pause(row: SchedulePause) -> Pause:
    return Pause(by=row.paused_by, at=as_utc(row.paused_at), note=row.note)
