"""Prefect 1 semantics that flows written for Prefect 1 rely on (issue 23, items 1-9),
checked with ``flow.run()``: timeouts stop the code, a broken trigger fails its task,
triggers pass without upstreams, mapped upstreams are seen child by child, an empty
reference set means the terminal tasks, Parameters take no upstream, mapping over
ordering edges and with only unmapped arguments, flatten() over failed children, and
a Parameter copy's slug. The worker side is in tests/integration/test_prefect1.py."""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

import pytest

from orchestrator import (
    SKIP,
    Flow,
    FlowRunState,
    FlowValidationError,
    Parameter,
    State,
    flatten,
    task,
    unmapped,
)
from orchestrator import triggers as T


@task
def numbers(n: int = 3) -> list[int]:
    return list(range(n))


@task
def inc(x: int) -> int:
    return x + 1


@task
def total(xs: list[Any]) -> int:
    return sum(x for x in xs if x is not None)


@task
def picky(x: int) -> int:
    """1 is skipped, 2 fails, anything else passes."""
    if x == 1:
        raise SKIP("one is skipped")
    if x == 2:
        raise ValueError("two fails")
    return x


@task
def boom() -> None:
    raise ValueError("the source is down")


def _states(state: FlowRunState) -> dict[str, State]:
    return {slug: st.state for slug, st in state.by_slug().items()}


# --- 1. a timeout stops the code -------------------------------------------------------------


def _run_and_let_go(flow: Flow, release: threading.Event) -> FlowRunState:
    """Run ``flow``, then let its blocked code go on and wait for every thread it left
    behind: whatever the timed-out code would still do has happened afterwards."""
    before = set(threading.enumerate())
    try:
        state = flow.run()
    finally:
        release.set()
    for leftover in set(threading.enumerate()) - before:
        leftover.join(30)
    return state


def _sleeper(
    release: threading.Event, effects: list[str], timeout: float = 0.2
) -> Callable[..., Any]:
    @task(timeout=timeout)
    def sleeper() -> str:
        try:
            release.wait(30)
        except BaseException as exc:
            effects.append(f"interrupted by {type(exc).__name__}")
            raise
        effects.append("the side effect after the timeout")
        return "too late"

    return sleeper


def test_timed_out_code_is_stopped_and_its_later_side_effects_never_happen() -> None:
    # Given a task that blocks well past its 0.2 s timeout, then has a side effect
    release, effects = threading.Event(), []
    sleeper = _sleeper(release, effects)
    with Flow("stopped") as flow:
        inc(sleeper())

    # When the flow runs, and the blocked code is let go afterwards
    handler_before = signal.getsignal(signal.SIGALRM)
    state = _run_and_let_go(flow, release)

    # Then the task timed out, its code was interrupted where it blocked, and the
    # side effect after the timeout never happened
    assert state.by_slug()["sleeper"].state is State.TIMED_OUT
    assert state.by_slug()["sleeper"].message == "timed out after 0.2s"
    assert _states(state)["inc"] is State.TRIGGER_FAILED
    assert effects == ["interrupted by Expired"]
    # and the timer and handler that were there before (pytest-timeout's) are back
    assert signal.getsignal(signal.SIGALRM) is handler_before
    assert signal.getitimer(signal.ITIMER_REAL)[0] > 0


_SCRIPT = """
import threading
from orchestrator import Flow, task
release, effects = threading.Event(), []
@task(timeout=0.2)
def sleeper():
    try:
        release.wait(30)
    except BaseException as exc:
        effects.append(type(exc).__name__)
        raise
    effects.append("after")
with Flow("alone") as flow:
    sleeper()
state = flow.run()
release.set()
print(state.by_slug()["sleeper"].state.value, effects, flush=True)
"""


def test_timed_out_code_is_stopped_in_a_process_with_no_timer_of_its_own() -> None:
    # Given a plain script (no test runner's timer) running a flow with a timeout
    done = subprocess.run(
        [sys.executable, "-c", _SCRIPT], capture_output=True, text=True, timeout=60, check=True
    )
    # Then its task timed out and its code was interrupted, not left running
    assert done.stdout.strip() == "TimedOut ['Expired']"


def test_timed_out_code_is_stopped_when_the_flow_runs_outside_the_main_thread() -> None:
    # Given the same task, in a flow run from a thread of its own (no signals there)
    release, effects = threading.Event(), []
    sleeper = _sleeper(release, effects)
    with Flow("stopped-in-a-thread") as flow:
        sleeper()
    box: dict[str, FlowRunState] = {}
    runner = threading.Thread(target=lambda: box.update(state=_run_and_let_go(flow, release)))

    # When it runs there
    runner.start()
    runner.join(60)

    # Then it timed out, and once let go the code stopped before its side effect
    assert box["state"].by_slug()["sleeper"].state is State.TIMED_OUT
    assert effects == ["interrupted by Expired"]


