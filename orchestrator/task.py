"""Tasks, the units of work in a flow, with Prefect 1 semantics: :class:`Task` (a
subclass with a ``run()`` method), :func:`task` (a function wrapped as a
:class:`FunctionTask`) and :class:`Parameter`. Calling a task inside ``with
Flow(...)`` binds a copy of it into the active flow (:mod:`orchestrator.building`);
its arguments become data edges (other tasks) or constants (plain values). Pure:
imports only the core (building, context, errors, handlers, triggers); the flow type
only for type checking."""

from __future__ import annotations

import copy as _copy
import inspect
from collections.abc import Callable, Iterable
from datetime import timedelta
from typing import TYPE_CHECKING, Any, TypeVar, overload

import orchestrator.building as building
import orchestrator.triggers as _triggers
from orchestrator.context import current
from orchestrator.errors import FlowValidationError, NestedTaskError
from orchestrator.handlers import StateHandler, check_handlers

if TYPE_CHECKING:
    from orchestrator.flow import Flow

F = TypeVar("F", bound=Callable[..., Any])

_NO_DEFAULT: Any = object()


def _seconds(value: timedelta | float | int | None, what: str, name: str) -> float | None:
    if value is None:
        return None
    seconds = value.total_seconds() if isinstance(value, timedelta) else float(value)
    if seconds < 0:
        raise FlowValidationError(f"task {name!r}: {what} must not be negative")
    return seconds


def _nested_task(value: Any, where: str) -> tuple[str, Task] | None:
    """The first task inside a dict, list, tuple or set ``value``, with where it
    sits (``where`` followed by its keys, ``parameters['x']``), if any."""
    if isinstance(value, dict):
        items: Iterable[tuple[Any, Any]] = value.items()
    elif isinstance(value, list | tuple | set | frozenset):
        items = enumerate(value)
    else:
        return None
    for key, item in items:
        here = f"{where}[{key!r}]"
        if isinstance(item, Task):
            return here, item
        found = _nested_task(item, here)
        if found is not None:
            return found
    return None


def refuse_nested_task(owner: str, key: str, value: Any) -> None:
    """Refuse a task inside a dict or list given as argument ``key`` of ``owner``:
    nothing would run it or put its result there.

    Raises:
        NestedTaskError: naming the key the task sits at.
    """
    found = _nested_task(value, key)
    if found is None:
        return
    where, inner = found
    raise NestedTaskError(
        f"{owner}: {where} is task {inner.name!r}; a task inside a dict or list is not "
        f"resolved at run time: pass the task as the whole {key!r} argument (its "
        f"result becomes the value), or build the value in a task"
    )


