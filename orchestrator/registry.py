"""Registering a flow: validate it, find how workers import it, and store it as a
new version when its structure changed (:func:`register`). Registering needs a
:class:`~orchestrator.db.Store` and no Client.

May import the core (flow, loader) and the database package; nothing of the
backends or the CLI."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from orchestrator.loader import import_ref_for

if TYPE_CHECKING:
    from orchestrator.db import Store
    from orchestrator.flow import Flow


def register(flow: Flow, project_name: str, store: Store, import_ref: str | None = None) -> int:
    """Store ``flow`` in a project and return its version.

    A flow gets a new version only when its structure changed (the older versions
    are archived); otherwise the newest version takes the flow's import reference
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
    """
    flow.validate()
    ref = import_ref or import_ref_for(flow)
    version = store.flows.register(
        project_name=project_name,
        name=flow.name,
        structure_hash=flow.structural_hash(),
        structure=json.loads(json.dumps(flow.structure(), default=repr)),
        import_ref=ref,
        parameters=[p.declaration() for p in flow.parameters()],
        schedule=flow.schedule.to_dict() if flow.schedule is not None else None,
        labels=list(flow.labels),
    )
    return version.version
