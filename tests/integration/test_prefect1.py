"""Prefect 1 semantics on real workers (issue 23): each flow runs on the fleet and in
process, and both come to the states a Prefect 1 user expects, task by task and
child by child; a timed-out task's code is stopped; StartFlowRun.map over a mapped
ordering upstream starts no child for a failed element."""

from __future__ import annotations

import time
import uuid
from typing import Any

import pytest

from orchestrator import Flow, State
from orchestrator.backends import backends
from orchestrator.infos import FlowRunInfo
from orchestrator.loader import flows_in
from orchestrator.states import FlowRunState
from tests.conftest import ROOT, Fleet
from tests.flows import prefect1
from tests.integration.helpers import finished_counts, run_and_wait
from tests.webhook import Webhook

S, F, SK, TF = State.SUCCESS, State.FAILED, State.SKIPPED, State.TRIGGER_FAILED

#: flow -> (its state, {slug: (state, result)}, {mapped slug: its children's states})
EXPECTED: dict[str, tuple[State, dict[str, tuple[State, Any]], dict[str, list[State]]]] = {
    "p1-triggers": (
        S,
        {
            "guarded": (TF, None),
            "cleanup": (S, "cleaned"),
            "root_counted": (S, "ran without upstream"),
            "word": (S, "hi"),
            "echo": (S, "hi"),
        },
        {},
    ),
    "p1-empty-reference": (F, {"boom": (F, None)}, {}),
    "p1-empty-reference-2": (F, {"boom": (F, None), "one": (S, 1)}, {}),
    "p1-map-skip-reduce": (
        S,
        {"skip_one": (S, [0, None, 2]), "total": (SK, None), "tolerant": (S, 2)},
        {"skip_one": [S, SK, S]},
    ),
    "p1-map-ordering": (
        F,
        {
            "after_gate": (F, [0, None, 2]),
            "over_constant": (S, [0, 1, 2, 3]),
            "unmapped_order": (S, [1, 2, 3]),
            "all_unmapped": (S, 3),
        },
        {"after_gate": [S, TF, S], "over_constant": [S] * 4, "unmapped_order": [S] * 3},
    ),
    "p1-branches": (
        S,
        {
            "a_side": (SK, None),
            "b_side": (S, "B"),
            "after_a": (SK, None),
            "yes": (SK, None),
            "no": (S, "no"),
            "Merge": (S, "no"),
            "red": (S, "RED"),
            "small_red": (SK, None),
            "blue": (SK, None),
        },
        {},
    ),
    "p1-flatten-failed": (
        F,
        {"inc": (F, [1, 2, None, None, 31, 32])},
        {"inc": [S, S, SK, TF, S, S]},
    ),
}


@pytest.fixture(scope="module")
def registered(fleet: Fleet) -> Fleet:
    for flow in prefect1.ALL:
        fleet.client.register(flow, prefect1.PROJECT)
    return fleet


def _children(info: FlowRunInfo, slug: str) -> list[State]:
    kids = sorted(
        (t for t in info.task_runs if t.slug == slug and t.map_index >= 0),
        key=lambda t: t.map_index,
    )
    return [t.state for t in kids]


def _local_children(local: FlowRunState, slug: str) -> list[State]:
    return [k.state for k in local.by_slug()[slug].map_states]


@pytest.mark.parametrize("flow", prefect1.COMPARED, ids=lambda f: f.name)
def test_flows_come_to_prefect1_states_on_workers_and_in_process(
    registered: Fleet, flow: Flow
) -> None:
    # Given a flow exercising one Prefect 1 rule
    state, tasks, children = EXPECTED[flow.name]

    # When it runs in process and on the fleet
    local = flow.run()
    info = run_and_wait(registered, flow.name, prefect1.PROJECT)

    # Then both come to the expected states, results and children's states
    assert (local.state, info.state) == (state, state), (local.message, info.message)
    for slug, (task_state, result) in tasks.items():
        assert (local.by_slug()[slug].state, local.by_slug()[slug].result) == (task_state, result)
        assert (info.task_run(slug).state, info.task_run(slug).result) == (task_state, result)
    for slug, kids in children.items():
        assert _local_children(local, slug) == kids
        assert _children(info, slug) == kids
    # and the messages a user reads say the same (a raising trigger's included)
    for slug in tasks:
        assert info.task_run(slug).message == local.by_slug()[slug].message
    if flow.name == "p1-triggers":
        assert info.task_run("guarded").message == "trigger broken raised KeyError: 'no such state'"


