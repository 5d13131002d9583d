"""The floor: a plain Celery app with the same broker, result backend and
configuration as ours (``orchestrator.celery_app.make_app``: JSON, late acks, prefetch
1, events on), and one no-op task. No database, no orchestration.

The worker process loads it with ``celery -A bench.plain_worker worker``; the
benchmark process builds its own copy to send canvases by task name."""

from __future__ import annotations

from pathlib import Path

from celery import Celery

from orchestrator.celery_app import make_app
from orchestrator.config import Settings

NOOP = "bench.plain.noop"


def plain_app(broker_url: str, queue: str) -> Celery:
    """A Celery app configured like ours, with the no-op task registered on it."""
    settings = Settings(
        home=Path("/nonexistent"), redis_url=broker_url, database_url=None, queue=queue
    )
    app = make_app(broker_url, settings)
    app.main = "bench-plain"

    @app.task(name=NOOP)
    def noop() -> None:
        """Nothing at all."""

    return app
