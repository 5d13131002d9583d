"""Flows: a DAG of tasks built inside ``with Flow(name) as flow:`` (:class:`Flow`),
joined by the edges of :mod:`orchestrator.edges` (re-exported here with the
``task.map()`` wrappers :class:`unmapped` and :class:`flatten`); cycles, unknown
keys, upstream edges into a Parameter, tasks bound into another flow and a task
inside a dict or list constant are refused when the edge is added or the task is
bound. Pure: imports only the core (building, edges, errors, handlers, hooks,
labels, local, structure, task); ``register()`` goes through
:func:`orchestrator.hooks.installed`, never the client."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable, Iterator
from contextvars import Token
from typing import TYPE_CHECKING, Any

import orchestrator.building as building
import orchestrator.hooks as hooks
import orchestrator.structure as _structure
from orchestrator.edges import Constant, Edge, flatten, unmapped, unwrap
from orchestrator.errors import FlowValidationError
from orchestrator.handlers import StateHandler, check_handlers
from orchestrator.labels import check_labels
from orchestrator.local import run_flow
from orchestrator.task import Parameter, Task, refuse_nested_task

if TYPE_CHECKING:
    from orchestrator.schedules import Schedule
    from orchestrator.states import FlowRunState

__all__ = ["Edge", "Flow", "flatten", "unmapped"]


class Flow:
    """A named DAG of tasks.

    Args:
        name: the flow's name, unique within a project.
        schedule: a :class:`~orchestrator.schedules.CronSchedule` or
            :class:`~orchestrator.schedules.IntervalSchedule` that beat fires.
        labels: labels every run of this flow carries (for concurrency limits); a
            string is one label.
        reference_tasks: the tasks whose states decide the flow's state;
            by default the terminal tasks (those with no downstream).
        state_handlers: functions called as ``handler(flow, old_state, new_state)``
            on each transition of the flow's runs (see :mod:`orchestrator.handlers`).
        on_failure: ``fn(flow, state)``, called when a run of the flow fails.
    """

    def __init__(
        self,
        name: str,
        schedule: Schedule | None = None,
        labels: str | Iterable[str] | None = None,
        reference_tasks: Iterable[Task] | None = None,
        state_handlers: Iterable[StateHandler] | None = None,
        on_failure: Callable[[Any, Any], Any] | None = None,
    ) -> None:
        if not isinstance(name, str) or not name.strip():
            raise FlowValidationError("a flow needs a non-empty name")
        self.name = name
        self.schedule = schedule
        self.labels = sorted(set(check_labels(labels)))
        self.state_handlers = check_handlers(
            list(state_handlers or ()), f"flow {name!r}", on_failure
        )
        self.tasks: dict[Task, None] = {}  # insertion-ordered set
        self.edges: list[Edge] = []
        self.constants: dict[Task, dict[str, Any]] = {}
        #: mapped tasks, and how each of their constants is mapped ("mapped" or "flatten")
        self.mapped: set[Task] = set()
        self.constant_modes: dict[Task, dict[str, str]] = {}
        self._slugs: dict[str, Task] = {}
        self._reference: list[Task] | None = None
        self._chosen_slugs: set[Task] = set()  # tasks whose slug the user chose
        self._tokens: list[Token[tuple[Flow, ...]]] = []  # one per open `with` block
        frame = sys._getframe(1)
        self.defined_in: tuple[str, str | None] = (
            frame.f_globals.get("__name__", "__main__"),
            frame.f_globals.get("__file__"),
        )
        if reference_tasks is not None:
            # checked by validate(): the tasks join the flow inside the `with` block
            self._reference = list(reference_tasks)

    def __repr__(self) -> str:
        return f"<Flow: {self.name} ({len(self.tasks)} tasks)>"

    # --- the active-flow context -------------------------------------------

    @staticmethod
    def active() -> Flow | None:
        """The flow of the innermost ``with Flow(...)`` block, if any."""
        return building.active()

    def __enter__(self) -> Flow:
        self._tokens.append(building.push(self))
        return self

    def __exit__(self, exc_type: object, *_: object) -> None:
        building.pop(self._tokens.pop())
        if exc_type is None:
            self.validate()

    # --- building -----------------------------------------------------------

    def add_task(self, task: Task) -> Task:
        """Add a task to the flow (once); refuse a task bound into another flow."""
        if not isinstance(task, Task):
            raise FlowValidationError(
                f"flow {self.name!r}: expected a task, got {type(task).__name__}"
            )
        if task in self.tasks:
            return task
        if task._flow is not None and task._flow is not self:
            raise FlowValidationError(
                f"task {task.name!r} belongs to flow {task._flow.name!r}; call it inside "
                f"flow {self.name!r} to bind a copy"
            )
        if isinstance(task, Parameter):
            clash = self._slugs.get(task.name)
            if isinstance(clash, Parameter):
                raise FlowValidationError(
                    f"flow {self.name!r} has two parameters named {task.name!r}"
                )
            if clash is not None:
                if clash in self._chosen_slugs:
                    raise FlowValidationError(
                        f"flow {self.name!r}: parameter {task.name!r} and task "
                        f"{clash.name!r} both have slug {task.name!r}"
                    )
                # a task took the parameter's name as its derived slug: it moves aside
                del self._slugs[task.name]
                clash.slug = self._free_slug(task.name)
                self._slugs[clash.slug] = clash
        elif task.slug:
            self._chosen_slugs.add(task)
        slug = task.slug or _slugify(task.name)
        if slug in self._slugs:
            if task.slug and not isinstance(task, Parameter):
                raise FlowValidationError(f"flow {self.name!r}: two tasks have slug {slug!r}")
            slug = self._free_slug(slug)
        task.slug = slug
        task._flow = self
        self._slugs[slug] = task
        self.tasks[task] = None
        block = building.active_case()
        if block is not None and not isinstance(task, Parameter | Constant):
            block.add_task(task, self)  # a new task inside `with case(...)` joins the branch
        return task

    def _free_slug(self, slug: str) -> str:
        """``slug`` made unique in this flow with a ``-2``, ``-3``... suffix."""
        n = 2
        while f"{slug}-{n}" in self._slugs:
            n += 1
        return f"{slug}-{n}"

    def add_edge(
        self,
        upstream: Any,
        downstream: Task,
        key: str | None = None,
        mapped: bool = False,
        flatten: bool = False,
    ) -> Edge:
        """Add an edge; refuse cycles, unknown keys, a key bound twice and any edge
        into a Parameter. A ``mapped`` edge makes ``downstream`` a mapped task."""
        if not isinstance(upstream, Task):
            raise FlowValidationError(
                f"task {downstream.name!r}: upstream must be a task, got {type(upstream).__name__}"
            )
        if isinstance(downstream, Parameter):
            raise FlowValidationError(
                f"parameter {downstream.name!r} cannot have upstream tasks (got "
                f"{upstream.name!r}): parameters are root tasks, their value comes with the run"
            )
        if upstream is downstream:
            raise FlowValidationError(f"task {downstream.name!r} cannot depend on itself")
        if key is not None:
            downstream.check_argument(key)
            for e in self.edges:
                if e.downstream is downstream and e.key == key:
                    raise FlowValidationError(
                        f"task {downstream.name!r}: argument {key!r} is already bound to "
                        f"task {e.upstream.name!r}"
                    )
            if key in self.constants.get(downstream, {}):
                raise FlowValidationError(
                    f"task {downstream.name!r}: argument {key!r} is already bound to a constant"
                )
        self.add_task(upstream)
        self.add_task(downstream)
        if self._reaches(downstream, upstream):
            raise FlowValidationError(
                f"flow {self.name!r}: edge {upstream.slug!r} -> {downstream.slug!r} makes a cycle"
            )
        edge = Edge(upstream, downstream, key, mapped, flatten)
        if edge not in self.edges:
            self.edges.append(edge)
        if mapped:
            self.mapped.add(downstream)
        return edge

    def set_dependencies(
        self,
        task: Task,
        upstream_tasks: Iterable[Any] | None = None,
        downstream_tasks: Iterable[Any] | None = None,
        keyword_tasks: dict[str, Any] | None = None,
        mapped: bool = False,
    ) -> None:
        """Add ``task`` with its ordering edges, data edges and constants.

        With ``mapped``, every argument and upstream task not wrapped in
        :class:`unmapped` is mapped over (a plain list among ``upstream_tasks``
        becomes a :class:`~orchestrator.edges.Constant` task mapped over); a call
        that maps over nothing binds the task unmapped, run once with whole values.
        """
        self.add_task(task)
        for up in upstream_tasks or ():
            value, mode = unwrap(task, up, mapped)
            if mode != "whole" and not isinstance(value, Task):
                value = Constant(value)
            self.add_edge(value, task, mapped=mode != "whole", flatten=mode == "flatten")
        for down in downstream_tasks or ():
            self.add_edge(task, down)
        for key, arg in (keyword_tasks or {}).items():
            value, mode = unwrap(task, arg, mapped)
            if isinstance(value, Task):
                self.add_edge(
                    value, task, key=key, mapped=mode != "whole", flatten=mode == "flatten"
                )
            else:
                task.check_argument(key)
                refuse_nested_task(f"task {task.name!r}", key, value)
                self.constants.setdefault(task, {})[key] = value
                if mode != "whole":
                    self.constant_modes.setdefault(task, {})[key] = mode
                    self.mapped.add(task)

    def set_reference_tasks(self, tasks: Iterable[Task]) -> None:
        """Choose which tasks' states decide the flow's state."""
        chosen = list(tasks)
        for t in chosen:
            if t not in self.tasks:
                raise FlowValidationError(
                    f"flow {self.name!r}: reference task {t.name!r} is not in the flow"
                )
        self._reference = chosen

    # --- reading ------------------------------------------------------------

    def task_by_slug(self, slug: str) -> Task:
        """The task with this slug."""
        try:
            return self._slugs[slug]
        except KeyError:
            raise FlowValidationError(f"flow {self.name!r} has no task {slug!r}") from None

    def upstream_edges(self, task: Task) -> list[Edge]:
        """The edges into ``task``."""
        return [e for e in self.edges if e.downstream is task]

    def downstream_edges(self, task: Task) -> list[Edge]:
        """The edges out of ``task``."""
        return [e for e in self.edges if e.upstream is task]

    def parameters(self) -> list[Parameter]:
        """The flow's parameters, in the order they were added."""
        return [t for t in self.tasks if isinstance(t, Parameter)]

    def terminal_tasks(self) -> list[Task]:
        """Tasks with no downstream."""
        has_down = {e.upstream for e in self.edges}
        return [t for t in self.tasks if t not in has_down]

    def reference_tasks(self) -> list[Task]:
        """The tasks whose states decide the flow's state: the chosen ones, or (none
        chosen, or an empty choice, as in Prefect 1) the terminal tasks."""
        return list(self._reference) if self._reference else self.terminal_tasks()

    def sorted_tasks(self) -> list[Task]:
        """The tasks in a topological order, stable with respect to insertion order."""
        indegree = {t: 0 for t in self.tasks}
        down: dict[Task, list[Task]] = {t: [] for t in self.tasks}
        for e in self.edges:
            indegree[e.downstream] += 1
            down[e.upstream].append(e.downstream)
        ready = [t for t, d in indegree.items() if d == 0]
        out: list[Task] = []
        while ready:
            t = ready.pop(0)
            out.append(t)
            for d in down[t]:
                indegree[d] -= 1
                if indegree[d] == 0:
                    ready.append(d)
        if len(out) != len(self.tasks):
            stuck = [t.slug for t in self.tasks if t not in out]
            raise FlowValidationError(f"flow {self.name!r} has a cycle through {stuck}")
        return out

    def _reaches(self, start: Task, goal: Task) -> bool:
        seen: set[Task] = set()
        todo = [start]
        while todo:
            t = todo.pop()
            if t is goal:
                return True
            if t in seen:
                continue
            seen.add(t)
            todo.extend(e.downstream for e in self.edges if e.upstream is t)
        return False

    def validate(self) -> None:
        """Check the whole flow: acyclic, and every required argument bound."""
        if not self.tasks:
            raise FlowValidationError(f"flow {self.name!r} has no tasks")
        self.sorted_tasks()
        if self._reference is not None:
            self.set_reference_tasks(self._reference)
        for t in self.tasks:
            bound = {e.key for e in self.upstream_edges(t) if e.key} | set(
                self.constants.get(t, {})
            )
            missing = [a for a in t.required_arguments() if a not in bound]
            if missing:
                raise FlowValidationError(
                    f"task {t.slug!r} in flow {self.name!r} is missing argument(s) "
                    f"{', '.join(missing)}"
                )

    def __iter__(self) -> Iterator[Task]:
        return iter(self.tasks)

    # --- structure ----------------------------------------------------------

    def structure(self) -> dict[str, Any]:
        """A JSON description of the flow's structure, what versions are compared on."""
        return _structure.structure(self)

    def structural_hash(self) -> str:
        """A hash of :meth:`structure`: equal for equal structures."""
        return _structure.structural_hash(self)

    # --- running and registering -------------------------------------------

    def run(self, parameters: dict[str, Any] | None = None) -> FlowRunState:
        """Run the flow in this process, with no broker, and return its final state.

        Args:
            parameters: values for the flow's parameters.

        Returns:
            The flow run's state, with every task's state and result.
        """
        return run_flow(self, parameters or {})

    def register(
        self,
        project_name: str,
        import_ref: str | None = None,
        labels: str | Iterable[str] | None = None,
    ) -> int:
        """Store this flow in the project; a new version only when its structure changed.

        Args:
            project_name: the project (created when missing).
            import_ref: how workers import the flow (``module:attribute`` or
                ``path/to/file.py:attribute``); found automatically when the flow
                is a module-level variable.
            labels: extra labels for the flow's runs (a string is one label).

        Returns:
            The flow's version number.
        """
        if labels:
            self.labels = sorted(set(self.labels) | set(check_labels(labels)))
        return hooks.installed().register_flow(self, project_name, import_ref)


def _slugify(name: str) -> str:
    out = "".join(c if c.isalnum() or c in "-_." else "-" for c in name.strip())
    return out or "task"
