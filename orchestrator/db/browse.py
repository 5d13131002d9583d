"""Browsing runs, for the server and ``orchestrator runs --roots``: newest-first keyset
pages of flow runs (all, or only roots, narrowed by state, flow and project), the
states of each root's descendants counted in one recursive query, a whole run tree in
two queries, and the log lines of a run and its descendants ordered by time. Every
read is one statement outside a transaction, on the indexes of migration 0004.
Imports SQLAlchemy, the standard library, the sibling modules database, models,
statements, flow_runs and task_runs, and the core's states."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from sqlalchemy import CTE, Row, Table, and_, func, literal, or_, select

from orchestrator.db.database import Database
from orchestrator.db.models import FlowRun, TaskRun, TaskRunLog
from orchestrator.db.statements import FLOW_RUNS, FLOWS, PROJECTS, TASK_RUNS
from orchestrator.db.task_runs import task_run
from orchestrator.states import State

#: How deep a recursive read follows children (a guard; trees are far shallower).
MAX_TREE_DEPTH = 64

_fr = FLOW_RUNS.c
LOGS = cast(Table, TaskRunLog.__table__)
_LOGS = LOGS.c


@dataclass(frozen=True)
class RunRow:
    """A flow run with its flow's name, project and version.

    Attributes:
        run: the stored run (detached).
        flow_name: its flow's name.
        project: its flow's project.
        version: its flow version's number.
    """

    run: FlowRun
    flow_name: str
    project: str
    version: int


@dataclass(frozen=True)
class LogRow:
    """One stored log line with the names of its run and task.

    Attributes:
        line: the stored line (detached).
        flow_name: the flow of its flow run.
        task_slug: its task run's slug (None when the task run is gone).
        map_index: its task run's map index (-1 when not mapped).
    """

    line: TaskRunLog
    flow_name: str
    task_slug: str | None
    map_index: int


def _run_columns() -> list[Any]:
    return [
        *FLOW_RUNS.c,
        FLOWS.c.name.label("flow_name"),
        FLOWS.c.version.label("flow_version"),
        PROJECTS.c.name.label("project_name"),
    ]


def _with_flows(q: Any) -> Any:
    return q.join(FLOWS, FLOWS.c.id == _fr.flow_id).join(
        PROJECTS, PROJECTS.c.id == FLOWS.c.project_id
    )


def run_row(row: Row[Any]) -> RunRow:
    """A row of :func:`_run_columns` as a :class:`RunRow`."""
    m = row._mapping
    run = FlowRun(**{c.name: m[c.name] for c in FLOW_RUNS.c})
    return RunRow(run, m["flow_name"], m["project_name"], m["flow_version"])


def tree_cte(root_ids: Sequence[str], name: str = "tree") -> CTE:
    """A recursive CTE of the runs under ``root_ids``: (root, id, state, depth), the
    roots themselves at depth 0."""
    base = select(
        _fr.id.label("root"),
        _fr.id.label("id"),
        _fr.state.label("state"),
        literal(0).label("depth"),
    ).where(_fr.id.in_(list(root_ids)))
    cte = base.cte(name, recursive=True)
    step = (
        select(cte.c.root, _fr.id, _fr.state, (cte.c.depth + 1).label("depth"))
        .join(cte, _fr.parent_flow_run_id == cte.c.id)
        # IS NOT NULL: lets the planner prove the partial ix_flow_runs_parent usable
        .where(cte.c.depth < MAX_TREE_DEPTH, _fr.parent_flow_run_id.is_not(None))
    )
    return cte.union_all(step)


class Browse:
    """The browsing reads of one database.

    Args:
        db: the database.
    """

    def __init__(self, db: Database) -> None:
        self._db = db

    def page(
        self,
        limit: int,
        roots: bool = False,
        state: State | None = None,
        flow: str | None = None,
        project: str | None = None,
        before: tuple[datetime, str] | None = None,
    ) -> list[RunRow]:
        """Flow runs newest first (by created time, then id), one keyset page.

        Args:
            limit: at most this many.
            roots: only runs that no other run started.
            state: only runs in this state.
            flow: only runs of flows of this name.
            project: only runs of flows in this project.
            before: only runs older than this (created, id): the last of the previous page.

        Returns:
            The runs with their flow's name, project and version.
        """
        q = _with_flows(select(*_run_columns()))
        if roots:
            q = q.where(_fr.parent_flow_run_id.is_(None))
        if state is not None:
            q = q.where(_fr.state == State(state).value)
        if flow is not None:
            q = q.where(FLOWS.c.name == flow)
        if project is not None:
            q = q.where(PROJECTS.c.name == project)
        if before is not None:
            created, run_id = before
            # `created <= c` is the index condition (a scan starting at the cursor);
            # the OR breaks ties of equal created times by id
            q = q.where(_fr.created <= created, or_(_fr.created < created, _fr.id < run_id))
        q = q.order_by(_fr.created.desc(), _fr.id.desc()).limit(limit)
        return [run_row(r) for r in self._db.all(q)]

    def descendant_states(self, root_ids: Sequence[str]) -> dict[str, dict[str, int]]:
        """How many descendant runs (children, their children, ...) of each root are in
        each state, in one recursive query.

        Returns:
            root id -> state -> count; roots without descendants are left out.
        """
        if not root_ids:
            return {}
        cte = tree_cte(root_ids)
        q = (
            select(cte.c.root, cte.c.state, func.count().label("n"))
            .where(cte.c.depth > 0)
            .group_by(cte.c.root, cte.c.state)
        )
        out: dict[str, dict[str, int]] = {}
        for row in self._db.all(q):
            m = row._mapping
            out.setdefault(m["root"], {})[m["state"]] = int(m["n"])
        return out

    def tree(self, root_id: str) -> tuple[list[RunRow], list[TaskRun]]:
        """A run, every run under it and all their task runs, in two queries.

        Returns:
            The runs (the root first, then by depth and created time) and their task
            runs (by start time); no runs when ``root_id`` does not exist.
        """
        cte = tree_cte([root_id])
        q = _with_flows(select(*_run_columns(), cte.c.depth).join(cte, cte.c.id == _fr.id))
        rows = self._db.all(q.order_by(cte.c.depth, _fr.created, _fr.id))
        runs = [run_row(r) for r in rows]
        if not runs:
            return [], []
        ids = [r.run.id for r in runs]
        task_runs: list[TaskRun] = []
        for start in range(0, len(ids), 1000):
            tq = select(TASK_RUNS).where(TASK_RUNS.c.flow_run_id.in_(ids[start : start + 1000]))
            order = (TASK_RUNS.c.start_time, TASK_RUNS.c.slug, TASK_RUNS.c.map_index)
            task_runs.extend(task_run(r) for r in self._db.all(tq.order_by(*order)))
        return runs, task_runs

    def runs(self, ids: Sequence[str]) -> dict[str, RunRow]:
        """Flow runs by id with their flow's name, project and version (unknown ids left out)."""
        out: dict[str, RunRow] = {}
        wanted = list(dict.fromkeys(ids))
        for start in range(0, len(wanted), 1000):
            q = _with_flows(select(*_run_columns())).where(_fr.id.in_(wanted[start : start + 1000]))
            out.update({row.run.id: row for row in map(run_row, self._db.all(q))})
        return out

    def parents(self, ids: Sequence[str]) -> dict[str, str | None]:
        """The parent run of each of the runs ``ids`` (None for a root; unknown ids left out)."""
        out: dict[str, str | None] = {}
        wanted = list(dict.fromkeys(ids))
        for start in range(0, len(wanted), 1000):
            q = select(_fr.id, _fr.parent_flow_run_id).where(
                _fr.id.in_(wanted[start : start + 1000])
            )
            out.update({r.id: r.parent_flow_run_id for r in self._db.all(q)})
        return out

    def logs(
        self,
        flow_run_id: str,
        descendants: bool = False,
        limit: int = 1000,
        after: tuple[datetime, int] | None = None,
    ) -> list[LogRow]:
        """The log lines of a run (and of every run under it), ordered by time.

        Args:
            flow_run_id: the run.
            descendants: also the lines of its children, their children, ...
            limit: at most this many lines.
            after: only lines after this (timestamp, line id): the last of the previous page.

        Returns:
            The lines with their run's flow name and their task's slug, oldest first.
        """
        logs = LOGS
        if descendants:
            cte = tree_cte([flow_run_id], "logged")
            where: Any = _LOGS.flow_run_id.in_(select(cte.c.id))
        else:
            where = _LOGS.flow_run_id == flow_run_id
        q = (
            select(logs, FLOWS.c.name.label("flow_name"), TASK_RUNS.c.slug, TASK_RUNS.c.map_index)
            .select_from(logs)
            .join(FLOW_RUNS, _fr.id == _LOGS.flow_run_id)
            .join(FLOWS, FLOWS.c.id == _fr.flow_id)
            .outerjoin(TASK_RUNS, TASK_RUNS.c.id == _LOGS.task_run_id)
            .where(where)
        )
        if after is not None:
            stamp, line_id = after
            q = q.where(
                _LOGS.timestamp >= stamp,
                or_(_LOGS.timestamp > stamp, and_(_LOGS.timestamp == stamp, _LOGS.id > line_id)),
            )
        q = q.order_by(_LOGS.timestamp, _LOGS.id).limit(limit)
        out = []
        for r in self._db.all(q):
            m = r._mapping
            line = TaskRunLog(**{c.name: m[c.name] for c in logs.c})
            index = m["map_index"]
            out.append(LogRow(line, m["flow_name"], m["slug"], -1 if index is None else index))
        return out
