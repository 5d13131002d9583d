"""Task runs: creating a flow run's task runs (and a mapped task's children), the lease a
node claims to run a task's code, renewing it, recording a task run's new state, and
reads by id, on prebuilt Core statements (the hot path); the ``*_in`` functions work
inside a transaction the caller holds, so :mod:`orchestrator.db.runs` can join
several. Imports SQLAlchemy, the standard library, the sibling modules database,
flow_runs, models and statements, and the core's errors, ids, clock and states."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import Row, select, update

import orchestrator.db.statements as sql
from orchestrator.clock import utcnow
from orchestrator.db.database import Database, Tx, rowcount
from orchestrator.db.flow_runs import flow_run
from orchestrator.db.models import FlowRun, TaskRun
from orchestrator.db.statements import TASK_RUNS
from orchestrator.errors import FlowRunNotFound
from orchestrator.ids import task_run_id
from orchestrator.states import State, states_before

_UNFINISHED = [s.value for s in State if not s.is_final]


@dataclass(frozen=True)
class Claim:
    """The answer to a node's claim on its task run.

    Attributes:
        claimed: True when this caller now holds the run's lease and may run the code.
        task_run: the task run as recorded after the claim.
        flow_run: its flow run, read in the same transaction.
    """

    claimed: bool
    task_run: TaskRun
    flow_run: FlowRun


def task_run(row: Row[Any]) -> TaskRun:
    """A task run read with a Core statement, as a (detached) ORM object."""
    return TaskRun(**row._mapping)


def insert_pending_in(
    tx: Tx,
    flow_run_id: str,
    tasks: Sequence[tuple[str, str]],
    map_index: int,
    done: dict[str, Any],
) -> None:
    """Insert Pending task runs (Success for the slugs in ``done``) unless they exist."""
    now = tx.now
    rows = [
        {
            "id": task_run_id(flow_run_id, slug, map_index),
            "flow_run_id": flow_run_id,
            "slug": slug,
            "map_index": map_index,
            "name": name,
            "state": (State.SUCCESS if slug in done else State.PENDING).value,
            "result": done.get(slug),
            "attempts": 1 if slug in done else 0,
            "start_time": now if slug in done else None,
            "end_time": now if slug in done else None,
        }
        for slug, name in tasks
    ]
    tx.insert_new(TASK_RUNS, rows)


def claim_in(
    tx: Tx,
    task_run_id: str,
    flow_run_id: str,
    owner: str,
    lease_seconds: float,
    worker: str | None,
    flow_run_row: Row[Any] | FlowRun | None = None,
) -> Claim:
    """Claim a task run in ``tx`` (see :meth:`TaskRuns.claim`); ``flow_run_row`` is
    its flow run when the caller just wrote it."""
    until = tx.now + timedelta(seconds=lease_seconds)
    params = {
        "target": task_run_id,
        "owner": owner,
        "until": until,
        "now": tx.now,
        "by_worker": worker,
    }
    row = tx.execute(sql.CLAIM, params).first()
    claimed = row is not None
    if claimed:
        tx.event(flow_run_id, State.RUNNING, task_run_id=task_run_id)
    else:
        row = tx.execute(sql.TASK_RUN, {"id": task_run_id}).first()
    if flow_run_row is None:
        flow_run_row = tx.execute(sql.FLOW_RUN, {"id": flow_run_id}).first()
    if row is None or flow_run_row is None:
        raise FlowRunNotFound(f"no task run {task_run_id!r}")
    return Claim(claimed, task_run(row), flow_run(flow_run_row))


def finish_in(
    tx: Tx,
    task_run_id: str,
    flow_run_id: str,
    state: State,
    message: str | None = None,
    result: Any = None,
    owner: str | None = None,
    child_flow_run_id: str | None = None,
    retry_in: float | None = None,
) -> bool:
    """Record a task run's new state in ``tx`` (see :meth:`TaskRuns.finish`)."""
    final = state.is_final
    params: dict[str, Any] = {"target": task_run_id, "new_state": state.value}
    params["new_message"] = message
    if final:
        params.update(new_result=result, now=tx.now)
    if owner is not None:
        params["owner"] = owner
    else:
        params["allowed"] = [x.value for x in states_before(state)]
    if child_flow_run_id is not None:
        params.update(child=child_flow_run_id, new_result=result)
    retrying = state is State.RETRYING
    if retrying:
        params["due"] = tx.now + timedelta(seconds=retry_in or 0.0)
    stmt = sql.finish_task_run(final, owner is not None, child_flow_run_id is not None, retrying)
    done = rowcount(tx.execute(stmt, params))
    if done:
        tx.event(flow_run_id, state, message, task_run_id)
    return bool(done)


