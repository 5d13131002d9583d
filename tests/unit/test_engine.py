"""The pure core's shared steps: the one attempt sequence (``engine.attempt``), the one
map fan-out (``mapping.expand``), the active-flow stack, and the services the core
asks the client layer for (``hooks``). No broker, no database."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import pytest

import orchestrator.hooks as hooks
from orchestrator.context import RunContext, current
from orchestrator.engine import Outcome, Upstream, WaitForFlowRun, attempt
from orchestrator.errors import ConfigurationError
from orchestrator.flow import Flow
from orchestrator.mapping import Element, element_constants, expand, mapped_outcome
from orchestrator.states import State
from orchestrator.task import Task, task


@task
def add(x: int, y: int = 0) -> int:
    return x + y


def _bound(fn: Task, **kwargs: Any) -> Task:
    """A copy of ``fn`` bound into a throwaway flow, so it has a slug."""
    with Flow("scratch"):
        return fn(**kwargs)


def _ctx(slug: str, attempt_number: int = 1) -> RunContext:
    return RunContext(
        flow_run_id="run-1", flow_name="scratch", task_slug=slug, attempt=attempt_number
    )


# --- attempt --------------------------------------------------------------------------


def test_attempt_runs_the_code_inside_its_context_and_around() -> None:
    # Given a task whose code looks at the run context, and an `around` that counts
    seen: list[RunContext | None] = []
    entered: list[str] = []

    @task
    def look(x: int) -> int:
        seen.append(current())
        return x

    t = _bound(look, x=0)

    @contextlib.contextmanager
    def around() -> Iterator[None]:
        entered.append("in")
        yield
        entered.append("out")

    # When one attempt runs with a constant and an upstream result
    ctx = _ctx(t.slug or "")
    up = [Upstream("source", "x", State.SUCCESS, 41)]
    outcome = attempt(t, {"x": 0}, up, ctx, around=around)

    # Then the upstream result is the argument, the code saw the context, and
    # `around` wrapped it
    assert outcome == Outcome(State.SUCCESS, result=41)
    assert seen == [ctx]
    assert entered == ["in", "out"]
    assert current() is None


def test_attempt_skipped_by_the_upstream_never_enters_around() -> None:
    # Given a task whose upstream was skipped
    t = _bound(add, x=1)
    entered: list[str] = []

    @contextlib.contextmanager
    def around() -> Iterator[None]:
        entered.append("in")
        yield

    # When it is attempted
    outcome = attempt(
        t, {"x": 1}, [Upstream("up", None, State.SKIPPED)], _ctx("add"), around=around
    )

    # Then it is Skipped naming the upstream, and its code never ran
    assert outcome.state is State.SKIPPED
    assert outcome.message == "upstream task skipped: up"
    assert entered == []


def test_attempt_retries_by_the_context_attempt_number() -> None:
    # Given a task with one retry whose code fails
    @task(max_retries=1, retry_delay=2)
    def flaky() -> None:
        raise ConnectionError("lost")

    t = _bound(flaky)

    # When its first and its second attempt fail
    first = attempt(t, {}, [], _ctx("flaky", 1))
    second = attempt(t, {}, [], _ctx("flaky", 2))

    # Then the first asks for a retry after the delay and the second is final
    assert (first.state, first.retry_in) == (State.RETRYING, 2.0)
    assert first.message == "ConnectionError: lost (attempt 1 of 2)"
    assert (second.state, second.message) == (State.FAILED, "ConnectionError: lost")


def test_attempt_passes_on_a_request_to_mirror_a_child_run() -> None:
    # Given a task that asks to mirror a child flow run
    @task
    def start() -> WaitForFlowRun:
        return WaitForFlowRun("child-1")

    # When it is attempted
    outcome = attempt(_bound(start), {}, [], _ctx("start"))

    # Then the outcome says so (the caller runs or splices the child)
    assert outcome.state is State.RUNNING
    assert outcome.wait_for == WaitForFlowRun("child-1")


# --- expand ---------------------------------------------------------------------------


def test_expand_gives_one_element_per_child_over_the_shortest_list() -> None:
    t = _bound(add, x=[1, 2, 3])
    up = [Upstream("ys", "y", State.SUCCESS, [10, 20], mapped=True)]
    assert expand(t, {"x": [1, 2, 3]}, {"x": "mapped"}, up) == [
        Element({"x": 1, "y": 10}),
        Element({"x": 2, "y": 20}),
    ]


def test_expand_flattens_a_list_of_lists() -> None:
    t = _bound(add, x=[[1], [2, 3]])
    assert expand(t, {"x": [[1], [2, 3]]}, {"x": "flatten"}, []) == [
        Element({"x": 1}),
        Element({"x": 2}),
        Element({"x": 3}),
    ]


def test_expand_over_a_non_list_fails_naming_the_task_and_argument() -> None:
    t = _bound(add, x=[1])
    up = [Upstream("source", "y", State.SUCCESS, 7, mapped=True)]
    outcome = expand(t, {"x": [1]}, {"x": "mapped"}, up)
    assert isinstance(outcome, Outcome)
    assert outcome.state is State.FAILED
    assert outcome.message == (
        "task 'add' maps over argument 'y', but task 'source' gave int, not a list"
    )


def test_expand_ends_at_once_on_a_skipped_upstream_but_not_on_a_mapped_one() -> None:
    t = _bound(add, x=[1])
    skipped = [Upstream("gate", None, State.SKIPPED)]
    stop = expand(t, {"x": [1]}, {"x": "mapped"}, skipped)
    assert isinstance(stop, Outcome) and stop.state is State.SKIPPED
    # a mapped upstream's children are checked per child, not for the whole map
    mapped_up = [
        Upstream("ys", "y", State.FAILED, [5], mapped=True, children=(State.FAILED,)),
    ]
    assert expand(t, {"x": [1]}, {"x": "mapped"}, mapped_up) == [
        Element({"x": 1, "y": 5}, {"y": State.FAILED})
    ]


def test_expand_flattens_a_mapped_upstream_a_failed_child_one_element_in_its_state() -> None:
    t = _bound(add, x=[])
    up = [
        Upstream(
            "ys",
            "y",
            State.FAILED,
            [[1, 2], None, None, [3]],
            mapped=True,
            flatten=True,
            children=(State.SUCCESS, State.FAILED, State.SKIPPED, State.SUCCESS),
        )
    ]
    elements = expand(t, {}, {}, up)
    assert elements == [
        Element({"y": 1}, {"y": State.SUCCESS}),
        Element({"y": 2}, {"y": State.SUCCESS}),
        Element({"y": None}, {"y": State.FAILED}),
        Element({"y": None}, {"y": State.SKIPPED}),
        Element({"y": 3}, {"y": State.SUCCESS}),
    ]


def test_expand_over_empty_lists_gives_no_children_and_mapped_outcome_succeeds() -> None:
    t = _bound(add, x=[])
    assert expand(t, {"x": []}, {"x": "mapped"}, []) == []
    assert mapped_outcome([]).state is State.SUCCESS


def test_element_constants_replace_only_the_mapped_ones() -> None:
    constants = {"x": [1, 2], "y": 5}
    assert element_constants(constants, {"x": "mapped"}, Element({"x": 2})) == {"x": 2, "y": 5}


def test_an_element_crosses_the_wire_as_json() -> None:
    element = Element({"x": 1}, {"x": State.SKIPPED})
    assert Element.from_wire(element.values, element.wire_states()) == element
    assert Element({"x": 1}).wire_states() is None


# --- the active flow --------------------------------------------------------------------


def test_nested_flows_bind_into_the_innermost_and_restore_the_outer() -> None:
    with Flow("outer") as outer:
        assert Flow.active() is outer
        with Flow("inner") as inner:
            assert Flow.active() is inner
            add(x=1)
        assert Flow.active() is outer
        add(x=2)
    assert Flow.active() is None
    assert len(inner.tasks) == len(outer.tasks) == 1


# --- hooks ------------------------------------------------------------------------------


class _Services:
    def __init__(self) -> None:
        self.registered: list[tuple[str, str, str | None]] = []
        self.children: list[str] = []

    def register_flow(self, flow: Flow, project_name: str, import_ref: str | None) -> int:
        self.registered.append((flow.name, project_name, import_ref))
        return 7

    def run_child(self, task: Task, wait_for: WaitForFlowRun) -> Outcome:
        self.children.append(wait_for.flow_run_id)
        return Outcome(State.FAILED, {"flow_run_id": wait_for.flow_run_id}, "child failed")


def test_without_installed_services_registering_is_a_clear_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(hooks, "_installed", None)
    with Flow("lonely") as flow:
        add(x=1)
    with pytest.raises(ConfigurationError, match="import orchestrator"):
        flow.register("project")


def test_register_and_child_runs_go_through_the_installed_services(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Given installed services, and a flow with a task that mirrors a child run
    services = _Services()
    monkeypatch.setattr(hooks, "_installed", None)
    hooks.install(services)

    @task
    def start() -> WaitForFlowRun:
        return WaitForFlowRun("child-9")

    with Flow("parent") as flow:
        start()

    # When the flow is registered and run
    version = flow.register("project", import_ref="module:flow")
    state = flow.run()

    # Then both went through the services, and the task took the child's outcome
    assert version == 7
    assert services.registered == [("parent", "project", "module:flow")]
    assert services.children == ["child-9"]
    assert state.by_slug()["start"].state is State.FAILED
    assert state.by_slug()["start"].message == "child failed"
    assert state.state is State.FAILED
