"""The OpenTelemetry adapter behind :mod:`orchestrator.telemetry`, imported only when
the ``OTEL_*`` variables ask for traces: this process's tracer provider (the SDK's
:class:`~opentelemetry.sdk.trace.TracerProvider` with its resource from
``OTEL_SERVICE_NAME`` / ``OTEL_RESOURCE_ATTRIBUTES``, a
:class:`~opentelemetry.sdk.trace.export.BatchSpanProcessor` and the OTLP/HTTP exporter,
which reads its endpoint and headers from the environment), attempt spans, flow-run
spans written at the run's end with the ids given at its start, and W3C trace
context in message headers. Needs the ``otel`` extra; imports only OpenTelemetry and
the standard library."""

from __future__ import annotations

import contextlib
import contextvars
import functools
import os
from collections.abc import Iterator, Mapping, MutableMapping
from datetime import datetime
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter, SpanExporter
from opentelemetry.sdk.trace.id_generator import IdGenerator, RandomIdGenerator
from opentelemetry.trace import NonRecordingSpan, SpanContext, Status, StatusCode, TraceFlags
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

__all__ = [
    "AttemptSpan",
    "attach",
    "attempt_span",
    "detach",
    "flush",
    "inject",
    "new_run_context",
    "run_span",
    "within",
]

_SCOPE = "orchestrator"
_PROPAGATOR = TraceContextTextMapPropagator()
_RANDOM = RandomIdGenerator()
#: The (trace id, span id) the next span takes, while a run's span is written.
_FIXED: contextvars.ContextVar[tuple[int, int] | None] = contextvars.ContextVar(
    "orchestrator_fixed_ids", default=None
)


class _Ids(IdGenerator):
    """Random ids, but the ones fixed for a flow run's span while it is written."""

    def generate_span_id(self) -> int:
        fixed = _FIXED.get()
        return fixed[1] if fixed else _RANDOM.generate_span_id()

    def generate_trace_id(self) -> int:
        fixed = _FIXED.get()
        return fixed[0] if fixed else _RANDOM.generate_trace_id()


class RunFailed(Exception):
    """A flow run ended Failed (recorded on its span as the exception)."""


def _exporters() -> list[SpanExporter]:
    """The exporters ``OTEL_TRACES_EXPORTER`` names (``otlp`` by default, ``console``)."""
    names = os.environ.get("OTEL_TRACES_EXPORTER", "otlp").lower().split(",")
    out: list[SpanExporter] = []
    for name in (n.strip() for n in names):
        if name == "otlp":
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

            out.append(OTLPSpanExporter())
        elif name == "console":
            out.append(ConsoleSpanExporter())
    return out


@functools.cache
def _provider() -> TracerProvider:
    """This process's tracer provider, made on first use (after a fork: per process),
    and set as the global one, so spans a task's own code makes join the trace."""
    provider = TracerProvider(resource=Resource.create(), id_generator=_Ids())
    for exporter in _exporters():
        processor: SpanProcessor = BatchSpanProcessor(exporter)
        provider.add_span_processor(processor)
    trace.set_tracer_provider(provider)
    return provider


def _tracer() -> trace.Tracer:
    return _provider().get_tracer(_SCOPE)


def _traceparent(ctx: SpanContext) -> str:
    return f"00-{ctx.trace_id:032x}-{ctx.span_id:016x}-{int(ctx.trace_flags):02x}"


def _span_context(traceparent: str | None) -> SpanContext | None:
    """The span a ``traceparent`` names (None for none, or one that does not parse)."""
    if not traceparent:
        return None
    found = trace.get_current_span(_PROPAGATOR.extract({"traceparent": traceparent}))
    ctx = found.get_span_context()
    return ctx if ctx.is_valid else None