class TaskRuns:
    """The task runs of one database.

    Args:
        db: the database.
    """

    def __init__(self, db: Database) -> None:
        self._db = db

    def create(
        self,
        flow_run_id: str,
        tasks: Sequence[tuple[str, str]],
        map_index: int = -1,
        done: dict[str, Any] | None = None,
    ) -> None:
        """Insert Pending task runs unless they exist already.

        Args:
            flow_run_id: their flow run.
            tasks: (slug, name) of each.
            map_index: their map index (-1: not a mapped child).
            done: slugs inserted as Success at once, with their results (parameters).
        """
        with self._db.tx() as tx:
            insert_pending_in(tx, flow_run_id, tasks, map_index, done or {})

    def of_flow_run(self, flow_run_id: str, slugs: Iterable[str] | None = None) -> list[TaskRun]:
        """The task runs of a flow run (optionally only some slugs), by start time."""
        c = TASK_RUNS.c
        q = select(TASK_RUNS).where(c.flow_run_id == flow_run_id)
        if slugs is not None:
            q = q.where(c.slug.in_(list(slugs)))
        return [task_run(r) for r in self._db.all(q.order_by(c.start_time, c.slug))]

    def by_ids(self, ids: Sequence[str]) -> dict[str, TaskRun]:
        """Task runs by id (ids that do not exist are left out)."""
        if not ids:
            return {}
        rows = self._db.all(sql.TASK_RUNS_BY_ID, {"ids": list(ids)})
        return {r.id: task_run(r) for r in rows}

    def states(self, ids: Sequence[str]) -> dict[str, State]:
        """The states of task runs by id (ids that do not exist are left out)."""
        if not ids:
            return {}
        rows = self._db.all(sql.TASK_RUN_STATES, {"ids": list(ids)})
        return {r.id: State(r.state) for r in rows}

    def child_states(self, flow_run_id: str, slugs: Sequence[str]) -> dict[str, list[State]]:
        """The states of mapped tasks' children, in map index order, by task slug (a
        slug without children is left out)."""
        if not slugs:
            return {}
        rows = self._db.all(sql.CHILD_STATES, {"flow_run": flow_run_id, "slugs": list(slugs)})
        found: dict[str, dict[int, State]] = {}
        for r in rows:
            found.setdefault(r.slug, {})[r.map_index] = State(r.state)
        return {s: [by[i] for i in sorted(by)] for s, by in found.items()}

    def get(self, task_run_id: str) -> TaskRun | None:
        """A task run by id, if it exists."""
        row = self._db.one(sql.TASK_RUN, {"id": task_run_id})
        return None if row is None else task_run(row)

    def start_mapped(
        self, task_run_id_: str, flow_run_id: str, slug: str, name: str, width: int, owner: str
    ) -> None:
        """Insert a mapped task's children (Pending) and let go of the parent's lease:
        the parent stays Running until ``collect_map`` records it, and is not claimed again."""
        with self._db.tx() as tx:
            rows = [
                {
                    "id": task_run_id(flow_run_id, slug, i),
                    "flow_run_id": flow_run_id,
                    "slug": slug,
                    "map_index": i,
                    "name": name,
                    "state": State.PENDING.value,
                    "attempts": 0,
                }
                for i in range(width)
            ]
            tx.insert_new(TASK_RUNS, rows)
            c = TASK_RUNS.c
            tx.execute(
                update(TASK_RUNS)
                .where(c.id == task_run_id_, c.lease_owner == owner)
                .values(message=f"mapped over {width} elements", lease_owner=None, lease_until=None)
            )
            tx.event(flow_run_id, State.RUNNING, f"mapped over {width}", task_run_id_)

    def claim(
        self,
        task_run_id: str,
        flow_run_id: str,
        owner: str,
        lease_seconds: float,
        worker: str | None,
    ) -> Claim:
        """Take a task run's lease to run its code.

        A run in Pending, in Retrying once its next attempt is due, or Running with an expired lease (its worker
        died) or with none (a mapped task, fanned out before; claimed again when the
        sweeper resends a stuck run), is claimed: it becomes Running, its attempt
        count grows by one. Otherwise the recorded run is returned unclaimed.

        Raises:
            FlowRunNotFound: no such task run or flow run.
        """
        with self._db.tx() as tx:
            return claim_in(tx, task_run_id, flow_run_id, owner, lease_seconds, worker)

    def renew_lease(self, task_run_id: str, owner: str, lease_seconds: float) -> bool:
        """Extend a held lease (the heartbeat); False when ``owner`` does not hold it."""
        with self._db.tx() as tx:
            until = tx.now + timedelta(seconds=lease_seconds)
            params = {"target": task_run_id, "owner": owner, "until": until}
            return bool(rowcount(tx.execute(sql.RENEW_LEASE, params)))

    def finish(
        self,
        task_run_id: str,
        flow_run_id: str,
        state: State,
        message: str | None = None,
        result: Any = None,
        owner: str | None = None,
        child_flow_run_id: str | None = None,
        retry_in: float | None = None,
    ) -> bool:
        """Record a task run's new state; with ``owner``, only while that lease is held.

        Without an owner the run must be in a state that may move to ``state`` (used
        for skips, trigger failures, links to a child and mirrored child states).

        Args:
            task_run_id: the task run.
            flow_run_id: its flow run.
            state: the new state.
            message: the new message.
            result: the result, recorded when ``state`` is final (with
                ``child_flow_run_id``, what the waiting task run takes from the
                child, kept as its result while it waits).
            owner: the lease that must be held.
            child_flow_run_id: the child flow run it now waits for.
            retry_in: for Retrying, the seconds until its next attempt is due (no
                claim takes it before).

        Returns:
            Whether the state was recorded.
        """
        with self._db.tx() as tx:
            return finish_in(
                tx,
                task_run_id,
                flow_run_id,
                state,
                message,
                result,
                owner,
                child_flow_run_id,
                retry_in,
            )

    def cancel_pending(self, flow_run_id: str, message: str) -> int:
        """Mark every unfinished task run of a flow run Cancelled; how many there were."""
        with self._db.writing() as s:
            stmt = (
                update(TaskRun)
                .where(TaskRun.flow_run_id == flow_run_id, TaskRun.state.in_(_UNFINISHED))
                .values(
                    state=State.CANCELLED.value,
                    message=message,
                    result=None,  # a waiting one kept what it would take from its child
                    end_time=utcnow(),
                    lease_owner=None,
                    lease_until=None,
                )
            )
            return rowcount(s.execute(stmt))
