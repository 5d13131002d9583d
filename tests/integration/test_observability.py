"""Traces on real workers, read back by a real OTLP/HTTP receiver: the seed's
Flow-of-Flows is one trace (the parent's span the root, each child's span under the
StartFlowRun attempt that started it), a retried task has one span per attempt
(the failed one an exception with status error), the spans are flushed when the
workers shut down, and without OTEL_* settings a worker loads no OpenTelemetry."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator

import pytest

from orchestrator import State
from orchestrator.loader import flows_in
from tests.conftest import ROOT, Fleet
from tests.flows import observed
from tests.integration.helpers import run_and_wait
from tests.otlp import Received, Receiver

EXAMPLES = ROOT / "examples"
PROJECT = "observed"
RUN = "orchestrator.flow_run.id"


@pytest.fixture()
def receiver() -> Iterator[Receiver]:
    r = Receiver().start()
    try:
        yield r
    finally:
        r.stop()


@pytest.fixture()
def traced(fresh_fleet: Fleet, receiver: Receiver) -> Fleet:
    """Two workers exporting to the receiver; spans are held (a minute's batch delay)
    until a worker shuts down, so the test sees what the shutdown flushed."""
    fresh_fleet.env.update(
        OTEL_EXPORTER_OTLP_TRACES_ENDPOINT=receiver.endpoint,
        OTEL_SERVICE_NAME="orchestrator-worker",
        OTEL_BSP_SCHEDULE_DELAY="60000",
    )
    for path in ("seed_flows.py", "flow_of_flows.py"):
        for flow in flows_in(str(EXAMPLES / path)):
            fresh_fleet.client.register(flow, "examples")
    for flow in observed.FLOWS:
        fresh_fleet.client.register(flow, PROJECT)
    fresh_fleet.start_worker(wait=False)
    fresh_fleet.start_worker(wait=False)
    for w in fresh_fleet.workers:
        w.wait_ready(fresh_fleet.client.backends.app)
    return fresh_fleet


def _run_span(spans: list[Received], run_id: str) -> Received | None:
    found = [s for s in spans if s.name.startswith("flow run ") and s.attributes.get(RUN) == run_id]
    assert len(found) <= 1, found
    return found[0] if found else None


def _attempts(spans: list[Received], run_id: str, slug: str | None = None) -> list[Received]:
    return sorted(
        (
            s
            for s in spans
            if not s.name.startswith("flow run ")
            and s.attributes.get(RUN) == run_id
            and (slug is None or s.attributes.get("orchestrator.task.slug") == slug)
        ),
        key=lambda s: s.attributes["orchestrator.attempt"],
    )


def test_seed_flow_of_flows_is_one_trace(traced: Fleet, receiver: Receiver) -> None:
    # Given workers that trace; When the seed's Flow-of-Flows runs
    parent = run_and_wait(traced, "parent-flow", "examples")
    assert parent.state is State.SUCCESS, parent.message
    children = {traced.client.get_flow_run(c).flow_name: c for c in parent.children}
    assert sorted(children) == ["A", "B", "C", "D"]
    # and the workers shut down (which sends the spans they hold)
    traced.stop()
    runs = [parent.id, *children.values()]
    receiver.wait_for(lambda spans: all(_run_span(spans, r) for r in runs))
    spans = list(receiver.spans)
    root = _run_span(spans, parent.id)
    assert root is not None
    # Then the parent's span is the root of one trace holding every span of the tree
    assert root.parent_span_id == ""
    assert root.attributes["orchestrator.flow.name"] == "parent-flow"
    assert root.attributes["orchestrator.project"] == "examples"
    assert root.attributes["orchestrator.state"] == "Success"
    assert root.service == "orchestrator-worker"
    tree = [s for s in spans if s.attributes.get(RUN) in runs]
    assert {s.trace_id for s in tree} == {root.trace_id}
    for name, child_id in children.items():
        slug = f"flow_{name.lower()}"
        # each child's span hangs under the StartFlowRun attempt that started it,
        # which hangs under the parent's span
        [starter] = _attempts(spans, parent.id, slug)
        assert starter.parent_span_id == root.span_id
        assert starter.attributes["orchestrator.task_run.id"] == parent.task_run(slug).id
        assert starter.attributes["orchestrator.map_index"] == -1
        child = _run_span(spans, child_id)
        assert child is not None
        assert child.parent_span_id == starter.span_id, name
        assert child.attributes["orchestrator.flow.name"] == name
        assert child.attributes["orchestrator.state"] == "Success"
        # and the child's task attempts hang under the child's span
        [step] = _attempts(spans, child_id)
        assert step.parent_span_id == child.span_id
        assert step.attributes["orchestrator.task.slug"] == "step"
        assert step.attributes["orchestrator.state"] == "Success"
        assert child.start_ns <= step.start_ns <= step.end_ns <= child.end_ns


def test_a_retried_task_has_two_attempt_spans_and_failures_are_errors(
    traced: Fleet, receiver: Receiver
) -> None:
    # Given a task that fails its first attempt and succeeds on its retry
    run = run_and_wait(traced, "retried-once", PROJECT)
    assert run.state is State.SUCCESS, run.message
    # and a flow whose task fails for good
    failed = run_and_wait(traced, "fails", PROJECT)
    assert failed.state is State.FAILED, failed.message
    traced.stop()
    receiver.wait_for(lambda spans: all(_run_span(spans, r.id) for r in (run, failed)))
    spans = list(receiver.spans)
    run_span = _run_span(spans, run.id)
    assert run_span is not None
    # Then there is one span per attempt under the run's span
    first, second = _attempts(spans, run.id, "flaky_once")
    assert [
        first.attributes["orchestrator.attempt"],
        second.attributes["orchestrator.attempt"],
    ] == [
        1,
        2,
    ]
    assert {first.parent_span_id, second.parent_span_id} == {run_span.span_id}
    assert first.attributes["orchestrator.task_run.id"] == run.task_run("flaky_once").id
    # the failed one records its exception with status error; the retry succeeded
    assert first.attributes["orchestrator.state"] == "Retrying"
    assert first.status_code == 2 and "exception" in first.events
    assert second.attributes["orchestrator.state"] == "Success"
    assert second.status_code != 2 and "exception" not in second.events
    assert run_span.status_code != 2
    # A failed task's attempt and its failed run carry an exception with status error
    [attempt] = _attempts(spans, failed.id, "always_fails")
    assert attempt.attributes["orchestrator.state"] == "Failed"
    assert attempt.status_code == 2 and "exception" in attempt.events
    failed_span = _run_span(spans, failed.id)
    assert failed_span is not None and failed_span.attributes["orchestrator.state"] == "Failed"
    assert failed_span.status_code == 2 and "exception" in failed_span.events


#: The modules tracing would load (the SDK's trace part and the exporters).
TRACING_MODULES = ("opentelemetry.sdk.trace", "opentelemetry.exporter", "orchestrator.otel")


def _loaded_by_redis_alone(env: dict[str, str]) -> set[str]:
    """The OpenTelemetry modules ``import redis`` loads in a fresh interpreter."""
    code = "import sys, redis; print(*[m for m in sys.modules if m.startswith('opentelemetry')])"
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    return set(out.stdout.split())


def test_without_otel_settings_workers_load_no_opentelemetry(fleet: Fleet) -> None:
    # Given workers started without any OTEL_* variable
    assert not [k for k in fleet.env if k.startswith("OTEL_")]
    fleet.client.register(observed.otel_probe, PROJECT)
    # When a task reports the modules its worker process imported
    run = run_and_wait(fleet, "otel-probe", PROJECT)
    # Then our tracing adapter is not loaded, no tracer provider is set, and no
    # OpenTelemetry module is loaded beyond what redis-py imports by itself (redis-py
    # 8 imports the SDK's metrics part whenever the SDK is installed)
    assert run.state is State.SUCCESS, run.message
    found = run.task_run("otel_modules").result
    assert found["adapter"] is False and found["provider"] is False, found
    assert not [m for m in found["modules"] if m.startswith(TRACING_MODULES)], found
    assert set(found["modules"]) <= _loaded_by_redis_alone(fleet.env)
