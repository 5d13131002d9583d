"""The signatures of the flow-run tasks, named so Flower shows ``flow/slug``: one
node, ``finalize``, ``mirror``, ``collect_map``, the ``barrier`` that joins a
nested group (a no-op task, registered here beside its signature), and
:func:`build_canvas`, a flow run's whole canvas. Builds signatures only; sends
nothing. Imports Celery, :mod:`orchestrator.constants`, :mod:`orchestrator.mapping`
(the element type), and :mod:`workers.app`,
:mod:`workers.canvas`, :mod:`workers.plan`, :mod:`workers.flow_cache`."""

from __future__ import annotations

from typing import Any

from celery import chain
from celery.canvas import Signature

import orchestrator.constants as constants
from orchestrator.mapping import Element
from workers.app import SETTINGS, InfraRetrying, app
from workers.canvas import to_signature
from workers.flow_cache import LoadedFlow
from workers.plan import Chain, Node

__all__ = [
    "barrier",
    "build_canvas",
    "collect_signature",
    "finalize_signature",
    "mirror_signature",
    "node_signature",
]


def node_signature(
    lf: LoadedFlow,
    flow_run_id: str,
    slug: str,
    map_index: int = -1,
    element: Element | None = None,
    finalize: bool = False,
) -> Signature:
    """The immutable signature of one node, named ``flow/slug`` (``flow/slug[i]`` for
    a mapped child, which carries its element: the mapped arguments' values and the
    states that go with them). With ``finalize`` the node ends its flow and records
    the flow run's state itself."""
    task = lf.task(slug)
    name = f"{lf.version.name}/{slug}" + (f"[{map_index}]" if map_index >= 0 else "")
    options: dict[str, Any] = {"shadow": name, "queue": SETTINGS.queue}
    if task.timeout:
        options["soft_time_limit"] = task.timeout
        options["time_limit"] = task.timeout + 10
    args: tuple[Any, ...] = (flow_run_id, slug)
    kwargs: dict[str, Any] = {"finalize": True} if finalize else {}
    if map_index >= 0:
        args = (flow_run_id, slug, map_index, element.values if element else {})
        states = element.wire_states() if element else None
        if states:
            kwargs["states"] = states
    return app.signature(constants.NODE, args=args, kwargs=kwargs, immutable=True, **options)


def finalize_signature(lf: LoadedFlow, flow_run_id: str) -> Signature:
    """The signature of ``finalize`` for a flow run."""
    return app.signature(
        constants.FINALIZE,
        args=(flow_run_id,),
        immutable=True,
        shadow=f"{lf.version.name}/finalize",
        queue=SETTINGS.queue,
    )


def mirror_signature(
    flow_run_id: str,
    slug: str,
    child_id: str,
    map_index: int,
    shadow: str,
    takes: dict[str, Any] | None = None,
    handlers: bool = False,
) -> Signature:
    """The signature of ``mirror``: task run ``slug`` takes child run ``child_id``'s
    final state (``takes``: one of its task runs' result); ``shadow`` is the name it
    shows (the waiting node's); ``handlers``: the waiting task has state handlers to
    call."""
    args: tuple[Any, ...] = (flow_run_id, slug, child_id, map_index)
    return app.signature(
        constants.MIRROR,
        args=args if takes is None else (*args, takes),
        kwargs={"handlers": True} if handlers else {},
        immutable=True,
        shadow=shadow,
        queue=SETTINGS.queue,
    )


def collect_signature(lf: LoadedFlow, flow_run_id: str, slug: str, width: int) -> Signature:
    """The signature of ``collect_map``, closing the chord of a mapped task's children
    (told when the task has state handlers to call)."""
    return app.signature(
        constants.COLLECT_MAP,
        args=(flow_run_id, slug, width),
        kwargs={"handlers": True} if lf.task(slug).state_handlers else {},
        immutable=True,
        shadow=f"{lf.version.name}/{slug}/collect",
        queue=SETTINGS.queue,
    )


def _barrier_signature(lf: LoadedFlow) -> Signature:
    return app.signature(
        constants.BARRIER,
        immutable=True,
        shadow=f"{lf.version.name}/join",
        queue=SETTINGS.queue,
    )


def build_canvas(lf: LoadedFlow, flow_run_id: str) -> Signature:
    """A flow run's canvas: its nodes in DAG order, then ``finalize``. When one node
    ends the flow (every other node precedes it), that node finalizes the run
    itself, one message fewer."""
    plan = lf.plan
    if plan is None:
        return finalize_signature(lf, flow_run_id)
    last = plan.parts[-1] if isinstance(plan, Chain) else plan
    last_slug = last.slug if isinstance(last, Node) else None
    body = to_signature(
        plan,
        lambda s: node_signature(lf, flow_run_id, s, finalize=s == last_slug),
        barrier=lambda: _barrier_signature(lf),
    )
    return body if last_slug is not None else chain(body, finalize_signature(lf, flow_run_id))


@app.task(name=constants.BARRIER, base=InfraRetrying)
def barrier() -> None:
    """A no-op that joins a group inside a nested canvas (see :func:`~workers.canvas.to_signature`)."""
