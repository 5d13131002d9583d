"""The REST API under ``/api``: one router module per resource (``flow_runs``,
``flows``, ``schedules``, ``limits``, ``events``) and ``/metrics``, each thin over the Client and the
database's repositories. This ``__init__`` only hands the routers on."""

from orchestrator.server.api import events, flow_runs, flows, limits, metrics, schedules

ROUTERS = [
    flow_runs.router,
    flows.router,
    schedules.router,
    limits.router,
    events.router,
    metrics.router,
]

__all__ = ["ROUTERS"]
