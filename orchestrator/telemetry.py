"""Tracing, switched by the standard ``OTEL_*`` variables: the one gate every process
goes through. Without them (:func:`enabled` is False) every function here returns at
once and nothing of OpenTelemetry is imported; with them the work is done by
:mod:`orchestrator.otel` (the SDK's tracer provider, batch processor and OTLP
exporter), imported on first use.

What travels: a flow run's *trace context*, made when the run is made
(:func:`new_run_context`) and stored with it, is the W3C ``traceparent`` of the
run's own span and of the span it hangs under (the StartFlowRun attempt that
started a child, or the caller's span). Every attempt of a task run is a span under
its run's span (:func:`attempt`); the run's span is written when the run ends
(:func:`run_ended`), with the id it was given at the start, so a run spread over
many workers and redeliveries is one span in one trace. Celery messages carry the
current context in their headers (:func:`inject`). Pure core: imports only the
standard library and, lazily, :mod:`orchestrator.otel`."""

from __future__ import annotations

import contextlib
import functools
import hashlib
import os
from collections.abc import Iterator, Mapping, MutableMapping
from datetime import datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from orchestrator.otel import AttemptSpan

__all__ = [
    "RunTrace",
    "attach",
    "attempt",
    "configured",
    "context_of",
    "detach",
    "enabled",
    "flush",
    "inject",
    "new_run_context",
    "reset",
    "run_ended",
    "within",
]

#: A run's stored trace context: ``{"traceparent": ..., "parent": ...}`` (W3C
#: ``traceparent`` strings: the run's own span, and the span it hangs under).
RunTrace = dict[str, str]


def configured(env: Mapping[str, str] | None = None) -> bool:
    """Whether the standard variables ask for traces: ``OTEL_TRACES_EXPORTER`` (not
    ``none``), ``OTEL_EXPORTER_OTLP_ENDPOINT`` or ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT``,
    unless ``OTEL_SDK_DISABLED`` is true."""
    env = os.environ if env is None else env
    if env.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return False
    exporter = env.get("OTEL_TRACES_EXPORTER", "").strip().lower()
    if exporter == "none":
        return False
    endpoint = env.get("OTEL_EXPORTER_OTLP_ENDPOINT") or env.get(
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"
    )
    return bool(exporter or endpoint)


@functools.cache
def enabled() -> bool:
    """Whether this process traces (read from the environment once)."""
    return configured()


def reset() -> None:
    """Read the environment again on the next call (tests)."""
    enabled.cache_clear()


def context_of(run_id: str, stored: RunTrace | None) -> RunTrace:
    """A run's trace context: the one stored with it, else the one its id gives (a
    run made by a process that does not trace is the root of a trace whose id is its
    own, the same in every worker and on every redelivery, with nothing written)."""
    if stored:
        return stored
    trace_id = run_id.replace("-", "").lower()
    if len(trace_id) != 32 or not all(c in "0123456789abcdef" for c in trace_id):
        trace_id = hashlib.sha256(run_id.encode()).hexdigest()[:32]
    span_id = hashlib.sha256(f"span:{run_id}".encode()).hexdigest()[:16]
    return {"traceparent": f"00-{trace_id}-{span_id}-01"}


def new_run_context() -> RunTrace | None:
    """The trace context of a flow run being made here: under the current span (a
    StartFlowRun's attempt, a caller's own span), else the root of a new trace.
    None when tracing is off."""
    if not enabled():
        return None
    import orchestrator.otel as otel

    return otel.new_run_context()


@contextlib.contextmanager
def attempt(
    trace: RunTrace | None, name: str, attributes: Mapping[str, Any]
) -> Iterator[AttemptSpan | None]:
    """A span for one attempt of a task run, under its run's span (``trace``), current
    while the block runs; None (and nothing done) when tracing is off."""
    if not enabled():
        yield None
        return
    import orchestrator.otel as otel

    with otel.attempt_span(trace, name, attributes) as span:
        yield span


def run_ended(
    trace: RunTrace | None,
    name: str,
    start: datetime | None,
    end: datetime | None,
    attributes: Mapping[str, Any],
    failure: str | None = None,
) -> None:
    """Write a finished flow run's span (its id fixed when the run was made); with
    ``failure``, as an exception with status error. Nothing when tracing is off or the
    run has no trace context (made while tracing was off)."""
    if not enabled() or not trace:
        return
    import orchestrator.otel as otel

    otel.run_span(trace, name, start, end, attributes, failure)


@contextlib.contextmanager
def within(trace: RunTrace | None) -> Iterator[None]:
    """Make a run's span the current context while the block runs (the messages sent
    in it carry it in their headers)."""
    if not enabled() or not trace:
        yield
        return
    import orchestrator.otel as otel

    with otel.within(trace):
        yield


def inject(headers: MutableMapping[str, Any]) -> None:
    """Put the current trace context into a message's headers (``traceparent``)."""
    if enabled():
        import orchestrator.otel as otel

        otel.inject(headers)


def attach(headers: Mapping[str, Any] | None) -> object | None:
    """Make the trace context a message's headers carry the current one (a worker
    starting a task); what to give :func:`detach` after it (None: nothing done)."""
    if not enabled() or not headers or "traceparent" not in headers:
        return None
    import orchestrator.otel as otel

    return otel.attach(headers)


def detach(token: object | None) -> None:
    """Undo an :func:`attach`."""
    if token is not None:
        import orchestrator.otel as otel

        otel.detach(token)


def flush() -> None:
    """Send the spans still buffered in this process (a worker shutting down)."""
    if enabled():
        import orchestrator.otel as otel

        otel.flush()
