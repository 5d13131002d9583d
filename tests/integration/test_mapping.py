"""Mapping on real workers: fan-out as wide as data known only at run time."""

from __future__ import annotations

import os
import signal
import time

import pytest

from orchestrator import State
from tests.conftest import Fleet
from tests.flows import mapping
from tests.integration.helpers import finished_counts, run_and_wait
from tests.integration.inflight import interrupted, wait_in_flight


@pytest.fixture()
def mapped(fleet: Fleet) -> Fleet:
    for flow in mapping.ALL:
        fleet.client.register(flow, mapping.PROJECT)
    return fleet


def test_map_over_a_thousand_elements_computed_at_run_time(mapped: Fleet) -> None:
    # Given a task mapped over the output of another task (1,000 elements)
    info = run_and_wait(mapped, "map-big", mapping.PROJECT, timeout=180)
    # Then every child ran once, in order, and the downstream task got the whole list
    assert info.state is State.SUCCESS, info.message
    assert info.task_run("scale").result == [2 * i for i in range(1000)]
    assert info.task_run("total").result == sum(2 * i for i in range(1000))
    children = [t for t in info.task_runs if t.slug == "scale" and t.map_index >= 0]
    assert sorted(t.map_index for t in children) == list(range(1000))
    counts = finished_counts(mapped, info.id)
    assert all(counts[f"scale[{i}]"] == 1 for i in range(1000))


def test_one_failed_child_fails_the_mapped_task_only_for_that_element(mapped: Fleet) -> None:
    info = run_and_wait(mapped, "map-one-fails", mapping.PROJECT)
    parent = info.task_run("scale")
    assert parent.state is State.FAILED and "index 13" in (parent.message or "")
    assert parent.result[12] == 36 and parent.result[13] is None
    assert info.task_run("scale", 13).state is State.FAILED
    assert info.task_run("scale", 14).state is State.SUCCESS


def test_map_of_a_map_is_element_wise(mapped: Fleet) -> None:
    info = run_and_wait(mapped, "map-of-map", mapping.PROJECT)
    assert info.state is State.SUCCESS
    assert info.task_run("inc").result == [1, 11, 21, 31, 41]
    assert info.task_run("inc", 3).result == 31


def test_flatten_maps_over_the_items_of_a_list_of_lists(mapped: Fleet) -> None:
    info = run_and_wait(mapped, "map-flatten", mapping.PROJECT)
    assert info.task_run("inc").result == [2, 3, 4, 5, 6]


def test_empty_map_succeeds_with_empty_result_and_downstream_runs(mapped: Fleet) -> None:
    info = run_and_wait(mapped, "map-empty", mapping.PROJECT)
    assert info.state is State.SUCCESS
    assert info.task_run("inc").result == []
    assert info.task_run("total").result == 0


def test_mapping_over_a_non_list_is_a_clear_error(mapped: Fleet) -> None:
    info = run_and_wait(mapped, "map-not-list", mapping.PROJECT)
    tr = info.task_run("inc")
    assert tr.state is State.FAILED
    assert "inc" in (tr.message or "") and "not a list" in (tr.message or "")


@pytest.mark.parametrize(
    "flow",
    [
        mapping.map_of_map,
        mapping.map_flatten,
        mapping.map_empty,
        mapping.map_not_list,
        mapping.map_one_fails,
    ],
    ids=lambda f: f.name,
)
def test_flow_run_in_process_maps_the_same_way(mapped: Fleet, flow) -> None:
    local = flow.run()
    info = run_and_wait(mapped, flow.name, mapping.PROJECT)
    assert info.state is local.state
    for task, st in local.result.items():
        assert info.task_run(task.slug).state is st.state
        assert info.task_run(task.slug).result == st.result


def test_start_flow_run_mapped_over_fifty_parameter_dicts_survives_sigkill(
    fresh_fleet: Fleet,
) -> None:
    # Given a parent starting one child flow per parameter dict, on two workers
    for flow in mapping.ALL:
        fresh_fleet.client.register(flow, mapping.PROJECT)
    fresh_fleet.start_worker()
    fresh_fleet.start_worker()
    run_id = fresh_fleet.client.create_flow_run(
        "map-children", mapping.PROJECT, parameters={"n": 50}
    )
    # When, once five children exist, the pool process that the database says runs
    # one of them right now is SIGKILLed
    deadline = time.monotonic() + 30
    while len(fresh_fleet.client.get_flow_run(run_id, task_runs=False).children) < 5:
        assert time.monotonic() < deadline, fresh_fleet.logs()
        time.sleep(0.02)
    pids = {pid for w in fresh_fleet.workers for pid in w.pool_pids()}
    now = wait_in_flight(fresh_fleet, [run_id], pids)
    os.kill(now[0].pid, signal.SIGKILL)
    hits = [h for h in now if h.pid == now[0].pid]
    info = fresh_fleet.client.wait_for_flow_run(run_id, timeout=180)
    # Then the parent succeeds with exactly one child run per element, results in order
    assert info.state is State.SUCCESS, (info.message, fresh_fleet.logs())
    children = [fresh_fleet.client.get_flow_run(c, task_runs=False) for c in info.children]
    assert len(children) == 50
    assert sorted(c.parameters["name"] for c in children) == sorted(f"child-{i}" for i in range(50))
    results = info.task_run("flow_greeter").result
    assert [r["task_results"]["greet"] for r in results] == [f"hello child-{i}" for i in range(50)]
    # and the kill landed on running work, which was taken over
    assert interrupted(fresh_fleet, hits), hits
