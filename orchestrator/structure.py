"""A flow's structure as JSON (:func:`structure`) and its hash
(:func:`structural_hash`): what registration compares to decide whether a flow
changed (a new version) or not (the stored one is kept). Pure: the standard library
and :mod:`orchestrator.handlers` (a handler's name); the flow and task types only
for type checking."""

from __future__ import annotations

import hashlib
import json
from typing import TYPE_CHECKING, Any

from orchestrator.handlers import handler_name

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