def test_a_timed_out_task_is_stopped_on_workers(registered: Fleet) -> None:
    # Given a task sleeping 60 s with a 1 s timeout
    info = run_and_wait(registered, "p1-timeout", prefect1.PROJECT)

    # Then it is TimedOut, and its code was interrupted in its sleep (by Celery's soft
    # time limit): what came after the sleep never ran
    assert info.task_run("overslept").state is State.TIMED_OUT
    assert info.state is State.FAILED
    raw = backends(registered.settings).redis.hgetall(prefect1.marks_key(info.id))
    marks = {k.decode(): v.decode() for k, v in raw.items()}
    assert marks == {"interrupted": "SoftTimeLimitExceeded"}


def test_start_flow_run_map_over_a_mapped_ordering_upstream(registered: Fleet) -> None:
    # Given StartFlowRun mapped over a mapped ordering upstream whose element 1 fails
    info = run_and_wait(registered, "p1-map-children", prefect1.PROJECT, timeout=120)

    # Then one child flow run per good element was created and mirrored; the element
    # after the failure is TriggerFailed and started no child
    assert _children(info, "flow_p1_greeter") == [S, TF, S]
    assert len(info.children) == 2
    results = info.task_run("flow_p1_greeter").result
    assert [r and r["task_results"]["echo"] for r in results] == ["hello", None, "hello"]
    assert info.task_run("flow_p1_greeter", 1).child_flow_run_id is None


def _by_place(lines: list[str]) -> dict[str, list[str]]:
    """Transitions ``where: old > new`` grouped by where, in the order seen there."""
    out: dict[str, list[str]] = {}
    for line in lines:
        where, _, change = line.partition(": ")
        out.setdefault(where, []).append(change)
    return out


def _transitions(fleet: Fleet, flow_run_id: str) -> dict[str, list[str]]:
    raw = backends(fleet.settings).redis.lrange(prefect1.transitions_key(flow_run_id), 0, -1)
    return _by_place([x.decode() for x in raw])


HANDLED = {
    "flaky": ["Pending > Running", "Running > Retrying", "Retrying > Running", "Running > Success"],
    "recovered": ["Pending > Running", "Running > Success"],
    "inc_recorded": ["Pending > Running", "Running > Success"],
    "inc_recorded[0]": ["Pending > Running", "Running > Success"],
    "inc_recorded[1]": ["Pending > Running", "Running > Success"],
    "notified": ["Pending > Running", "Running > Success"],
}


def test_state_handlers_see_every_transition_on_workers_as_in_process(registered: Fleet) -> None:
    # Given a flow whose tasks and flow have a recording handler: a retried task, one
    # whose handler recovers its failure, a mapped one, one whose notifier raises
    prefect1.LOCAL_TRANSITIONS.clear()
    local = prefect1.p1_handlers.run()
    info = run_and_wait(registered, "p1-handlers", prefect1.PROJECT)

    # Then every task run's transitions were seen in order, on workers as in process
    # (the flow run starts from Submitted on workers, from Pending in process)
    seen_local = _by_place(prefect1.LOCAL_TRANSITIONS)
    seen = _transitions(registered, info.id)
    assert seen_local == {**HANDLED, "p1-handlers": ["Pending > Running", "Running > Failed"]}
    assert seen == {**HANDLED, "p1-handlers": ["Submitted > Running", "Running > Failed"]}

    # and what the handlers returned is what was recorded
    for st, tr in [(local.by_slug()["recovered"], info.task_run("recovered"))]:
        assert (st.state, st.result, st.message) == (S, "fallback", "recovered")
        assert (tr.state, tr.result, tr.message) == (S, "fallback", "recovered")
    message = (
        "state handler unreachable of task 'notified' raised RuntimeError: webhook unreachable"
    )
    assert local.by_slug()["notified"].message == info.task_run("notified").message == message
    assert local.state is info.state is F


def test_flow_handlers_of_a_one_task_flow_run_inline_see_its_start_and_end(
    registered: Fleet,
) -> None:
    info = run_and_wait(registered, "p1-one-handled", prefect1.PROJECT)
    assert info.state is F
    assert _transitions(registered, info.id) == {
        "p1-one-handled": ["Submitted > Running", "Running > Failed"],
        "boom_recorded": ["Pending > Running", "Running > Failed"],
    }


