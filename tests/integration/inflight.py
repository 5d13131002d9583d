"""Faults that land on work in flight: which task runs the database records as
Running, in which process, and whether a fault interrupted them (the task run was
started again: a second Running state event)."""

from __future__ import annotations

import time
from collections.abc import Collection
from dataclasses import dataclass

from sqlalchemy import func, select

from orchestrator.db.models import FlowRun, StateEvent, TaskRun
from orchestrator.states import State
from tests.conftest import Fleet


@dataclass(frozen=True)
class InFlight:
    """A task run recorded as Running, its lease held by a worker's pool process."""

    task_run_id: str
    flow_run_id: str
    slug: str
    pid: int


def tree(fleet: Fleet, roots: Collection[str]) -> set[str]:
    """The ids of ``roots`` and of every run under them."""
    ids, frontier = set(roots), set(roots)
    with fleet.store.reading() as s:
        while frontier:
            rows = s.execute(select(FlowRun.id).where(FlowRun.parent_flow_run_id.in_(frontier)))
            frontier = {r for (r,) in rows} - ids
            ids |= frontier
    return ids


def in_flight(fleet: Fleet, roots: Collection[str]) -> list[InFlight]:
    """The task runs of these trees that are Running, with a lease, right now."""
    with fleet.store.reading() as s:
        rows = s.execute(
            select(TaskRun.id, TaskRun.flow_run_id, TaskRun.slug, TaskRun.lease_owner).where(
                TaskRun.flow_run_id.in_(tree(fleet, roots)),
                TaskRun.state == State.RUNNING.value,
                TaskRun.lease_owner.is_not(None),
            )
        ).all()
    # a lease owner is "<worker>:<pid>:<claim>"
    return [InFlight(i, f, slug, int(o.rsplit(":", 2)[1])) for i, f, slug, o in rows]


def wait_in_flight(
    fleet: Fleet, roots: Collection[str], pids: Collection[int], timeout: float = 60
) -> list[InFlight]:
    """Wait until a task run of these trees is Running in one of ``pids``; all such."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        hits = [f for f in in_flight(fleet, roots) if f.pid in pids]
        if hits:
            return hits
        time.sleep(0.05)
    raise AssertionError(f"no task run was Running in processes {sorted(pids)}\n{fleet.logs()}")


def starts(fleet: Fleet, task_run_ids: Collection[str]) -> dict[str, int]:
    """How many times each task run was started (its Running state events)."""
    with fleet.store.reading() as s:
        rows = s.execute(
            select(StateEvent.task_run_id, func.count())
            .where(
                StateEvent.task_run_id.in_(task_run_ids),
                StateEvent.state == State.RUNNING.value,
            )
            .group_by(StateEvent.task_run_id)
        ).all()
    return {i: n for i, n in rows if i is not None}


def interrupted(fleet: Fleet, hits: Collection[InFlight]) -> list[InFlight]:
    """Those of ``hits`` that were started again after the fault (taken over)."""
    counts = starts(fleet, [h.task_run_id for h in hits])
    return [h for h in hits if counts.get(h.task_run_id, 0) >= 2]
