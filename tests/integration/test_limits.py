"""Flow concurrency limits across real workers: never more than the limit at once,
a killed worker's slot comes back, a Flow-of-Flows never deadlocks, and a changed
limit takes effect without a restart."""

from __future__ import annotations

import time
import uuid
from datetime import datetime

import pytest

from orchestrator import ConcurrencyLimitError, State
from orchestrator.labels import check_label
from tests.conftest import Fleet
from tests.flows import limited


def _register(fleet: Fleet) -> None:
    for flow in limited.ALL:
        fleet.client.register(flow, limited.PROJECT)


def _max_overlap(intervals: list[tuple[datetime, datetime]]) -> int:
    events = sorted(
        [(s, 1) for s, _ in intervals] + [(e, -1) for _, e in intervals], key=lambda x: (x[0], x[1])
    )
    now = peak = 0
    for _, delta in events:
        now += delta
        peak = max(peak, now)
    return peak


def _wait_all(fleet: Fleet, ids: list[str], timeout: float) -> list:
    deadline = time.monotonic() + timeout
    return [
        fleet.client.wait_for_flow_run(i, timeout=max(1.0, deadline - time.monotonic()))
        for i in ids
    ]


def test_no_more_than_the_limit_run_at_once(fresh_fleet: Fleet) -> None:
    # Given a limit of 2 on label "gpu" and three worker processes
    _register(fresh_fleet)
    label = "gpu"
    fresh_fleet.client.set_concurrency_limit(label, 2)
    for _ in range(3):
        fresh_fleet.start_worker(concurrency=1, wait=False)
    for w in fresh_fleet.workers:
        w.wait_ready(fresh_fleet.client.backends.app)
    # When 20 runs of a gpu flow are started at once
    ids = [
        fresh_fleet.client.create_flow_run("gpu-job", limited.PROJECT, parameters={"seconds": 0.3})
        for _ in range(20)
    ]
    runs = _wait_all(fresh_fleet, ids, timeout=180)
    # Then all finish, and their own start and end times never overlap more than 2 deep
    assert [r.state for r in runs] == [State.SUCCESS] * 20, fresh_fleet.logs()
    assert _max_overlap([(r.start_time, r.end_time) for r in runs]) <= 2
    # and the slots are all free again
    [info] = [i for i in fresh_fleet.client.concurrency_limits() if i.label == label]
    assert info.used == 0 and info.waiting == 0


def test_changing_a_limit_takes_effect_for_queued_runs(fresh_fleet: Fleet) -> None:
    # Given a limit of 0 on "held": runs wait in Queued
    _register(fresh_fleet)
    fresh_fleet.client.set_concurrency_limit("held", 0)
    fresh_fleet.start_worker()
    ids = [fresh_fleet.client.create_flow_run("held-job", limited.PROJECT) for _ in range(3)]
    deadline = time.monotonic() + 30
    while any(fresh_fleet.client.get_flow_run(i).state is not State.QUEUED for i in ids):
        assert time.monotonic() < deadline, fresh_fleet.logs()
        time.sleep(0.1)
    # When the limit is raised, with nothing restarted
    fresh_fleet.client.set_concurrency_limit("held", 3)
    # Then the queued runs start and finish
    assert all(r.state is State.SUCCESS for r in _wait_all(fresh_fleet, ids, timeout=60))


def test_flow_of_flows_completes_under_a_limit_of_one(fresh_fleet: Fleet) -> None:
    # Given every flow of a Flow-of-Flows under one label limited to 1
    _register(fresh_fleet)
    fresh_fleet.client.set_concurrency_limit("fof", 1)
    fresh_fleet.start_worker()
    # When the parent runs
    parent_id = fresh_fleet.client.create_flow_run("fof-parent", limited.PROJECT)
    parent = fresh_fleet.client.wait_for_flow_run(parent_id, timeout=120)
    # Then it completes: children, of one task or of four, run under the waiting
    # parent's slot
    assert parent.state is State.SUCCESS, (parent.message, fresh_fleet.logs())
    kids = [fresh_fleet.client.get_flow_run(c) for c in parent.children]
    assert sorted((k.flow_name, len(k.task_runs)) for k in kids) == [
        ("fof-A", 1), ("fof-B", 4), ("fof-C", 4), ("fof-D", 1)
    ]  # fmt: skip
    assert all(k.state is State.SUCCESS for k in kids)


def test_killed_workers_slot_comes_back(fresh_fleet: Fleet) -> None:
    # Given a limit of 1, a short visibility timeout, and a run holding the slot
    fresh_fleet.env["ORCHESTRATOR_VISIBILITY_TIMEOUT"] = "8"
    _register(fresh_fleet)
    label = "gpu"
    fresh_fleet.client.set_concurrency_limit(label, 1)
    victim = fresh_fleet.start_worker(concurrency=1)
    first = fresh_fleet.client.create_flow_run(
        "gpu-job", limited.PROJECT, parameters={"seconds": 4}
    )
    deadline = time.monotonic() + 30
    while fresh_fleet.client.get_flow_run(first).state is not State.RUNNING:
        assert time.monotonic() < deadline, fresh_fleet.logs()
        time.sleep(0.05)
    queued = [
        fresh_fleet.client.create_flow_run("gpu-job", limited.PROJECT, parameters={"seconds": 0.1})
        for _ in range(3)
    ]
    time.sleep(1.0)
    # When the worker holding the slot is SIGKILLed and another worker takes over
    victim.kill()
    fresh_fleet.start_worker(concurrency=1)
    # Then the slot comes back and every run finishes
    runs = _wait_all(fresh_fleet, [first, *queued], timeout=120)
    assert [r.state for r in runs] == [State.SUCCESS] * 4, fresh_fleet.logs()


@pytest.mark.parametrize("label", ["", "has space", "x" * 101, 5])
def test_invalid_labels_are_refused(label: object) -> None:
    with pytest.raises(ConcurrencyLimitError):
        check_label(label)


def test_invalid_limits_are_refused(fleet: Fleet) -> None:
    for bad in (-1, 1.5, "2", True):
        with pytest.raises(ConcurrencyLimitError, match="whole number"):
            fleet.client.set_concurrency_limit(f"ok-{uuid.uuid4().hex[:4]}", bad)  # type: ignore[arg-type]