@pytest.mark.parametrize("flow", ["p1-refused", "p1-refused-one"])
def test_a_flow_handler_raising_at_the_start_fails_the_run_before_any_task(
    registered: Fleet, flow: str
) -> None:
    # Given a flow (of two tasks, and of one run inline) whose handler raises on Running
    info = run_and_wait(registered, flow, prefect1.PROJECT)

    # Then the run failed naming the handler, its task runs were cancelled, no code ran
    assert info.state is F
    assert info.message == (
        f"state handler refuse_start of flow {flow!r} raised RuntimeError: no config for today"
    )
    assert {t.state for t in info.task_runs} == {State.CANCELLED}
    assert finished_counts(registered, info.id) == {}


def test_flow_handlers_see_a_run_wait_in_queued_for_a_slot(registered: Fleet) -> None:
    # Given a label limited to 0: a run of a flow with a recording handler waits Queued
    label = f"p1-held-{uuid.uuid4().hex[:6]}"
    registered.client.set_concurrency_limit(label, 0)
    run_id = registered.client.create_flow_run("p1-queued", prefect1.PROJECT, labels=[label])
    deadline = time.monotonic() + 60
    while not _transitions(registered, run_id):
        assert time.monotonic() < deadline, registered.describe(run_id)
        time.sleep(0.05)

    # When the limit is raised
    registered.client.set_concurrency_limit(label, 1)
    info = registered.client.wait_for_flow_run(run_id, timeout=60)

    # Then the handler saw it wait, start from Queued and end
    assert info.state is S
    assert _transitions(registered, run_id)["p1-queued"] == [
        "Submitted > Queued",
        "Queued > Running",
        "Running > Success",
    ]


def test_state_handlers_of_a_waiting_start_flow_run_see_the_child_s_end(registered: Fleet) -> None:
    # Given StartFlowRun(wait=True) tasks with a recording handler: a one-task child
    # (run inside the waiting task) and a two-task child (spliced in, then mirrored)
    info = run_and_wait(registered, "p1-handled-parent", prefect1.PROJECT, timeout=120)

    # Then each waiting task's handler saw it start and take its child's state
    assert info.state is S, info.message
    assert _transitions(registered, info.id) == {
        "flow_p1_greeter": ["Pending > Running", "Running > Success"],
        "flow_p1_two_step": ["Pending > Running", "Running > Success"],
    }


def test_a_child_flow_in_a_branch_not_taken_is_never_created(registered: Fleet) -> None:
    # Given two StartFlowRun tasks, each in a case block; the condition takes "a"
    info = run_and_wait(registered, "p1-branch-children", prefect1.PROJECT, timeout=120)

    # Then the child of branch a ran and was mirrored; branch b is Skipped, no child
    assert info.state is S, info.message
    assert info.task_run("child_a").result["task_results"]["echo"] == "a"
    assert info.task_run("child_b").state is SK
    assert info.task_run("child_b").child_flow_run_id is None
    assert len(info.children) == 1


def test_the_example_posts_its_failure_to_the_webhook_from_a_worker(
    fresh_fleet: Fleet, webhook: Webhook, project: str
) -> None:
    # Given the example with a branch and a failure notification, on a worker whose
    # NOTIFY_WEBHOOK_URL points at a local server
    fresh_fleet.env["NOTIFY_WEBHOOK_URL"] = webhook.url
    fresh_fleet.start_worker(concurrency=1)
    for flow in flows_in(str(ROOT / "examples" / "branch_and_notify.py")):
        fresh_fleet.client.register(flow, project)

    # When a small batch with a bad order takes the branch that fails
    info = run_and_wait(fresh_fleet, "process-orders", project, parameters={"orders": [5, -1]})

    # Then the other branch was skipped, and the task's and the flow's handlers
    # posted their failure, naming the run
    assert info.state is F
    assert info.task_run("process_in_batches").state is SK
    assert [p["text"] for p in webhook.posted] == [
        f"process_at_once failed: ValueError: order -1 is negative (flow run {info.id})",
        f"process-orders failed: some reference tasks failed: report (flow run {info.id})",
    ]
