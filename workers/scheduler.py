"""The Celery beat scheduler that fires registered flows' schedules:
:class:`FlowScheduler`, the thin Celery adapter over
:class:`~workers.schedule_runner.ScheduleRunner` (``orchestrator beat`` runs
``celery -A workers beat -S workers.scheduler:FlowScheduler``). Imports Celery,
:mod:`orchestrator.backends`, the pure core (config, constants, clock) and
:mod:`workers.schedule_runner`."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from datetime import datetime
from typing import Any

from celery import Celery
from celery.beat import Scheduler

import orchestrator.constants as constants
from orchestrator.backends import Backends, backends
from orchestrator.clock import utcnow
from orchestrator.config import hide_password
from workers.schedule_runner import ScheduleRunner, TickReport, lock_name_for

__all__ = ["ENV_LEASE_SECONDS", "FlowScheduler", "TickReport", "lock_name_for"]

log = logging.getLogger(__name__)

#: Environment variable overriding the leader lock's lease, in seconds.
ENV_LEASE_SECONDS = "ORCHESTRATOR_BEAT_LEASE_SECONDS"


class FlowScheduler(Scheduler):  # type: ignore[misc]
    """Celery beat's scheduler for registered flows (``-S workers.scheduler:FlowScheduler``).

    A thin adapter: each Celery tick runs :meth:`ScheduleRunner.tick` at
    ``clock()``, then Celery's own periodic entries (``beat_schedule``, if any) when
    this beat leads, and asks to be called again in ``tick_seconds``.

    Args:
        app: The Celery app.
        *args: Passed to :class:`celery.beat.Scheduler`.
        backends: The connections (default: from the environment).
        clock: Returns the current time, aware (default: the real clock). Tests
            inject one to drive the scheduler through simulated time.
        **kwargs: ``lease_seconds``, ``refresh_seconds``, ``window``,
            ``max_skipped``, ``max_runs``, ``dispatch_limit``, ``lock_name`` and
            ``dispatch`` go to :class:`ScheduleRunner`; the rest to Celery. The lease
            defaults to ``ORCHESTRATOR_BEAT_LEASE_SECONDS`` when that is set.
    """

    #: Seconds between two ticks.
    tick_seconds = constants.BEAT_TICK_SECONDS

    _RUNNER_OPTIONS = (
        "lease_seconds",
        "refresh_seconds",
        "window",
        "max_skipped",
        "max_runs",
        "dispatch_limit",
        "lock_name",
        "dispatch",
    )

    def __init__(
        self,
        app: Celery,
        *args: Any,
        backends: Backends | None = None,
        clock: Callable[[], datetime] | None = None,
        **kwargs: Any,
    ) -> None:
        self._backends = backends
        self._runner_options = {k: kwargs.pop(k) for k in self._RUNNER_OPTIONS if k in kwargs}
        if "lease_seconds" not in self._runner_options and os.environ.get(ENV_LEASE_SECONDS):
            self._runner_options["lease_seconds"] = float(os.environ[ENV_LEASE_SECONDS])
        self._runner: ScheduleRunner | None = None
        self.clock: Callable[[], datetime] = clock or utcnow
        #: What the last tick did (None before the first, or when it failed).
        self.last_report: TickReport | None = None
        #: The error the last tick failed with, if it did.
        self.last_error: BaseException | None = None
        super().__init__(app, *args, **kwargs)

    @property
    def runner(self) -> ScheduleRunner:
        """The decision logic (made on first use)."""
        if self._runner is None:
            b = self._backends or backends()
            self._runner = ScheduleRunner(b, **self._runner_options)
        return self._runner

    def tick(self, *args: Any, **kwargs: Any) -> float:
        """One beat iteration; returns the seconds to sleep before the next."""
        try:
            self.last_report = self.runner.tick(self.clock())
            self.last_error = None
        except Exception as exc:  # beat must outlive a bad tick
            self.last_report, self.last_error = None, exc
            log.exception("beat: tick failed; trying again in %gs", self.tick_seconds)
            return self.tick_seconds
        delay = self.tick_seconds
        if self.last_report.leader and self.schedule:
            delay = min(delay, super().tick(*args, **kwargs))
        return delay

    def close(self) -> None:
        """Release the leader lock, then close Celery's resources."""
        if self._runner is not None:
            self._runner.release()
        super().close()

    @property
    def info(self) -> str:
        """The startup banner's line about this scheduler."""
        b = self._backends or backends()
        lease = self._runner_options.get("lease_seconds", constants.BEAT_LEASE_SECONDS)
        return (
            f"flows from {hide_password(b.store.url)}, leader lock "
            f"{self._runner_options.get('lock_name') or lock_name_for(b.store.url)} "
            f"(lease {lease:g}s)"
        )
