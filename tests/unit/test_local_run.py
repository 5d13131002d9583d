"""``flow.run()``: a flow run in this process, with no broker, through the same
task-run engine the workers use.

Each test builds a small flow, runs it, and checks what a user would look at:
the flow's state and message, and each task's state, result, message and attempts.
"""

from __future__ import annotations

import threading
import time
from datetime import timedelta
from itertools import pairwise
from typing import Any

import pytest

from orchestrator import (
    FAIL,
    SKIP,
    Flow,
    FlowRunState,
    FlowValidationError,
    Parameter,
    ParameterError,
    SerializationError,
    State,
    TaskRunState,
    task,
)
from orchestrator import triggers as T
from orchestrator.context import RunContext, current


@task
def one() -> int:
    return 1


@task
def double(x: int) -> int:
    return x * 2


@task
def boom() -> None:
    raise ValueError("the source is down")


# --- the returned state --------------------------------------------------------------------


def test_run_returns_every_task_state_and_result() -> None:
    # Given one -> double -> double
    with Flow("numbers") as flow:
        first = one()
        second = double(first)
        third = double(second)

    # When the flow runs
    state = flow.run()

    # Then the flow succeeded and reports every task with its state and result
    assert isinstance(state, FlowRunState)
    assert state.state is State.SUCCESS
    assert state.message == "all reference tasks succeeded"
    assert state.is_successful()
    assert set(state.result) == {first, second, third}
    assert state.result[third] == TaskRunState(State.SUCCESS, result=4, attempts=1)
    assert {slug: (s.state, s.result) for slug, s in state.by_slug().items()} == {
        "one": (State.SUCCESS, 1),
        "double": (State.SUCCESS, 2),
        "double-2": (State.SUCCESS, 4),
    }


def test_flow_fails_when_a_terminal_task_fails() -> None:
    # Given a flow whose terminal tasks are a success and a failure
    with Flow("half") as flow:
        one()
        boom()

    # When it runs
    state = flow.run()

    # Then the flow failed, naming the failed task, and the other task still ran
    assert state.state is State.FAILED
    assert state.is_failed()
    assert state.message == "some reference tasks failed: boom"
    assert state.by_slug()["one"].state is State.SUCCESS
    assert state.by_slug()["boom"].state is State.FAILED
    assert state.by_slug()["boom"].message == "ValueError: the source is down"


def test_flow_fails_when_a_terminal_task_is_trigger_failed() -> None:
    with Flow("chain") as flow:
        double(x=boom())
    state = flow.run()
    assert state.state is State.FAILED
    assert state.message == "some reference tasks failed: double"
    assert state.by_slug()["double"].state is State.TRIGGER_FAILED


def test_flow_succeeds_when_failure_is_handled_by_its_terminal_task() -> None:
    # Given a failing task followed by an all_failed handler, the only terminal task
    @task(trigger=T.all_failed)
    def alert() -> str:
        return "paged the on-call"

    with Flow("handled") as flow:
        alert(upstream_tasks=[boom()])

    # When it runs
    state = flow.run()

    # Then the flow's state follows its reference (terminal) task: Success
    assert state.state is State.SUCCESS
    assert state.by_slug()["boom"].state is State.FAILED
    assert state.by_slug()["alert"].result == "paged the on-call"


def test_reference_tasks_override_decides_the_flow_state() -> None:
    # Given a flow whose terminal task fails but whose chosen reference task succeeds
    with Flow("referenced") as flow:
        important = one()
        boom(upstream_tasks=[important])
    flow.set_reference_tasks([important])

    # When it runs
    state = flow.run()

    # Then the flow succeeds on the reference task alone
    assert state.state is State.SUCCESS
    assert state.by_slug()["boom"].state is State.FAILED


