"""StartFlowRun on real workers: the seed's four listings, versions, mirroring,
idempotency under duplicate delivery and SIGKILL, cancellation, bad input."""

from __future__ import annotations

import contextlib
import os
import signal
import textwrap
import time
from pathlib import Path

import pytest

from orchestrator import State
from orchestrator.errors import FlowRunTimeout
from orchestrator.loader import flows_in
from tests.conftest import ROOT, Fleet
from tests.flows import children, duplicating
from tests.integration.helpers import run_and_wait
from tests.integration.inflight import InFlight, interrupted, wait_in_flight

EXAMPLES = ROOT / "examples"


@pytest.fixture()
def seed(fleet: Fleet) -> Fleet:
    for flow in flows_in(str(EXAMPLES / "seed_flows.py")):
        fleet.client.register(flow, "examples")
    return fleet


@pytest.fixture()
def kids(fleet: Fleet) -> Fleet:
    for flow in children.CHILDREN + children.PARENTS:
        fleet.client.register(flow, children.PROJECT)
    return fleet


def _register_listing(fleet: Fleet, name: str) -> None:
    [flow] = flows_in(str(EXAMPLES / name))
    fleet.client.register(flow, "examples")


@pytest.mark.parametrize("listing", ["parametrized_flow.py", "parametrized_flow_set_upstream.py"])
def test_seed_parametrized_child_gets_runtime_value(seed: Fleet, listing: str) -> None:
    # Given the seed's parametrised parent, registered from examples/
    _register_listing(seed, listing)
    # When it runs on the fleet
    parent = run_and_wait(seed, "parent-flow", "examples")
    # Then its StartFlowRun returned the child's id, and the child received the
    # value the upstream task generated at run time
    assert parent.state is State.SUCCESS, parent.message
    [child_id] = parent.children
    assert parent.task_run("flow_example").result == child_id
    child = seed.client.wait_for_flow_run(child_id, timeout=60)
    assert child.parameters == {"param-key": "some-random-piece-of-data"}
    assert child.task_run("echo").result == "some-random-piece-of-data"
    assert child.parent_flow_run_id == parent.id
    assert child.parent_task_run_id == parent.task_run("flow_example").id


@pytest.mark.parametrize("listing", ["flow_of_flows.py", "flow_of_flows_set_upstream.py"])
def test_seed_flow_of_flows_orders_children(seed: Fleet, listing: str) -> None:
    # Given the seed's Flow-of-Flows A -> (B, C) -> D with wait=True
    _register_listing(seed, listing)
    # When it runs
    parent = run_and_wait(seed, "parent-flow", "examples")
    assert parent.state is State.SUCCESS, parent.message
    runs = {
        seed.client.get_flow_run(c).flow_name: seed.client.get_flow_run(c) for c in parent.children
    }
    # Then each child ran once, B and C only after A, D only after both, B and C overlapping
    assert sorted(runs) == ["A", "B", "C", "D"]
    a, b, c, d = (runs[k] for k in "ABCD")
    assert all(r.state is State.SUCCESS for r in runs.values())
    assert a.end_time <= b.start_time and a.end_time <= c.start_time  # type: ignore[operator]
    assert b.end_time <= d.start_time and c.end_time <= d.start_time  # type: ignore[operator]
    assert b.start_time < c.end_time and c.start_time < b.end_time  # type: ignore[operator]
    # and each StartFlowRun task mirrors its child with a structured result
    for slug, name in [("flow_a", "A"), ("flow_b", "B"), ("flow_c", "C"), ("flow_d", "D")]:
        tr = parent.task_run(slug)
        assert tr.state is State.SUCCESS
        assert tr.result == {
            "flow_run_id": runs[name].id,
            "state": "Success",
            "task_results": {"step": f"{name} done"},
        }
        assert runs[name].id in (tr.message or "")