class Task:
    """A unit of work. Subclass it and define ``run()``, or use :func:`task`.

    Args:
        name: a readable name; defaults to the class name.
        slug: a stable id within the flow; defaults to the name (made unique by the flow).
        max_retries: how many times a failed run is retried.
        retry_delay: how long to wait before a retry (a timedelta or seconds).
        timeout: seconds the code may run before the run is TimedOut.
        trigger: a function of the upstream states deciding whether the task runs
            (see :mod:`orchestrator.triggers`); ``all_successful`` by default.
        skip_on_upstream_skip: whether a skipped upstream skips this task.
        tags: free-form tags.
        state_handlers: functions called as ``handler(task, old_state, new_state)``
            on each of the task run's transitions (see :mod:`orchestrator.handlers`).
        on_failure: ``fn(task, state)``, called when the task run fails.
    """

    def __init__(
        self,
        name: str | None = None,
        slug: str | None = None,
        max_retries: int = 0,
        retry_delay: timedelta | float | None = None,
        timeout: float | int | timedelta | None = None,
        trigger: _triggers.Trigger | None = None,
        skip_on_upstream_skip: bool = True,
        tags: Iterable[str] | None = None,
        state_handlers: Iterable[StateHandler] | None = None,
        on_failure: Callable[[Any, Any], Any] | None = None,
    ) -> None:
        self.name: str = name or type(self).__name__
        self.slug: str | None = slug
        if max_retries < 0:
            raise FlowValidationError(f"task {self.name!r}: max_retries must not be negative")
        self.max_retries = int(max_retries)
        if self.max_retries and retry_delay is None:
            retry_delay = 0
        self.retry_delay = _seconds(retry_delay, "retry_delay", self.name)
        self.timeout = _seconds(timeout, "timeout", self.name)
        self.trigger: _triggers.Trigger = trigger or _triggers.all_successful
        self.skip_on_upstream_skip = skip_on_upstream_skip
        self.tags = set(tags or ())
        self.state_handlers = check_handlers(
            list(state_handlers or ()), f"task {self.name!r}", on_failure
        )
        self._flow: Flow | None = None

    def __repr__(self) -> str:
        return f"<Task: {self.slug or self.name}>"

    def run(self, *args: Any, **kwargs: Any) -> Any:
        """The task's work. Subclasses override this."""
        raise NotImplementedError(f"task {self.name!r} defines no run() method")

    # --- binding into flows -------------------------------------------------

    def copy(self, **overrides: Any) -> Task:
        """A shallow copy, not bound to any flow, with some attributes replaced."""
        new = _copy.copy(self)
        new._flow = None
        new.slug = None if "slug" not in overrides else overrides.pop("slug")
        new.tags = set(self.tags)
        new.state_handlers = list(self.state_handlers)
        for attr, value in overrides.items():
            setattr(new, attr, value)
        return new

    def run_signature(self) -> inspect.Signature:
        """The signature of ``run()``, without ``self``."""
        return inspect.signature(self.run)

    def accepts_any_keyword(self) -> bool:
        """Whether ``run()`` takes ``**kwargs``."""
        return any(
            p.kind is inspect.Parameter.VAR_KEYWORD
            for p in self.run_signature().parameters.values()
        )

    def check_argument(self, key: str) -> None:
        """Raise if ``run()`` has no argument named ``key``."""
        params = self.run_signature().parameters
        if key in params and params[key].kind not in (
            inspect.Parameter.VAR_POSITIONAL,
            inspect.Parameter.VAR_KEYWORD,
        ):
            return
        if self.accepts_any_keyword():
            return
        known = (
            ", ".join(p for p in params if params[p].kind.name.startswith(("POS", "KEY"))) or "none"
        )
        raise FlowValidationError(
            f"task {self.name!r}: run() has no argument {key!r} (its arguments: {known})"
        )

    def required_arguments(self) -> list[str]:
        """The names of ``run()`` arguments that have no default."""
        return [
            p.name
            for p in self.run_signature().parameters.values()
            if p.default is inspect.Parameter.empty
            and p.kind in (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
        ]

    def _call_arguments(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> dict[str, Any]:
        sig = self.run_signature()
        for key in kwargs:
            self.check_argument(key)
        try:
            bound = sig.bind_partial(*args, **kwargs)
        except TypeError as exc:
            raise FlowValidationError(f"task {self.name!r}: {exc}") from None
        out: dict[str, Any] = {}
        for name, value in bound.arguments.items():
            param = sig.parameters[name]
            if param.kind is inspect.Parameter.VAR_KEYWORD:
                out.update(value)
            elif param.kind is inspect.Parameter.VAR_POSITIONAL:
                raise FlowValidationError(
                    f"task {self.name!r}: pass arguments by name, *args cannot be bound in a flow"
                )
            else:
                out[name] = value
        return out

    def __call__(
        self,
        *args: Any,
        upstream_tasks: Iterable[Any] | None = None,
        flow: Flow | None = None,
        task_args: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> Task:
        """Bind a copy of this task into the active flow and return the copy.

        Arguments that are tasks become data edges; other values are constants.

        Args:
            *args: ``run()`` arguments by position.
            upstream_tasks: tasks that must finish first (ordering edges, no data).
            flow: the flow to bind into; defaults to the active ``with Flow(...)``.
            task_args: attributes to override on the copy (``name``, ``max_retries``...).
            **kwargs: ``run()`` arguments by name.

        Returns:
            The bound copy.
        """
        new = self.copy(**(task_args or {}))
        new.bind(*args, upstream_tasks=upstream_tasks, flow=flow, **kwargs)
        return new

    def map(
        self,
        *args: Any,
        upstream_tasks: Iterable[Any] | None = None,
        flow: Flow | None = None,
        task_args: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> Task:
        """Bind a mapped copy: one child run per element of the mapped arguments.

        Every argument is mapped over (a list, or an upstream task returning one)
        unless wrapped in :class:`~orchestrator.flow.unmapped`; wrap a list of
        lists in :class:`~orchestrator.flow.flatten` to map over its items.
        Arguments of unequal length map over the shortest.

        Returns:
            The bound copy; its result is the list of its children's results.
        """
        new = self.copy(**(task_args or {}))
        new.bind(*args, upstream_tasks=upstream_tasks, flow=flow, mapped=True, **kwargs)
        return new

    def bind(
        self,
        *args: Any,
        upstream_tasks: Iterable[Any] | None = None,
        flow: Flow | None = None,
        mapped: bool = False,
        **kwargs: Any,
    ) -> Task:
        """Bind this very task (not a copy) into a flow with the given arguments."""
        target = flow or building.active()
        if target is None:
            raise FlowValidationError(
                f"task {self.name!r} was called outside a flow; use it inside `with Flow(...)`"
            )
        call_args = self._call_arguments(args, kwargs)
        target.set_dependencies(
            self, upstream_tasks=upstream_tasks, keyword_tasks=call_args, mapped=mapped
        )
        return self

    def set_upstream(self, task: Any, key: str | None = None, flow: Flow | None = None) -> None:
        """Make ``task`` run before this one; with ``key``, pass its result as that argument."""
        target = flow or building.active()
        if target is None:
            raise FlowValidationError(
                f"task {self.name!r}: set_upstream needs an active flow or a flow= argument"
            )
        target.add_edge(task, self, key=key)

    def set_downstream(self, task: Any, key: str | None = None, flow: Flow | None = None) -> None:
        """Make this task run before ``task``; with ``key``, pass our result as that argument."""
        target = flow or building.active()
        if target is None:
            raise FlowValidationError(
                f"task {self.name!r}: set_downstream needs an active flow or a flow= argument"
            )
        target.add_edge(self, task, key=key)


class FunctionTask(Task):
    """A task whose ``run()`` is a plain function (what :func:`task` makes)."""

    def __init__(self, fn: Callable[..., Any], name: str | None = None, **options: Any) -> None:
        if not callable(fn):
            raise FlowValidationError(f"@task needs a function, got {type(fn).__name__}")
        self.fn = fn
        super().__init__(name=name or getattr(fn, "__name__", "task"), **options)
        self.__doc__ = fn.__doc__

    def run(self, *args: Any, **kwargs: Any) -> Any:
        """Call the wrapped function."""
        return self.fn(*args, **kwargs)

    def run_signature(self) -> inspect.Signature:
        """The wrapped function's signature."""
        return inspect.signature(self.fn)


@overload
def task(fn: Callable[..., Any], /) -> FunctionTask: ...


@overload
def task(
    fn: None = None,
    /,
    *,
    name: str | None = None,
    slug: str | None = None,
    max_retries: int = 0,
    retry_delay: timedelta | float | None = None,
    timeout: float | int | timedelta | None = None,
    trigger: _triggers.Trigger | None = None,
    skip_on_upstream_skip: bool = True,
    tags: Iterable[str] | None = None,
    state_handlers: Iterable[StateHandler] | None = None,
    on_failure: Callable[[Any, Any], Any] | None = None,
) -> Callable[[Callable[..., Any]], FunctionTask]: ...


def task(
    fn: Callable[..., Any] | None = None, /, **options: Any
) -> FunctionTask | Callable[[Callable[..., Any]], FunctionTask]:
    """Turn a function into a task, as ``@task`` or ``@task(name=..., max_retries=...)``.

    Args:
        fn: the function (when used bare).
        **options: the :class:`Task` options.

    Returns:
        A :class:`FunctionTask`, or a decorator making one.
    """
    if fn is not None:
        return FunctionTask(fn, **options)

    def decorator(f: Callable[..., Any]) -> FunctionTask:
        return FunctionTask(f, **options)

    return decorator


class Parameter(Task):
    """A flow parameter: a task whose value is given when the flow run starts.

    Args:
        name: the parameter's name, unique in its flow.
        default: its value when the run gives none (JSON-compatible).
        required: whether a run must give it; by default, required when no default.
    """

    def __init__(self, name: str, default: Any = _NO_DEFAULT, required: bool | None = None) -> None:
        super().__init__(name=name, slug=name)
        self.default = None if default is _NO_DEFAULT else default
        self.required = (default is _NO_DEFAULT) if required is None else required

    def __repr__(self) -> str:
        return f"<Parameter: {self.name}>"

    def copy(self, **overrides: Any) -> Task:
        """A parameter's slug is its name: a copy under a new name has that slug."""
        slug = overrides.pop("slug", None)
        new = super().copy(**overrides)
        new.slug = slug or new.name
        return new

    def run(self) -> Any:
        """Return this parameter's value in the current run."""
        ctx = current()
        if ctx is not None and self.name in ctx.parameters:
            return ctx.parameters[self.name]
        return self.default

    def declaration(self) -> dict[str, Any]:
        """The parameter as stored with a registered flow."""
        return {"name": self.name, "default": self.default, "required": self.required}