def test_reference_task_failure_fails_the_flow_even_if_terminal_tasks_succeed() -> None:
    @task(trigger=T.always_run)
    def cleanup() -> str:
        return "cleaned"

    with Flow("referenced") as flow:
        failing = boom()
        cleanup(upstream_tasks=[failing])
    flow.set_reference_tasks([failing])

    state = flow.run()

    assert state.state is State.FAILED
    assert state.message == "some reference tasks failed: boom"
    assert state.by_slug()["cleanup"].state is State.SUCCESS


def test_reference_tasks_given_to_the_flow_constructor() -> None:
    # Given an uncalled task that joins the flow inside the block, named as reference
    source = one.copy()
    with Flow("constructor", reference_tasks=[source]) as flow:
        boom(upstream_tasks=[source])
    # Then it decides the flow's state
    assert flow.reference_tasks() == [source]
    assert flow.run().state is State.SUCCESS


def test_reference_task_not_in_the_flow_is_refused() -> None:
    stranger = one.copy(name="stranger")
    with (
        pytest.raises(
            FlowValidationError, match="flow 'refs': reference task 'stranger' is not in the flow"
        ),
        Flow("refs", reference_tasks=[stranger]),
    ):
        one()


# --- skips ---------------------------------------------------------------------------------


def test_skip_signal_skips_downstream_tasks() -> None:
    # Given a task that raises SKIP, and two tasks downstream of it
    calls: list[str] = []

    @task
    def check() -> int:
        raise SKIP("no new data today")

    @task
    def process(x: int) -> int:
        calls.append("process")
        return x

    with Flow("skipping") as flow:
        process(process(check()))

    # When the flow runs
    state = flow.run()

    # Then the skip propagates down the chain without running anything,
    # and skips count as success for the flow
    by_slug = state.by_slug()
    assert by_slug["check"] == TaskRunState(State.SKIPPED, message="no new data today", attempts=1)
    assert by_slug["process"].state is State.SKIPPED
    assert by_slug["process"].message == "upstream task skipped: check"
    assert by_slug["process-2"].state is State.SKIPPED
    assert by_slug["process-2"].message == "upstream task skipped: process"
    assert calls == []
    assert state.state is State.SUCCESS


def test_skip_does_not_propagate_when_skip_on_upstream_skip_is_false() -> None:
    # Given a task that runs even when its upstream skipped
    @task
    def check() -> int:
        raise SKIP()

    @task(skip_on_upstream_skip=False)
    def report(x: int | None) -> str:
        return f"got {x}"

    with Flow("not-skipping") as flow:
        report(check())

    # When the upstream skips
    state = flow.run()

    # Then it runs (a skipped upstream's result is None)
    assert state.by_slug()["check"].state is State.SKIPPED
    assert state.by_slug()["check"].message == "skipped by the task"
    assert state.by_slug()["report"].state is State.SUCCESS
    assert state.by_slug()["report"].result == "got None"


# --- retries --------------------------------------------------------------------------------


def test_task_failing_twice_then_succeeding_with_two_retries_succeeds() -> None:
    # Given a task that fails on its first two attempts, with max_retries=2
    attempts: list[int] = []

    @task(max_retries=2)
    def flaky() -> str:
        attempts.append(len(attempts) + 1)
        if len(attempts) < 3:
            raise ConnectionError(f"attempt {len(attempts)} lost the connection")
        return "third time lucky"

    with Flow("retrying") as flow:
        flaky()

    # When the flow runs
    state = flow.run()

    # Then the task succeeded on its third attempt
    assert state.by_slug()["flaky"] == TaskRunState(
        State.SUCCESS, result="third time lucky", attempts=3
    )
    assert attempts == [1, 2, 3]
    assert state.state is State.SUCCESS


def test_task_always_failing_fails_after_all_its_attempts() -> None:
    # Given a task that always fails, with max_retries=2
    attempts: list[int] = []

    @task(max_retries=2)
    def broken() -> None:
        attempts.append(1)
        raise KeyError("missing column 'id'")

    with Flow("exhausted") as flow:
        double(broken())

    # When the flow runs
    state = flow.run()

    # Then it failed after 3 attempts, with the exception in its message,
    # and its downstream never ran
    broken_state = state.by_slug()["broken"]
    assert broken_state.state is State.FAILED
    assert broken_state.attempts == 3
    assert broken_state.message == "KeyError: \"missing column 'id'\""
    assert len(attempts) == 3
    assert state.by_slug()["double"].state is State.TRIGGER_FAILED
    assert state.state is State.FAILED


