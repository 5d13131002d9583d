"""Flows for the observability tests: a task that fails its first attempt, and one
that reports which OpenTelemetry modules its worker process has imported."""

from __future__ import annotations

import sys

from orchestrator import Flow, task
from orchestrator.context import current


@task(max_retries=1, retry_delay=0)
def flaky_once() -> str:
    """Fail on the first attempt, succeed on the second."""
    ctx = current()
    assert ctx is not None
    if ctx.attempt < 2:
        raise RuntimeError("first attempt fails")
    return "second time lucky"


@task
def always_fails() -> None:
    """Fail, without retries."""
    raise ValueError("no luck")


@task
def otel_modules() -> dict[str, object]:
    """The OpenTelemetry modules loaded in this worker process, whether our adapter
    is among them, and whether a tracer provider was set."""
    trace = sys.modules.get("opentelemetry.trace")
    return {
        "modules": sorted(m for m in sys.modules if m.startswith("opentelemetry")),
        "adapter": "orchestrator.otel" in sys.modules,
        "provider": trace is not None and getattr(trace, "_TRACER_PROVIDER", None) is not None,
    }


with Flow("retried-once") as retried_once:
    flaky_once()

with Flow("fails") as fails:
    always_fails()

with Flow("otel-probe") as otel_probe:
    otel_modules()

FLOWS = [retried_once, fails, otel_probe]
