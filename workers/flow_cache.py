"""Flow versions as a worker sees them: :class:`LoadedFlow` (a version with the
lookups nodes need, its compiled plan among them) and :func:`loaded`, which
imports a version once per process and caches it by version id, reloading when
the code on disk no longer matches the registration. May import the pure core
(flow, loader, task, errors), :mod:`orchestrator.db` and :mod:`workers.dag`."""

from __future__ import annotations

import functools
import logging
import threading
from dataclasses import dataclass

from orchestrator.db import Store
from orchestrator.db.models import FlowVersion
from orchestrator.errors import FlowLoadError
from orchestrator.flow import Flow
from orchestrator.loader import load_flow
from orchestrator.structure import version_hash
from orchestrator.task import Parameter, Task
from workers.dag import compile_dag
from workers.plan import Plan

__all__ = ["LoadedFlow", "loaded"]

log = logging.getLogger(__name__)

#: slug -> [(upstream slug, key, mapped, flatten)]
Edges = dict[str, list[tuple[str, str | None, bool, bool]]]


@dataclass(frozen=True)
class LoadedFlow:
    """A flow version with the lookups nodes need, computed once."""

    version: FlowVersion
    flow: Flow
    upstream: Edges
    """slug -> [(upstream slug, key, mapped, flatten)]"""
    reference: list[str]
    mapped: frozenset[str]

    def task(self, slug: str) -> Task:
        """The task with this slug."""
        return self.flow.task_by_slug(slug)

    def node_slugs(self) -> list[str]:
        """The slugs that run as nodes (everything but parameters), in flow order."""
        return [t.slug or "" for t in self.flow.tasks if not isinstance(t, Parameter)]

    @functools.cached_property
    def plan(self) -> Plan | None:
        """The compiled canvas plan of the nodes (None for a flow of parameters only)."""
        slugs = self.node_slugs()
        if not slugs:
            return None
        nodes = set(slugs)
        edges = [(up, slug) for slug in slugs for up, *_ in self.upstream[slug] if up in nodes]
        return compile_dag(slugs, edges)

    @functools.cached_property
    def inline_slug(self) -> str | None:
        """The one node of a one-task flow that may run inside the Celery task that
        starts the flow run: not mapped and without a timeout (a time limit belongs
        to a task of its own)."""
        slugs = self.node_slugs()
        if len(slugs) != 1 or slugs[0] in self.mapped or self.task(slugs[0]).timeout:
            return None
        return slugs[0]


_cache: dict[str, LoadedFlow] = {}
_lock = threading.Lock()


def loaded(store: Store, flow_id: str) -> LoadedFlow:
    """The flow version ``flow_id``, imported on first use in this process.

    Raises:
        FlowLoadError: its import reference holds another flow (or none).
    """
    found = _cache.get(flow_id)
    if found is not None:
        return found
    with _lock:
        found = _cache.get(flow_id)
        if found is None:
            found = _load(store.flows.get(flow_id))
            _cache[flow_id] = found
        return found


def _load(version: FlowVersion) -> LoadedFlow:
    """Import a flow version's code and compute its lookups."""
    flow = load_flow(version.import_ref)
    if version_hash(flow) != version.structure_hash:
        # a module imported for an older version: import the code on disk again
        flow = load_flow(version.import_ref, fresh=True)
        if version_hash(flow) != version.structure_hash:
            log.warning(
                "flow %s version %s: the code at %s no longer matches its registration",
                version.name,
                version.version,
                version.import_ref,
            )
    if flow.name != version.name:
        raise FlowLoadError(f"{version.import_ref} holds flow {flow.name!r}, not {version.name!r}")
    upstream: Edges = {t.slug or "": [] for t in flow.tasks}
    for e in flow.edges:
        upstream[e.downstream.slug or ""].append(
            (e.upstream.slug or "", e.key, e.mapped, e.flatten)
        )
    reference = [t.slug or "" for t in flow.reference_tasks()]
    mapped = frozenset(t.slug or "" for t in flow.mapped)
    return LoadedFlow(version, flow, upstream, reference, mapped)
