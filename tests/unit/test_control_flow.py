"""Control flow (issue 23, item 11) in ``flow.run()``: ``case``, ``switch``, ``ifelse``
and ``merge`` with Prefect 1's semantics: a branch not taken ends Skipped with what
follows it, ``merge`` takes the first result that is not None. The worker side is
in tests/integration/test_prefect1.py."""

from __future__ import annotations

from typing import Any

import pytest

from orchestrator import (
    Flow,
    FlowRunState,
    FlowValidationError,
    Parameter,
    State,
    case,
    ifelse,
    merge,
    switch,
    task,
)
from orchestrator.control_flow import Merge

S, SK, TF = State.SUCCESS, State.SKIPPED, State.TRIGGER_FAILED


@task
def pick(x: Any) -> Any:
    return x


@task
def shout(x: str) -> str:
    return x.upper()


@task
def a_branch() -> str:
    return "A"


@task
def b_branch() -> str:
    return "B"


@task
def boom() -> None:
    raise ValueError("down")


def _states(state: FlowRunState) -> dict[str, State]:
    return {slug: st.state for slug, st in state.by_slug().items()}


def test_switch_runs_the_matching_branch_and_skips_the_others_and_what_follows() -> None:
    # Given a switch on a condition returning "b", with a task after each branch
    with Flow("switch") as flow:
        a, b = a_branch(), b_branch()
        switch(pick("b"), {"a": a, "b": b})
        after_a, after_b = shout(a), shout(b)

    # When it runs
    state = flow.run()

    # Then branch b and what follows it ran; branch a and what follows it skipped
    assert state.result[b].result == "B" and state.result[after_b].result == "B"
    assert state.result[a].state is SK and state.result[after_a].state is SK
    assert state.result[a].message == "upstream task skipped: case-a"
    assert state.state is S


@pytest.mark.parametrize(("value", "taken"), [(1, "yes"), (0, "no"), ("", "no"), ([0], "yes")])
def test_ifelse_and_merge_take_the_branch_by_truth_and_join_its_result(
    value: Any, taken: str
) -> None:
    @task
    def yes() -> str:
        return "yes"

    @task
    def no() -> str:
        return "no"

    with Flow("ifelse") as flow:
        y, n = yes(), no()
        ifelse(pick(value), y, n)
        joined = merge(y, n)
    state = flow.run()
    assert state.result[joined].result == taken
    assert {state.result[y].state, state.result[n].state} == {S, SK}
    assert state.state is S


def test_merge_of_only_skipped_branches_is_skipped_and_of_a_failed_one_trigger_failed() -> None:
    with Flow("merge-none") as flow:
        a = a_branch()
        switch(pick("z"), {"a": a})
        none_taken = merge(a)
        failed = merge(boom())
    state = flow.run()
    assert state.result[none_taken].state is SK
    assert state.result[failed].state is TF


def test_merge_takes_the_first_result_in_branch_order_past_ten_branches() -> None:
    branches = [pick.copy() for _ in range(12)]
    with Flow("merge-many") as flow:
        for i, b in enumerate(branches):
            b.bind(x=None if i < 10 else f"branch {i + 1}")
        joined = merge(*branches)
    assert flow.run().result[joined].result == "branch 11"


def test_a_merge_task_must_not_skip_on_upstream_skip() -> None:
    with pytest.raises(FlowValidationError, match="skip_on_upstream_skip=False"):
        Merge(skip_on_upstream_skip=True)


def test_case_runs_its_tasks_only_when_the_value_matches() -> None:
    # Given two case blocks on one condition; inside each, a chain of two tasks and a
    # task that uses a result made outside the blocks
    @task
    def outside() -> str:
        return "made outside"

    with Flow("case") as flow:
        cond = pick("red")
        shared = outside()
        with case(cond, "red"):
            red = shout(pick.copy()(x="red"))
            red_uses = shout(shared, task_args={"name": "red_uses"})
        with case(cond, "blue"):
            blue = shout(pick.copy()(x="blue"))

    # When it runs
    state = flow.run()

    # Then the red block ran, the blue block is skipped, and the task made outside
    # the blocks is not part of either
    assert state.result[red].result == "RED"
    assert state.result[red_uses].result == "MADE OUTSIDE"
    assert state.result[blue].state is SK
    assert state.result[shared].state is S
    gates = [e.upstream.slug for e in flow.edges if e.downstream is shared]
    assert gates == []
    assert state.state is S


def test_cases_nest_and_a_parameter_inside_is_not_gated() -> None:
    with Flow("nested-case") as flow:
        outer_cond, inner_cond = pick("x"), pick.copy()("y")
        with case(outer_cond, "x"):
            with case(inner_cond, "no"):
                deep = shout(Parameter("word", default="deep"))
            shallow = shout.copy()("shallow")
    state = flow.run()
    assert state.result[shallow].result == "SHALLOW"
    assert state.result[deep].state is SK
    assert state.by_slug()["word"].state is S

    flow2 = Flow("nested-case-outer-skips")
    with flow2, case(pick("x"), "not x"), case(pick.copy()("y"), "y"):
        deep2 = shout.copy()("deep")
    assert flow2.run().result[deep2].state is SK


def test_a_mapped_ifelse_branches_element_by_element() -> None:
    @task
    def even(x: int) -> str:
        return f"{x} is even"

    @task
    def odd(x: int) -> str:
        return f"{x} is odd"

    @task
    def is_even(x: int) -> bool:
        return x % 2 == 0

    with Flow("mapped-ifelse") as flow:
        numbers = [1, 2, 3]
        e, o = even.map(numbers), odd.map(numbers)
        ifelse(is_even.map(numbers), e, o, mapped=True)
        joined = merge(e, o, mapped=True)
    assert flow.run().result[joined].result == ["1 is odd", "2 is even", "3 is odd"]


def test_case_needs_a_task() -> None:
    with pytest.raises(FlowValidationError, match="case\\(\\) needs a task"):
        case("not a task", 1)  # type: ignore[arg-type]
