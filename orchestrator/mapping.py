"""The map fan-out, written once for ``flow.run()`` and the workers: what each mapped
edge hands the children (:func:`mapped_items`), one :class:`Element` per child
(:func:`expand`), what one child sees (:func:`element_constants`,
:func:`element_upstream`), and the mapped task's own outcome from its children's
(:func:`mapped_outcome`). As in Prefect 1, a mapped edge from a mapped upstream
gives each child the matching child's state (so a failed element trigger-fails
only its own downstream element), and ``flatten()`` of a mapped upstream turns a
failed or skipped child into one element in that state. Pure: imports only the
core (engine, states, task)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from orchestrator.engine import Outcome, Upstream, check_upstream
from orchestrator.states import State
from orchestrator.task import Task

#: One item a mapped edge hands a child: its value, and the state the child sees
#: for that edge (None: the upstream's own state).
Item = tuple[Any, State | None]


class MapError(Exception):
    """Raised when a mapped argument is not a list (the message names task and argument)."""


@dataclass(frozen=True)
class Element:
    """What one child of a mapped task is given.

    Attributes:
        values: the mapped arguments' values, by argument name.
        states: the state the child sees for each mapped edge from a mapped
            upstream (or a flattened one), by :func:`edge_id`.
    """

    values: dict[str, Any]
    states: dict[str, State] = field(default_factory=dict)

    def wire_states(self) -> dict[str, str] | None:
        """The states as JSON (None when there are none), for a node's message."""
        return {k: s.value for k, s in self.states.items()} or None

    @classmethod
    def from_wire(
        cls, values: Mapping[str, Any] | None, states: Mapping[str, str] | None
    ) -> Element:
        """The element a node's message carries."""
        return cls(dict(values or {}), {k: State(v) for k, v in (states or {}).items()})


def edge_id(u: Upstream) -> str:
    """A mapped edge's name among a task's edges: its argument, or ``@slug`` for an
    ordering edge (no argument)."""
    return u.key if u.key is not None else f"@{u.slug}"


def _listed(task: Task, key: str, value: Any, origin: str) -> list[Any]:
    if not isinstance(value, list | tuple):
        raise MapError(
            f"task {task.slug!r} maps over argument {key!r}, but {origin} gave "
            f"{type(value).__name__}, not a list"
        )
    return list(value)


def _flat(values: Sequence[Any], states: Sequence[State | None]) -> list[Item]:
    """``flatten()``: the items of each list in turn (an item that is not a list is
    one element); an upstream child that did not succeed is one element in its state."""
    items: list[Item] = []
    for value, state in zip(values, states, strict=True):
        if state is not None and state is not State.SUCCESS:
            items.append((None, state))
        elif isinstance(value, list | tuple):
            items.extend((v, state) for v in value)
        else:
            items.append((value, state))
    return items


def _edge_items(task: Task, u: Upstream) -> list[Item]:
    """What one mapped edge hands the children, in order."""
    key = u.key or f"upstream {u.slug!r}"
    values = _listed(task, key, u.result, f"task {u.slug!r}")
    states: list[State | None] = [None] * len(values)
    if u.children is not None:  # a mapped upstream: child i's state goes with element i
        states = list(u.children)
        values = (values + [None] * len(states))[: len(states)]
    if u.flatten:
        return _flat(values, states)
    return list(zip(values, states, strict=True))


def mapped_items(
    task: Task, constants: Mapping[str, Any], modes: Mapping[str, str], upstream: Sequence[Upstream]
) -> dict[str, list[Item]]:
    """What each mapped argument or edge hands the children, by :func:`edge_id`.

    Raises:
        MapError: a mapped argument is not a list, or the task has no mapped argument.
    """
    items: dict[str, list[Item]] = {}
    for key, mode in modes.items():
        values = _listed(task, key, constants[key], "constant")
        nones: list[State | None] = [None] * len(values)
        items[key] = _flat(values, nones) if mode == "flatten" else [(v, None) for v in values]
    for u in upstream:
        if u.mapped:
            items[edge_id(u)] = _edge_items(task, u)
    if not items:
        raise MapError(f"task {task.slug!r} is mapped but has no mapped argument")
    return items


def expand(
    task: Task,
    constants: Mapping[str, Any],
    modes: Mapping[str, str],
    upstream: Sequence[Upstream],
) -> Outcome | list[Element]:
    """Fan a mapped task out over its elements, or say why it ends now.

    Args:
        task: the mapped task.
        constants: its constant arguments.
        modes: how each mapped constant is mapped (``"mapped"`` or ``"flatten"``).
        upstream: its upstream task runs, as the mapped task itself sees them (a
            mapped upstream that fanned out with its children's states).

    Returns:
        An outcome when the mapped task ends now (an upstream skip, its trigger, a
        mapped argument that is not a list: Failed); else one :class:`Element` per
        child, in order, as many as the shortest mapped list (maybe none: then
        ``mapped_outcome([])`` is the task's outcome).
    """
    # a mapped edge from a mapped upstream is checked per child, not for the whole map
    whole = [u for u in upstream if not (u.mapped and u.children is not None)]
    stop = check_upstream(task, whole)
    if stop is not None:
        return stop
    try:
        items = mapped_items(task, constants, modes, upstream)
    except MapError as exc:
        return Outcome(State.FAILED, message=str(exc))
    width = min(len(v) for v in items.values())
    keyed = set(modes) | {u.key for u in upstream if u.mapped and u.key is not None}
    elements = []
    for i in range(width):
        values = {k: v[i][0] for k, v in items.items() if k in keyed}
        states = {k: s for k, v in items.items() if (s := v[i][1]) is not None}
        elements.append(Element(values, states))
    return elements


def element_constants(
    constants: Mapping[str, Any], modes: Mapping[str, str], element: Element
) -> dict[str, Any]:
    """The constants one child of a mapped task runs with: mapped ones take its element."""
    return {k: element.values[k] if k in modes else v for k, v in constants.items()}


def element_upstream(upstream: Sequence[Upstream], element: Element) -> list[Upstream]:
    """The upstream one child of a mapped task sees: a mapped edge carries that
    child's value and the state that goes with it (the matching child's, for a
    mapped upstream); an edge that takes its upstream whole is as the parent saw it."""
    out = []
    for u in upstream:
        if u.mapped:
            state = element.states.get(edge_id(u), u.state)
            value = element.values.get(u.key) if u.key is not None else None
            out.append(Upstream(u.slug, u.key, state, value))
        else:
            out.append(u)
    return out


def fanning(width: int) -> Outcome:
    """The mapped task's own transition to Running when it fans out to ``width`` children."""
    return Outcome(State.RUNNING, message=f"mapped over {width} elements")


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