def test_task_without_retries_runs_once() -> None:
    with Flow("once") as flow:
        boom()
    assert flow.run().by_slug()["boom"].attempts == 1


def test_retry_delay_is_waited_between_attempts() -> None:
    # Given a task failing twice with a small retry delay
    started: list[float] = []

    @task(max_retries=2, retry_delay=timedelta(milliseconds=50))
    def slow_to_recover() -> str:
        started.append(time.monotonic())
        if len(started) < 3:
            raise RuntimeError("not yet")
        return "recovered"

    with Flow("delayed") as flow:
        slow_to_recover()

    # When the flow runs
    state = flow.run()

    # Then the delay was honoured before each retry (a lower bound only)
    assert state.by_slug()["slow_to_recover"].result == "recovered"
    assert len(started) == 3
    gaps = [b - a for a, b in pairwise(started)]
    assert all(gap >= 0.045 for gap in gaps), gaps


def test_fail_signal_fails_at_once_without_retries() -> None:
    # Given a task with retries that raises FAIL
    attempts: list[int] = []

    @task(max_retries=3)
    def refuse() -> None:
        attempts.append(1)
        raise FAIL("input is invalid; retrying will not help")

    with Flow("refusing") as flow:
        refuse()

    # When the flow runs
    state = flow.run()

    # Then it failed on its first attempt with the signal's message
    assert state.by_slug()["refuse"] == TaskRunState(
        State.FAILED, message="input is invalid; retrying will not help", attempts=1
    )
    assert attempts == [1]


# --- timeouts -------------------------------------------------------------------------------


def test_task_past_its_timeout_is_timed_out() -> None:
    # Given a task that would block for seconds, with a 0.1 s timeout
    release = threading.Event()

    @task(timeout=0.1)
    def hang() -> str:
        release.wait(10)
        return "too late"

    with Flow("hanging") as flow:
        double(hang())

    # When the flow runs
    try:
        state = flow.run()
    finally:
        release.set()

    # Then the task is TimedOut, its downstream TriggerFailed, the flow Failed
    assert state.by_slug()["hang"] == TaskRunState(
        State.TIMED_OUT, message="timed out after 0.1s", attempts=1
    )
    assert state.by_slug()["double"].state is State.TRIGGER_FAILED
    assert state.state is State.FAILED


def test_timed_out_task_is_retried() -> None:
    release = threading.Event()
    attempts: list[int] = []

    @task(timeout=0.1, max_retries=1)
    def hang_once() -> str:
        attempts.append(1)
        if len(attempts) == 1:
            release.wait(10)
        return "second attempt in time"

    with Flow("hanging-once") as flow:
        hang_once()
    try:
        state = flow.run()
    finally:
        release.set()

    assert state.by_slug()["hang_once"] == TaskRunState(
        State.SUCCESS, result="second attempt in time", attempts=2
    )


def test_task_within_its_timeout_succeeds() -> None:
    @task(timeout=5)
    def quick() -> int:
        return 42

    with Flow("quick") as flow:
        quick()
    assert flow.run().by_slug()["quick"].result == 42


# --- JSON results and parameters ------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "type_name"),
    [
        pytest.param({1, 2}, "set", id="a-set"),
        pytest.param(object(), "object", id="an-object"),
        pytest.param({"rows": [1, b"raw"]}, "bytes", id="bytes-inside-a-dict"),
    ],
)
def test_non_json_result_fails_the_task_naming_it_and_the_type(value: Any, type_name: str) -> None:
    # Given a task returning something that cannot travel as JSON
    @task(max_retries=2)
    def produce() -> Any:
        return value

    with Flow("not-json") as flow:
        double(produce())

    # When the flow runs
    state = flow.run()

    # Then the task failed (without retrying) with a message naming it and the type
    produced = state.by_slug()["produce"]
    assert produced.state is State.FAILED
    assert produced.result is None
    assert produced.attempts == 1
    assert produced.message is not None
    assert produced.message.startswith(
        f"result of task 'produce' is not JSON-serialisable: a value of type {type_name}"
    )
    assert state.by_slug()["double"].state is State.TRIGGER_FAILED


