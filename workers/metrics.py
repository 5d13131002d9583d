"""A worker's and beat's Prometheus figures (``prometheus_client``): task-run attempts
by flow and state, their duration and their queue delay, beat's schedule lag and the
runs its sweeper found stuck; and the HTTP endpoint that serves them
(:func:`serve`, on ``ORCHESTRATOR_METRICS_PORT``, which ``orchestrator worker
--metrics-port`` and ``orchestrator beat --metrics-port`` set).

A prefork worker's pool processes each count in their own files under
``PROMETHEUS_MULTIPROC_DIR`` (the command sets one when it is not set), and the
endpoint in the worker's main process adds them up (``prometheus_client``'s
multiprocess mode). Fleet-wide figures (runs by flow and final state, running and
queued runs, slots held) are the server's, read from the database. Imports
``prometheus_client`` and the standard library."""

from __future__ import annotations

import logging
import os

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Histogram, start_http_server
from prometheus_client import multiprocess as prom_multiprocess

__all__ = [
    "PORT_ENV",
    "QUEUE_DELAY",
    "SCHEDULE_LAG",
    "SWEPT",
    "TASK_RUNS",
    "TASK_RUN_DURATION",
    "process_gone",
    "serve",
]

log = logging.getLogger(__name__)

#: The variable naming the port of a worker's or beat's ``/metrics``.
PORT_ENV = "ORCHESTRATOR_METRICS_PORT"
_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600)

#: Task-run attempts by flow and the state they came to (Retrying included).
TASK_RUNS = Counter(
    "orchestrator_worker_task_runs",
    "Task-run attempts run by this worker, by flow and the state they came to.",
    ["flow", "state"],
)
#: How long an attempt took, from its claim to its outcome.
TASK_RUN_DURATION = Histogram(
    "orchestrator_task_run_duration_seconds",
    "Duration of task-run attempts, by flow.",
    ["flow"],
    buckets=_BUCKETS,
)
#: From when a task's message was due (sent, or its countdown's end) to its start.
QUEUE_DELAY = Histogram(
    "orchestrator_task_queue_delay_seconds",
    "Delay from when a task's message was due (sent, or its retry countdown over) "
    "to when a worker started it, by flow.",
    ["flow"],
    buckets=_BUCKETS,
)
#: Beat: fire time minus slot time of each run it created for a schedule slot.
SCHEDULE_LAG = Histogram(
    "orchestrator_schedule_lag_seconds",
    "Beat's schedule lag: when a slot's run was created minus the slot's time.",
    ["flow"],
    buckets=_BUCKETS,
)
#: Beat: runs its sweeper found stuck, by what it did with them.
SWEPT = Counter(
    "orchestrator_runs_swept",
    "Runs beat's sweeper found stuck, by what it did (resubmitted, restarted, failed).",
    ["action"],
)


def serve(port: int, addr: str = "0.0.0.0") -> None:
    """Serve ``/metrics`` on ``port`` from this (main) process: the sum over the
    pool's processes in multiprocess mode, else this process's own figures."""
    registry: CollectorRegistry = REGISTRY
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        prom_multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
    start_http_server(port, addr=addr, registry=registry)
    log.info("metrics on http://%s:%d/metrics", addr, port)


def process_gone(pid: int) -> None:
    """A pool process ended: let the multiprocess files know (live gauges)."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        prom_multiprocess.mark_process_dead(pid)  # type: ignore[no-untyped-call]