def test_the_task_code_sees_its_run_context_under_a_timeout_in_a_thread() -> None:
    from orchestrator.context import current

    @task(timeout=5)
    def where() -> str:
        ctx = current()
        return f"{ctx.flow_name}/{ctx.task_slug}" if ctx else "no context"

    with Flow("ctx-timeout") as flow:
        where()
    box: dict[str, FlowRunState] = {}
    runner = threading.Thread(target=lambda: box.update(state=flow.run()))
    runner.start()
    runner.join(60)
    assert flow.run().by_slug()["where"].result == "ctx-timeout/where"
    assert box["state"].by_slug()["where"].result == "ctx-timeout/where"


def test_an_outer_timeout_stops_a_task_running_under_its_own_longer_timeout() -> None:
    # Given a task (0.3 s) whose code runs a flow whose task has a 20 s timeout
    release, effects = threading.Event(), []
    inner_sleeper = _sleeper(release, effects, timeout=20)
    with Flow("inner") as inner:
        inner_sleeper()

    @task(timeout=0.3)
    def outer() -> str:
        inner.run()
        effects.append("the outer side effect")
        return "too late"

    with Flow("outer") as flow:
        outer()

    # When it runs
    state = _run_and_let_go(flow, release)

    # Then the outer task timed out at its own limit and neither code went on
    assert state.by_slug()["outer"].state is State.TIMED_OUT
    assert effects == ["interrupted by Expired"]


def test_limits_nest_an_inner_timeout_leaves_the_outer_code_running() -> None:
    @task(timeout=0.1)
    def hang() -> None:
        time.sleep(10)

    with Flow("inner-hangs") as inner:
        hang()

    @task(timeout=20)
    def outer() -> str:
        return inner.run().by_slug()["hang"].state.value

    with Flow("outer-waits") as flow:
        outer()
    assert flow.run().by_slug()["outer"].result == "TimedOut"


# --- 2. a trigger that raises -------------------------------------------------------------


def test_a_trigger_that_raises_trigger_fails_its_task_and_the_flow_goes_on() -> None:
    # Given a task whose trigger raises, and a task that runs after it whatever happens
    def broken(upstream: Sequence[State]) -> bool:
        raise KeyError("no such state")

    @task(trigger=broken)
    def guarded(x: int) -> int:
        return x

    @task(trigger=T.all_finished)
    def cleanup() -> str:
        return "cleaned"

    with Flow("broken-trigger") as flow:
        g = guarded(inc(1))
        cleanup(upstream_tasks=[g])

    # When the flow runs
    state = flow.run()

    # Then the task is TriggerFailed with the exception as its message, and the flow
    # went on to the next task
    assert state.by_slug()["guarded"].state is State.TRIGGER_FAILED
    assert state.by_slug()["guarded"].message == "trigger broken raised KeyError: 'no such state'"
    assert state.by_slug()["cleanup"].result == "cleaned"
    assert state.state is State.SUCCESS


# --- 3. every trigger passes without upstreams -------------------------------------------


@pytest.mark.parametrize(
    "trigger",
    [
        T.some_successful(at_least=1),
        T.some_failed(at_least=1),
        T.some_successful(at_least=0.5, at_most=0.9),
        T.some_failed(at_most=0),
        T.all_failed,
        T.any_failed,
        T.not_all_skipped,
    ],
    ids=lambda t: getattr(t, "__name__", repr(t)),
)
def test_every_trigger_passes_a_task_without_upstream_tasks(trigger: T.Trigger) -> None:
    @task(trigger=trigger)
    def root() -> str:
        return "ran"

    with Flow("root") as flow:
        root()
    assert flow.run().by_slug()["root"].result == "ran"


# --- 4. a reduce task sees every child of a mapped upstream ---------------------------------