def new_run_context() -> dict[str, str]:
    """A new run's trace context: its span's ids, under the current span if any."""
    current = trace.get_current_span().get_span_context()
    if current.is_valid:
        trace_id, flags = current.trace_id, current.trace_flags
    else:
        trace_id, flags = _RANDOM.generate_trace_id(), TraceFlags(TraceFlags.SAMPLED)
    own = SpanContext(trace_id, _RANDOM.generate_span_id(), is_remote=True, trace_flags=flags)
    out = {"traceparent": _traceparent(own)}
    if current.is_valid:
        out["parent"] = _traceparent(current)
    return out


def _under(traceparent: str | None) -> otel_context.Context | None:
    """A context whose current span is the one ``traceparent`` names (None: keep the
    current context)."""
    ctx = _span_context(traceparent)
    return trace.set_span_in_context(NonRecordingSpan(ctx)) if ctx else None


class AttemptSpan:
    """The span of one task-run attempt, for the worker's hooks to fill in."""

    def __init__(self, span: trace.Span) -> None:
        self.span = span

    def failed(self, exc: BaseException) -> None:
        """The task's code raised ``exc``: recorded as the span's exception, status error."""
        self.span.record_exception(exc)
        self.span.set_status(Status(StatusCode.ERROR, f"{type(exc).__name__}: {exc}"))

    def ended(self, state: str, message: str | None, failed: bool) -> None:
        """The attempt came to ``state`` (``failed``: status error with ``message``)."""
        self.span.set_attribute("orchestrator.state", state)
        if failed and self.span.is_recording():
            self.span.set_status(Status(StatusCode.ERROR, message or state))


@contextlib.contextmanager
def attempt_span(
    trace_ctx: Mapping[str, str] | None, name: str, attributes: Mapping[str, Any]
) -> Iterator[AttemptSpan]:
    """An attempt's span under its run's span, current while the block runs."""
    parent = _under((trace_ctx or {}).get("traceparent"))
    with _tracer().start_as_current_span(
        name,
        context=parent,
        attributes=dict(attributes),
        record_exception=False,
        set_status_on_exception=False,
    ) as span:
        yield AttemptSpan(span)


def _ns(when: datetime | None) -> int | None:
    return int(when.timestamp() * 1e9) if when is not None else None


def run_span(
    trace_ctx: Mapping[str, str],
    name: str,
    start: datetime | None,
    end: datetime | None,
    attributes: Mapping[str, Any],
    failure: str | None,
) -> None:
    """Write a finished run's span with the ids its trace context gave it."""
    own = _span_context(trace_ctx.get("traceparent"))
    if own is None:
        return
    parent = _under(trace_ctx.get("parent")) or otel_context.Context()
    token = _FIXED.set((own.trace_id, own.span_id))
    try:
        span = _tracer().start_span(
            name, context=parent, attributes=dict(attributes), start_time=_ns(start or end)
        )
    finally:
        _FIXED.reset(token)
    if failure is not None:
        span.record_exception(RunFailed(failure))
        span.set_status(Status(StatusCode.ERROR, failure))
    span.end(end_time=_ns(end))


@contextlib.contextmanager
def within(trace_ctx: Mapping[str, str]) -> Iterator[None]:
    """The run's span as the current context while the block runs."""
    ctx = _under(trace_ctx.get("traceparent"))
    if ctx is None:
        yield
        return
    token = otel_context.attach(ctx)
    try:
        yield
    finally:
        otel_context.detach(token)


def inject(headers: MutableMapping[str, Any]) -> None:
    """The current context into ``headers`` (``traceparent``, ``tracestate``)."""
    _PROPAGATOR.inject(headers)


def attach(headers: Mapping[str, Any]) -> object:
    """The context in ``headers`` made current; the token to detach it."""
    carrier = {k: str(headers[k]) for k in ("traceparent", "tracestate") if headers.get(k)}
    return otel_context.attach(_PROPAGATOR.extract(carrier))


def detach(token: object) -> None:
    """Undo :func:`attach`."""
    otel_context.detach(token)  # type: ignore[arg-type]


def flush() -> None:
    """Export what is buffered (once a provider was made here)."""
    if _provider.cache_info().currsize:
        _provider().force_flush()
