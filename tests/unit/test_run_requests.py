"""What a flow author or client gives and is refused or taken as meant, checked
without a fleet: a task inside a ``parameters`` dict (refused when the flow is
built), labels given as a string (one label), a timedelta start time (from now),
the size limit of a task's result, and what a waiting task takes from a child."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from orchestrator import (
    ConcurrencyLimitError,
    Flow,
    FlowValidationError,
    NestedTaskError,
    Parameter,
    ParameterError,
    StartFlowRun,
    State,
    task,
)
from orchestrator.engine import ChildTaskRun, mirror_outcome, run_code
from orchestrator.labels import check_labels
from orchestrator.requests import FlowRunRequest
from orchestrator.tasks import create_flow_run


@task
def make_params() -> dict[str, str]:
    return {"x": "1"}


@task
def takes(value: object) -> object:
    return value


@pytest.mark.parametrize("where", ["start_flow_run", "create_flow_run", "any_task"])
def test_a_task_inside_a_parameters_dict_is_refused_when_the_flow_is_built(where: str) -> None:
    with pytest.raises(NestedTaskError) as info, Flow("parent"):
        p = Parameter("p")
        if where == "start_flow_run":
            StartFlowRun(flow_name="child", project_name="proj")(parameters={"key": p})
        elif where == "create_flow_run":
            create_flow_run(flow_name="child", project_name="proj", parameters={"key": p})
        else:
            takes({"outer": [1, {"key": p}]})
    message = str(info.value)
    # a TypeError as in Prefect 1, and a FlowValidationError like every build error
    assert isinstance(info.value, TypeError) and isinstance(info.value, FlowValidationError)
    assert "['key']" in message and "'p'" in message
    assert "as the whole" in message and "build the value in a task" in message


def test_a_task_inside_start_flow_run_parameters_is_refused_at_once() -> None:
    with pytest.raises(NestedTaskError, match=r"parameters\['key'\]"):
        StartFlowRun(flow_name="child", project_name="proj", parameters={"key": make_params})


def test_a_task_as_the_whole_parameters_argument_is_a_data_edge() -> None:
    with Flow("parent") as flow:
        params = make_params()
        start = StartFlowRun(flow_name="child", project_name="proj")(parameters=params)
    [edge] = flow.upstream_edges(start)
    assert (edge.upstream, edge.key) == (params, "parameters")


def test_labels_given_as_a_string_are_one_label() -> None:
    assert check_labels("gpu") == ("gpu",)
    assert check_labels(["gpu", "fast"]) == ("gpu", "fast")
    assert check_labels(None) == ()
    assert Flow("f", labels="gpu").labels == ["gpu"]
    assert StartFlowRun(flow_name="c", project_name="p", labels="gpu").labels == ["gpu"]
    assert FlowRunRequest("f", "p", labels="gpu").label_names == ("gpu",)
    with pytest.raises(ConcurrencyLimitError, match="string or a list"):
        check_labels(5)  # type: ignore[arg-type]


def test_a_timedelta_start_time_counts_from_the_request() -> None:
    before = datetime.now(UTC)
    request = FlowRunRequest("f", "p", scheduled_start_time=timedelta(days=1))
    after = datetime.now(UTC)
    assert request.start_at is not None
    assert before + timedelta(days=1) <= request.start_at <= after + timedelta(days=1)
    assert request.starts_later
    assert not FlowRunRequest("f", "p", scheduled_start_time=timedelta(0)).starts_later
    with pytest.raises(ParameterError, match="timezone-aware datetime or a timedelta"):
        FlowRunRequest("f", "p", scheduled_start_time=datetime(2030, 1, 1))


def test_a_result_over_the_limit_fails_the_task_naming_its_size() -> None:
    big = takes.copy()
    big.slug = "big"
    outcome = run_code(big, {"value": "x" * 100}, attempt=1, max_bytes=50)
    assert outcome.state is State.FAILED and outcome.result is None
    assert outcome.message == (
        "result of task 'big': 102 bytes as JSON, over the limit of 50 "
        "(ORCHESTRATOR_MAX_VALUE_BYTES)"
    )
    assert run_code(big, {"value": "x" * 48}, attempt=1, max_bytes=50).state is State.SUCCESS


def test_a_result_is_limited_by_the_environment_by_default(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("ORCHESTRATOR_MAX_VALUE_BYTES", "10")
    outcome = run_code(takes, {"value": "x" * 20}, attempt=1)
    assert outcome.state is State.FAILED and "over the limit of 10" in (outcome.message or "")


RUNS = {
    ("first", -1): (State.SUCCESS, "one"),
    ("mapped", -1): (State.SUCCESS, ["a", "b"]),
    ("mapped", 1): (State.SUCCESS, "b"),
    ("skipped", -1): (State.SKIPPED, None),
    ("broken", -1): (State.FAILED, None),
}


@pytest.mark.parametrize(
    ("child", "takes", "expected"),
    [
        (State.SUCCESS, ChildTaskRun("first"), (State.SUCCESS, "one")),
        (State.SUCCESS, ChildTaskRun("mapped", 1), (State.SUCCESS, "b")),
        (State.SUCCESS, ChildTaskRun("skipped"), (State.SUCCESS, None)),
        (State.SUCCESS, ChildTaskRun("broken"), (State.FAILED, None)),
        (State.SUCCESS, ChildTaskRun("nosuch"), (State.FAILED, None)),
        (State.FAILED, ChildTaskRun("first"), (State.FAILED, None)),
        (State.TIMED_OUT, ChildTaskRun("first"), (State.FAILED, None)),
        (State.CANCELLED, ChildTaskRun("first"), (State.CANCELLED, None)),
    ],
)
def test_a_waiting_task_takes_one_task_runs_result_when_the_child_succeeded(
    child: State, takes: ChildTaskRun, expected: tuple[State, object]
) -> None:
    state, message, result = mirror_outcome("c1", child, "why", RUNS, takes)
    assert (state, result) == expected
    assert "c1" in message
    if expected[0] is not State.SUCCESS:
        assert child.value in message or str(takes) in message


def test_a_waiting_task_without_takes_gets_the_structured_result() -> None:
    state, _, result = mirror_outcome("c1", State.SUCCESS, None, RUNS)
    assert state is State.SUCCESS
    assert result == {
        "flow_run_id": "c1",
        "state": "Success",
        "task_results": {"first": "one", "mapped": ["a", "b"], "skipped": None, "broken": None},
    }


def test_child_task_run_travels_as_json() -> None:
    ref = ChildTaskRun("mapped", 3)
    assert ChildTaskRun.from_json(ref.as_json()) == ref
    assert ChildTaskRun.from_json(None) is None
    assert str(ref) == "mapped[3]" and str(ChildTaskRun("one")) == "one"
