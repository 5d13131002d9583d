"""The workers' thin hooks into tracing (:mod:`orchestrator.telemetry`) and their
Prometheus figures (:mod:`workers.metrics`): :func:`watched` around one task-run
attempt (its span, its duration and state), and Celery signal handlers for the rest:
a task's trace context and queue delay from its message headers, ``/metrics`` of a
worker's or beat's main process, and the spans flushed when a process shuts down.
Imports Celery's signals, the pure core (telemetry, states, context),
:mod:`orchestrator.db.models` and :mod:`workers.metrics`."""

from __future__ import annotations

import contextlib
import functools
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from celery.signals import (
    beat_init,
    task_postrun,
    task_prerun,
    worker_init,
    worker_process_shutdown,
    worker_shutdown,
)

import orchestrator.celery_app as celery_app
import orchestrator.telemetry as telemetry
import workers.metrics as metrics
from orchestrator.db import Store
from orchestrator.db.models import FlowRun, TaskRun
from orchestrator.engine import Outcome

__all__ = ["Watch", "connect", "project_of", "watched"]

SENT_HEADER = celery_app.SENT_HEADER


@dataclass
class Watch:
    """One attempt as the hooks see it: its span (None without tracing), its flow."""

    flow: str
    span: Any = None
    began: float = field(default_factory=time.monotonic)

    def call(self, inner: Callable[[Callable[[], Any]], Any]) -> Callable[[Callable[[], Any]], Any]:
        """How the code is called: through ``inner``, its exception on the span."""
        span = self.span
        if span is None:
            return inner

        def calling(code: Callable[[], Any]) -> Any:
            try:
                return inner(code)
            except BaseException as exc:
                span.failed(exc)
                raise

        return calling

    def ended(self, outcome: Outcome) -> None:
        """The attempt came to ``outcome``: its state on the span and in the counters."""
        state = outcome.state.value
        if self.span is not None:
            failed = outcome.state.is_failed or state == "Retrying"
            self.span.ended(state, outcome.message, failed)
        metrics.TASK_RUNS.labels(self.flow, state).inc()
        metrics.TASK_RUN_DURATION.labels(self.flow).observe(time.monotonic() - self.began)


@contextlib.contextmanager
def watched(
    flow: str, project: Callable[[], str], run: FlowRun, tr: TaskRun, slug: str, map_index: int
) -> Iterator[Watch]:
    """Around one attempt of task run ``tr``: a span under its run's (with tracing)."""
    if not telemetry.enabled():
        yield Watch(flow)
        return
    attributes = {
        "orchestrator.flow_run.id": run.id,
        "orchestrator.flow.name": flow,
        "orchestrator.project": project(),
        "orchestrator.task_run.id": tr.id,
        "orchestrator.task.slug": slug,
        "orchestrator.attempt": tr.attempts,
        "orchestrator.map_index": map_index,
    }
    name = f"{flow}/{slug}" + (f"[{map_index}]" if map_index >= 0 else "")
    trace = telemetry.context_of(run.id, run.trace_context)
    with telemetry.attempt(trace, name, attributes) as span:
        yield Watch(flow, span)


_projects: dict[int, str] = {}


def project_of(store: Store, project_id: int) -> str:
    """A project's name, read once per process."""
    name = _projects.get(project_id)
    if name is None:
        name = _projects[project_id] = store.flows.project_name(project_id)
    return name


# --- Celery signals -----------------------------------------------------------------

_attached: dict[str, object] = {}


def _due(request: Any) -> float | None:
    """When a task's message was due: its countdown's end, else when it was sent."""
    sent = getattr(request, SENT_HEADER, None) or (request.headers or {}).get(SENT_HEADER)
    eta = getattr(request, "eta", None)
    if isinstance(eta, str):
        with contextlib.suppress(ValueError):
            eta = datetime.fromisoformat(eta)
    due = float(sent) if sent else None
    if isinstance(eta, datetime):
        due = max(due or 0.0, eta.timestamp())
    return due


def _flow_of(request: Any, task: Any) -> str:
    shadow = getattr(request, "shadow", None) or ""
    return shadow.split("/", 1)[0] if "/" in shadow else str(getattr(task, "name", "?"))


def _started(task_id: str = "", task: Any = None, **_: Any) -> None:
    """A task starts: its message's trace context current, its queue delay counted."""
    request = getattr(task, "request", None)
    if request is None:
        return
    due = _due(request)
    if due is not None:
        delay = max(0.0, time.time() - due)
        metrics.QUEUE_DELAY.labels(_flow_of(request, task)).observe(delay)
    token = telemetry.attach({**_headers_of(request), **(getattr(request, "headers", None) or {})})
    if token is not None:
        _attached[task_id] = token


def _headers_of(request: Any) -> dict[str, Any]:
    found = {k: getattr(request, k, None) for k in ("traceparent", "tracestate")}
    return {k: v for k, v in found.items() if v}


def _finished(task_id: str = "", **_: Any) -> None:
    telemetry.detach(_attached.pop(task_id, None))


def _serve_metrics(sender: Any = None, **_: Any) -> None:
    """A worker's or beat's main process: ``/metrics`` when a port is set."""
    port = os.environ.get(metrics.PORT_ENV)
    if port:
        metrics.serve(int(port))


def _process_shutdown(pid: int | None = None, **_: Any) -> None:
    """A pool process ends: its spans sent, its figures marked finished."""
    telemetry.flush()
    metrics.process_gone(pid or os.getpid())


def _shutdown(**_: Any) -> None:
    telemetry.flush()


@functools.cache
def connect() -> None:
    """Connect the handlers (once)."""
    task_prerun.connect(_started, weak=False)
    task_postrun.connect(_finished, weak=False)
    worker_init.connect(_serve_metrics, weak=False)
    beat_init.connect(_serve_metrics, weak=False)
    worker_process_shutdown.connect(_process_shutdown, weak=False)
    worker_shutdown.connect(_shutdown, weak=False)


connect()
