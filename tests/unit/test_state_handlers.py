"""State handlers (issue 23, item 10) in ``flow.run()``: ``Task(state_handlers=...)``
and ``Flow(state_handlers=...)`` called as ``handler(obj, old, new)`` on every
transition, a returned state replacing the new one, a raising handler logged and
failing the run. The worker side is in tests/integration/test_prefect1.py."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest

from orchestrator import (
    SKIP,
    Flow,
    FlowRunState,
    FlowValidationError,
    State,
    TaskRunState,
    task,
)
from orchestrator.context import current
from orchestrator.loader import flows_in
from tests.webhook import Webhook

ROOT = Path(__file__).resolve().parents[2]


class Recorder:
    """A state handler that records each transition it sees as ``slug: old > new``."""

    def __init__(self) -> None:
        self.seen: list[str] = []

    def __call__(self, obj: Any, old: Any, new: Any) -> None:
        ctx = current()
        where = ctx.task_slug if ctx and ctx.task_slug else obj.name
        if ctx and ctx.map_index >= 0:
            where += f"[{ctx.map_index}]"
        self.seen.append(f"{where}: {old.state.value} > {new.state.value}")


def test_every_transition_of_a_task_run_and_of_the_flow_run_is_seen_in_order() -> None:
    # Given a flow and tasks with a recording handler: one retried once, one skipped
    rec = Recorder()
    calls: list[int] = []

    @task(max_retries=1, state_handlers=[rec])
    def flaky() -> int:
        calls.append(1)
        if len(calls) == 1:
            raise ValueError("first attempt fails")
        return 7

    @task(state_handlers=[rec])
    def skipper(x: int) -> int:
        raise SKIP("nothing to do")

    @task(state_handlers=[rec])
    def after(x: int) -> int:
        return x

    with Flow("handled", state_handlers=[rec]) as flow:
        after(skipper(flaky()))

    # When it runs
    state = flow.run()

    # Then each transition was seen once, in the order it happened
    assert state.state is State.SUCCESS
    assert rec.seen == [
        "handled: Pending > Running",
        "flaky: Pending > Running",
        "flaky: Running > Retrying",
        "flaky: Retrying > Running",
        "flaky: Running > Success",
        "skipper: Pending > Running",
        "skipper: Running > Skipped",
        "after: Pending > Skipped",
        "handled: Running > Success",
    ]


def test_a_mapped_task_s_handlers_see_the_parent_and_each_child() -> None:
    rec = Recorder()

    @task(state_handlers=[rec])
    def inc(x: int) -> int:
        return x + 1

    with Flow("mapped-handled") as flow:
        inc.map([1, 2])
    assert flow.run().by_slug()["inc"].result == [2, 3]
    assert rec.seen == [
        "inc: Pending > Running",
        "inc[0]: Pending > Running",
        "inc[0]: Running > Success",
        "inc[1]: Pending > Running",
        "inc[1]: Running > Success",
        "inc: Running > Success",
    ]


def test_the_states_given_to_a_handler_answer_prefect1_questions() -> None:
    seen: list[tuple[bool, bool, str | None]] = []

    def notify(t: Any, old: TaskRunState, new: TaskRunState) -> TaskRunState:
        if new.is_finished():
            seen.append((new.is_failed(), old.is_running(), new.message))
        return new

    @task(state_handlers=[notify])
    def boom() -> None:
        raise ValueError("the source is down")

    with Flow("notified") as flow:
        boom()
    flow.run()
    assert seen == [(True, True, "ValueError: the source is down")]


def test_a_handler_may_replace_the_new_state() -> None:
    # Given a handler that turns a failure into a success with a fallback result
    def recover(t: Any, old: TaskRunState, new: TaskRunState) -> TaskRunState | None:
        if new.is_failed():
            return TaskRunState(State.SUCCESS, result="fallback", message="recovered")
        return None

    @task(state_handlers=[recover])
    def boom() -> None:
        raise ValueError("the source is down")

    @task
    def use(x: str) -> str:
        return x.upper()

    with Flow("recovered") as flow:
        use(boom())

    # Then the replacement is what the task run ends in, and downstream sees it
    state = flow.run()
    assert state.by_slug()["boom"] == TaskRunState(
        State.SUCCESS, result="fallback", message="recovered", attempts=1
    )
    assert state.by_slug()["use"].result == "FALLBACK"
    assert state.state is State.SUCCESS


def test_a_handler_replacing_running_with_a_final_state_keeps_the_code_from_running() -> None:
    ran: list[int] = []

    def veto(t: Any, old: TaskRunState, new: TaskRunState) -> State | None:
        return State.SKIPPED if new.is_running() else None

    @task(state_handlers=[veto])
    def guarded() -> None:
        ran.append(1)

    with Flow("vetoed") as flow:
        guarded()
    assert flow.run().by_slug()["guarded"].state is State.SKIPPED
    assert ran == []


def test_a_raising_handler_is_logged_and_fails_the_task_run(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # Given a task whose handler raises once the task succeeded
    def broken(t: Any, old: TaskRunState, new: TaskRunState) -> None:
        if new.is_successful():
            raise RuntimeError("webhook unreachable")

    @task(state_handlers=[broken])
    def fine() -> int:
        return 1

    with Flow("broken-handler") as flow:
        fine()

    # When the flow runs
    with caplog.at_level(logging.ERROR, logger="orchestrator.handlers"):
        state = flow.run()

    # Then the task run failed with a message naming the handler, and it was logged
    message = (
        "state handler test_a_raising_handler_is_logged_and_fails_the_task_run.<locals>.broken "
        "of task 'fine' raised RuntimeError: webhook unreachable"
    )
    assert state.by_slug()["fine"].state is State.FAILED
    assert state.by_slug()["fine"].message == message
    assert state.state is State.FAILED
    assert message in caplog.text


def test_a_raising_flow_handler_at_the_start_fails_the_run_before_any_task() -> None:
    ran: list[int] = []

    def broken(f: Flow, old: FlowRunState, new: FlowRunState) -> None:
        raise RuntimeError("no config")

    @task
    def work() -> None:
        ran.append(1)

    with Flow("never-started", state_handlers=[broken]) as flow:
        work()
    state = flow.run()
    assert state.state is State.FAILED
    assert "raised RuntimeError: no config" in (state.message or "")
    assert ran == [] and state.result == {}


def test_a_flow_handler_may_replace_its_final_state_and_keeps_the_task_states() -> None:
    def forgive(f: Flow, old: FlowRunState, new: FlowRunState) -> State | None:
        return State.SUCCESS if new.is_failed() else None

    @task
    def boom() -> None:
        raise ValueError("down")

    with Flow("forgiven", state_handlers=[forgive]) as flow:
        boom()
    state = flow.run()
    assert state.state is State.SUCCESS
    assert state.by_slug()["boom"].state is State.FAILED


def test_a_handler_choosing_a_state_the_run_cannot_enter_fails_it() -> None:
    def confused(t: Any, old: TaskRunState, new: TaskRunState) -> State | None:
        return State.RUNNING if new.is_finished() else None

    @task(state_handlers=[confused])
    def fine() -> int:
        return 1

    with Flow("confused") as flow:
        fine()
    st = flow.run().by_slug()["fine"]
    assert st.state is State.FAILED
    assert (
        st.message
        == "a state handler of task 'fine' chose Running, which the run cannot enter at its end"
    )


def test_on_failure_is_called_once_when_the_task_or_the_flow_run_fails() -> None:
    calls: list[tuple[str, State, str | None]] = []

    def on_failure(obj: Any, state: Any) -> None:
        calls.append((obj.name, state.state, state.message))

    @task(max_retries=1, on_failure=on_failure)
    def boom() -> None:
        raise ValueError("down")

    with Flow("failing", on_failure=on_failure) as flow:
        boom()
    flow.run()
    assert calls == [
        ("boom", State.FAILED, "ValueError: down"),
        ("failing", State.FAILED, "some reference tasks failed: boom"),
    ]


def test_a_state_handler_must_be_callable() -> None:
    with pytest.raises(FlowValidationError, match="a state handler must be callable"):
        task(lambda: 1, state_handlers=["not a function"])  # type: ignore[list-item]


def test_handlers_change_a_flow_s_structure_only_when_set() -> None:
    @task
    def one() -> int:
        return 1

    with Flow("plain") as plain:
        one()
    assert "state_handlers" not in plain.structure()
    assert "state_handlers" not in plain.structure()["tasks"][0]
    with Flow("plain", state_handlers=[Recorder()]) as handled:
        one.copy(state_handlers=[Recorder()])()
    assert handled.structural_hash() != plain.structural_hash()


# --- the example: a branch and a failure notification ---------------------------------------


def test_the_example_posts_to_the_webhook_when_its_branch_fails(
    webhook: Webhook, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given the example flow, with its webhook pointed at a local server
    monkeypatch.setenv("NOTIFY_WEBHOOK_URL", webhook.url)
    [flow] = flows_in(str(ROOT / "examples" / "branch_and_notify.py"))

    # When a small batch with a bad order takes the "at once" branch, which fails
    failed = flow.run(parameters={"orders": [5, -1]})
    # and a large batch takes the other branch
    fine = flow.run(parameters={"orders": [1, 2, 3, 4]})

    # Then the failed run posted for the task and for the flow run, the other nothing
    assert failed.state is State.FAILED
    assert fine.state is State.SUCCESS
    assert fine.by_slug()["report"].result == "4 orders processed in batches"
    assert fine.by_slug()["process_at_once"].state is State.SKIPPED
    assert [p["text"] for p in webhook.posted] == [
        "process_at_once failed: ValueError: order -1 is negative (flow run None)",
        "process-orders failed: some reference tasks failed: report (flow run None)",
    ]
