"""Canvas compiler: turn a flow's task DAG into a Celery canvas.

Two layers:

* :func:`compile_dag` is pure. It turns task slugs and dependency edges into a
  :data:`Plan`, a small tree of :class:`Node` (one task), :class:`Chain` (parts
  one after another) and :class:`Group` (parts in parallel).
* :func:`to_signature` is the thin Celery adapter: ``Node`` becomes
  ``make_sig(slug)``, ``Chain`` becomes :func:`celery.chain` and ``Group``
  becomes :func:`celery.group`. Celery itself turns ``chain(group, x)`` into a
  chord, so ``A -> (B, C) -> D`` runs as ``chain(A, chord([B, C], D))``.

Which orderings a plan adds
---------------------------
Write ``u < v`` when ``v`` depends on ``u``, directly or through other tasks
(the transitive closure of the edges). A plan orders ``u`` before ``v`` when
both sit in different parts of one ``Chain``, ``u``'s part first.

* A series-parallel DAG (one whose closure has no "N": no ``a < c``,
  ``b < c``, ``b < d`` with ``a``, ``d`` and ``a``, ``b`` and ``c``, ``d``
  unordered) compiles exactly: the plan orders ``u`` before ``v`` if and only
  if ``u < v``. Redundant (transitive) edges make no difference.
* Any other DAG gets synchronising orderings, and only at one step of the
  compilation. A set of tasks that is neither split into independent
  components (a ``Group``) nor into consecutive blocks that the closure
  already orders completely (a ``Chain``) is cut in two: ``S1``, a
  downward-closed set (every task ``S1`` depends on is in ``S1``), then
  ``S2``, the rest. The added orderings of that cut are exactly the pairs
  ``(u, v)`` with ``u`` in ``S1``, ``v`` in ``S2`` and not ``u < v``; nothing
  inside ``S1`` or ``S2`` and nothing between independent components is
  added. ``S1`` ranges over the prefixes of five topological orders (the
  order taking ready tasks in node order; earliest level first and latest
  level first, a level being the longest dependency path from a source or
  to a sink, each with ties in that first order and in reverse). The prefix
  adding the fewest pairs wins, then the most even split, then the earliest
  candidate; both halves are compiled the same way. The orderings a plan
  adds are the union of the pairs of all its cuts. Every dependency holds,
  because no edge runs from ``S2`` back to ``S1``. This is a heuristic: the
  cheapest of those cuts at each step, not always the global minimum.

Compilation is deterministic, ties break on the given node order, and the
reachability sets are Python ints used as bitsets, so a 10,000-task fan-out
compiles in a fraction of a second.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from enum import Enum
from typing import TypeAlias, TypeVar, cast

import celery
from celery.canvas import Signature

__all__ = [
    "Chain",
    "Group",
    "Node",
    "Plan",
    "compile_dag",
    "plan_nodes",
    "plan_orderings",
    "to_signature",
]


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


def compile_dag(nodes: Sequence[str], edges: Iterable[tuple[str, str]]) -> Plan:
    """Compile a DAG of task slugs into a series-parallel :data:`Plan`.

    Series-parallel DAGs compile exactly: the plan orders ``u`` before ``v``
    if and only if ``v`` depends on ``u`` (directly or transitively). Any
    other DAG is compiled by cutting each set of tasks that has no exact
    split into ``S1`` (downward closed) then ``S2`` (the rest); such a cut adds
    exactly the pairs ``(u, v)``, ``u`` in ``S1`` and ``v`` in ``S2``, that the
    closure does not already order, and the cut adding the fewest pairs is
    chosen among the prefixes of five topological orders. No other ordering
    is added, and every dependency holds. See the module docstring for the
    candidate orders and tie-breaks.

    The result is flat (no one-part ``Chain`` or ``Group``, no ``Chain``
    directly in a ``Chain``, no ``Group`` directly in a ``Group``) and
    deterministic: ``Group`` parts follow the given node order.

    Args:
        nodes: Task slugs, unique, in a stable order used to break ties.
        edges: ``(upstream, downstream)`` pairs; duplicates and transitive
            (redundant) edges are allowed.

    Returns:
        The plan; it holds every node exactly once.

    Raises:
        ValueError: If ``nodes`` is empty or holds a duplicate, an edge names
            an unknown node, or the edges form a cycle.
    """
    return _Compiler(nodes, edges).compile()


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


def to_signature(
    plan: Plan,
    make_sig: Callable[[str], Signature],
    barrier: Callable[[], Signature] | None = None,
) -> Signature:
    """Build the Celery canvas for a plan.

    ``Node`` becomes ``make_sig(slug)``, ``Chain`` becomes :func:`celery.chain`
    and ``Group`` becomes :func:`celery.group`. Celery upgrades a group
    followed by a task into a chord on its own. Nothing is sent.

    Celery 5.7 loses track of a chord nested in a group that ends a chain which
    is itself a member of a group (for example
    ``group(chain(x, group(chord([a, b], c), d)), e)`` never completes). With
    ``barrier``, a chain inside a group that ends in a group gets one no-op task
    appended, which closes that group with a plain chord and keeps every shape
    working; it adds no ordering between flow tasks.

    Args:
        plan: The plan to translate.
        make_sig: Builds the signature of one node task from its slug.
        barrier: Builds a no-op signature (see above).

    Returns:
        The canvas signature; calling ``apply_async()`` on it runs the plan.
    """

    def build(p: Plan, in_group: bool) -> Signature:
        if isinstance(p, Node):
            return make_sig(p.slug)
        if isinstance(p, Group):
            return cast(Signature, celery.group([build(x, True) for x in p.parts]))
        parts = [build(x, False) for x in p.parts]
        if in_group and barrier is not None and isinstance(p.parts[-1], Group):
            parts.append(barrier())
        return cast(Signature, celery.chain(*parts))

    return build(plan, False)


# --- plan traversal -------------------------------------------------------------------

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


def _chain(parts: list[Plan]) -> Plan:
    flat: list[Plan] = []
    for part in parts:
        flat.extend(part.parts if isinstance(part, Chain) else (part,))
    return flat[0] if len(flat) == 1 else Chain(tuple(flat))


def _group(parts: list[Plan]) -> Plan:
    flat: list[Plan] = []
    for part in parts:
        flat.extend(part.parts if isinstance(part, Group) else (part,))
    return flat[0] if len(flat) == 1 else Group(tuple(flat))


# --- compiler -------------------------------------------------------------------------


class _Split(Enum):
    NODE = "node"
    GROUP = "group"
    CHAIN = "chain"


def _bits(mask: int) -> list[int]:
    """Positions of the set bits of ``mask``, lowest first."""
    positions: list[int] = []
    while mask:
        low = mask & -mask
        positions.append(low.bit_length() - 1)
        mask ^= low
    return positions


class _Compiler:
    """One compilation. Tasks are numbered by topological position; sets are int bitsets."""

    def __init__(self, nodes: Sequence[str], edges: Iterable[tuple[str, str]]) -> None:
        slugs = list(nodes)
        if not slugs:
            raise ValueError("cannot compile a flow with no tasks")
        index: dict[str, int] = {}
        for i, slug in enumerate(slugs):
            if slug in index:
                raise ValueError(f"task {slug!r} is listed twice")
            index[slug] = i
        succ: list[set[int]] = [set() for _ in slugs]
        for upstream, downstream in edges:
            for end in (upstream, downstream):
                if end not in index:
                    raise ValueError(
                        f"edge {upstream!r} -> {downstream!r} names unknown task {end!r}"
                    )
            succ[index[upstream]].add(index[downstream])
        order = _topological_order(slugs, succ)
        n = len(order)
        position = [0] * n
        for pos, i in enumerate(order):
            position[i] = pos
        self.slugs = [slugs[i] for i in order]
        self.given = order  # given index of the task at each position
        self.succ = [sorted(position[j] for j in succ[i]) for i in order]
        pred: list[list[int]] = [[] for _ in order]
        for p, targets in enumerate(self.succ):
            for q in targets:
                pred[q].append(p)
        # desc[p] / anc[p]: bitsets of the tasks after / before p in the closure.
        self.desc = [0] * n
        height = [0] * n  # longest path from p down to a sink
        for p in reversed(range(n)):
            reach = 0
            for q in self.succ[p]:
                reach |= self.desc[q] | (1 << q)
                height[p] = max(height[p], height[q] + 1)
            self.desc[p] = reach
        self.anc = [0] * n
        depth = [0] * n  # longest path from a source down to p
        for p in range(n):
            reach = 0
            for q in pred[p]:
                reach |= self.anc[q] | (1 << q)
                depth[p] = max(depth[p], depth[q] + 1)
            self.anc[p] = reach
        # Candidate cuts are prefixes of these linear extensions (rank by position):
        # the topological order itself, then earliest level first and latest level
        # first, each with ties in topological order and in reverse.
        self.cut_orders: list[list[int] | None] = [
            None,
            _ranks(sorted(range(n), key=lambda p: (depth[p], p))),
            _ranks(sorted(range(n), key=lambda p: (-height[p], p))),
            _ranks(sorted(range(n), key=lambda p: (depth[p], -p))),
            _ranks(sorted(range(n), key=lambda p: (-height[p], -p))),
        ]

    def compile(self) -> Plan:
        """Split sets breadth first, then build plans bottom-up (no recursion)."""
        masks = [(1 << len(self.slugs)) - 1]
        kinds: list[_Split] = []
        children: list[range] = []
        i = 0
        while i < len(masks):
            kind, parts = self._split(masks[i])
            kinds.append(kind)
            children.append(range(len(masks), len(masks) + len(parts)))
            masks.extend(parts)
            i += 1
        plans: dict[int, Plan] = {}
        for i in reversed(range(len(masks))):
            if kinds[i] is _Split.NODE:
                plans[i] = Node(self.slugs[masks[i].bit_length() - 1])
            elif kinds[i] is _Split.GROUP:
                plans[i] = _group([plans[k] for k in children[i]])
            else:
                plans[i] = _chain([plans[k] for k in children[i]])
        return plans[0]

    def _split(self, mask: int) -> tuple[_Split, list[int]]:
        if mask & (mask - 1) == 0:
            return _Split.NODE, []
        members = _bits(mask)
        components = self._components(mask, members)
        if len(components) > 1:
            return _Split.GROUP, components
        series = self._series(mask, members)
        if len(series) > 1:
            return _Split.CHAIN, series
        return _Split.CHAIN, self._cheapest_cut(mask, members)

    def _components(self, mask: int, members: list[int]) -> list[int]:
        """Weakly connected components, ordered by their first task in the given order."""
        components: list[int] = []
        remaining = mask
        for start in sorted(members, key=self.given.__getitem__):
            if not remaining >> start & 1:
                continue
            component = frontier = 1 << start
            while frontier:
                reach = 0
                for p in _bits(frontier):
                    reach |= self.desc[p] | self.anc[p]
                frontier = reach & remaining & ~component
                component |= frontier
            components.append(component)
            remaining &= ~component
        return components

    def _series(self, mask: int, members: list[int]) -> list[int]:
        """The finest exact series split: blocks whose every task precedes all later blocks.

        Any such split cuts the topological order, so a cut after ``members[i]``
        is exact when no task up to it misses a task after it in its closure.
        """
        blocks: list[int] = []
        block = 0
        last_missed = -1  # highest position some earlier task does not reach
        for i, p in enumerate(members):
            missed = mask & ~self.desc[p] & ~((2 << p) - 1)
            last_missed = max(last_missed, missed.bit_length() - 1)
            block |= 1 << p
            if i + 1 == len(members) or last_missed < members[i + 1]:
                blocks.append(block)
                block = 0
        return blocks

    def _cheapest_cut(self, mask: int, members: list[int]) -> list[int]:
        """Cut ``mask`` into ``[S1, S2]`` adding the fewest unordered ``(S1, S2)`` pairs.

        Moving task ``x`` from ``S2`` to ``S1`` removes its unordered pairs with
        ``S1`` and adds those with the new ``S2``, so each candidate costs O(1)
        bitset operations. Ties prefer balanced halves, then earlier candidates.
        """
        unordered = {p: mask & ~(self.desc[p] | self.anc[p] | (1 << p)) for p in members}
        size = len(members)
        best: tuple[tuple[int, int, int, int], int] | None = None
        for order_index, ranks in enumerate(self.cut_orders):
            sequence = members if ranks is None else sorted(members, key=ranks.__getitem__)
            prefix = 0
            cost = 0
            for i, x in enumerate(sequence[:-1]):
                with_prefix = (unordered[x] & prefix).bit_count()
                cost += unordered[x].bit_count() - 2 * with_prefix
                prefix |= 1 << x
                key = (cost, abs(size - 2 * (i + 1)), order_index, i)
                if best is None or key < best[0]:
                    best = (key, prefix)
        assert best is not None  # mask has at least two members
        return [best[1], mask & ~best[1]]


def _ranks(order: list[int]) -> list[int]:
    ranks = [0] * len(order)
    for rank, p in enumerate(order):
        ranks[p] = rank
    return ranks


def _topological_order(slugs: list[str], succ: list[set[int]]) -> list[int]:
    """Kahn's algorithm, always taking the ready task that comes first in ``slugs``."""
    indegree = [0] * len(slugs)
    for targets in succ:
        for j in targets:
            indegree[j] += 1
    ready = [i for i, d in enumerate(indegree) if d == 0]
    heapq.heapify(ready)
    order: list[int] = []
    while ready:
        i = heapq.heappop(ready)
        order.append(i)
        for j in succ[i]:
            indegree[j] -= 1
            if indegree[j] == 0:
                heapq.heappush(ready, j)
    if len(order) < len(slugs):
        raise ValueError(f"tasks form a cycle: {_find_cycle(slugs, succ, indegree)}")
    return order


def _find_cycle(slugs: list[str], succ: list[set[int]], indegree: list[int]) -> str:
    """Name one cycle among the tasks Kahn's algorithm could not order."""
    stuck = {i for i, d in enumerate(indegree) if d > 0}
    pred: dict[int, int] = {}
    for i in sorted(stuck):
        for j in sorted(succ[i]):
            if j in stuck:
                pred.setdefault(j, i)
    # Every stuck task has a stuck predecessor; walk back until one repeats.
    seen: dict[int, int] = {}
    path: list[int] = []
    i = min(stuck)
    while i not in seen:
        seen[i] = len(path)
        path.append(i)
        i = pred[i]
    cycle = list(reversed(path[seen[i] :]))
    first = cycle.index(min(cycle))
    cycle = cycle[first:] + cycle[:first]
    return " -> ".join(slugs[j] for j in [*cycle, cycle[0]])
