"""A flow's structure as JSON (:func:`structure`), its hash
(:func:`structural_hash`), and the hash of its structure and source code
(:func:`version_hash`): what registration compares to decide whether a flow
changed (a new version) or not (the stored one is kept). Pure: the standard library,
:mod:`orchestrator.handlers` (a handler's name) and :mod:`orchestrator.sources`; the
flow and task types only for type checking."""

from __future__ import annotations

import hashlib
import json
from typing import TYPE_CHECKING, Any

from orchestrator.handlers import handler_name
from orchestrator.sources import modules_hash

if TYPE_CHECKING:
    from orchestrator.flow import Flow
    from orchestrator.task import Task


def structure(flow: Flow) -> dict[str, Any]:
    """A JSON description of the flow's structure (what versions are compared on).

    The schedule is not part of it: a new schedule (or the seed's
    ``start_date=pendulum.now()``) updates the stored version in place.

    Args:
        flow: the flow.

    Returns:
        Its name, tasks, edges, parameters, reference tasks and labels (and the
        state handlers' names, when there are any).
    """
    edges = sorted(
        [e.upstream.slug or "", e.downstream.slug or "", e.key or ""]
        + (["flatten" if e.flatten else "mapped"] if e.mapped else [])
        for e in flow.edges
    )
    out: dict[str, Any] = {
        "name": flow.name,
        "tasks": [_task(flow, t) for t in flow.tasks],
        "edges": edges,
        "parameters": [p.declaration() for p in flow.parameters()],
        "reference": sorted(t.slug or "" for t in flow.reference_tasks()),
        "labels": flow.labels,
    }
    if flow.state_handlers:  # only when set: flows without keep their hash
        out["state_handlers"] = [_handler(h) for h in flow.state_handlers]
    return out


def structural_hash(flow: Flow) -> str:
    """A hash of :func:`structure`: equal for equal structures."""
    blob = json.dumps(structure(flow), sort_keys=True, default=repr)
    return hashlib.sha256(blob.encode()).hexdigest()


def source_modules(flow: Flow) -> set[str]:
    """The modules a flow's code lives in: where the flow is defined, and where its
    tasks' functions and classes are."""
    names = {flow.defined_in[0]}
    for t in flow.tasks:
        names.add(type(t).__module__)
        fn = getattr(t, "fn", None)
        if fn is not None and getattr(fn, "__module__", None):
            names.add(fn.__module__)
    return names


def version_hash(flow: Flow) -> str:
    """What a flow version is known by: its structure and the source of its modules
    (:func:`source_modules`): editing a task's body makes a new version."""
    sources = modules_hash(source_modules(flow))
    return hashlib.sha256(f"{structural_hash(flow)}:{sources}".encode()).hexdigest()


def _task(flow: Flow, t: Task) -> dict[str, Any]:
    """One task's part of the structure."""
    out: dict[str, Any] = {
        "slug": t.slug,
        "name": t.name,
        "type": f"{type(t).__module__}.{type(t).__qualname__}",
        "fn": _qualname(getattr(t, "fn", None)),
        "trigger": getattr(t.trigger, "__name__", repr(t.trigger)),
        "max_retries": t.max_retries,
        "retry_delay": t.retry_delay,
        "timeout": t.timeout,
        "skip_on_upstream_skip": t.skip_on_upstream_skip,
        "constants": _jsonish(flow.constants.get(t, {})),
        "mapped": t in flow.mapped,
        "constant_modes": flow.constant_modes.get(t, {}),
        "options": _jsonish(getattr(t, "structure_options", lambda: {})()),
    }
    if t.state_handlers:  # only when set: tasks without keep their flow's hash
        out["state_handlers"] = [_handler(h) for h in t.state_handlers]
    return out


def _qualname(fn: Any) -> str | None:
    if fn is None:
        return None
    return f"{getattr(fn, '__module__', '?')}.{getattr(fn, '__qualname__', repr(fn))}"


def _handler(handler: Any) -> str:
    """A state handler as the structure names it (no address for a callable object)."""
    return f"{getattr(handler, '__module__', '?')}.{handler_name(handler)}"


def _jsonish(value: Any) -> Any:
    try:
        return json.loads(json.dumps(value, sort_keys=True, default=repr))
    except (TypeError, ValueError):
        return repr(value)