def test_new_child_version_is_used_without_touching_parent(kids: Fleet, tmp_path: Path) -> None:
    # Given a child flow "evolving" registered from a file, and a parent that starts it
    source = tmp_path / "evolving.py"
    body = textwrap.dedent(
        """
        from orchestrator import Flow, task

        @task
        def version():
            return {v}

        with Flow("evolving") as flow:
            version()
        """
    )
    source.write_text(body.format(v=1))
    [flow_v1] = flows_in(str(source))
    assert kids.client.register(flow_v1, children.PROJECT) == 1
    first = run_and_wait(kids, "parent-versions", children.PROJECT)
    assert first.task_run("flow_evolving").result["task_results"] == {"version": 1}
    # When the child gets a new structure and is registered again
    source.write_text(body.format(v=1) + "\n    version(task_args={'name': 'again'})\n")
    [flow_v2] = flows_in(str(source))
    assert kids.client.register(flow_v2, children.PROJECT) == 2
    # Then the next parent run uses version 2, with no change to the parent
    second = run_and_wait(kids, "parent-versions", children.PROJECT)
    child = kids.client.get_flow_run(second.children[0])
    assert child.version == 2
    assert set(second.task_run("flow_evolving").result["task_results"]) == {"version", "again"}


def test_failed_child_fails_task_and_downstream_trigger(kids: Fleet) -> None:
    # Given a parent whose first child fails
    parent = run_and_wait(kids, "parent-mirror", children.PROJECT)
    # Then its StartFlowRun task is Failed naming the child, the task after it is
    # TriggerFailed, and the any_failed cleanup ran
    bad = parent.task_run("flow_fails")
    assert bad.state is State.FAILED
    assert bad.result["flow_run_id"] in (bad.message or "")
    assert parent.task_run("flow_ok").state is State.TRIGGER_FAILED
    assert parent.task_run("cleanup").state is State.SUCCESS
    assert parent.state is State.FAILED
    # and no child run of "ok" was ever created
    assert [kids.client.get_flow_run(c).flow_name for c in parent.children] == ["fails"]


def test_unknown_flow_fails_task_naming_flow_project_and_alternatives(kids: Fleet) -> None:
    parent = run_and_wait(kids, "parent-unknown", children.PROJECT)
    tr = parent.task_run("flow_no_such_flow")
    assert tr.state is State.FAILED
    assert "no-such-flow" in (tr.message or "") and children.PROJECT in (tr.message or "")
    assert "needs-name" in (tr.message or "")  # lists the project's flows
    assert parent.children == []


@pytest.mark.parametrize(
    ("flow", "words"),
    [("parent-bad-params", ["nmae", "name"]), ("parent-missing-params", ["name", "required"])],
)
def test_bad_parameters_fail_before_any_child_exists(
    kids: Fleet, flow: str, words: list[str]
) -> None:
    parent = run_and_wait(kids, flow, children.PROJECT)
    tr = parent.task_run("flow_needs_name")
    assert tr.state is State.FAILED
    for word in words:
        assert word in (tr.message or "")
    assert parent.children == []


def test_cancel_parent_cancels_running_child(kids: Fleet) -> None:
    # Given a parent waiting on a 30-second child
    parent_id = kids.client.create_flow_run("parent-slow", children.PROJECT)
    deadline = time.monotonic() + 30
    while not kids.client.get_flow_run(parent_id).children:
        assert time.monotonic() < deadline, kids.logs()
        time.sleep(0.1)
    child_id = kids.client.get_flow_run(parent_id).children[0]
    # When the parent is cancelled
    assert kids.client.cancel_flow_run(parent_id) is True
    # Then both end Cancelled, well before the child's 30 seconds
    child = kids.client.wait_for_flow_run(child_id, timeout=10)
    parent = kids.client.wait_for_flow_run(parent_id, timeout=10)
    assert child.state is State.CANCELLED
    assert parent.state is State.CANCELLED


