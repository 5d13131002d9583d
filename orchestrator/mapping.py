"""The map fan-out, written once for ``flow.run()`` and the workers: the lists a
mapped task maps over (:func:`mapped_lists`), one dict of mapped-argument values per
child (:func:`expand`), what one child sees (:func:`element_constants`,
:func:`element_upstream`), and the mapped task's own outcome from its children's
(:func:`mapped_outcome`). Pure: imports only the core (engine, states, task)."""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from typing import Any

from orchestrator.engine import Outcome, Upstream, check_upstream
from orchestrator.states import State
from orchestrator.task import Task


class MapError(Exception):
    """Raised when a mapped argument is not a list (the message names task and argument)."""


def _listed(task: Task, key: str, value: Any, flat: bool, origin: str) -> list[Any]:
    """One mapped argument's list (flattened when asked), or MapError."""
    if not isinstance(value, list | tuple):
        raise MapError(
            f"task {task.slug!r} maps over argument {key!r}, but {origin} gave "
            f"{type(value).__name__}, not a list"
        )
    if not flat:
        return list(value)
    items: list[Any] = []
    for part in value:
        if not isinstance(part, list | tuple):
            raise MapError(
                f"task {task.slug!r}: flatten({key}) needs a list of lists, found "
                f"{type(part).__name__} in it"
            )
        items.extend(part)
    return items


def mapped_lists(
    task: Task, constants: Mapping[str, Any], modes: Mapping[str, str], upstream: Sequence[Upstream]
) -> dict[str, list[Any]]:
    """The lists a mapped task maps over, by argument name (flattened where asked).

    Raises:
        MapError: a mapped argument is not a list (of lists, for ``flatten``), or
            the task has no mapped argument.
    """
    sources: list[tuple[str, Any, bool, str]] = [
        (key, constants[key], modes[key] == "flatten", "constant") for key in modes
    ]
    sources += [
        (u.key, u.result, u.flatten, f"task {u.slug!r}") for u in upstream if u.mapped and u.key
    ]
    lists = {key: _listed(task, key, value, flat, origin) for key, value, flat, origin in sources}
    if not lists:
        raise MapError(f"task {task.slug!r} is mapped but has no mapped argument")
    return lists


def map_width(lists: Mapping[str, list[Any]]) -> int:
    """How many children a mapped task has: the length of its shortest mapped list."""
    return min((len(v) for v in lists.values()), default=0)


def expand(
    task: Task,
    constants: Mapping[str, Any],
    modes: Mapping[str, str],
    upstream: Sequence[Upstream],
    mapped_tasks: Collection[str],
) -> Outcome | list[dict[str, Any]]:
    """Fan a mapped task out over its elements, or say why it ends now.

    Args:
        task: the mapped task.
        constants: its constant arguments.
        modes: how each mapped constant is mapped (``"mapped"`` or ``"flatten"``).
        upstream: its upstream task runs, as the mapped task itself sees them.
        mapped_tasks: the slugs of the flow's mapped tasks (a mapped edge from one
            of them is checked per child, not here).

    Returns:
        An outcome when the mapped task ends now (an upstream skip, its trigger, a
        mapped argument that is not a list: Failed); else one dict of
        mapped-argument values per child, in order (maybe empty: then
        ``mapped_outcome([])`` is the task's outcome).
    """
    whole = [u for u in upstream if not (u.mapped and u.slug in mapped_tasks)]
    stop = check_upstream(task, whole)
    if stop is not None:
        return stop
    try:
        lists = mapped_lists(task, constants, modes, upstream)
    except MapError as exc:
        return Outcome(State.FAILED, message=str(exc))
    return [{k: v[i] for k, v in lists.items()} for i in range(map_width(lists))]


def element_constants(
    constants: Mapping[str, Any], modes: Mapping[str, str], element: Mapping[str, Any]
) -> dict[str, Any]:
    """The constants one child of a mapped task runs with: mapped ones take its element."""
    return {k: element[k] if k in modes else v for k, v in constants.items()}


def element_upstream(
    upstream: Sequence[Upstream],
    element: Mapping[str, Any],
    element_states: Mapping[str, State],
) -> list[Upstream]:
    """The upstream one child of a mapped task sees: mapped edges carry that child's
    element, and the state of the matching child of a mapped upstream."""
    out = []
    for u in upstream:
        if u.mapped and u.key is not None:
            out.append(Upstream(u.slug, u.key, element_states.get(u.slug, u.state), element[u.key]))
        else:
            out.append(u)
    return out


def mapped_outcome(children: Sequence[tuple[State, Any]]) -> Outcome:
    """A mapped task's own outcome from its children's states and results, in order."""
    states = [s for s, _ in children]
    results = [r for _, r in children]
    if any(s is State.CANCELLED for s in states):
        return Outcome(State.CANCELLED, results, "a mapped child was cancelled")
    failed = [i for i, s in enumerate(states) if s.is_failed]
    if failed:
        shown = ", ".join(str(i) for i in failed[:10])
        return Outcome(
            State.FAILED,
            results,
            f"{len(failed)} of {len(states)} mapped children failed (index {shown})",
        )
    return Outcome(State.SUCCESS, results, f"mapped over {len(states)} elements")
