"""The flow model: tasks, flows, edges, parameters, build-time errors, slugs, the
structural hash, and the table of state transitions.

Pure tests: flows are built and (where the result matters) run in process.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from orchestrator import (
    Edge,
    Flow,
    FlowValidationError,
    FunctionTask,
    Parameter,
    StartFlowRun,
    State,
    Task,
    task,
)
from orchestrator import triggers as T
from orchestrator.states import FINAL_STATES, TRANSITIONS, can_transition, states_before


@task
def one() -> int:
    return 1


@task
def inc(x: int = 0) -> int:
    return x + 1


@task
def add(x: int, y: int) -> int:
    return x + y


@task
def total(**numbers: int) -> int:
    return sum(numbers.values())


class ExtractSomeData(Task):
    def run(self) -> dict[str, str]:
        return {"param-key": "some-random-piece-of-data"}


class Load(Task):
    def run(self, parameters: dict[str, str]) -> str:
        return parameters["param-key"]


def results(flow: Flow, **parameters: Any) -> dict[str, Any]:
    state = flow.run(parameters=parameters)
    assert state.state is State.SUCCESS, state.message
    return {slug: st.result for slug, st in state.by_slug().items()}


# --- tasks -------------------------------------------------------------------------------


def test_bare_task_decorator_makes_a_task_with_default_options() -> None:
    # Given a function decorated with a bare @task
    # Then it is a task named after the function, with Prefect 1's defaults
    assert isinstance(add, FunctionTask)
    assert add.name == "add"
    assert add.max_retries == 0
    assert add.retry_delay is None
    assert add.timeout is None
    assert add.trigger is T.all_successful
    assert add.skip_on_upstream_skip is True
    assert add.tags == set()
    # and its run() is the function
    assert add.run(2, 3) == 5


def test_task_decorator_with_options() -> None:
    # Given @task with every option
    @task(
        name="fetch rows",
        max_retries=2,
        retry_delay=timedelta(seconds=5),
        timeout=30,
        trigger=T.any_failed,
        skip_on_upstream_skip=False,
        tags=["etl", "db"],
    )
    def fetch() -> list[int]:
        return [1, 2]

    # Then the task carries them (delays and timeouts in seconds)
    assert fetch.name == "fetch rows"
    assert fetch.max_retries == 2
    assert fetch.retry_delay == 5.0
    assert fetch.timeout == 30.0
    assert fetch.trigger is T.any_failed
    assert fetch.skip_on_upstream_skip is False
    assert fetch.tags == {"etl", "db"}
    assert fetch.run() == [1, 2]


def test_task_with_retries_and_no_delay_retries_at_once() -> None:
    @task(max_retries=1)
    def flaky() -> None: ...

    assert flaky.retry_delay == 0.0


def test_negative_retries_are_refused_naming_the_task() -> None:
    with pytest.raises(FlowValidationError, match="task 'bad': max_retries must not be negative"):
        task(name="bad", max_retries=-1)(lambda: None)


def test_task_subclass_with_run() -> None:
    # Given the seed's Task subclass, with and without a name
    extract = ExtractSomeData(name="extract_some_data")
    anonymous = ExtractSomeData()

    # Then the name defaults to the class name and run() is the method
    assert extract.name == "extract_some_data"
    assert anonymous.name == "ExtractSomeData"

    # When it is used in a flow
    with Flow("subclass") as flow:
        extract()

    # Then it runs its run()
    assert results(flow) == {"extract_some_data": {"param-key": "some-random-piece-of-data"}}


# --- binding and edges ----------------------------------------------------------------------


def test_calling_a_task_in_a_flow_binds_a_copy() -> None:
    # Given a task defined at module level
    # When it is called inside a flow
    with Flow("copies") as flow:
        bound = inc(x=1)

    # Then the flow holds a copy, not the original
    assert bound is not inc
    assert isinstance(bound, FunctionTask)
    assert list(flow.tasks) == [bound]
    assert inc not in flow.tasks
    # and the original stays free to be called in another flow
    with Flow("another") as other:
        inc(x=2)
    assert results(flow) == {"inc": 2}
    assert results(other) == {"inc": 3}


def test_task_args_override_options_on_the_copy_only() -> None:
    with Flow("overrides") as flow:
        bound = inc(task_args={"name": "bump", "max_retries": 3})
    assert (bound.name, bound.max_retries, bound.slug) == ("bump", 3, "bump")
    assert (inc.name, inc.max_retries) == ("inc", 0)
    assert results(flow) == {"bump": 1}


def test_called_task_as_argument_is_a_data_edge() -> None:
    # Given a task whose result is passed to another by keyword
    with Flow("data") as flow:
        first = one()
        second = inc(x=first)

    # Then there is a data edge keyed by the argument name
    assert flow.edges == [Edge(first, second, "x")]
    # and the result flows along it
    assert results(flow) == {"one": 1, "inc": 2}


def test_uncalled_task_as_argument_is_a_data_edge_seed_form() -> None:
    # Given the seed's form: an uncalled task passed as an argument
    extract_some_data = ExtractSomeData(name="extract_some_data")
    load = Load(name="load")

    with Flow("parent-flow") as flow:
        loaded = load(parameters=extract_some_data)

    # Then the uncalled task itself joins the flow, as the upstream of a data edge
    assert extract_some_data in flow.tasks
    assert flow.edges == [Edge(extract_some_data, loaded, "parameters")]
    assert results(flow) == {
        "extract_some_data": {"param-key": "some-random-piece-of-data"},
        "load": "some-random-piece-of-data",
    }


def test_seed_listing_with_start_flow_run_builds_the_data_edge() -> None:
    # Given the seed's first listing, with StartFlowRun
    @task
    def extract_some_data() -> dict[str, str]:
        return {"param-key": "some-random-piece-of-data"}

    flow_run = StartFlowRun(flow_name="example", project_name="examples")

    # When the flow is built (nothing runs: the child flow is not needed)
    with Flow("parent-flow") as flow:
        started = flow_run(parameters=extract_some_data)

    # Then the runtime parameters come from the extract task along a data edge
    assert flow.edges == [Edge(extract_some_data, started, "parameters")]
    assert [t.slug for t in flow.tasks] == ["flow_example", "extract_some_data"]


def test_seed_set_upstream_with_key_builds_the_data_edge() -> None:
    # Given the seed's second listing: set_upstream(task, key="parameters")
    extract_some_data = ExtractSomeData(name="extract_some_data")
    load = Load(name="load")

    with Flow("parent-flow") as flow:
        load.set_upstream(extract_some_data, key="parameters")

    # Then both tasks are in the flow, joined by a data edge
    assert flow.edges == [Edge(extract_some_data, load, "parameters")]
    assert results(flow)["load"] == "some-random-piece-of-data"


def test_positional_arguments_and_constants() -> None:
    # Given a task called with a task and a constant, by position
    with Flow("positional") as flow:
        first = one()
        summed = add(first, 10)

    # Then the task is a data edge keyed by the argument's name, the value a constant
    assert flow.edges == [Edge(first, summed, "x")]
    assert flow.constants[summed] == {"y": 10}
    assert results(flow) == {"one": 1, "add": 11}


def test_constants_only() -> None:
    with Flow("constants") as flow:
        summed = add(2, y=3)
    assert flow.edges == []
    assert flow.constants[summed] == {"x": 2, "y": 3}
    assert results(flow) == {"add": 5}


def test_var_keyword_task_takes_any_argument_names() -> None:
    with Flow("kwargs") as flow:
        total(a=one(), b=5)
    assert results(flow)["total"] == 6


def test_upstream_tasks_add_ordering_edges_without_data() -> None:
    # Given tasks recording their order, one declared before its upstream
    order: list[str] = []

    @task
    def record(label: str) -> str:
        order.append(label)
        return label

    with Flow("ordering") as flow:
        first = record("first")
        second = record("second", upstream_tasks=[first])
        third = record("third", upstream_tasks=[first, second])

    # Then the edges carry no key
    assert flow.edges == [Edge(first, second), Edge(first, third), Edge(second, third)]
    # and the tasks run in dependency order, each with its own constant
    assert results(flow) == {"record": "first", "record-2": "second", "record-3": "third"}
    assert order == ["first", "second", "third"]


def test_set_upstream_orders_tasks_declared_in_reverse() -> None:
    order: list[str] = []

    @task
    def record(label: str) -> None:
        order.append(label)

    with Flow("reverse") as flow:
        late = record("runs second")
        early = record("runs first")
        late.set_upstream(early)

    assert flow.edges == [Edge(early, late)]
    flow.run()
    assert order == ["runs first", "runs second"]


def test_set_downstream_with_key_passes_the_result() -> None:
    with Flow("downstream") as flow:
        first = one()
        bumped = inc()
        first.set_downstream(bumped, key="x")
    assert flow.edges == [Edge(first, bumped, "x")]
    assert results(flow) == {"one": 1, "inc": 2}


def test_set_upstream_outside_with_block_takes_flow_argument() -> None:
    # Given a flow built earlier
    with Flow("later") as flow:
        first = one()
        bumped = inc()
    # When an edge is added after the block, naming the flow
    bumped.set_upstream(first, key="x", flow=flow)
    # Then it is a data edge like any other
    assert results(flow) == {"one": 1, "inc": 2}


def test_set_upstream_with_no_flow_is_an_error() -> None:
    a, b = inc.copy(), inc.copy()
    with pytest.raises(FlowValidationError, match="task 'inc': set_upstream needs an active flow"):
        b.set_upstream(a)
    with pytest.raises(FlowValidationError, match="task 'inc': set_downstream needs an active"):
        a.set_downstream(b)


# --- parameters ---------------------------------------------------------------------------


def test_parameter_defaults_and_required() -> None:
    # Given parameters with and without defaults
    required = Parameter("rows")
    optional = Parameter("limit", default=10)
    forced = Parameter("mode", default="fast", required=True)
    nullable = Parameter("note", default=None)

    # Then a parameter is required exactly when it has no default (unless told)
    assert (required.required, required.default) == (True, None)
    assert (optional.required, optional.default) == (False, 10)
    assert (forced.required, forced.default) == (True, "fast")
    assert (nullable.required, nullable.default) == (False, None)
    assert optional.declaration() == {"name": "limit", "default": 10, "required": False}


def test_parameters_are_listed_by_the_flow_with_their_names_as_slugs() -> None:
    rows, limit = Parameter("rows"), Parameter("limit", default=10)
    with Flow("params") as flow:
        add(x=rows, y=limit)
    assert flow.parameters() == [rows, limit]
    assert flow.task_by_slug("rows") is rows
    assert flow.task_by_slug("limit") is limit
    assert results(flow, rows=5) == {"add": 15, "rows": 5, "limit": 10}


def test_parameter_named_like_a_task_keeps_its_name_as_slug() -> None:
    # Given a task named like the parameter it consumes (it joins the flow first)
    @task
    def rows(rows: int) -> int:
        return rows * 2

    with Flow("same-name") as flow:
        doubled = rows(rows=Parameter("rows"))

    # Then the parameter keeps its name as slug and the task moves aside
    assert flow.task_by_slug("rows") is flow.parameters()[0]
    assert doubled.slug == "rows-2"
    assert results(flow, rows=4) == {"rows": 4, "rows-2": 8}


# --- build-time errors ------------------------------------------------------------------------


def test_cycle_through_set_upstream_is_refused() -> None:
    with (
        pytest.raises(FlowValidationError, match="edge 'inc-3' -> 'inc' makes a cycle"),
        Flow("cyclic"),
    ):
        a = inc()
        b = inc(x=a)
        c = inc(x=b)
        a.set_upstream(c)


def test_cycle_through_set_downstream_is_refused() -> None:
    with (
        pytest.raises(FlowValidationError, match="edge 'inc-2' -> 'inc' makes a cycle"),
        Flow("cyclic"),
    ):
        a = inc()
        b = inc(x=a)
        b.set_downstream(a)


def test_cycle_through_a_call_is_refused() -> None:
    # Given an uncalled task that joins the flow as an argument, then is itself called
    # with its own downstream as argument (bind, Prefect 1's in-place call)
    source = inc.copy()
    with (
        pytest.raises(FlowValidationError, match="edge 'inc' -> 'inc-2' makes a cycle"),
        Flow("cyclic"),
    ):
        downstream = inc(x=source)
        source.bind(x=downstream)


def test_task_depending_on_itself_is_refused() -> None:
    with (
        pytest.raises(FlowValidationError, match="task 'inc' cannot depend on itself"),
        Flow("self"),
    ):
        a = inc()
        a.set_upstream(a)


def test_task_bound_into_another_flow_is_refused() -> None:
    # Given a task bound into one flow
    with Flow("first") as first:
        shared = one()
    # When another flow uses that bound task (not a fresh call)
    with (
        pytest.raises(
            FlowValidationError,
            match="task 'one' belongs to flow 'first'; call it inside flow 'second'",
        ),
        Flow("second"),
    ):
        inc(x=shared)
    # Then the first flow is unchanged
    assert list(first.tasks) == [shared]


def test_unknown_keyword_is_refused_naming_the_task_and_its_arguments() -> None:
    with (
        pytest.raises(
            FlowValidationError,
            match=r"task 'add': run\(\) has no argument 'z' \(its arguments: x, y\)",
        ),
        Flow("unknown"),
    ):
        add(x=1, y=2, z=3)


def test_unknown_key_in_set_upstream_is_refused() -> None:
    with (
        pytest.raises(FlowValidationError, match=r"task 'inc': run\(\) has no argument 'value'"),
        Flow("unknown-key"),
    ):
        inc().set_upstream(one(), key="value")


def test_unknown_keyword_on_a_task_subclass_is_refused() -> None:
    with (
        pytest.raises(FlowValidationError, match=r"task 'load': run\(\) has no argument 'params'"),
        Flow("subclass"),
    ):
        Load(name="load")(params={"a": "b"})


def test_too_many_positional_arguments_are_refused() -> None:
    with (
        pytest.raises(FlowValidationError, match="task 'add': too many positional arguments"),
        Flow("positional"),
    ):
        add(1, 2, 3)


def test_key_bound_twice_to_tasks_is_refused() -> None:
    with (
        pytest.raises(
            FlowValidationError, match="task 'inc': argument 'x' is already bound to task 'one'"
        ),
        Flow("twice"),
    ):
        bumped = inc(x=one())
        bumped.set_upstream(one(), key="x")


def test_key_bound_to_a_constant_and_a_task_is_refused() -> None:
    with (
        pytest.raises(
            FlowValidationError, match="task 'inc': argument 'x' is already bound to a constant"
        ),
        Flow("twice"),
    ):
        bumped = inc(x=5)
        bumped.set_upstream(one(), key="x")


def test_duplicate_parameter_name_is_refused() -> None:
    with (
        pytest.raises(FlowValidationError, match="flow 'dupes' has two parameters named 'rows'"),
        Flow("dupes"),
    ):
        add(x=Parameter("rows"), y=Parameter("rows"))


def test_calling_a_task_outside_a_flow_is_refused() -> None:
    with pytest.raises(
        FlowValidationError, match=r"task 'inc' was called outside a flow; use it inside `with Flow"
    ):
        inc(x=1)


def test_missing_required_argument_is_refused_when_the_block_ends() -> None:
    flow = Flow("incomplete")
    with (
        pytest.raises(
            FlowValidationError, match=r"task 'add' in flow 'incomplete' is missing argument\(s\) y"
        ),
        flow,
    ):
        add(x=1)
        # while the block is open nothing is refused: y could still be bound
        assert len(flow.tasks) == 1


def test_argument_bound_later_in_the_block_is_not_missing() -> None:
    with Flow("complete") as flow:
        summed = add(x=1)
        summed.set_upstream(one(), key="y")
    assert results(flow)["add"] == 2


def test_empty_flow_is_refused() -> None:
    with pytest.raises(FlowValidationError, match="flow 'empty' has no tasks"), Flow("empty"):
        pass


def test_error_inside_the_block_is_not_hidden_by_validation() -> None:
    # Given a block that raises its own error before its tasks are complete
    # Then that error, not a validation error, reaches the caller
    with pytest.raises(KeyError, match="user error"), Flow("broken"):
        add(x=1)
        raise KeyError("user error")


# --- slugs -----------------------------------------------------------------------------------


def test_copies_of_one_task_get_distinct_slugs() -> None:
    # Given the same task called three times
    with Flow("slugs") as flow:
        a = inc()
        b = inc(x=a)
        c = inc(x=b)
    # Then each copy has its own slug, and the flow finds each by it
    assert [a.slug, b.slug, c.slug] == ["inc", "inc-2", "inc-3"]
    assert [flow.task_by_slug(s) for s in ("inc", "inc-2", "inc-3")] == [a, b, c]
    assert results(flow) == {"inc": 1, "inc-2": 2, "inc-3": 3}


def test_slug_from_a_readable_name() -> None:
    with Flow("readable") as flow:
        bound = one(task_args={"name": "load rows/now"})
    assert bound.slug == "load-rows-now"
    assert flow.task_by_slug("load-rows-now") is bound


def test_chosen_slug_is_kept_and_a_clash_is_refused() -> None:
    with Flow("chosen") as flow:
        bound = one(task_args={"slug": "first"})
    assert flow.task_by_slug("first") is bound
    with (
        pytest.raises(FlowValidationError, match="flow 'clash': two tasks have slug 'same'"),
        Flow("clash"),
    ):
        one(task_args={"slug": "same"})
        inc(task_args={"slug": "same"})


def test_unknown_slug_is_a_clear_error() -> None:
    with Flow("lookup") as flow:
        one()
    with pytest.raises(FlowValidationError, match="flow 'lookup' has no task 'two'"):
        flow.task_by_slug("two")


# --- structural hash --------------------------------------------------------------------------


def build(
    constant: int = 10, extra_edge: bool = False, extra_task: bool = False, retries: int = 0
) -> Flow:
    """The same little flow, with one aspect changed on request."""
    with Flow("shape") as flow:
        first = one()
        summed = add(first, constant, task_args={"max_retries": retries})
        last = inc(x=summed)
        if extra_edge:
            last.set_upstream(first)
        if extra_task:
            inc()
    return flow


def test_structural_hash_is_equal_for_equal_structure() -> None:
    # Given two flows built separately by the same code
    # Then their structures and hashes are equal
    assert build().structure() == build().structure()
    assert build().structural_hash() == build().structural_hash()
    assert len(build().structural_hash()) == 64


@pytest.mark.parametrize(
    "changed",
    [
        pytest.param({"extra_edge": True}, id="an-added-edge"),
        pytest.param({"extra_task": True}, id="an-added-task"),
        pytest.param({"constant": 11}, id="a-changed-constant"),
        pytest.param({"retries": 2}, id="changed-retries"),
    ],
)
def test_structural_hash_changes_with_structure(changed: dict[str, Any]) -> None:
    # Given a flow and the same flow with one aspect changed
    # Then their hashes differ
    assert build(**changed).structural_hash() != build().structural_hash()


def test_structure_describes_tasks_edges_and_parameters() -> None:
    with Flow("described") as flow:
        add(x=Parameter("rows", default=3), y=one())
    structure = flow.structure()
    assert structure["name"] == "described"
    assert [t["slug"] for t in structure["tasks"]] == ["one", "add", "rows"]
    assert structure["edges"] == [["one", "add", "y"], ["rows", "add", "x"]]
    assert structure["parameters"] == [{"name": "rows", "default": 3, "required": False}]
    assert structure["reference"] == ["add"]


# --- states -----------------------------------------------------------------------------------


def test_every_state_has_a_row_in_the_transition_table() -> None:
    assert set(TRANSITIONS) == set(State)
    assert [s.value for s in State] == [
        "Pending", "Scheduled", "Queued", "Submitted", "Running", "Retrying",
        "Success", "Failed", "TriggerFailed", "TimedOut", "Skipped", "Cancelled",
    ]  # fmt: skip


def test_final_states_have_no_exits() -> None:
    expected = {
        State.SUCCESS, State.FAILED, State.TRIGGER_FAILED, State.TIMED_OUT,
        State.SKIPPED, State.CANCELLED,
    }  # fmt: skip
    assert expected == FINAL_STATES
    for final in FINAL_STATES:
        assert final.is_final
        assert TRANSITIONS[final] == frozenset(), final


def test_running_can_reach_every_final_state() -> None:
    for final in FINAL_STATES:
        assert can_transition(State.RUNNING, final), final


def test_every_state_is_reachable_from_pending_and_every_run_can_end() -> None:
    def reachable(start: State) -> set[State]:
        seen, todo = {start}, [start]
        while todo:
            for nxt in TRANSITIONS[todo.pop()]:
                if nxt not in seen:
                    seen.add(nxt)
                    todo.append(nxt)
        return seen

    assert reachable(State.PENDING) == set(State)
    for state in State:
        if not state.is_final:
            assert {State.SUCCESS, State.FAILED, State.CANCELLED} <= reachable(state), state


@pytest.mark.parametrize(
    ("old", "new", "allowed"),
    [
        (State.PENDING, State.RUNNING, True),
        (State.SCHEDULED, State.QUEUED, True),
        (State.QUEUED, State.RUNNING, True),
        (State.RUNNING, State.SUCCESS, True),
        (State.RUNNING, State.RETRYING, True),
        (State.RETRYING, State.RUNNING, True),
        (State.PENDING, State.CANCELLED, True),
        (State.SUCCESS, State.RUNNING, False),
        (State.FAILED, State.RETRYING, False),
        (State.CANCELLED, State.RUNNING, False),
        (State.SUCCESS, State.SUCCESS, False),
        (State.PENDING, State.RETRYING, False),
        (State.RUNNING, State.PENDING, False),
    ],
    ids=lambda v: v.value if isinstance(v, State) else str(v),
)
def test_can_transition(old: State, new: State, allowed: bool) -> None:
    assert can_transition(old, new) is allowed


def test_states_before_is_the_compare_side_of_a_cas_update() -> None:
    before_success = states_before(State.SUCCESS)
    assert State.RUNNING in before_success
    assert State.SUCCESS not in before_success
    assert not any(s.is_final for s in before_success)
    assert states_before(State.RETRYING) == {State.RUNNING}


def test_successful_and_failed_kinds() -> None:
    assert [s for s in State if s.is_successful] == [State.SUCCESS, State.SKIPPED]
    assert [s for s in State if s.is_failed] == [
        State.FAILED, State.TRIGGER_FAILED, State.TIMED_OUT,
    ]  # fmt: skip
    assert not State.CANCELLED.is_successful
    assert not State.CANCELLED.is_failed
    assert str(State.TRIGGER_FAILED) == "TriggerFailed"
