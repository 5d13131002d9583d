"""The fleet's figures for Prometheus, as the server's ``/metrics`` serves them, read
from the database and Redis at each scrape (:class:`FleetCollector`): flow runs and
task runs by flow and state (counters of the final states), runs running and queued
now, and each concurrency label's slots held and limit. A worker's own figures
(attempt durations, queue delays) are on its ``--metrics-port``. May import
``prometheus_client``, the backends, the client-layer :mod:`orchestrator.concurrency`
and the core's states."""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

import orchestrator.concurrency as concurrency
from orchestrator.backends import Backends
from orchestrator.states import State

__all__ = ["CONTENT_TYPE", "FleetCollector", "exposition"]

#: The content type of the text exposition format.
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
_FINAL = {s.value for s in State if s.is_final}


class FleetCollector(Collector):
    """Counts runs in the database and slots in Redis when scraped.

    Args:
        backends: the fleet's connections.
    """

    def __init__(self, backends: Backends) -> None:
        self.backends = backends

    def collect(self) -> Iterator[Metric]:
        """The figures, read now."""
        store = self.backends.store
        labels = ["flow", "project", "state"]
        flows = CounterMetricFamily(
            "orchestrator_flow_runs",
            "Flow runs that ended, by flow and final state.",
            labels=labels,
        )
        tasks = CounterMetricFamily(
            "orchestrator_task_runs",
            "Task runs that ended, by flow and final state.",
            labels=labels,
        )
        active = {
            state: GaugeMetricFamily(
                f"orchestrator_flow_runs_{state.value.lower()}",
                f"Flow runs {state.value} now, by flow.",
                labels=["flow", "project"],
            )
            for state in (State.RUNNING, State.QUEUED)
        }
        for c in store.stats.flow_runs():
            if c.state in _FINAL:
                flows.add_metric([c.flow, c.project, c.state], c.count)
            elif c.state in (State.RUNNING.value, State.QUEUED.value):
                active[State(c.state)].add_metric([c.flow, c.project], c.count)
        for c in store.stats.task_runs():
            if c.state in _FINAL:
                tasks.add_metric([c.flow, c.project, c.state], c.count)
        yield flows
        yield tasks
        yield from active.values()
        yield from self._slots()

    def _slots(self) -> Iterator[Metric]:
        held = GaugeMetricFamily(
            "orchestrator_slots_held", "Concurrency slots held now, by label.", labels=["label"]
        )
        limit = GaugeMetricFamily(
            "orchestrator_slots_limit", "Concurrency limit, by label.", labels=["label"]
        )
        waiting = GaugeMetricFamily(
            "orchestrator_slots_waiting", "Runs waiting for a slot, by label.", labels=["label"]
        )
        for info in concurrency.list_limits(self.backends.redis):
            held.add_metric([info.label], info.used)
            limit.add_metric([info.label], info.limit)
            waiting.add_metric([info.label], info.waiting)
        yield held
        yield limit
        yield waiting


def exposition(backends: Backends) -> bytes:
    """The fleet's figures in Prometheus' text format."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(FleetCollector(backends))
    return generate_latest(registry)
