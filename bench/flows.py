"""The flows the benchmarks run. Workers import them by reference
(``bench.flows:<name>``), so this module must be importable on the worker's path.

The seed's children and the Flow-of-Flows parent are built at import time; the
large flows (``fanout_children_<N>``, ``tasks_fanout_<N>``, ``tasks_chain_<N>``)
are built on first access by the module ``__getattr__``, so a worker only builds
the ones it runs."""

from __future__ import annotations

import re
from typing import Any

from orchestrator import Flow, task
from orchestrator.tasks import StartFlowRun

PROJECT = "bench"


@task
def noop() -> None:
    """Nothing at all: the benchmarks measure what surrounds a task."""


def _one_task(name: str) -> Flow:
    with Flow(name) as flow:
        noop()
    return flow


#: The one-task flow: case 3's runs, case 5's runs, case 2's children.
noop_flow = _one_task("bench-noop")

#: The seed's four children, each one no-op task.
flow_a = _one_task("bench-A")
flow_b = _one_task("bench-B")
flow_c = _one_task("bench-C")
flow_d = _one_task("bench-D")

_start_a = StartFlowRun(flow_name="bench-A", project_name=PROJECT, wait=True)
_start_b = StartFlowRun(flow_name="bench-B", project_name=PROJECT, wait=True)
_start_c = StartFlowRun(flow_name="bench-C", project_name=PROJECT, wait=True)
_start_d = StartFlowRun(flow_name="bench-D", project_name=PROJECT, wait=True)

#: The seed's Flow-of-Flows: A -> (B, C) -> D, each child waited for.
with Flow("bench-parent") as parent_flow:
    _b = _start_b(upstream_tasks=[_start_a])
    _c = _start_c(upstream_tasks=[_start_a])
    _start_d(upstream_tasks=[_b, _c])


@task
def child_parameters(n: int) -> list[dict[str, Any]]:
    """One (empty) parameter dict per child, computed when the parent runs."""
    return [{} for _ in range(n)]


def fanout_children(n: int) -> Flow:
    """A parent starting ``n`` runs of ``bench-noop`` with ``StartFlowRun.map(wait=True)``
    over a list computed at run time."""
    with Flow(f"bench-fanout-children-{n}") as flow:
        StartFlowRun(flow_name="bench-noop", project_name=PROJECT, wait=True, name="child").map(
            parameters=child_parameters(n)
        )
    return flow


def tasks_fanout(n: int) -> Flow:
    """One flow of ``n`` independent no-op tasks."""
    with Flow(f"bench-tasks-fanout-{n}") as flow:
        for i in range(n):
            noop(task_args={"name": f"noop_{i}"})
    return flow


def tasks_chain(n: int) -> Flow:
    """One flow of ``n`` no-op tasks, each after the previous one."""
    with Flow(f"bench-tasks-chain-{n}") as flow:
        prev: Any = None
        for i in range(n):
            prev = noop(task_args={"name": f"noop_{i}"}, upstream_tasks=[prev] if prev else None)
    return flow


_BUILDERS = {
    "fanout_children": fanout_children,
    "tasks_fanout": tasks_fanout,
    "tasks_chain": tasks_chain,
}
_LAZY = re.compile(r"^(fanout_children|tasks_fanout|tasks_chain)_(\d+)$")


def __getattr__(name: str) -> Flow:
    """Build ``fanout_children_<N>``, ``tasks_fanout_<N>`` and ``tasks_chain_<N>`` on demand."""
    m = _LAZY.match(name)
    if m is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    flow = _BUILDERS[m.group(1)](int(m.group(2)))
    globals()[name] = flow
    return flow
