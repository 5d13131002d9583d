"""Canvas compiler: a flow's DAG becomes a plan, then a Celery canvas.

Pure tests, no broker. What a user checks: every dependency holds in the canvas,
series-parallel flows keep all their parallelism (no ordering the DAG does not
imply), other flows gain as few orderings as possible, each task runs once, and
the Celery canvas says the same as the plan once it is JSON on the wire.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterator, Mapping
from itertools import pairwise
from typing import Any

import celery
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from workers.canvas import to_signature
from workers.dag import compile_dag
from workers.plan import Chain, Group, Node, Plan, plan_nodes, plan_orderings

Edge = tuple[str, str]


# --- helpers ----------------------------------------------------------------------------


def chain(*parts: Plan | str) -> Chain:
    """A Chain; a string stands for a Node."""
    return Chain(tuple(Node(p) if isinstance(p, str) else p for p in parts))


def group(*parts: Plan | str) -> Group:
    """A Group; a string stands for a Node."""
    return Group(tuple(Node(p) if isinstance(p, str) else p for p in parts))


def closure(nodes: list[str], edges: list[Edge]) -> set[Edge]:
    """Every (u, v) such that v depends on u, directly or transitively (the oracle)."""
    succ: dict[str, set[str]] = {n: set() for n in nodes}
    for up, down in edges:
        succ[up].add(down)
    pairs: set[Edge] = set()
    for start in nodes:
        seen: set[str] = set()
        stack = [start]
        while stack:
            for nxt in succ[stack.pop()]:
                if nxt not in seen:
                    seen.add(nxt)
                    stack.append(nxt)
        pairs.update((start, v) for v in seen)
    return pairs


def assert_flat(plan: Plan) -> None:
    """No one-part Chain or Group, no Chain in a Chain, no Group in a Group."""
    if isinstance(plan, Node):
        return
    assert len(plan.parts) >= 2, plan
    for part in plan.parts:
        assert type(part) is not type(plan), plan
        assert_flat(part)


def app_and_factory() -> tuple[celery.Celery, Any]:
    """A Celery app with no broker connection, and a node signature factory."""
    app = celery.Celery("t")
    return app, lambda slug: app.signature("node", args=(slug,))


def describe(sig: Mapping[str, Any]) -> Any:
    """A Celery signature, as it travels (a dict), in short nested tuples."""
    kind = sig.get("subtask_type")
    kwargs = sig["kwargs"]
    if kind == "chain":
        return ("chain", *(describe(t) for t in kwargs["tasks"]))
    if kind == "group":
        return ("group", *(describe(t) for t in kwargs["tasks"]))
    if kind == "chord":
        header = kwargs["header"]
        tasks = header["kwargs"]["tasks"] if isinstance(header, Mapping) else header
        return ("chord", tuple(describe(t) for t in tasks), describe(kwargs["body"]))
    assert sig["task"] == "node"
    return sig["args"][0]


def plan_of_canvas(sig: Mapping[str, Any]) -> Plan:
    """Read a Celery canvas back as a plan: a chord runs its header, then its body."""
    kind = sig.get("subtask_type")
    kwargs = sig["kwargs"]
    if kind == "chain":
        return Chain(tuple(plan_of_canvas(t) for t in kwargs["tasks"]))
    if kind == "group":
        return Group(tuple(plan_of_canvas(t) for t in kwargs["tasks"]))
    if kind == "chord":
        header = kwargs["header"]
        tasks = header["kwargs"]["tasks"] if isinstance(header, Mapping) else header
        return Chain(
            (Group(tuple(plan_of_canvas(t) for t in tasks)), plan_of_canvas(kwargs["body"]))
        )
    return Node(sig["args"][0])


def on_the_wire(sig: Any) -> Mapping[str, Any]:
    """The canvas as a worker receives it: JSON out, JSON back."""
    decoded: Mapping[str, Any] = json.loads(json.dumps(sig))
    return decoded


DIAMOND_NODES = ["A", "B", "C", "D"]
DIAMOND_EDGES = [("A", "B"), ("A", "C"), ("B", "D"), ("C", "D")]


# --- series-parallel shapes compile exactly -----------------------------------------------


def test_single_task_is_a_node() -> None:
    # Given a flow of one task
    # When it is compiled
    plan = compile_dag(["only"], [])
    # Then the plan is that task alone
    assert plan == Node("only")


def test_chain_runs_in_dependency_order_whatever_the_node_order() -> None:
    # Given A -> B -> C, listed in another order
    nodes = ["C", "A", "B"]
    edges = [("A", "B"), ("B", "C")]
    # When it is compiled
    plan = compile_dag(nodes, edges)
    # Then it is one chain in dependency order
    assert plan == chain("A", "B", "C")


def test_diamond_is_chain_of_a_group_between_two_tasks() -> None:
    # Given the diamond A -> (B, C) -> D
    # When it is compiled
    plan = compile_dag(DIAMOND_NODES, DIAMOND_EDGES)
    # Then B and C run in parallel between A and D
    assert plan == chain("A", group("B", "C"), "D")


def test_fan_out_and_fan_in() -> None:
    # Given a fan-out with fan-in, a bare fan-out and a bare fan-in
    middles = ["m1", "m2", "m3"]
    fan_out_in = [("root", m) for m in middles] + [(m, "sink") for m in middles]
    # When each is compiled
    both = compile_dag(["root", *middles, "sink"], fan_out_in)
    out_only = compile_dag(["root", *middles], [("root", m) for m in middles])
    in_only = compile_dag([*middles, "sink"], [(m, "sink") for m in middles])
    # Then the middle tasks form one parallel group on the right side of root and sink
    assert both == chain("root", group(*middles), "sink")
    assert out_only == chain("root", group(*middles))
    assert in_only == chain(group(*middles), "sink")


def test_nested_series_parallel_shape() -> None:
    # Given A -> (B -> (C, D) -> E, F) -> G, where F runs alongside the inner diamond
    nodes = ["A", "B", "C", "D", "E", "F", "G"]
    edges = [
        ("A", "B"), ("B", "C"), ("B", "D"), ("C", "E"), ("D", "E"), ("E", "G"),
        ("A", "F"), ("F", "G"),
    ]  # fmt: skip
    # When it is compiled
    plan = compile_dag(nodes, edges)
    # Then the nesting is kept, and nothing is ordered that the DAG leaves free
    assert plan == chain("A", group(chain("B", group("C", "D"), "E"), "F"), "G")
    assert plan_orderings(plan) == closure(nodes, edges)


def test_parallel_chains_inside_a_chain() -> None:
    # Given two independent two-step pipelines between a common start and end
    nodes = ["start", "x1", "x2", "y1", "y2", "end"]
    edges = [
        ("start", "x1"), ("x1", "x2"), ("x2", "end"),
        ("start", "y1"), ("y1", "y2"), ("y2", "end"),
    ]  # fmt: skip
    # When it is compiled
    plan = compile_dag(nodes, edges)
    # Then each pipeline stays a chain, and the two run in parallel
    assert plan == chain("start", group(chain("x1", "x2"), chain("y1", "y2")), "end")


def test_disconnected_components_run_in_parallel_in_node_order() -> None:
    # Given two independent chains and a lone task, listed lone task first
    nodes = ["lone", "c1", "a1", "a2", "c2"]
    edges = [("a1", "a2"), ("c1", "c2")]
    # When it is compiled
    plan = compile_dag(nodes, edges)
    # Then the components are one group, in the order their first task was listed
    assert plan == group("lone", chain("c1", "c2"), chain("a1", "a2"))


def test_transitive_edges_change_nothing() -> None:
    # Given the diamond with a redundant A -> D, and a chain with every shortcut
    diamond_plus = [*DIAMOND_EDGES, ("A", "D")]
    full_chain = [("A", "B"), ("B", "C"), ("A", "C")]
    # When each is compiled
    diamond_plan = compile_dag(DIAMOND_NODES, diamond_plus)
    chain_plan = compile_dag(["A", "B", "C"], full_chain)
    # Then the plans are those of the DAGs without the shortcuts
    assert diamond_plan == compile_dag(DIAMOND_NODES, DIAMOND_EDGES)
    assert chain_plan == chain("A", "B", "C")


def test_same_input_same_plan_whatever_the_edge_order() -> None:
    # Given the nested shape's edges, then the same edges reversed and repeated
    nodes = ["A", "B", "C", "D", "E"]
    edges = [("A", "B"), ("A", "C"), ("B", "D"), ("C", "D"), ("D", "E"), ("A", "E")]
    # When both are compiled, twice
    first = compile_dag(nodes, edges)
    again = compile_dag(nodes, edges)
    shuffled = compile_dag(nodes, list(reversed(edges)) + edges)
    # Then all three plans are identical
    assert first == again == shuffled


# --- other DAGs get the dependencies they need, and few more -------------------------------


def test_n_shape_keeps_every_dependency_and_adds_at_most_one_ordering() -> None:
    # Given the "N": A -> C, B -> C, B -> D (A and D are independent)
    nodes = ["A", "B", "C", "D"]
    edges = [("A", "C"), ("B", "C"), ("B", "D")]
    # When it is compiled
    plan = compile_dag(nodes, edges)
    # Then every dependency holds, every task runs once, and at most one ordering is added
    orderings = plan_orderings(plan)
    assert set(edges) <= orderings
    assert sorted(plan_nodes(plan)) == nodes
    assert len(orderings - closure(nodes, edges)) <= 1
    assert_flat(plan)


def test_random_200_task_dag_keeps_every_dependency() -> None:
    # Given a random 200-task DAG, its tasks listed in shuffled order
    rng = random.Random(2024)
    names = [f"t{i:03d}" for i in range(200)]
    edges = [
        (names[i], names[j]) for i in range(200) for j in range(i + 1, 200) if rng.random() < 0.02
    ]
    nodes = rng.sample(names, len(names))
    # When it is compiled
    plan = compile_dag(nodes, edges)
    # Then every dependency holds (transitively too) and each task runs exactly once
    required = closure(names, edges)
    orderings = plan_orderings(plan)
    assert required <= orderings
    assert sorted(plan_nodes(plan)) == sorted(names)
    assert_flat(plan)
    # And it keeps more parallelism than running the DAG level by level
    level: dict[str, int] = {}
    for name in names:  # names are in topological order
        level[name] = max((level[u] + 1 for u, v in edges if v == name), default=0)
    level_by_level = {(u, v) for u in names for v in names if level[u] < level[v]}
    assert len(orderings - required) < len(level_by_level - required)


def test_ten_thousand_wide_fan_out_compiles_to_one_group() -> None:
    # Given one root, 10,000 middle tasks and one sink
    middles = [f"m{i}" for i in range(10_000)]
    edges = [("root", m) for m in middles] + [(m, "sink") for m in middles]
    # When it is compiled
    plan = compile_dag(["root", *middles, "sink"], edges)
    # Then the middle tasks form one group, in the given order
    assert plan == Chain((Node("root"), Group(tuple(Node(m) for m in middles)), Node("sink")))


def test_thousand_task_chain_compiles_to_one_flat_chain() -> None:
    # Given a 1,000-task chain
    names = [f"n{i}" for i in range(1_000)]
    # When it is compiled
    plan = compile_dag(names, list(pairwise(names)))
    # Then it is one chain of 1,000 nodes
    assert plan == Chain(tuple(Node(n) for n in names))


# --- bad input --------------------------------------------------------------------------


def test_empty_flow_is_an_error() -> None:
    # Given no tasks / When compiled / Then a clear ValueError
    with pytest.raises(ValueError, match="no tasks"):
        compile_dag([], [])


def test_edge_to_an_unknown_task_is_an_error_naming_it() -> None:
    # Given an edge to a task that is not in the flow
    # When compiled / Then the error names the unknown task
    with pytest.raises(ValueError, match="unknown task 'ghost'"):
        compile_dag(["A", "B"], [("A", "B"), ("B", "ghost")])


def test_cycle_is_an_error_naming_the_cycle() -> None:
    # Given A -> B -> C -> A, behind an acyclic entry task
    edges = [("start", "A"), ("A", "B"), ("B", "C"), ("C", "A")]
    # When compiled / Then the error spells the cycle out
    with pytest.raises(ValueError, match="cycle: A -> B -> C -> A"):
        compile_dag(["start", "A", "B", "C"], edges)


def test_self_dependency_is_a_cycle() -> None:
    # Given a task that depends on itself / When compiled / Then it is a cycle
    with pytest.raises(ValueError, match="cycle: A -> A"):
        compile_dag(["A", "B"], [("A", "A")])


def test_duplicate_task_is_an_error() -> None:
    # Given a task listed twice / When compiled / Then the error names it
    with pytest.raises(ValueError, match="'A' is listed twice"):
        compile_dag(["A", "B", "A"], [])


# --- plan queries -------------------------------------------------------------------------


def test_plan_orderings_are_transitive_across_chain_parts() -> None:
    # Given a hand-built plan: A, then B and C in parallel, then D
    plan = chain("A", group("B", "C"), "D")
    # When its orderings and nodes are read
    orderings = plan_orderings(plan)
    # Then A precedes everything, D follows everything, and B, C are unordered
    assert orderings == {("A", "B"), ("A", "C"), ("A", "D"), ("B", "D"), ("C", "D")}
    assert plan_nodes(plan) == ["A", "B", "C", "D"]


# --- properties ---------------------------------------------------------------------------


@st.composite
def dags(draw: st.DrawFn, max_nodes: int = 10) -> tuple[list[str], list[Edge]]:
    """Any DAG: edges only from a lower to a higher t-number, tasks listed in any order."""
    n = draw(st.integers(min_value=1, max_value=max_nodes))
    names = [f"t{i}" for i in range(n)]
    pairs = [(names[i], names[j]) for i in range(n) for j in range(i + 1, n)]
    keep = draw(st.lists(st.booleans(), min_size=len(pairs), max_size=len(pairs)))
    edges = [pair for pair, kept in zip(pairs, keep, strict=True) if kept]
    return draw(st.permutations(names)), edges


SHAPES = st.recursive(
    st.just("task"),
    lambda inner: st.tuples(
        st.sampled_from(["series", "parallel"]), st.lists(inner, min_size=2, max_size=3)
    ),
    max_leaves=14,
)


def build_series_parallel(shape: Any, names: Iterator[str]) -> tuple[list[str], list[Edge]]:
    """Compose a DAG from a shape: series links every sink of a part to every source of the next."""

    def build(node: Any) -> tuple[list[str], list[Edge], list[str], list[str]]:
        if node == "task":
            name = next(names)
            return [name], [], [name], [name]
        kind, parts = node
        built = [build(p) for p in parts]
        nodes = [n for b in built for n in b[0]]
        edges = [e for b in built for e in b[1]]
        if kind == "parallel":
            return nodes, edges, [s for b in built for s in b[2]], [t for b in built for t in b[3]]
        for before, after in pairwise(built):
            edges += [(u, v) for u in before[3] for v in after[2]]
        return nodes, edges, built[0][2], built[-1][3]

    nodes, edges, _, _ = build(shape)
    return nodes, edges


@settings(max_examples=300)
@given(dags())
def test_any_dag_keeps_every_dependency_and_runs_each_task_once(
    dag: tuple[list[str], list[Edge]],
) -> None:
    # Given any DAG
    nodes, edges = dag
    # When it is compiled
    plan = compile_dag(nodes, edges)
    # Then every edge holds, each task appears exactly once, and the plan is flat
    assert set(edges) <= plan_orderings(plan)
    assert sorted(plan_nodes(plan)) == sorted(nodes)
    assert_flat(plan)


@settings(max_examples=300)
@given(SHAPES, st.data())
def test_series_parallel_dag_compiles_exactly(shape: Any, data: st.DataObject) -> None:
    # Given a series-parallel DAG, some redundant shortcuts, and any task order
    nodes, edges = build_series_parallel(shape, (f"t{i}" for i in range(100)))
    required = closure(nodes, edges)
    if required:
        edges += data.draw(st.lists(st.sampled_from(sorted(required)), max_size=5))
    listed = data.draw(st.permutations(nodes))
    # When it is compiled
    plan = compile_dag(listed, edges)
    # Then it orders exactly what the DAG implies: no dependency lost, no parallelism lost
    assert plan_orderings(plan) == required
    assert sorted(plan_nodes(plan)) == sorted(nodes)
    assert_flat(plan)


# --- Celery adapter -------------------------------------------------------------------------


def test_diamond_canvas_is_a_chain_with_a_chord() -> None:
    # Given the diamond's plan and an app with no broker
    _, make_sig = app_and_factory()
    plan = compile_dag(DIAMOND_NODES, DIAMOND_EDGES)
    # When it becomes a Celery canvas (nothing is sent)
    canvas = to_signature(plan, make_sig)
    # Then it is chain(A, chord([B, C], D)), or the equivalent chain(A, group(B, C), D)
    assert isinstance(canvas, celery.canvas.Signature)
    assert describe(canvas) in {
        ("chain", "A", ("chord", ("B", "C"), "D")),
        ("chain", "A", ("group", "B", "C"), "D"),
    }


def test_disconnected_flow_canvas_is_a_group() -> None:
    # Given two independent tasks
    _, make_sig = app_and_factory()
    plan = compile_dag(["A", "B"], [])
    # When it becomes a canvas / Then it is a Celery group of both
    assert describe(to_signature(plan, make_sig)) == ("group", "A", "B")


def test_node_signatures_come_from_the_factory() -> None:
    # Given a factory that sets options on each node signature
    app = celery.Celery("t")
    plan = compile_dag(["A", "B"], [("A", "B")])
    # When the canvas is built
    canvas = to_signature(plan, lambda s: app.signature("node", args=(s,), shadow=f"flow/{s}"))
    # Then each step is the factory's signature, options included
    steps = canvas["kwargs"]["tasks"]
    assert [(s["args"], s["options"]["shadow"]) for s in steps] == [
        (("A",), "flow/A"),
        (("B",), "flow/B"),
    ]


@settings(max_examples=150, deadline=None)
@given(dags(max_nodes=8))
def test_canvas_on_the_wire_orders_exactly_what_the_plan_orders(
    dag: tuple[list[str], list[Edge]],
) -> None:
    # Given any DAG's plan
    nodes, edges = dag
    _, make_sig = app_and_factory()
    plan = compile_dag(nodes, edges)
    # When it becomes a Celery canvas and travels as JSON
    received = plan_of_canvas(on_the_wire(to_signature(plan, make_sig)))
    # Then the canvas (chords included) runs each task once, in exactly the plan's order
    assert sorted(plan_nodes(received)) == sorted(nodes)
    assert plan_orderings(received) == plan_orderings(plan)
    assert set(edges) <= plan_orderings(received)
