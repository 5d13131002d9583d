"""Restart from failure across the tree, on real workers: the seed's Flow-of-Flows
whose C fails on its first try, restarted in place (same ids, one child per node);
refusals; two restarts at once; a restart whose worker is SIGKILLed mid-way."""

from __future__ import annotations

import os
import signal
import threading
import time

import pytest

from orchestrator import State
from orchestrator.client import FlowRunInfo
from orchestrator.errors import FlowRunTimeout, RestartRefused
from orchestrator.restarts import Restarted
from tests.conftest import Fleet
from tests.flows import restarts
from tests.integration.helpers import finished_counts, run_and_wait
from tests.integration.test_cli import cli

P = restarts.PROJECT


@pytest.fixture()
def flows(fleet: Fleet) -> Fleet:
    for flow in restarts.FLOWS:
        fleet.client.register(flow, P)
    return fleet


def _children(fleet: Fleet, parent: FlowRunInfo) -> dict[str, FlowRunInfo]:
    return {
        fleet.client.get_flow_run(c).flow_name: fleet.client.get_flow_run(c)
        for c in parent.children
    }


def _wait(fleet: Fleet, run_id: str, timeout: float = 120) -> FlowRunInfo:
    try:
        return fleet.client.wait_for_flow_run(run_id, timeout=timeout)
    except FlowRunTimeout:
        raise AssertionError(fleet.describe(run_id)) from None


def _failed_once(fleet: Fleet) -> tuple[FlowRunInfo, dict[str, FlowRunInfo]]:
    """A Flow-of-Flows run whose C child failed: A and B ran, D never started."""
    parent = run_and_wait(fleet, "parent-flow", P, timeout=120)
    assert parent.state is State.FAILED, parent.message
    kids = _children(fleet, parent)
    assert sorted(kids) == ["A", "B", "C"]
    assert kids["C"].state is State.FAILED
    assert parent.task_run("flow_d").state is State.TRIGGER_FAILED
    return parent, kids


def _assert_restarted_tree(
    fleet: Fleet, parent: FlowRunInfo, before: dict[str, FlowRunInfo]
) -> dict[str, int]:
    """The restarted parent succeeded with one child per node, the failed child restarted
    in place and the others untouched; returns each child's executions."""
    assert parent.state is State.SUCCESS, (parent.message, fleet.logs())
    kids = _children(fleet, parent)
    assert sorted(kids) == ["A", "B", "C", "D"]  # four children in all
    for name in "ABC":
        assert kids[name].id == before[name].id  # the same runs, not new ones
    assert all(k.state is State.SUCCESS for k in kids.values())
    counts = {n: sum(finished_counts(fleet, k.id).values()) for n, k in kids.items()}
    # A, B and D ran once; C's child ran twice (the failed try and the restarted one)
    assert counts == {"A": 1, "B": 1, "C": 2, "D": 1}, counts
    for slug in ("flow_a", "flow_b", "flow_c", "flow_d"):
        assert parent.task_run(slug).state is State.SUCCESS
    assert parent.task_run("flow_c").attempts == 1  # retries counted afresh
    return counts


def test_failed_flow_of_flows_restarts_from_its_failed_child(flows: Fleet) -> None:
    # Given the seed's Flow-of-Flows whose C child failed on its first try
    parent, before = _failed_once(flows)
    a_task = parent.task_run("flow_a")
    # When it is restarted
    done = flows.client.restart_flow_run(parent.id)
    assert done.attempt == 2
    assert done.children == (before["C"].id,)
    after = _wait(flows, parent.id)
    # Then the same run succeeds: A and B kept their children and results, C's child
    # ran again in place, D ran once
    counts = _assert_restarted_tree(flows, after, before)
    assert after.task_run("flow_a").result == a_task.result
    assert after.task_run("flow_a").end_time == a_task.end_time
    print(f"restarted Flow-of-Flows {parent.id}: children executions {counts}")
    # and its history shows both tries
    history = flows.store.flow_runs.history(parent.id)
    own = [(e.state, e.message) for e in history if e.task_run_id is None]
    restart_at = own.index((State.SCHEDULED.value, "restarted: try 2"))
    assert own[restart_at - 1][0] == State.FAILED.value
    assert [s for s, _ in own].count(State.RUNNING.value) == 2
    assert own[-1][0] == State.SUCCESS.value
    c_history = flows.store.flow_runs.history(before["C"].id)
    c_own = [e.state for e in c_history if e.task_run_id is None]
    assert c_own.count(State.FAILED.value) == 1 and c_own[-1] == State.SUCCESS.value


