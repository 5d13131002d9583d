"""What the recovery fault tests check and measure on a fleet: a worker process
running a task right now (by the database), the runs' trees (exactly one child per
StartFlowRun node, every run Success), task runs recorded finished twice, and the
time from the last fault to the last run's end."""

from __future__ import annotations

import contextlib
import os
import signal
import time
from datetime import datetime

from sqlalchemy import func, select

from orchestrator import State
from orchestrator.client import FlowRunInfo
from orchestrator.clock import aware
from orchestrator.db.models import FlowRun, StateEvent, TaskRun
from orchestrator.errors import FlowRunTimeout
from orchestrator.processes import WorkerProcess
from tests.conftest import Fleet
from tests.flows import recovery


def busy_pool_process(fleet: Fleet, timeout: float = 60) -> tuple[WorkerProcess, int]:
    """A live worker and the pid of one of its pool processes that runs a task's code
    now, as the database says (a Running task run's lease names it)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with fleet.store.reading() as s:
            named = s.scalars(
                select(TaskRun.worker).where(
                    TaskRun.state == State.RUNNING.value,
                    TaskRun.lease_owner.is_not(None),
                    TaskRun.child_flow_run_id.is_(None),
                    TaskRun.worker.is_not(None),
                )
            ).all()
        pids = {int(w.rsplit(":", 1)[1]) for w in named if w}
        for worker in fleet.workers:
            if worker.proc.poll() is None:
                for pid in worker.pool_pids():
                    if pid in pids:
                        return worker, pid
        time.sleep(0.05)
    raise AssertionError("no pool process was running a task\n" + fleet.logs())


def kill_busy(fleet: Fleet, whole_worker: bool) -> str:
    """SIGKILL a pool process running a task, or (``whole_worker``) its whole worker
    (main and pool processes, then start another in its place); what was killed."""
    worker, pid = busy_pool_process(fleet)
    if whole_worker:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(worker.pid, signal.SIGKILL)
        worker.proc.wait(10)
        fleet.workers.remove(worker)
        fleet.start_worker(wait=False)
        return f"worker {worker.hostname}"
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)
    return f"pool process {pid} of {worker.hostname}"


def wait_all(fleet: Fleet, ids: list[str], timeout: float) -> list[FlowRunInfo]:
    """Wait for every run (a failure message describes the first that did not end)."""
    deadline = time.monotonic() + timeout
    runs = []
    for run_id in ids:
        try:
            runs.append(
                fleet.client.wait_for_flow_run(
                    run_id, timeout=max(1.0, deadline - time.monotonic())
                )
            )
        except FlowRunTimeout:
            raise AssertionError(fleet.describe(run_id)) from None
    return runs


def finished_twice(fleet: Fleet, run_ids: list[str]) -> int:
    """How many more final Success records task runs of these runs have than one each."""
    with fleet.store.reading() as s:
        rows = s.execute(
            select(StateEvent.task_run_id, func.count())
            .where(
                StateEvent.flow_run_id.in_(run_ids),
                StateEvent.state == State.SUCCESS.value,
                StateEvent.task_run_id.is_not(None),
            )
            .group_by(StateEvent.task_run_id)
        ).all()
    return sum(n - 1 for _, n in rows)


def check_parents(fleet: Fleet, runs: list[FlowRunInfo]) -> int:
    """Assert every ``rec-parent`` run succeeded with exactly its four children; the
    number of task runs recorded finished twice (over the runs and their children)."""
    every: list[str] = []
    for run in runs:
        bad = [
            (t.slug, t.state.value, t.message) for t in run.task_runs if not t.state.is_successful
        ]
        assert run.state is State.SUCCESS, (run.id, run.message, bad)
        assert run.task_run("combine").result == ["B", "B", "C"]
        with fleet.store.reading() as s:
            kids = s.execute(
                select(FlowRun.id, FlowRun.state).where(FlowRun.parent_flow_run_id == run.id)
            ).all()
        names = sorted(fleet.client.get_flow_run(k, task_runs=False).flow_name for k, _ in kids)
        assert names == recovery.CHILD_NAMES, (run.id, names)
        assert all(state == State.SUCCESS.value for _, state in kids), kids
        every += [run.id, *(k for k, _ in kids)]
    return finished_twice(fleet, every)


def last_end(runs: list[FlowRunInfo]) -> datetime:
    """When the last of the runs ended."""
    ends = [aware(r.end_time) for r in runs]
    return max(e for e in ends if e is not None)