def test_a_reduce_task_after_a_map_with_a_skipped_child_is_skipped() -> None:
    # Given a map in which one element skips, and a plain task taking the whole list
    @task
    def skip_one(x: int) -> int:
        if x == 1:
            raise SKIP("not this one")
        return x

    with Flow("map-skip-reduce") as flow:
        mapped = skip_one.map(numbers(3))
        reduced = total(mapped)
        total.copy(skip_on_upstream_skip=False)(mapped, task_args={"name": "tolerant"})

    # When the flow runs
    state = flow.run()

    # Then the mapped task succeeded, the reduce task is Skipped, and one that does
    # not skip on an upstream skip runs over the list (None for the skipped element)
    assert state.result[mapped].state is State.SUCCESS
    assert state.result[mapped].result == [0, None, 2]
    assert state.result[reduced].state is State.SKIPPED
    assert state.by_slug()["tolerant"].result == 2
    assert state.state is State.SUCCESS


def test_a_reduce_task_trigger_counts_the_children_of_a_mapped_upstream() -> None:
    # Given a map where one child of two fails, and a reduce task run on all failed
    @task(trigger=T.all_failed)
    def all_broke(xs: list[Any]) -> str:
        return "every element failed"

    with Flow("map-reduce-trigger") as flow:
        mapped = picky.map([0, 2])
        all_broke(mapped)

    # Then the trigger sees one success and one failure: not all failed
    state = flow.run()
    assert state.by_slug()["all_broke"].state is State.TRIGGER_FAILED
    assert "picky=[1 Success, 1 Failed]" in (state.by_slug()["all_broke"].message or "")


def test_a_map_over_a_map_that_was_skipped_whole_is_skipped_too() -> None:
    @task
    def nothing() -> list[int]:
        raise SKIP("no input today")

    with Flow("map-of-skipped-map") as flow:
        first = inc.map(nothing())
        second = inc.map(first)
    state = flow.run()
    assert state.result[first].state is State.SKIPPED
    assert state.result[second].state is State.SKIPPED


# --- 5. an empty reference set means the terminal tasks --------------------------------------


@pytest.mark.parametrize("how", ["set_reference_tasks", "constructor"])
def test_an_empty_reference_set_means_the_terminal_tasks(how: str) -> None:
    # Given a flow whose only task fails, with an empty set of reference tasks
    if how == "constructor":
        with Flow("empty-reference", reference_tasks=[]) as flow:
            boom()
    else:
        with Flow("empty-reference") as flow:
            boom()
        flow.set_reference_tasks([])

    # Then its terminal task decides: the flow failed
    assert [t.slug for t in flow.reference_tasks()] == ["boom"]
    state = flow.run()
    assert state.state is State.FAILED
    assert state.message == "some reference tasks failed: boom"


# --- 6. a Parameter has no upstream ---------------------------------------------------------


@pytest.mark.parametrize(
    "bind",
    [
        lambda flow, t, p: flow.add_edge(t, p),
        lambda flow, t, p: p.set_upstream(t, flow=flow),
        lambda flow, t, p: t.set_downstream(p, flow=flow),
        lambda flow, t, p: flow.set_dependencies(p, upstream_tasks=[t]),
        lambda flow, t, p: p(upstream_tasks=[t], flow=flow),
    ],
    ids=["add_edge", "set_upstream", "set_downstream", "set_dependencies", "call"],
)
def test_a_parameter_refuses_upstream_edges(bind: Callable[[Flow, Any, Parameter], Any]) -> None:
    flow = Flow("params")
    p = Parameter("x", default=1)
    t = inc.copy()
    flow.add_task(t)
    with pytest.raises(FlowValidationError, match="parameter 'x' cannot have upstream tasks"):
        bind(flow, t, p)
    assert flow.edges == []


# --- 7. mapping over ordering edges, and maps with only unmapped arguments ---------------------


@task
def which() -> int:
    from orchestrator.context import current

    ctx = current()
    return ctx.map_index if ctx else -2


def test_a_mapped_upstream_in_upstream_tasks_is_mapped_over_child_by_child() -> None:
    # Given a task mapped only over an ordering upstream, itself mapped with a failure
    with Flow("map-ordering") as flow:
        gate = picky.map([0, 2, 3])
        after = which.map(upstream_tasks=[gate])

    # When the flow runs
    state = flow.run()

    # Then it has one child per element of the upstream, each after its own element:
    # the one after the failed element is TriggerFailed, the others ran
    assert state.result[after].result == [0, None, 2]
    assert state.result[after].state is State.FAILED
    kids = state.result[after].map_states
    assert [k.state for k in kids] == [State.SUCCESS, State.TRIGGER_FAILED, State.SUCCESS]
    assert "picky=Failed" in (kids[1].message or "")


def test_a_constant_list_in_upstream_tasks_is_mapped_over() -> None:
    with Flow("map-constant-ordering") as flow:
        out = which.map(upstream_tasks=[[10, 20, 30, 40]])
    assert flow.run().result[out].result == [0, 1, 2, 3]


