"""Reading the upstream task runs one node sees (:func:`read_upstream`): their
recorded states and results, by deterministic id, in one or two queries; for one
element of a mapped task, the matching element of a mapped upstream. Imports
:mod:`orchestrator.db`, the pure core (engine, ids, mapping, states) and
:mod:`workers.flow_cache`."""

from __future__ import annotations

from typing import Any

from orchestrator.db import Store
from orchestrator.engine import Upstream
from orchestrator.ids import task_run_id
from orchestrator.mapping import element_upstream
from orchestrator.states import State
from workers.flow_cache import LoadedFlow

__all__ = ["read_upstream"]


def read_upstream(
    store: Store,
    lf: LoadedFlow,
    flow_run_id: str,
    slug: str,
    map_index: int,
    element: dict[str, Any] | None,
) -> list[Upstream]:
    """The upstream task runs one node sees, read by their ids.

    Args:
        store: the database.
        lf: the run's flow.
        flow_run_id: the run.
        slug: the node's task.
        map_index: the node's index among a mapped task's children (-1: not one).
        element: a mapped child's element of the mapped arguments.

    Returns:
        One :class:`Upstream` per edge into the task, in edge order.
    """
    edges = lf.upstream[slug]
    if not edges:
        return []
    ids = {s: task_run_id(flow_run_id, s) for s, *_ in edges}
    if element is None or map_index < 0:
        rows = store.task_runs.by_ids(list(ids.values()))
        return [
            Upstream(s, key, State(rows[ids[s]].state), rows[ids[s]].result, mapped, flat)
            for s, key, mapped, flat in edges
        ]
    return _element_upstream(store, lf, flow_run_id, map_index, element, ids, edges)


def _element_upstream(
    store: Store,
    lf: LoadedFlow,
    flow_run_id: str,
    map_index: int,
    element: dict[str, Any],
    ids: dict[str, str],
    edges: list[tuple[str, str | None, bool, bool]],
) -> list[Upstream]:
    """The upstream of one element of a mapped task: a mapped edge carries the
    element, so only the other edges need their upstream's result (a whole list is
    not read per element)."""
    mapped_ups = {s for s, _, mapped, _ in edges if mapped and s in lf.mapped}
    child_ids = {s: task_run_id(flow_run_id, s, map_index) for s in mapped_ups}
    whole = {ids[s] for s, key, mapped, _ in edges if not (mapped and key is not None)}
    states = store.task_runs.states([*ids.values(), *child_ids.values()])
    rows = store.task_runs.by_ids(list(whole)) if whole else {}
    upstream = [
        Upstream(
            s, key, states[ids[s]], rows[ids[s]].result if ids[s] in rows else None, mapped, flat
        )
        for s, key, mapped, flat in edges
    ]
    element_states = {s: states[i] for s, i in child_ids.items() if i in states}
    return element_upstream(upstream, element, element_states)
