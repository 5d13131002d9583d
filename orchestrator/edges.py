"""Edges between tasks and the wrappers that say how a ``task.map()`` argument is
mapped: :class:`Edge` (a data edge keyed by the downstream ``run()`` argument, or an
ordering edge), :class:`unmapped` and :class:`flatten`, :func:`unwrap` (the mode a
wrapped argument asks for) and :class:`Constant` (a task returning a value, what a
plain list in ``upstream_tasks`` of a mapped call becomes, as in Prefect 1). Pure:
imports only the core (errors, task)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from orchestrator.errors import FlowValidationError
from orchestrator.task import Task

#: How an argument of a task call is bound: whole, mapped over, or flattened then mapped.
Mode = Literal["whole", "mapped", "flatten"]


@dataclass(frozen=True)
class Edge:
    """``upstream`` runs before ``downstream``; with a ``key``, its result is that argument.

    For a mapped ``downstream``, a ``mapped`` edge hands it one element of the
    upstream's list per child run (``flatten``: of the concatenated list of lists);
    a mapped edge without a key maps over the upstream without passing its values.
    """

    upstream: Task
    downstream: Task
    key: str | None = None
    mapped: bool = False
    flatten: bool = False


class unmapped:
    """Wrap an argument of ``task.map(...)`` that is passed whole to every child."""

    def __init__(self, value: Any) -> None:
        self.value = value


class flatten:
    """Wrap an argument of ``task.map(...)`` that is a list of lists, to map over its items."""

    def __init__(self, value: Any) -> None:
        self.value = value


def unwrap(task: Task, value: Any, mapped: bool) -> tuple[Any, Mode]:
    """An argument without its wrapper, and how it is bound.

    Args:
        task: the task being bound (for the message).
        value: the argument, maybe wrapped in :class:`unmapped` or :class:`flatten`.
        mapped: whether the call is ``task.map()`` (bare arguments are mapped).

    Raises:
        FlowValidationError: ``flatten()`` outside ``task.map()``.
    """
    if isinstance(value, unmapped):
        return value.value, "whole"
    if isinstance(value, flatten):
        if not mapped:
            raise FlowValidationError(
                f"task {task.name!r}: flatten() only applies to arguments of task.map()"
            )
        return value.value, "flatten"
    return value, "mapped" if mapped else "whole"


class Constant(Task):
    """A task that returns a fixed value: a constant list given in ``upstream_tasks``
    of ``task.map()`` becomes one, mapped over (its values are not passed on)."""

    def __init__(self, value: Any, **options: Any) -> None:
        options.setdefault("name", "constant")
        super().__init__(**options)
        self.value = value

    def run(self) -> Any:
        """Return the value."""
        return self.value

    def structure_options(self) -> dict[str, Any]:
        """The value belongs to its flow's structure."""
        return {"value": self.value}