def test_restart_refused_while_running_and_after_success(flows: Fleet) -> None:
    # Given a parent waiting on a 20-second child
    parent_id = flows.client.create_flow_run("parent-slow", P)
    deadline = time.monotonic() + 30
    while not flows.client.get_flow_run(parent_id).children:
        assert time.monotonic() < deadline, flows.logs()
        time.sleep(0.1)
    child_id = flows.client.get_flow_run(parent_id).children[0]
    try:
        # Then restarting the running parent, or the child it waits on, is refused
        with pytest.raises(RestartRefused, match="still Running"):
            flows.client.restart_flow_run(parent_id)
        with pytest.raises(RestartRefused, match=f"{parent_id} waits on"):
            flows.client.restart_flow_run(child_id)
    finally:
        flows.client.cancel_flow_run(parent_id)
    # and a run that succeeded has nothing to restart
    ok = run_and_wait(flows, "A", P)
    assert ok.state is State.SUCCESS
    with pytest.raises(RestartRefused, match="ended Success"):
        flows.client.restart_flow_run(ok.id)


def test_two_restarts_at_once_restart_once(flows: Fleet) -> None:
    # Given a failed Flow-of-Flows
    parent, before = _failed_once(flows)
    # When two restarts are sent at once
    barrier = threading.Barrier(2)
    outcomes: list[Restarted | RestartRefused] = []

    def restart() -> None:
        barrier.wait()
        try:
            outcomes.append(flows.client.restart_flow_run(parent.id))
        except RestartRefused as exc:
            outcomes.append(exc)

    threads = [threading.Thread(target=restart) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    # Then one restarted it and the other was refused
    assert sorted(type(o).__name__ for o in outcomes) == ["RestartRefused", "Restarted"]
    # and the run went on once: one child per node, C's child run twice in all
    _assert_restarted_tree(flows, _wait(flows, parent.id), before)
    own = [e for e in flows.store.flow_runs.history(parent.id) if e.task_run_id is None]
    assert [e.message for e in own if e.state == State.SCHEDULED.value] == ["restarted: try 2"]


def test_restart_survives_sigkill_of_its_worker(fresh_fleet: Fleet) -> None:
    # Given a failed Flow-of-Flows on two workers
    for flow in restarts.FLOWS:
        fresh_fleet.client.register(flow, P)
    fresh_fleet.start_worker()
    fresh_fleet.start_worker()
    parent, before = _failed_once(fresh_fleet)
    c_id = before["C"].id
    # When it is restarted and the pool process running C's second try is SIGKILLed
    fresh_fleet.client.restart_flow_run(parent.id)
    deadline = time.monotonic() + 60
    while True:
        [tr] = fresh_fleet.client.get_flow_run(c_id).task_runs
        if tr.state is State.RUNNING and tr.worker:
            break
        assert time.monotonic() < deadline, fresh_fleet.describe(parent.id)
        time.sleep(0.05)
    pid = int(tr.worker.rsplit(":", 1)[1])
    os.kill(pid, signal.SIGKILL)
    # Then the run still ends Success, with no duplicate child
    after = _wait(fresh_fleet, parent.id, timeout=180)
    assert after.state is State.SUCCESS, fresh_fleet.describe(parent.id)
    kids = _children(fresh_fleet, after)
    assert sorted(kids) == ["A", "B", "C", "D"]
    assert kids["C"].id == c_id
    counts = {n: sum(finished_counts(fresh_fleet, k.id).values()) for n, k in kids.items()}
    assert counts["A"] == counts["B"] == counts["D"] == 1
    assert counts["C"] == 2  # the killed try never finished its code
    print(f"restart with SIGKILL of pid {pid}: children executions {counts}")


def test_restart_command_line_waits_and_shows_each_try(flows: Fleet) -> None:
    # Given a failed Flow-of-Flows
    parent, before = _failed_once(flows)
    # When `orchestrator restart RUN_ID --wait` restarts it
    done = cli(flows.env, "restart", parent.id, "--wait")
    # Then it says what it restarted, ends Success (exit 0) and shows both tries
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"restarted flow run {parent.id} (parent-flow): try 2" in done.stdout
    assert f"restarted child run {before['C'].id} (C)" in done.stdout
    assert f"tries of parent-flow {parent.id}" in done.stdout
    assert f"tries of C {before['C'].id}" in done.stdout
    shown = cli(flows.env, "show", parent.id)
    assert shown.returncode == 0, shown.stderr
    print(shown.stdout)
    assert "restarted: try 2" in shown.stdout and "Failed" in shown.stdout
    # and a second restart is one line of error, exit 1, no traceback
    again = cli(flows.env, "restart", parent.id)
    assert again.returncode == 1
    assert "ended Success: there is nothing to restart" in again.stderr
    assert "Traceback" not in again.stderr


def test_mapped_start_flow_run_restarts_only_its_failed_element(flows: Fleet) -> None:
    # Given a mapped StartFlowRun of three children, the middle one failed
    parent = run_and_wait(flows, "parent-mapped", P, timeout=120)
    assert parent.state is State.FAILED, parent.message
    elements = sorted(
        (tr for tr in parent.task_runs if tr.slug == "flow_flaky_element" and tr.map_index >= 0),
        key=lambda tr: tr.map_index,
    )
    assert [tr.state for tr in elements] == [State.SUCCESS, State.FAILED, State.SUCCESS]
    kids = [tr.child_flow_run_id for tr in elements]
    # When it is restarted
    done = flows.client.restart_flow_run(parent.id)
    assert done.children == (kids[1],)
    after = _wait(flows, parent.id)
    # Then it succeeds with the same three children, only the failed one run again
    assert after.state is State.SUCCESS, (after.message, flows.logs())
    assert sorted(after.children) == sorted(kids)
    counts = [finished_counts(flows, k or "").get("flaky_if") for k in kids]
    assert counts == [1, 2, 1], counts


def test_one_task_parent_restarts_its_failed_child(flows: Fleet) -> None:
    # Given a parent of one StartFlowRun task (run inline) whose child C failed
    parent = run_and_wait(flows, "parent-of-c", P, timeout=60)
    assert parent.state is State.FAILED, parent.message
    [child] = parent.children
    # When it is restarted
    flows.client.restart_flow_run(parent.id)
    after = _wait(flows, parent.id)
    # Then it succeeds with the same child, run twice in all
    assert after.state is State.SUCCESS, (after.message, flows.logs())
    assert after.children == [child]
    assert finished_counts(flows, child) == {"flaky_step": 2}


def test_cancelled_run_restarts_and_its_code_runs_again(flows: Fleet) -> None:
    # Given a run cancelled while its 3-second task ran (the code stopped)
    run_id = flows.client.create_flow_run("slow", P, parameters={"seconds": 3})
    deadline = time.monotonic() + 30
    while not any(t.state is State.RUNNING for t in flows.client.get_flow_run(run_id).task_runs):
        assert time.monotonic() < deadline, flows.describe(run_id)
        time.sleep(0.05)
    assert flows.client.cancel_flow_run(run_id) is True
    assert _wait(flows, run_id).state is State.CANCELLED
    # When it is restarted
    flows.client.restart_flow_run(run_id)
    # Then its task runs to its end this time
    after = _wait(flows, run_id)
    assert after.state is State.SUCCESS, (after.message, flows.logs())
    assert after.task_run("step").result == "slow done"
    assert finished_counts(flows, run_id) == {"step": 1}


def test_restart_of_an_archived_version_is_refused(flows: Fleet) -> None:
    # Given a failed run of a flow whose version was then replaced (archived)
    flows.client.register(restarts.replaced_v1, P)
    failed = run_and_wait(flows, "replaced", P)
    assert failed.state is State.FAILED
    flows.client.register(restarts.replaced_v2, P)
    # Then restarting it is refused, naming the archived version
    with pytest.raises(RestartRefused, match=r"'replaced' version \d+, which is archived"):
        flows.client.restart_flow_run(failed.id)
    assert flows.client.get_flow_run(failed.id).state is State.FAILED