def test_parameter_value_reaches_downstream_tasks() -> None:
    # Given a parameter with a default feeding a task
    with Flow("parametrised") as flow:
        double(Parameter("n", default=2))

    # When the flow runs with and without a value
    # Then the task computes from the value given, else the default
    given = flow.run(parameters={"n": 21})
    default = flow.run()
    assert given.by_slug() == {
        "double": TaskRunState(State.SUCCESS, result=42, attempts=1),
        "n": TaskRunState(State.SUCCESS, result=21, attempts=1),
    }
    assert default.by_slug()["double"].result == 4


def test_unknown_parameter_is_refused_before_anything_runs() -> None:
    # Given a flow with one parameter and a task that records whether it ran
    ran: list[str] = []

    @task
    def record(n: int) -> None:
        ran.append("record")

    with Flow("strict") as flow:
        record(Parameter("n", default=1))

    # When it is run with a parameter it does not declare
    with pytest.raises(
        ParameterError, match=r"flow 'strict' has no parameter\(s\) m \(it accepts: n\)"
    ):
        flow.run(parameters={"m": 1})

    # Then nothing ran
    assert ran == []


def test_missing_required_parameter_is_refused_before_anything_runs() -> None:
    ran: list[str] = []

    @task
    def record(a: int, b: int) -> None:
        ran.append("record")

    with Flow("required") as flow:
        record(Parameter("a"), Parameter("b"))

    with pytest.raises(ParameterError, match=r"flow 'required' needs required parameter\(s\) a, b"):
        flow.run()
    with pytest.raises(ParameterError, match=r"needs required parameter\(s\) b$"):
        flow.run(parameters={"a": 1})
    assert ran == []


def test_non_json_parameter_is_refused_naming_the_type() -> None:
    with Flow("json-params") as flow:
        double(Parameter("n"))
    with pytest.raises(
        SerializationError,
        match="parameters of flow 'json-params' is not JSON-serialisable: a value of type set",
    ):
        flow.run(parameters={"n": {1, 2}})


# --- the run context -------------------------------------------------------------------------


def test_context_inside_a_task_names_the_task_and_the_parameters() -> None:
    # Given a task that reads the run context
    seen: list[RunContext | None] = []

    @task
    def inspect_context(n: int) -> str:
        seen.append(current())
        ctx = current()
        assert ctx is not None
        return f"{ctx.task_slug} sees n={ctx.parameters['n']}"

    with Flow("contextual") as flow:
        inspect_context(Parameter("n", default=1), task_args={"name": "look"})

    # When the flow runs
    state = flow.run(parameters={"n": 7})

    # Then the task saw its slug, the flow, the parameters and its attempt
    assert state.by_slug()["look"].result == "look sees n=7"
    ctx = seen[0]
    assert ctx is not None
    assert (ctx.task_slug, ctx.flow_name, ctx.parameters, ctx.attempt, ctx.local) == (
        "look",
        "contextual",
        {"n": 7},
        1,
        True,
    )
    assert ctx.flow_run_id is None
    # and outside any task there is no context
    assert current() is None


def test_context_counts_attempts() -> None:
    attempts_seen: list[int] = []

    @task(max_retries=2)
    def flaky() -> int:
        ctx = current()
        assert ctx is not None
        attempts_seen.append(ctx.attempt)
        if ctx.attempt < 3:
            raise RuntimeError("again")
        return ctx.attempt

    with Flow("attempts") as flow:
        flaky()
    assert flow.run().by_slug()["flaky"].result == 3
    assert attempts_seen == [1, 2, 3]
