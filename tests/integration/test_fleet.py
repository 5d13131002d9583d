"""Flow runs on real Celery workers over a real Redis, on SQLite and PostgreSQL:
the shapes of issue 3, and triggers and retries matching ``flow.run()``."""

from __future__ import annotations

import pytest

from orchestrator import State
from tests.conftest import Fleet
from tests.flows import shapes
from tests.integration.helpers import assert_order_and_once, run_and_wait


@pytest.fixture()
def registered(fleet: Fleet, project: str) -> str:
    for flow in shapes.ALL:
        fleet.client.register(flow, project)
    return project


@pytest.mark.parametrize(
    "flow",
    [shapes.chain, shapes.fan, shapes.diamond, shapes.n_shape, shapes.random_200],
    ids=lambda f: f.name,
)
def test_every_task_runs_once_after_its_upstreams(fleet: Fleet, registered: str, flow) -> None:
    # Given a registered flow of some shape
    # When a client runs it on the fleet
    info = run_and_wait(fleet, flow.name, registered)
    # Then it succeeds, each task ran after its upstreams, and each ran exactly once
    assert info.state is State.SUCCESS, info.message
    assert_order_and_once(fleet, flow, info)


def test_results_flow_between_workers(fleet: Fleet, registered: str) -> None:
    # Given the fan-out/fan-in flow with a parameter
    # When it runs with x=10
    info = run_and_wait(fleet, "fan", registered, parameters={"x": 10})
    # Then the fan-in task saw every upstream result
    assert info.task_run("collect").result == {f"a{i}": 10 + i for i in range(6)}
    assert fleet.client.get_task_run_result(info.id, "add3") == 13


def test_parallel_branches_overlap_in_time(fleet: Fleet, registered: str) -> None:
    # Given the diamond A -> (B, C) -> D, where B and C each take 0.3 s
    info = run_and_wait(fleet, "diamond", registered)
    b, c = info.task_run("B"), info.task_run("C")
    # Then B and C ran at the same time
    assert b.start_time and c.start_time and b.end_time and c.end_time
    assert b.start_time < c.end_time and c.start_time < b.end_time


@pytest.mark.parametrize(
    "flow",
    [shapes.retries, shapes.triggers, shapes.not_json_flow, shapes.fail_signal_flow],
    ids=lambda f: f.name,
)
def test_fleet_and_local_runs_agree(fleet: Fleet, registered: str, flow) -> None:
    # Given a flow exercising retries, triggers or failures
    local = flow.run()
    # When the same flow runs on the fleet
    info = run_and_wait(fleet, flow.name, registered)
    # Then every task ends in the same state with the same result as in flow.run()
    assert info.state is local.state
    for task, st in local.result.items():
        remote = info.task_run(task.slug)
        assert remote.state is st.state, (task.slug, remote.message, st.message)
        assert remote.result == st.result


def test_retries_are_recorded(fleet: Fleet, registered: str) -> None:
    info = run_and_wait(fleet, "retries", registered)
    tr = info.task_run("flaky_until_third")
    assert tr.state is State.SUCCESS and tr.attempts == 3
    assert tr.result == "third time lucky"


def test_non_json_result_names_task_and_type(fleet: Fleet, registered: str) -> None:
    info = run_and_wait(fleet, "not-json", registered)
    tr = info.task_run("not_json")
    assert tr.state is State.FAILED
    assert "not_json" in (tr.message or "") and "set" in (tr.message or "")


def test_two_workers_share_one_flow_run(fleet: Fleet, registered: str) -> None:
    # Given two worker processes (the fleet fixture starts two)
    # When one wide flow runs
    info = run_and_wait(fleet, "random-200", registered)
    # Then task runs were executed by both workers' processes
    hosts = {tr.worker.split(":")[0] for tr in info.task_runs if tr.worker}
    pids = {tr.worker for tr in info.task_runs if tr.worker}
    assert len(pids) >= 2, pids
    assert hosts


def test_idempotency_key_returns_the_same_run(fleet: Fleet, registered: str) -> None:
    first = fleet.client.create_flow_run("chain-5", registered, idempotency_key="nightly-1")
    second = fleet.client.create_flow_run("chain-5", registered, idempotency_key="nightly-1")
    assert first == second
    assert fleet.client.wait_for_flow_run(first, timeout=60).state is State.SUCCESS
