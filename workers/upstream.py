"""Reading the upstream task runs one node sees (:func:`read_upstream`): their
recorded states and results, by deterministic id, in one to three queries, with the
children's states of a mapped upstream that fanned out; for one element of a mapped
task, what its element carries for the mapped edges. Imports
:mod:`orchestrator.db`, the pure core (engine, ids, mapping, states) and
:mod:`workers.flow_cache`."""

from __future__ import annotations

import dataclasses

from orchestrator.db import Store
from orchestrator.engine import Upstream
from orchestrator.ids import task_run_id
from orchestrator.mapping import Element, element_upstream
from orchestrator.states import State
from workers.flow_cache import LoadedFlow

__all__ = ["read_upstream"]


def read_upstream(
    store: Store,
    lf: LoadedFlow,
    flow_run_id: str,
    slug: str,
    map_index: int,
    element: Element | None,
) -> list[Upstream]:
    """The upstream task runs one node sees, read by their ids (a mapped upstream
    with its children's states, when it fanned out).

    Args:
        store: the database.
        lf: the run's flow.
        flow_run_id: the run.
        slug: the node's task.
        map_index: the node's index among a mapped task's children (-1: not one).
        element: a mapped child's element (its mapped values and their states).

    Returns:
        One :class:`Upstream` per edge into the task, in edge order.
    """
    edges = lf.upstream[slug]
    if not edges:
        return []
    ids = {s: task_run_id(flow_run_id, s) for s, *_ in edges}
    if element is None or map_index < 0:
        rows = store.task_runs.by_ids(list(ids.values()))
        upstream = [
            Upstream(s, key, State(rows[ids[s]].state), rows[ids[s]].result, mapped, flat)
            for s, key, mapped, flat in edges
        ]
        return _with_children(store, lf, flow_run_id, upstream)
    return _element_upstream(store, lf, flow_run_id, element, ids, edges)


def _with_children(
    store: Store, lf: LoadedFlow, flow_run_id: str, upstream: list[Upstream]
) -> list[Upstream]:
    """``upstream`` with the children's states of each mapped upstream that fanned
    out (its result is their list), read in one query."""
    fanned = {u.slug for u in upstream if u.slug in lf.mapped and isinstance(u.result, list)}
    if not fanned:
        return upstream
    children = store.task_runs.child_states(flow_run_id, sorted(fanned))
    return [
        dataclasses.replace(u, children=tuple(children.get(u.slug, ()))) if u.slug in fanned else u
        for u in upstream
    ]


def _element_upstream(
    store: Store,
    lf: LoadedFlow,
    flow_run_id: str,
    element: Element,
    ids: dict[str, str],
    edges: list[tuple[str, str | None, bool, bool]],
) -> list[Upstream]:
    """The upstream of one element of a mapped task: a mapped edge carries its value
    and state in the element, so only the edges taking their upstream whole need its
    result (a whole list is not read per element)."""
    whole = {ids[s] for s, _, mapped, _ in edges if not mapped}
    states = store.task_runs.states(list(ids.values()))
    rows = store.task_runs.by_ids(list(whole)) if whole else {}
    upstream = [
        Upstream(
            s, key, states[ids[s]], rows[ids[s]].result if ids[s] in rows else None, mapped, flat
        )
        for s, key, mapped, flat in edges
    ]
    whole_up = _with_children(store, lf, flow_run_id, [u for u in upstream if not u.mapped])
    by_slug = {u.slug: u for u in whole_up}
    upstream = [u if u.mapped else by_slug[u.slug] for u in upstream]
    return element_upstream(upstream, element)
