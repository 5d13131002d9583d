"""Task run logs: the captured lines of each task run attempt (see
:mod:`orchestrator.logcapture`), stored in one batch insert and read back per flow
run. Imports SQLAlchemy, the standard library and the sibling modules database and
models (``orchestrator.logcapture`` for its type only)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

from sqlalchemy import delete, insert, or_, select
from sqlalchemy.orm import Session

from orchestrator.db.database import Database
from orchestrator.db.models import TaskRunLog

if TYPE_CHECKING:
    from orchestrator.logcapture import LogLine


class Logs:
    """The task run logs of one database.

    Args:
        db: the database.
    """

    def __init__(self, db: Database) -> None:
        self._db = db

    def add(
        self,
        flow_run_id: str,
        task_run_id: str,
        attempt: int,
        lines: Sequence[LogLine],
        keep: int = 1000,
    ) -> int:
        """Store the captured lines of one task run attempt, in one batch insert.

        After a retry, only the newest ``keep`` lines of the task run (across its
        attempts) are kept.

        Args:
            flow_run_id: the flow run.
            task_run_id: the task run.
            attempt: the attempt (1 for the first).
            lines: the lines, in order.
            keep: how many lines of the task run to keep at most.

        Returns:
            How many lines were stored.
        """
        if not lines:
            return 0
        rows = [
            {
                "flow_run_id": flow_run_id,
                "task_run_id": task_run_id,
                "attempt": attempt,
                "line": i,
                "timestamp": ln.timestamp,
                "level": ln.level[:20],
                "logger": ln.logger[:200] if ln.logger else None,
                "message": ln.message,
            }
            for i, ln in enumerate(lines)
        ]
        with self._db.writing() as s:
            # render_nulls: one executemany (else the ORM splits the rows at each None logger)
            s.execute(insert(TaskRunLog).execution_options(render_nulls=True), rows)
            if attempt > 1:
                _trim(s, flow_run_id, task_run_id, keep)
        return len(rows)

    def of_flow_run(
        self,
        flow_run_id: str,
        task_run_ids: Iterable[str] | None = None,
        last: int | None = None,
    ) -> list[TaskRunLog]:
        """The stored log lines of a flow run's task runs.

        Args:
            flow_run_id: the flow run.
            task_run_ids: only these task runs (default: all of the flow run's).
            last: only the last this many lines of each task run.

        Returns:
            The lines grouped by task run, each task run's in order (attempt, line).
        """
        with self._db.reading() as s:
            q = select(TaskRunLog).where(TaskRunLog.flow_run_id == flow_run_id)
            if task_run_ids is not None:
                wanted = list(task_run_ids)
                if not wanted:
                    return []
                q = q.where(TaskRunLog.task_run_id.in_(wanted))
            q = q.order_by(TaskRunLog.task_run_id, TaskRunLog.attempt, TaskRunLog.line)
            rows = list(s.scalars(q).all())
        if last is None:
            return rows
        groups: dict[str, list[TaskRunLog]] = {}
        for row in rows:
            groups.setdefault(row.task_run_id, []).append(row)
        return [row for group in groups.values() for row in group[-last:]] if last > 0 else []


def _trim(s: Session, flow_run_id: str, task_run_id: str, keep: int) -> None:
    """Delete a task run's lines older than its newest ``keep`` ones."""
    mine = (TaskRunLog.flow_run_id == flow_run_id, TaskRunLog.task_run_id == task_run_id)
    cut = s.execute(
        select(TaskRunLog.attempt, TaskRunLog.line)
        .where(*mine)
        .order_by(TaskRunLog.attempt.desc(), TaskRunLog.line.desc())
        .offset(keep)
        .limit(1)
    ).first()
    if cut is not None:
        older = or_(
            TaskRunLog.attempt < cut.attempt,
            (TaskRunLog.attempt == cut.attempt) & (TaskRunLog.line <= cut.line),
        )
        s.execute(delete(TaskRunLog).where(*mine, older))
