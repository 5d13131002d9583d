"""Cancellation that stops running code, on real workers and both databases: a task
sleeping 60 s is stopped (its process ended and replaced, its side effect never
written) and the worker takes new work right after; a parent's cancel stops its
child's code too, unless the child is abandoned; a waited child scheduled later
starts at its time."""

from __future__ import annotations

import time

import psutil
import pytest

from orchestrator import State
from orchestrator.backends import backends
from orchestrator.client import FlowRunInfo
from orchestrator.errors import FlowRunTimeout, FlowValidationError
from orchestrator.tasks import StartFlowRun
from tests.conftest import Fleet
from tests.flows import cancelling
from tests.integration.helpers import run_and_wait

P = cancelling.PROJECT


@pytest.fixture()
def flows(fleet: Fleet) -> Fleet:
    for flow in cancelling.FLOWS:
        fleet.client.register(flow, P)
    return fleet


def _running_task(fleet: Fleet, run_id: str, slug: str, timeout: float = 60) -> int:
    """Wait until the run's task ``slug`` runs; the pid of the process running it."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for tr in fleet.client.get_flow_run(run_id).task_runs:
            if tr.slug == slug and tr.state is State.RUNNING and tr.worker:
                return int(tr.worker.rsplit(":", 1)[1])
        time.sleep(0.05)
    raise AssertionError(fleet.describe(run_id))


def _gone(pid: int) -> bool:
    """Whether process ``pid`` has ended (a zombie counts as ended)."""
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def _wait_gone(fleet: Fleet, pid: int, timeout: float = 60) -> float:
    """Wait (generously) until process ``pid`` has ended; the seconds it took."""
    start = time.monotonic()
    while not _gone(pid):
        assert time.monotonic() - start < timeout, f"process {pid} still runs\n{fleet.logs()}"
        time.sleep(0.05)
    return time.monotonic() - start


def _wait(fleet: Fleet, run_id: str, timeout: float = 60) -> FlowRunInfo:
    try:
        return fleet.client.wait_for_flow_run(run_id, timeout=timeout)
    except FlowRunTimeout:
        raise AssertionError(fleet.describe(run_id)) from None


def _side_effect(fleet: Fleet, run_id: str) -> bytes | None:
    value = backends(fleet.settings).redis.get(cancelling.side_effect_key(run_id))
    assert value is None or isinstance(value, bytes)
    return value


@pytest.mark.parametrize("flow", ["sleeper", "two-step-sleeper"])
def test_cancel_stops_a_task_sleeping_60_seconds(fresh_fleet: Fleet, flow: str) -> None:
    # Given one worker with one pool process, running a task that sleeps 60 s
    for f in cancelling.FLOWS:
        fresh_fleet.client.register(f, P)
    fresh_fleet.start_worker(concurrency=1)
    run_id = fresh_fleet.client.create_flow_run(flow, P)
    pid = _running_task(fresh_fleet, run_id, "sleep_then_write")
    # When the run is cancelled
    asked = time.monotonic()
    assert fresh_fleet.client.cancel_flow_run(run_id) is True
    # Then it is Cancelled, its task too, and the process running the code ends
    run = _wait(fresh_fleet, run_id)
    assert run.state is State.CANCELLED
    assert run.task_run("sleep_then_write").state is State.CANCELLED
    _wait_gone(fresh_fleet, pid)
    stopped = time.monotonic() - asked
    # so the side effect after the sleep never happens
    assert _side_effect(fresh_fleet, run_id) is None
    # and the worker takes new work right after (the pool replaced the process)
    quick = run_and_wait(fresh_fleet, "quick", P, timeout=60)
    assert quick.state is State.SUCCESS, quick.message
    took = time.monotonic() - asked
    assert _side_effect(fresh_fleet, run_id) is None
    assert run.task_run("sleep_then_write").end_time is not None
    print(
        f"cancel of {flow}: code stopped {stopped:.2f}s after the cancel; "
        f"the next run done {took:.2f}s after it"
    )


def test_cancel_of_parent_stops_its_childs_code(flows: Fleet) -> None:
    # Given a parent waiting on a child whose task sleeps 60 s
    parent_id = flows.client.create_flow_run("parent-cancels", P)
    deadline = time.monotonic() + 30
    while not flows.client.get_flow_run(parent_id).children:
        assert time.monotonic() < deadline, flows.logs()
        time.sleep(0.05)
    [child_id] = flows.client.get_flow_run(parent_id).children
    pid = _running_task(flows, child_id, "sleep_then_write")
    # When the parent is cancelled
    assert flows.client.cancel_flow_run(parent_id) is True
    # Then both are Cancelled and the child's code is stopped before its side effect
    assert _wait(flows, parent_id).state is State.CANCELLED
    assert _wait(flows, child_id).state is State.CANCELLED
    _wait_gone(flows, pid)
    assert _side_effect(flows, child_id) is None


def test_cancelled_child_stopped_mid_code_is_mirrored_by_its_parent(flows: Fleet) -> None:
    # Given a parent waiting on a child whose task sleeps 60 s
    parent_id = flows.client.create_flow_run("parent-cancels", P)
    deadline = time.monotonic() + 30
    while not flows.client.get_flow_run(parent_id).children:
        assert time.monotonic() < deadline, flows.logs()
        time.sleep(0.05)
    [child_id] = flows.client.get_flow_run(parent_id).children
    pid = _running_task(flows, child_id, "sleep_then_write")
    # When only the child is cancelled (its code runs in the parent's node)
    assert flows.client.cancel_flow_run(child_id) is True
    # Then its code stops, and the parent's waiting task takes its Cancelled state
    _wait_gone(flows, pid)
    parent = _wait(flows, parent_id, timeout=90)
    assert parent.task_run("flow_sleeper").state is State.CANCELLED
    assert parent.state is State.CANCELLED
    assert _side_effect(flows, child_id) is None


def test_abandoned_child_runs_on_to_success(flows: Fleet) -> None:
    # Given a parent waiting on a 4-second child it abandons on cancel
    parent_id = flows.client.create_flow_run("parent-abandons", P)
    deadline = time.monotonic() + 30
    while not flows.client.get_flow_run(parent_id).children:
        assert time.monotonic() < deadline, flows.logs()
        time.sleep(0.05)
    [child_id] = flows.client.get_flow_run(parent_id).children
    _running_task(flows, child_id, "sleep_then_write")
    # When the parent is cancelled
    assert flows.client.cancel_flow_run(parent_id) is True
    # Then the parent is Cancelled, and the child runs on to Success, side effect written
    assert _wait(flows, parent_id).state is State.CANCELLED
    child = _wait(flows, child_id)
    assert child.state is State.SUCCESS, child.message
    assert _side_effect(flows, child_id) == b"written"


def test_waited_child_scheduled_later_starts_at_its_time(flows: Fleet) -> None:
    # Given a parent whose waited child is scheduled 4 seconds after its task runs
    parent = run_and_wait(flows, "parent-later", P, timeout=60)
    # Then the child started no earlier than its scheduled start time
    assert parent.state is State.SUCCESS, parent.message
    [child_id] = parent.children
    child = flows.client.get_flow_run(child_id)
    assert child.scheduled_start_time is not None and child.start_time is not None
    assert child.start_time >= child.scheduled_start_time
    print(f"child scheduled {child.scheduled_start_time}, started {child.start_time}")


def test_unknown_on_parent_cancel_is_refused() -> None:
    with pytest.raises(FlowValidationError, match="on_parent_cancel must be 'cancel' or 'abandon'"):
        StartFlowRun(flow_name="x", project_name="p", on_parent_cancel="ignore")