def test_cancelled_child_mirrors_as_cancelled(kids: Fleet) -> None:
    # Given a parent waiting on a 3-second child, which starts at once
    parent_id = kids.client.create_flow_run("parent-short", children.PROJECT)
    deadline = time.monotonic() + 30
    while not kids.client.get_flow_run(parent_id).children:
        assert time.monotonic() < deadline, kids.logs()
        time.sleep(0.1)
    child_id = kids.client.get_flow_run(parent_id).children[0]
    # When the child is cancelled (before it starts, or while its task runs: the
    # task's code is not interrupted, and its end is not recorded over the cancel)
    assert kids.client.cancel_flow_run(child_id) is True
    # Then the waiting task and the parent take the child's Cancelled state
    parent = kids.client.wait_for_flow_run(parent_id, timeout=30)
    assert kids.client.get_flow_run(child_id).state is State.CANCELLED
    assert parent.task_run("flow_slow").state is State.CANCELLED
    assert parent.state is State.CANCELLED


@pytest.mark.parametrize("shape", ["seed", "spliced"])
def test_flow_of_flows_on_one_process(fresh_fleet: Fleet, shape: str) -> None:
    # Given a single worker with a single pool process, and the Flow-of-Flows of the
    # seed (one-task children, run inside the waiting task) or one whose B and C have
    # four tasks each (spliced into the waiting parent, which must then let go of
    # the process: holding it, the children's tasks could never run)
    flow, project = _flow_of_flows(fresh_fleet, shape)
    fresh_fleet.start_worker(concurrency=1)
    # When the Flow-of-Flows runs with wait=True
    parent = run_and_wait(fresh_fleet, flow, project, timeout=120)
    # Then it completes: the waiting parent holds no slot
    assert parent.state is State.SUCCESS, parent.message
    kids = [fresh_fleet.client.get_flow_run(c) for c in parent.children]
    assert len(kids) == 4 and all(k.state is State.SUCCESS for k in kids)
    assert sorted(len(k.task_runs) for k in kids) == (
        [1, 1, 1, 1] if shape == "seed" else [1, 1, 4, 4]
    )


def _flow_of_flows(fleet: Fleet, shape: str) -> tuple[str, str]:
    """Register a Flow-of-Flows A -> (B, C) -> D; its name and project."""
    if shape == "seed":
        for flow in flows_in(str(EXAMPLES / "seed_flows.py")):
            fleet.client.register(flow, "examples")
        _register_listing(fleet, "flow_of_flows.py")
        return "parent-flow", "examples"
    for flow in duplicating.ALL:
        fleet.client.register(flow, duplicating.PROJECT)
    return "dup-parent", duplicating.PROJECT


@pytest.mark.parametrize("shape", ["seed", "spliced"])
def test_sigkill_during_start_flow_run_makes_one_child_per_node(
    fresh_fleet: Fleet, shape: str
) -> None:
    # Given two workers running several Flow-of-Flows
    flow, project = _flow_of_flows(fresh_fleet, shape)
    workers = [fresh_fleet.start_worker(), fresh_fleet.start_worker()]
    ids = [fresh_fleet.client.create_flow_run(flow, project) for _ in range(4)]
    # When the pool process that the database says runs a task right now is
    # SIGKILLed, twice
    hits: list[InFlight] = []
    for _ in range(2):
        pids = {pid for w in workers for pid in w.pool_pids()}
        now = wait_in_flight(fresh_fleet, ids, pids)
        victim = now[0].pid
        with contextlib.suppress(ProcessLookupError):
            os.kill(victim, signal.SIGKILL)
        hits += [h for h in now if h.pid == victim]
    # Then every parent ends Success with exactly one child per StartFlowRun node
    for run_id in ids:
        try:
            parent = fresh_fleet.client.wait_for_flow_run(run_id, timeout=120)
        except FlowRunTimeout:
            raise AssertionError(fresh_fleet.describe(run_id)) from None
        assert parent.state is State.SUCCESS, (parent.message, fresh_fleet.logs())
        names = sorted(fresh_fleet.client.get_flow_run(c).flow_name for c in parent.children)
        assert len(names) == 4 and len(set(names)) == 4, names
    # and the kills landed on running work, which was taken over
    taken = interrupted(fresh_fleet, hits)
    print(f"\nin flight when killed: {len(hits)} task runs; taken over: {len(taken)}")
    assert taken, hits