def test_an_empty_ordering_upstream_maps_to_no_children() -> None:
    @task
    def empty() -> list[int]:
        return []

    with Flow("map-empty-ordering") as flow:
        out = which.map(upstream_tasks=[empty])
    state = flow.run()
    assert state.result[out].state is State.SUCCESS and state.result[out].result == []


def test_unmapped_in_upstream_tasks_is_an_ordering_edge_not_mapped_over() -> None:
    with Flow("map-unmapped-ordering") as flow:
        first = inc(5)
        out = inc.map(numbers(3), upstream_tasks=[unmapped(first)])
    [edge] = [e for e in flow.edges if e.upstream is first]
    assert edge.mapped is False
    assert flow.run().result[out].result == [1, 2, 3]


def test_set_dependencies_with_mapped_maps_over_upstream_tasks_too() -> None:
    flow = Flow("set-dependencies-mapped")
    gate = picky.copy()
    flow.set_dependencies(gate, keyword_tasks={"x": [0, 2, 3]}, mapped=True)
    after = which.copy()
    flow.set_dependencies(after, upstream_tasks=[gate], mapped=True)
    state = flow.run()
    assert state.result[after].result == [0, None, 2]
    assert state.result[after].map_states[1].state is State.TRIGGER_FAILED


@pytest.mark.parametrize(
    ("x", "y", "out"), [(1, 2, 3), ([0, 2], [1, 7], [0, 2, 1, 7])], ids=["ints", "lists"]
)
def test_a_map_with_only_unmapped_arguments_runs_once_with_the_whole_values(
    x: Any, y: Any, out: Any
) -> None:
    @task
    def add(x: Any, y: Any) -> Any:
        return x + y

    with Flow("all-unmapped") as flow:
        res = add.map(unmapped(x), unmapped(y))
    state = flow.run()
    assert res not in flow.mapped
    assert state.result[res].state is State.SUCCESS
    assert state.result[res].result == out


def test_unmapped_mapped_task_is_passed_whole_to_a_single_run() -> None:
    @task
    def add_one(x: Any) -> Any:
        return x + x if isinstance(x, list) else x + 1

    with Flow("unmapped-on-mapped") as flow:
        res = add_one.map(unmapped(add_one.map([1, 2, 3])))
    assert flow.run().result[res].result == [2, 3, 4, 2, 3, 4]


# --- 8. flatten() over a mapped upstream with a skipped and a failed child -------------------


def test_flatten_of_a_mapped_upstream_gives_a_skipped_or_failed_child_one_element() -> None:
    # Given a mapped task whose children return lists, except one skipped, one failed
    @task
    def listed(x: int) -> list[int]:
        if x == 1:
            raise SKIP("one is skipped")
        if x == 2:
            raise ValueError("two fails")
        return [x * 10, x * 10 + 1]

    with Flow("flatten-failed") as flow:
        nested = listed.map([0, 1, 2, 3])
        flat = inc.map(flatten(nested))

    # When the flow runs
    state = flow.run()

    # Then the downstream map has one element per item of the good children and one
    # per skipped or failed child: skipped and trigger-failed there, the others ran
    assert state.result[flat].result == [1, 2, None, None, 31, 32]
    kids = state.result[flat].map_states
    assert [k.state for k in kids] == [
        State.SUCCESS,
        State.SUCCESS,
        State.SKIPPED,
        State.TRIGGER_FAILED,
        State.SUCCESS,
        State.SUCCESS,
    ]


def test_flatten_keeps_an_item_that_is_not_a_list_as_one_element() -> None:
    with Flow("flatten-mixed") as flow:
        a = inc.map(flatten([[1, 2, 3]]))
        b = inc.map(flatten([[1], [2, 3]]))
        c = inc.map(flatten([1, 2, 3]))
    state = flow.run()
    assert [state.result[t].result for t in (a, b, c)] == [[2, 3, 4]] * 3


# --- 9. a Parameter copy's slug --------------------------------------------------------------


def test_a_parameter_copy_under_a_new_name_has_that_slug() -> None:
    x = Parameter("x", default=1)
    y = x.copy(name="y")
    assert (y.name, y.slug) == ("y", "y")
    assert x.copy().slug == "x"
    with Flow("two-params") as flow:
        inc(x)
        inc(y)
    assert {p.slug for p in flow.parameters()} == {"x", "y"}
    assert flow.run(parameters={"y": 5}).by_slug()["inc-2"].result == 6
