"""Registering a flow: validate it, find how workers import it, and store it as a
new version when its structure changed (:func:`register`). Registering needs a
:class:`~orchestrator.db.Store` and no Client.

May import the core (flow, loader) and the database package; nothing of the
backends or the CLI."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from orchestrator.errors import FlowCycleError
from orchestrator.loader import import_ref_for
from orchestrator.structure import version_hash

if TYPE_CHECKING:
    from orchestrator.db import Store
    from orchestrator.flow import Flow


def register(flow: Flow, project_name: str, store: Store, import_ref: str | None = None) -> int:
    """Store ``flow`` in a project and return its version.

    A flow gets a new version only when its structure or the source of its modules
    changed (the older versions are archived); otherwise the newest version takes the flow's import reference
    and schedule.

    Args:
        flow: the flow (validated here).
        project_name: the project, created when missing.
        store: the database.
        import_ref: how workers import the flow (``module:attribute`` or
            ``path/to/file.py:attribute``); found automatically when None.

    Returns:
        The flow's version number.

    Raises:
        FlowValidationError: the flow is not valid.
        FlowLoadError: no import reference was given and none can be found.
        FlowCycleError: its StartFlowRun tasks would start the flow itself again,
            directly or through other registered flows.
    """
    flow.validate()
    structure = json.loads(json.dumps(flow.structure(), default=repr))
    refuse_cycles(project_name, flow.name, structure, store)
    ref = import_ref or import_ref_for(flow)
    version = store.flows.register(
        project_name=project_name,
        name=flow.name,
        structure_hash=version_hash(flow),
        structure=structure,
        import_ref=ref,
        parameters=[p.declaration() for p in flow.parameters()],
        schedule=flow.schedule.to_dict() if flow.schedule is not None else None,
        labels=list(flow.labels),
    )
    return version.version


#: A flow as registration knows it: (project, name).
FlowKey = tuple[str, str]


def static_starts(structure: dict[str, Any]) -> set[FlowKey]:
    """The flows a flow's StartFlowRun (and ``create_flow_run``) tasks start, when
    their flow and project names are fixed in the flow (not bound to a task)."""
    bound = {(down, key) for _, down, key, *_ in structure.get("edges", [])}
    out: set[FlowKey] = set()
    for t in structure.get("tasks", []):
        names = t.get("options") or {}
        if str(t.get("fn")).endswith("orchestrator.tasks.create_flow_run"):
            names = t.get("constants") or {}
        flow, project = names.get("flow_name"), names.get("project_name")
        slug = t.get("slug")
        if (slug, "flow_name") in bound or (slug, "project_name") in bound:
            continue
        if isinstance(flow, str) and isinstance(project, str):
            out.add((project, flow))
    return out


def refuse_cycles(project_name: str, name: str, structure: dict[str, Any], store: Store) -> None:
    """Refuse a flow whose static StartFlowRun names lead back to itself.

    Raises:
        FlowCycleError: the chain of flows that would start the flow again.
    """
    me = (project_name, name)
    graph: dict[FlowKey, set[FlowKey]] = {}
    for project, version in store.flows.list():
        graph.setdefault((project, version.name), set()).update(
            static_starts(version.structure or {})
        )
    graph[me] = static_starts(structure)
    path = _path_back(graph, me)
    if path is not None:
        chain = " -> ".join(f"{p}/{n}" for p, n in path)
        raise FlowCycleError(
            f"flow {name!r} in project {project_name!r} would start itself without end: {chain}"
        )


def _path_back(graph: dict[FlowKey, set[FlowKey]], me: FlowKey) -> list[FlowKey] | None:
    """A path ``me -> ... -> me`` through ``graph``, or None."""
    stack: list[tuple[FlowKey, list[FlowKey]]] = [(me, [me])]
    seen: set[FlowKey] = set()
    while stack:
        node, path = stack.pop()
        for nxt in sorted(graph.get(node, ())):
            if nxt == me:
                return [*path, me]
            if nxt not in seen:
                seen.add(nxt)
                stack.append((nxt, [*path, nxt]))
    return None
