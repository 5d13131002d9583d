"""The tracing gate and the prune's ages, without workers: which OTEL_* settings
turn tracing on, that a process without them imports nothing of our adapter while it
builds runs, and ``--older-than``'s spelling."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import click
import pytest

from orchestrator.cli.database import parse_age
from orchestrator.cli.launch import metrics_env
from orchestrator.errors import ConfigurationError
from orchestrator.telemetry import configured
from tests.conftest import ROOT


@pytest.mark.parametrize(
    ("env", "on"),
    [
        ({}, False),
        ({"OTEL_SERVICE_NAME": "w"}, False),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"}, True),
        ({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://c:4318/v1/traces"}, True),
        ({"OTEL_TRACES_EXPORTER": "otlp"}, True),
        ({"OTEL_TRACES_EXPORTER": "console"}, True),
        ({"OTEL_TRACES_EXPORTER": "none", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://c"}, False),
        ({"OTEL_SDK_DISABLED": "true", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://c"}, False),
    ],
)
def test_tracing_follows_the_standard_variables(env: dict[str, str], on: bool) -> None:
    assert configured(env) is on


def test_building_runs_without_otel_settings_loads_no_adapter() -> None:
    # Given a process without OTEL_* variables that builds a run request as the client does
    code = (
        "import sys\n"
        "from orchestrator.requests import FlowRunRequest, NewFlowRun\n"
        "import orchestrator.celery_app, orchestrator.backends\n"
        "new = NewFlowRun.of(FlowRunRequest('f', 'p'), 'flow-id', {})\n"
        "assert new.trace_context is None, new\n"
        "print('orchestrator.otel' in sys.modules, 'opentelemetry.sdk.trace' in sys.modules)\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    env["PYTHONPATH"] = str(ROOT)
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    # Then the run has no trace context and neither our adapter nor the SDK's tracing loaded
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["False", "False"]


def test_a_traced_process_gives_runs_a_context_under_its_current_span() -> None:
    # Given a process with tracing on (to the console) inside a span of its own
    code = (
        "from opentelemetry import trace\n"
        "from orchestrator.requests import FlowRunRequest, NewFlowRun\n"
        "import orchestrator.otel as otel\n"
        "root = NewFlowRun.of(FlowRunRequest('f', 'p'), 'flow-id', {}).trace_context\n"
        "with otel._tracer().start_as_current_span('caller') as span:\n"
        "    child = NewFlowRun.of(FlowRunRequest('f', 'p'), 'flow-id', {}).trace_context\n"
        "    ctx = span.get_span_context()\n"
        "print(sorted(root), root['traceparent'][3:35] != child['traceparent'][3:35])\n"
        "print(child['parent'] == f'00-{ctx.trace_id:032x}-{ctx.span_id:016x}-01')\n"
        "print(child['traceparent'][3:35] == f'{ctx.trace_id:032x}')\n"
    )
    env = {**os.environ, "OTEL_TRACES_EXPORTER": "console", "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    # Then a run made outside any span is the root of a new trace, and one made inside
    # the span hangs under it, in its trace
    assert done.stdout.splitlines()[:3] == ["['traceparent'] True", "True", "True"]


@pytest.mark.parametrize(
    ("text", "age"),
    [
        ("30d", timedelta(days=30)),
        ("12h", timedelta(hours=12)),
        ("90m", timedelta(minutes=90)),
        ("2w", timedelta(weeks=2)),
        ("45s", timedelta(seconds=45)),
        ("1.5d", timedelta(days=1.5)),
    ],
)
def test_prune_ages(text: str, age: timedelta) -> None:
    assert parse_age(text) == age


@pytest.mark.parametrize("text", ["30", "d", "-3d", "0d", "3x", "thirty days"])
def test_bad_prune_ages_are_one_clear_error(text: str) -> None:
    with pytest.raises(click.BadParameter, match="expected a positive age like 30d"):
        parse_age(text)


def test_a_metrics_port_in_use_is_one_clear_error(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("0.0.0.0", 0))
        port = taken.getsockname()[1]
        with pytest.raises(ConfigurationError, match=rf"--metrics-port {port}: "):
            metrics_env(port, tmp_path)


def test_a_worker_metrics_env_has_a_fresh_multiprocess_dir(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("PROMETHEUS_MULTIPROC_DIR", raising=False)
    with socket.socket() as free:
        free.bind(("0.0.0.0", 0))
        port = free.getsockname()[1]
    env = metrics_env(port, tmp_path)
    assert env["ORCHESTRATOR_METRICS_PORT"] == str(port)
    folder = Path(env["PROMETHEUS_MULTIPROC_DIR"])
    assert folder.parent == tmp_path and folder.is_dir() and not list(folder.iterdir())
    assert "PROMETHEUS_MULTIPROC_DIR" not in metrics_env(port, tmp_path, pool=False)
