"""Control flow, as in Prefect 1 (``prefect.case`` and
``prefect.tasks.control_flow``): :class:`case`, a context manager whose tasks run
only when a task's result equals a value; :func:`switch` and :func:`ifelse`, which
pick one branch task by a condition's result; :func:`merge`, which joins branches
back into one result. A branch is gated by a :class:`CompareValue` task that
raises SKIP when the value does not match, so a branch not taken ends Skipped, and
so does everything after it that skips on an upstream skip (a StartFlowRun in it
never creates its child). They build ordinary tasks and edges: ``flow.run()`` and
the workers run them like any other. Pure: imports only the core (building, edges,
errors, signals, task, triggers); the flow type only for type checking."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import orchestrator.building as building
import orchestrator.triggers as triggers
from orchestrator.errors import FlowValidationError
from orchestrator.signals import SKIP
from orchestrator.task import Task, task

if TYPE_CHECKING:
    from orchestrator.flow import Flow

__all__ = ["CompareValue", "Merge", "case", "ifelse", "merge", "switch"]


class CompareValue(Task):
    """Succeeds when the value it is given equals ``value``; else raises SKIP, which
    skips the branch it gates.

    Args:
        value: the value to match.
        **options: the usual :class:`~orchestrator.task.Task` options.
    """

    def __init__(self, value: Any, **options: Any) -> None:
        self.value = value
        options.setdefault("name", f"case-{value}")
        super().__init__(**options)

    def run(self, value: Any) -> None:
        """Raise SKIP unless ``value`` matches."""
        if value != self.value:
            raise SKIP(f"{value!r} did not match {self.value!r}")

    def structure_options(self) -> dict[str, Any]:
        """The value matched belongs to the flow's structure."""
        return {"value": self.value}


class Merge(Task):
    """The first result of its upstream tasks that is not None (a skipped branch
    gives None), in the order given; Skipped when every branch was skipped."""

    def __init__(self, **options: Any) -> None:
        if options.setdefault("skip_on_upstream_skip", False):
            raise FlowValidationError("a Merge task must have skip_on_upstream_skip=False")
        options.setdefault("trigger", triggers.not_all_skipped)
        super().__init__(**options)

    def run(self, **task_results: Any) -> Any:
        """The first result that is not None, by branch order (``task_1``, ``task_2``...)."""
        ordered = sorted(task_results.items(), key=lambda kv: int(kv[0].rpartition("_")[2]))
        return next((v for _, v in ordered if v is not None), None)


class case:
    """A branch: the tasks added inside ``with case(task, value):`` run only when
    ``task``'s result equals ``value``; otherwise they end Skipped.

    Each task added in the block that has no upstream task in the block gets the
    block's :class:`CompareValue` as an upstream task; the others follow through
    their upstream (a skip propagates). Blocks nest.

    Args:
        task: the task whose result decides.
        value: the value that takes the branch.
    """

    def __init__(self, task: Task, value: Any) -> None:
        if not isinstance(task, Task):
            raise FlowValidationError(
                f"case() needs a task as its condition, got {type(task).__name__}"
            )
        self.task = task
        self.value = value
        self._tasks: list[Task] = []
        self._flow: Flow | None = None
        self._token: Any = None

    def add_task(self, task: Task, flow: Flow) -> None:
        """Take ``task``, just added to ``flow``, into this branch."""
        if self._flow is None:
            self._flow = flow
        elif self._flow is not flow:
            raise FlowValidationError("one case block cannot hold tasks of two flows")
        if task is not self.task and task not in self._tasks:
            self._tasks.append(task)

    def __enter__(self) -> case:
        self._token = building.push_case(self)
        return self

    def __exit__(self, exc_type: object, *_: object) -> None:
        building.pop_case(self._token)
        flow = self._flow
        if exc_type is not None or flow is None or not self._tasks:
            return
        gate = CompareValue(self.value)
        gate.bind(value=self.task, flow=flow)  # inside an outer case, the gate joins it
        inside = set(self._tasks)
        for child in self._tasks:
            if not any(e.upstream in inside for e in flow.upstream_edges(child)):
                flow.add_edge(gate, child)


def switch(
    condition: Task, cases: Mapping[Any, Task], mapped: bool = False, flow: Flow | None = None
) -> None:
    """Run the task of ``cases`` whose key equals ``condition``'s result; the other
    branch tasks end Skipped, as does what follows them unless it sets
    ``skip_on_upstream_skip=False``.

    Args:
        condition: the task whose result picks the branch.
        cases: the branch task for each value.
        mapped: map the comparison (and the branches) over ``condition``'s children.
        flow: the flow; by default the active ``with Flow(...)`` (or the condition's).
    """
    target = flow or building.active() or condition._flow
    if target is None:
        raise FlowValidationError("switch() needs an active flow or a flow= argument")
    for value, branch in cases.items():
        if not isinstance(branch, Task):
            raise FlowValidationError(
                f"switch(): the branch for {value!r} must be a task, got {type(branch).__name__}"
            )
        gate = CompareValue(value)
        gate.bind(value=condition, flow=target, mapped=mapped)
        target.set_dependencies(branch, upstream_tasks=[gate], mapped=mapped)


@task
def as_bool(x: Any) -> bool:
    """The truth of ``x`` (what :func:`ifelse` compares)."""
    return bool(x)


def ifelse(
    condition: Task,
    true_task: Task | None,
    false_task: Task | None,
    mapped: bool = False,
    flow: Flow | None = None,
) -> None:
    """Run ``true_task`` when ``condition``'s result is truthy, else ``false_task``;
    the other ends Skipped (see :func:`switch`)."""
    cases = {c: t for c, t in ((True, true_task), (False, false_task)) if t is not None}
    if not cases:
        return
    target = flow or building.active() or condition._flow
    truth = as_bool.copy()
    truth.bind(x=condition, flow=target, mapped=mapped)
    switch(truth, cases, mapped=mapped, flow=target)


def merge(*tasks: Task, flow: Flow | None = None, mapped: bool = False) -> Task:
    """A task whose result is the first result of ``tasks`` that is not None: where
    branches join again. It is Skipped when all of them were.

    Returns:
        The bound :class:`Merge` task.
    """
    branches: dict[str, Any] = {f"task_{i + 1}": t for i, t in enumerate(tasks)}
    return Merge().bind(flow=flow, mapped=mapped, **branches)
