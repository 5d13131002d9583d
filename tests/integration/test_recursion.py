"""Flows that start themselves (issue 24 item 2): registration refuses fixed names
that form a cycle (self included), and at run time a tree of flow runs grows no
deeper than ORCHESTRATOR_MAX_DEPTH, failing with the chain of flows named; on real
workers, both databases."""

from __future__ import annotations

import pytest

from orchestrator import FlowCycleError, State
from orchestrator.db import Store
from orchestrator.registry import register
from tests.conftest import Fleet
from tests.flows import recursive


@pytest.fixture()
def store(database_url: str) -> Store:
    return Store(database_url)


def test_a_flow_starting_itself_is_refused_at_registration(store: Store, project: str) -> None:
    # When a flow whose StartFlowRun names the flow itself is registered
    with pytest.raises(FlowCycleError) as caught:
        register(recursive.self_starting(project), project, store, import_ref="x.py:loop")
    # Then the error names the chain, and nothing is stored
    assert f"{project}/loop -> {project}/loop" in str(caught.value)
    assert [f for p, f in store.flows.list() if p == project] == []


def test_two_flows_starting_each_other_are_refused(store: Store, project: str) -> None:
    # Given flow ping, which starts pong (not registered yet: nothing to refuse)
    register(recursive.starting("ping", "pong", project), project, store, import_ref="x.py:a")
    # And flow pang starting ping: no cycle
    register(recursive.starting("pang", "ping", project), project, store, import_ref="x.py:c")
    # When pong, which starts ping, is registered
    with pytest.raises(FlowCycleError) as caught:
        register(recursive.starting("pong", "ping", project), project, store, import_ref="x.py:b")
    # Then the error names the cycle pong -> ping -> pong, and pong is not stored
    assert f"{project}/pong -> {project}/ping -> {project}/pong" in str(caught.value)
    assert sorted(f.name for p, f in store.flows.list() if p == project) == ["pang", "ping"]


def test_a_tree_stops_at_max_depth_naming_the_chain(fresh_fleet: Fleet, project: str) -> None:
    # Given a flow that names itself at run time, and workers capping trees at 3 levels
    fresh_fleet.env["ORCHESTRATOR_MAX_DEPTH"] = "3"
    fresh_fleet.client.register(recursive.recurse, project)
    fresh_fleet.start_worker()
    # When it runs
    root_id = fresh_fleet.client.create_flow_run(
        "recurse", project, parameters={"project": project}
    )
    root = fresh_fleet.client.wait_for_flow_run(root_id, timeout=120)
    # Then the tree has a root and 3 levels of children, and no more
    chain = [root]
    while chain[-1].children:
        (child_id,) = chain[-1].children
        chain.append(fresh_fleet.client.get_flow_run(child_id))
    assert len(chain) == 4, fresh_fleet.logs()
    # And the deepest run failed saying why, naming the chain of flows
    deepest = chain[-1].task_run("start_target")
    assert deepest.state is State.FAILED
    assert "ORCHESTRATOR_MAX_DEPTH=3" in (deepest.message or ""), deepest.message
    assert " -> ".join(["recurse"] * 5) in (deepest.message or "")
    # And every run above took the failure
    assert [r.state for r in chain] == [State.FAILED] * 4
