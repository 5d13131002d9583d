"""Pruning old runs (``orchestrator db prune``): whole trees only, a root run with every
run below it (its children and theirs), their task runs, log lines and state events,
and only when every run of the tree is final and unchanged since the cut-off. Roots
are taken oldest first, a batch at a time, each batch deleted in one transaction.
Imports SQLAlchemy, the standard library, the sibling modules database and models,
and the core's clock and states."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import and_, delete, func, or_, select

from orchestrator.clock import as_utc
from orchestrator.db.database import Database, Tx
from orchestrator.db.models import FlowRun, StateEvent, TaskRun, TaskRunLog
from orchestrator.states import FINAL_STATES

#: How many ids one ``IN`` list carries.
_CHUNK = 500
_FINAL = sorted(s.value for s in FINAL_STATES)


@dataclass
class PruneReport:
    """What a prune deleted (or, dry, would delete).

    Attributes:
        trees: root runs whose trees went.
        flow_runs: flow runs, roots included.
        task_runs: their task runs.
        logs: their log lines.
        events: their state events.
        kept: trees old enough at the root but kept (a run in them unfinished, or
            newer than the cut-off).
    """

    trees: int = 0
    flow_runs: int = 0
    task_runs: int = 0
    logs: int = 0
    events: int = 0
    kept: int = 0
    batches: list[int] = field(default_factory=list)


def _chunks(ids: Sequence[str]) -> Iterator[Sequence[str]]:
    for i in range(0, len(ids), _CHUNK):
        yield ids[i : i + _CHUNK]


class Retention:
    """Deleting the old trees of one database.

    Args:
        db: the database.
    """

    def __init__(self, db: Database) -> None:
        self._db = db

    def prune(self, cutoff: datetime, batch_size: int = 500, dry_run: bool = False) -> PruneReport:
        """Delete every tree of runs all final and unchanged since ``cutoff``.

        Args:
            cutoff: an aware datetime; a tree with any run changed at or after it stays.
            batch_size: root runs looked at (and their trees deleted) per transaction.
            dry_run: count what would go, delete nothing.

        Returns:
            What was deleted (would be, when ``dry_run``).
        """
        report = PruneReport()
        after: tuple[datetime, str] | None = None
        while True:
            roots = self._old_roots(cutoff, batch_size, after)
            if not roots:
                return report
            after = roots[-1]
            trees = self._trees([r for _, r in roots], cutoff)
            report.kept += len(roots) - len(trees)
            ids = [i for tree in trees.values() for i in tree]
            if ids:
                self._delete(ids, report, dry_run)
                report.trees += len(trees)
                report.batches.append(len(ids))

    def _old_roots(
        self, cutoff: datetime, limit: int, after: tuple[datetime, str] | None
    ) -> list[tuple[datetime, str]]:
        """The next root runs (oldest first) final and unchanged since ``cutoff``."""
        statement = (
            select(FlowRun.created, FlowRun.id)
            .where(
                FlowRun.parent_flow_run_id.is_(None),
                FlowRun.state.in_(_FINAL),
                FlowRun.updated < cutoff,
            )
            .order_by(FlowRun.created, FlowRun.id)
            .limit(limit)
        )
        if after is not None:
            created, run_id = after
            statement = statement.where(
                or_(
                    FlowRun.created > created, and_(FlowRun.created == created, FlowRun.id > run_id)
                )
            )
        return [tuple(row) for row in self._db.all(statement)]

    def _trees(self, roots: list[str], cutoff: datetime) -> dict[str, list[str]]:
        """The run ids of each root's tree, for the trees that may all go."""
        trees: dict[str, list[str]] = {r: [r] for r in roots}
        root_of = {r: r for r in roots}
        doomed = set(roots)
        level = roots
        while level:
            below: list[str] = []
            for chunk in _chunks(level):
                statement = select(
                    FlowRun.id, FlowRun.parent_flow_run_id, FlowRun.state, FlowRun.updated
                ).where(FlowRun.parent_flow_run_id.in_(chunk))
                for row in self._db.all(statement):
                    run_id, parent, state, updated = tuple(row)
                    root = root_of[parent]
                    root_of[run_id] = root
                    trees[root].append(run_id)
                    if state not in _FINAL or _newer(updated, cutoff):
                        doomed.discard(root)
                    below.append(run_id)
            level = below
        return {r: ids for r, ids in trees.items() if r in doomed}

    def _delete(self, ids: list[str], report: PruneReport, dry_run: bool) -> None:
        """Delete (or count) the runs ``ids`` with their task runs, logs and events."""
        tables: list[tuple[str, Any, Any]] = [
            ("events", StateEvent, StateEvent.flow_run_id),
            ("logs", TaskRunLog, TaskRunLog.flow_run_id),
            ("task_runs", TaskRun, TaskRun.flow_run_id),
            ("flow_runs", FlowRun, FlowRun.id),
        ]
        if dry_run:
            for name, table, column in tables:
                for chunk in _chunks(ids):
                    counting = select(func.count()).select_from(table).where(column.in_(chunk))
                    n = self._db.one(counting)
                    setattr(report, name, getattr(report, name) + (n[0] if n else 0))
            return
        with self._db.tx() as tx:
            for name, table, column in tables:
                setattr(report, name, getattr(report, name) + _deleted(tx, table, column, ids))


def _deleted(tx: Tx, table: Any, column: Any, ids: list[str]) -> int:
    """Delete the rows of ``table`` whose ``column`` is in ``ids``; how many."""
    total = 0
    for chunk in _chunks(ids):
        result = tx.execute(delete(table).where(column.in_(chunk)))
        total += max(0, int(result.rowcount or 0))
    return total


def _newer(updated: datetime | None, cutoff: datetime) -> bool:
    """Whether a run changed at or after ``cutoff`` (SQLite hands back naive UTC)."""
    return updated is not None and as_utc(updated) >= as_utc(cutoff)
