"""Concurrency limits as the database keeps them (the source of truth; Redis caches
them and holds the slots): set, delete and read them, and the Running flow runs that
hold slots, to rebuild the slots of a Redis that lost them. Imports SQLAlchemy, the
standard library, the sibling modules database and models, and the core's clock and
states."""

from __future__ import annotations

from dataclasses import dataclass
from typing import cast

from sqlalchemy import Table, delete, select
from sqlalchemy.dialects import postgresql, sqlite

from orchestrator.clock import utcnow
from orchestrator.db.database import Database, rowcount
from orchestrator.db.models import ConcurrencyLimit, FlowRun, TaskRun
from orchestrator.states import State


@dataclass(frozen=True)
class RunningRun:
    """A Running flow run that may hold slots.

    Attributes:
        id: the run.
        labels: its labels.
        parent_id: the waiting parent it is spliced under (its slots cover it), if any.
    """

    id: str
    labels: tuple[str, ...]
    parent_id: str | None


class Limits:
    """The concurrency limits of one database.

    Args:
        db: the database.
    """

    def __init__(self, db: Database) -> None:
        self._db = db

    def set(self, label: str, slots: int) -> None:
        """Set a label's limit (insert or update)."""
        values = {"label": label, "slots": slots, "updated": utcnow()}
        table = cast(Table, ConcurrencyLimit.__table__)
        with self._db.writing() as s:
            dialect = s.get_bind().dialect.name
            ins = postgresql.insert(table) if dialect == "postgresql" else sqlite.insert(table)
            stmt = ins.values(**values).on_conflict_do_update(
                index_elements=["label"], set_={"slots": slots, "updated": values["updated"]}
            )
            s.execute(stmt)

    def delete(self, label: str) -> bool:
        """Remove a label's limit; False when it had none."""
        with self._db.writing() as s:
            return bool(
                rowcount(s.execute(delete(ConcurrencyLimit).where(ConcurrencyLimit.label == label)))
            )

    def all(self) -> dict[str, int]:
        """Every limit: label -> slots."""
        with self._db.reading() as s:
            rows = s.execute(select(ConcurrencyLimit.label, ConcurrencyLimit.slots)).all()
        return {label: int(slots) for label, slots in rows}

    def running(self) -> list[RunningRun]:
        """The Running flow runs with labels, each with the waiting parent it is
        spliced under (when that parent's task run waits for it)."""
        q = (
            select(
                FlowRun.id, FlowRun.labels, FlowRun.parent_flow_run_id, TaskRun.child_flow_run_id
            )
            .outerjoin(TaskRun, TaskRun.id == FlowRun.parent_task_run_id)
            .where(FlowRun.state == State.RUNNING.value)
        )
        with self._db.reading() as s:
            rows = s.execute(q).all()
        out = []
        for run_id, labels, parent, waited_for in rows:
            spliced = parent is not None and waited_for == run_id
            out.append(RunningRun(run_id, tuple(labels or ()), parent if spliced else None))
        return out
