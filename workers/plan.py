"""Execution plans: the tree a flow's DAG compiles to, :class:`Node` (one task),
:class:`Chain` (parts one after another) and :class:`Group` (parts in parallel),
with the traversals that read one back (:func:`plan_nodes`,
:func:`plan_orderings`) and the flattening constructors the compiler builds with.

Pure data: imports only the standard library (the compiler is :mod:`workers.dag`,
the Celery adapter :mod:`workers.canvas`)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeAlias, TypeVar

__all__ = ["Chain", "Group", "Node", "Plan", "chain_of", "group_of", "plan_nodes", "plan_orderings"]


@dataclass(frozen=True, slots=True)
class Node:
    """One task run, named by its task slug."""

    slug: str


@dataclass(frozen=True, slots=True)
class Chain:
    """Parts run one after another: all of part ``i`` finishes before part ``i + 1`` starts."""

    parts: tuple[Plan, ...]


@dataclass(frozen=True, slots=True)
class Group:
    """Parts run in parallel, with no ordering between them."""

    parts: tuple[Plan, ...]


Plan: TypeAlias = Node | Chain | Group
"""A compiled execution plan: a tree of :class:`Node`, :class:`Chain` and :class:`Group`."""


def plan_nodes(plan: Plan) -> list[str]:
    """List the task slugs of a plan, depth first, left to right.

    Args:
        plan: A compiled (or hand-built) plan.

    Returns:
        The slugs in plan order; a compiled plan lists each node once.
    """
    return _fold(plan, _single, _concat, _concat)


def plan_orderings(plan: Plan) -> set[tuple[str, str]]:
    """Every ordering a plan implies, transitively.

    Args:
        plan: A compiled (or hand-built) plan.

    Returns:
        The pairs ``(u, v)`` such that ``u`` finishes before ``v`` starts:
        ``u`` and ``v`` sit in different parts of one :class:`Chain`, ``u``'s
        part first.
    """
    orderings: set[tuple[str, str]] = set()

    def on_chain(parts: list[list[str]]) -> list[str]:
        done: list[str] = []
        for part in parts:
            orderings.update((u, v) for u in done for v in part)
            done.extend(part)
        return done

    _fold(plan, _single, on_chain, _concat)
    return orderings


def chain_of(parts: list[Plan]) -> Plan:
    """Parts one after another, flattened: no one-part ``Chain``, no ``Chain`` in a ``Chain``.

    Args:
        parts: At least one plan.

    Returns:
        The only part, or a :class:`Chain` of the parts with nested chains spliced in.
    """
    flat: list[Plan] = []
    for part in parts:
        flat.extend(part.parts if isinstance(part, Chain) else (part,))
    return flat[0] if len(flat) == 1 else Chain(tuple(flat))


def group_of(parts: list[Plan]) -> Plan:
    """Parts in parallel, flattened: no one-part ``Group``, no ``Group`` in a ``Group``.

    Args:
        parts: At least one plan.

    Returns:
        The only part, or a :class:`Group` of the parts with nested groups spliced in.
    """
    flat: list[Plan] = []
    for part in parts:
        flat.extend(part.parts if isinstance(part, Group) else (part,))
    return flat[0] if len(flat) == 1 else Group(tuple(flat))


# --- traversal ------------------------------------------------------------------------

_T = TypeVar("_T")


def _single(slug: str) -> list[str]:
    return [slug]


def _concat(parts: list[list[str]]) -> list[str]:
    return [slug for part in parts for slug in part]


def _fold(
    plan: Plan,
    on_node: Callable[[str], _T],
    on_chain: Callable[[list[_T]], _T],
    on_group: Callable[[list[_T]], _T],
) -> _T:
    """Fold a plan bottom-up without recursion (plans of deep DAGs can be deep)."""
    results: list[_T] = []
    stack: list[tuple[Plan, bool]] = [(plan, False)]
    while stack:
        item, expanded = stack.pop()
        if isinstance(item, Node):
            results.append(on_node(item.slug))
        elif not expanded:
            stack.append((item, True))
            stack.extend((part, False) for part in reversed(item.parts))
        else:
            start = len(results) - len(item.parts)
            parts = results[start:]
            del results[start:]
            results.append(on_chain(parts) if isinstance(item, Chain) else on_group(parts))
    return results[0]
