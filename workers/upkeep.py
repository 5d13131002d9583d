"""Beat's thin hooks for what the operators watch: its schedule lag and the runs its
sweeper found stuck, counted for ``/metrics`` (:mod:`workers.metrics`), and the daily
prune of old trees when ``ORCHESTRATOR_RETENTION_DAYS`` is set (the first beat of
the day to get a Redis key does it). Imports redis-py, the backends (a type), the
core's clock and :mod:`workers.metrics`, :mod:`workers.sweeper` (a type)."""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
from collections.abc import Iterable
from datetime import datetime, timedelta

import redis

import workers.metrics as metrics
from orchestrator.backends import Backends
from orchestrator.clock import as_utc
from orchestrator.errors import BackendUnavailable
from workers.sweeper import SweepReport

__all__ = ["RETENTION_ENV", "fired", "prune_daily", "prune_key", "retention_days", "swept"]

log = logging.getLogger(__name__)

#: The variable that makes beat prune trees older than that many days, once a day.
RETENTION_ENV = "ORCHESTRATOR_RETENTION_DAYS"


def fired(flow: str, slots: Iterable[datetime], now: datetime) -> None:
    """Beat fired these slots of ``flow`` at ``now``: each one's lag."""
    for slot in slots:
        lag = (as_utc(now) - as_utc(slot)).total_seconds()
        metrics.SCHEDULE_LAG.labels(flow).observe(max(0.0, lag))


def swept(report: SweepReport | None) -> None:
    """What a sweep did with stuck runs, counted."""
    if report is None:
        return
    for action, runs in (
        ("resubmitted", report.resubmitted),
        ("failed", report.failed),
        ("redispatched", report.redispatched),
    ):
        if runs:
            metrics.SWEPT.labels(action).inc(len(runs))


def retention_days(env: dict[str, str] | None = None) -> float | None:
    """``ORCHESTRATOR_RETENTION_DAYS`` as a number of days (None: not set).

    Raises:
        ValueError: set to something that is not a positive number.
    """
    raw = (os.environ if env is None else env).get(RETENTION_ENV, "").strip()
    if not raw:
        return None
    days = float(raw)
    if days <= 0:
        raise ValueError(raw)
    return days


def prune_key(database_url: str) -> str:
    """The Redis key held for a day by the beat that pruned this database."""
    return f"orchestrator:pruned:{hashlib.sha1(database_url.encode()).hexdigest()[:12]}"


def prune_daily(b: Backends, now: datetime) -> None:
    """Prune trees older than the retention, once a day for the whole fleet."""
    try:
        days = retention_days()
    except ValueError:
        log.error("beat: %s must be a positive number of days; not pruning", RETENTION_ENV)
        return
    if days is None:
        return
    try:
        if not b.redis.set(prune_key(b.store.url), now.isoformat(), nx=True, ex=86_400):
            return
    except redis.RedisError:
        return
    with contextlib.suppress(BackendUnavailable):
        report = b.store.retention.prune(as_utc(now) - timedelta(days=days))
        log.info(
            "beat: pruned %d trees (%d flow runs) older than %g days",
            report.trees,
            report.flow_runs,
            days,
        )
