"""Restarting a finished flow run in place, in one transaction: its state back to
Scheduled by compare-and-set (so two restarts sent at once restart once), the task
runs :func:`~orchestrator.restarting.plan_restart` names back to Pending, and each
child flow run that did not succeed restarted the same way, down the tree. Imports
SQLAlchemy, the standard library, the sibling modules database and statements, and
the core's errors, restarting and states."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select, update

from orchestrator.db.database import Database, Tx
from orchestrator.db.statements import EVENTS, FLOW_RUNS, FLOWS, TASK_RUNS
from orchestrator.errors import FlowRunNotFound, RestartRefused
from orchestrator.restarting import RESTARTABLE, RESTARTED, TaskRunView, plan_restart, refusal
from orchestrator.states import State

_fr = FLOW_RUNS.c
_tr = TASK_RUNS.c
_RESTARTABLE = sorted(s.value for s in RESTARTABLE)


@dataclass(frozen=True)
class Restarted:
    """What one restart did.

    Attributes:
        flow_run_id: the restarted run (now Scheduled).
        flow_name: its flow's name.
        attempt: which try of the run this is (2 for its first restart).
        task_runs: how many task runs (of the run and of the children restarted with
            it) went back to Pending.
        children: the child flow runs restarted in place with it, top down.
    """

    flow_run_id: str
    flow_name: str
    attempt: int
    task_runs: int
    children: tuple[str, ...]


class Restarts:
    """Restarts of the flow runs of one database.

    Args:
        db: the database.
    """

    def __init__(self, db: Database) -> None:
        self._db = db

    def restart(self, flow_run_id: str) -> Restarted:
        """Restart a finished flow run that did not succeed, and its failed children.

        Raises:
            FlowRunNotFound: no such run.
            RestartRefused: it is still running, it succeeded, its flow version (or a
                failed child's) is archived, a running parent waits on it, or
                another restart got there first.
        """
        with self._db.tx() as tx:
            run = tx.execute(select(FLOW_RUNS).where(_fr.id == flow_run_id)).first()
            if run is None:
                raise FlowRunNotFound(f"no flow run {flow_run_id!r}")
            why = refusal(
                flow_run_id,
                State(run.state),
                _archived(tx, run.flow_id),
                _waiting_parent(tx, run),
            )
            if why is not None:
                raise RestartRefused(why)
            attempt = _tries(tx, flow_run_id) + 1
            if not _to_scheduled(tx, flow_run_id, f"{RESTARTED}: try {attempt}"):
                raise RestartRefused(
                    f"flow run {flow_run_id} was restarted by another request meanwhile"
                )
            count, children = _reset_tree(tx, flow_run_id, run.flow_id)
            name = tx.execute(select(FLOWS.c.name).where(FLOWS.c.id == run.flow_id)).scalar_one()
        return Restarted(flow_run_id, str(name), attempt, count, tuple(children))

    def restarted_among(self, flow_run_ids: Sequence[str]) -> set[str]:
        """Which of these flow runs were ever restarted (one query per thousand ids)."""
        found: set[str] = set()
        ids = list(flow_run_ids)
        with self._db.reading() as s:
            for start in range(0, len(ids), 1000):
                q = select(EVENTS.c.flow_run_id).where(
                    EVENTS.c.flow_run_id.in_(ids[start : start + 1000]),
                    EVENTS.c.task_run_id.is_(None),
                    EVENTS.c.state == State.SCHEDULED.value,
                    EVENTS.c.message.like(f"{RESTARTED}:%"),
                )
                found.update(str(i) for i in s.scalars(q.distinct()).all())
        return found


def _archived(tx: Tx, flow_id: str) -> str | None:
    """The flow version, named, when it is archived."""
    row = tx.execute(
        select(FLOWS.c.name, FLOWS.c.version, FLOWS.c.archived).where(FLOWS.c.id == flow_id)
    ).first()
    if row is None or not row.archived:
        return None
    return f"flow {row.name!r} version {row.version}"


def _waiting_parent(tx: Tx, run: Any) -> str | None:
    """The unfinished flow run whose task run waits for ``run``, if any."""
    if not run.parent_task_run_id:
        return None
    parent = tx.execute(
        select(_tr.flow_run_id, _tr.state, _tr.child_flow_run_id).where(
            _tr.id == run.parent_task_run_id
        )
    ).first()
    if parent is None or parent.child_flow_run_id != run.id or State(parent.state).is_final:
        return None
    return str(parent.flow_run_id)


def _tries(tx: Tx, flow_run_id: str) -> int:
    """How many tries a run has had: one, plus one per earlier restart."""
    restarts = tx.execute(
        select(func.count())
        .select_from(EVENTS)
        .where(
            EVENTS.c.flow_run_id == flow_run_id,
            EVENTS.c.task_run_id.is_(None),
            EVENTS.c.state == State.SCHEDULED.value,
            EVENTS.c.message.like(f"{RESTARTED}:%"),
        )
    ).scalar_one()
    return 1 + int(restarts)


def _to_scheduled(tx: Tx, flow_run_id: str, message: str) -> bool:
    """Compare-and-set a finished run back to Scheduled (its times cleared), with the event."""
    row = tx.execute(
        update(FLOW_RUNS)
        .where(_fr.id == flow_run_id, _fr.state.in_(_RESTARTABLE))
        .values(
            state=State.SCHEDULED.value,
            message=message,
            start_time=None,
            end_time=None,
            updated=tx.now,
        )
        .returning(_fr.id)
    ).first()
    if row is not None:
        tx.event(flow_run_id, State.SCHEDULED, message)
    return row is not None


def _reset_tree(tx: Tx, flow_run_id: str, flow_id: str) -> tuple[int, list[str]]:
    """Reset a run's task runs as planned, then restart its failed children in turn;
    how many task runs were reset, and the children restarted."""
    count = 0
    restarted: list[str] = []
    todo = [(flow_run_id, flow_id)]
    while todo:
        run_id, fid = todo.pop(0)
        structure = tx.execute(select(FLOWS.c.structure).where(FLOWS.c.id == fid)).scalar_one()
        slugs = [t["slug"] for t in structure.get("tasks", [])]
        edges = [(e[0], e[1]) for e in structure.get("edges", [])]
        plan = plan_restart(slugs, edges, _views(tx, run_id))
        count += _reset_task_runs(tx, run_id, plan.reset, plan.keep_child)
        for child_id in plan.children:
            child = tx.execute(select(FLOW_RUNS).where(_fr.id == child_id)).first()
            if child is None:
                continue
            archived = _archived(tx, child.flow_id)
            if archived is not None:
                raise RestartRefused(
                    f"child flow run {child_id} ran {archived}, which is archived: "
                    "start a new run of the parent instead"
                )
            message = f"{RESTARTED}: try {_tries(tx, child_id) + 1}, with parent {run_id}"
            if _to_scheduled(tx, child_id, message):
                restarted.append(child_id)
                todo.append((child_id, child.flow_id))
    return count, restarted


def _views(tx: Tx, flow_run_id: str) -> list[TaskRunView]:
    """A run's task runs, with the state of each one's own child run."""
    rows = tx.execute(
        select(_tr.id, _tr.slug, _tr.map_index, _tr.state, _tr.child_flow_run_id).where(
            _tr.flow_run_id == flow_run_id
        )
    ).all()
    kids = [r.child_flow_run_id for r in rows if r.child_flow_run_id]
    owners: dict[str, tuple[str | None, str]] = {}
    if kids:
        found = tx.execute(
            select(_fr.id, _fr.parent_task_run_id, _fr.state).where(_fr.id.in_(kids))
        ).all()
        owners = {k.id: (k.parent_task_run_id, k.state) for k in found}
    views = []
    for r in rows:
        child, child_state = None, None
        owner = owners.get(r.child_flow_run_id or "")
        if owner is not None and owner[0] == r.id:  # its own child, not a run it watched
            child, child_state = r.child_flow_run_id, State(owner[1])
        views.append(TaskRunView(r.id, r.slug, r.map_index, State(r.state), child, child_state))
    return views


def _reset_task_runs(
    tx: Tx, flow_run_id: str, ids: Sequence[str], keep_child: Sequence[str]
) -> int:
    """Put task runs back to Pending (retries afresh, result and times cleared); those
    in ``keep_child`` keep the child run they wait for."""
    if not ids:
        return 0
    values: dict[str, Any] = {
        "state": State.PENDING.value,
        "message": RESTARTED,
        "result": None,
        "attempts": 0,
        "worker": None,
        "lease_owner": None,
        "lease_until": None,
        "start_time": None,
        "end_time": None,
    }
    kept = set(keep_child)
    plain = [i for i in ids if i not in kept]
    if plain:
        tx.execute(
            update(TASK_RUNS).where(_tr.id.in_(plain)).values(child_flow_run_id=None, **values)
        )
    if kept:
        tx.execute(update(TASK_RUNS).where(_tr.id.in_(sorted(kept))).values(**values))
    for tr_id in ids:
        tx.event(flow_run_id, State.PENDING, RESTARTED, tr_id)
    return len(ids)
