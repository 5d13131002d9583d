"""Recovery of runs a fault left behind (Redis is a transport, and a message can be
lost: Redis restarted without persistence, a worker killed before its ack reached
Redis): :func:`sweep`, which beat calls every few seconds, and its
:class:`SweepReport`. Imports :mod:`orchestrator.backends` and the pure core
(constants, states) only."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import orchestrator.constants as constants
from orchestrator.backends import Backends
from orchestrator.states import State

log = logging.getLogger(__name__)


@dataclass
class SweepReport:
    """What one sweep did, for logs and tests."""

    resubmitted: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    redispatched: list[str] = field(default_factory=list)


def sweep(b: Backends, now: datetime, stale_seconds: float, max_resubmits: int = 3) -> SweepReport:
    """Find and recover stuck runs.

    - A Running flow run with no progress (no state change of it or its task runs)
      for ``stale_seconds``, no live task-run lease, and no child it is still
      waiting for, gets its canvas sent again. That is idempotent: finished nodes
      return their recorded state, unfinished ones run, child runs are found by
      their keys. After ``max_resubmits`` tries without progress it is failed with
      a clear message.
    - A Submitted run older than ``stale_seconds`` gets ``start_flow_run`` again.
    - A Queued run gets ``start_flow_run`` again every sweep: the backstop for a
      lost wake-up when a concurrency slot freed.

    Args:
        b: the connections.
        now: the current time (aware).
        stale_seconds: how long a run may show no progress.
        max_resubmits: how often a stuck run is sent again before it is failed.

    Returns:
        What the sweep did.
    """
    report = SweepReport()
    cutoff = now - timedelta(seconds=stale_seconds)
    store = b.store
    for run_id in store.recovery.stale_running(now, cutoff):
        tries = int(b.redis.hincrby(constants.RESUBMITS, run_id, 1))
        if tries > max_resubmits:
            message = (
                f"no progress for {stale_seconds:g}s after {max_resubmits} resubmissions; "
                "its workers or messages were lost"
            )
            if b.set_flow_run_state(run_id, State.FAILED, message, from_states=[State.RUNNING]):
                store.task_runs.cancel_pending(run_id, "flow run failed: no progress")
                b.app.send_task(constants.RELEASE_SLOTS, args=[run_id, []], queue=b.settings.queue)
                report.failed.append(run_id)
            b.redis.hdel(constants.RESUBMITS, run_id)
            continue
        log.warning(
            "flow run %s made no progress for %gs: sending it again (try %d)",
            run_id,
            stale_seconds,
            tries,
        )
        store.flow_runs.touch(run_id)
        b.app.send_task(constants.RESUBMIT, args=[run_id], queue=b.settings.queue)
        report.resubmitted.append(run_id)
    for run_id in store.recovery.to_redispatch(cutoff):
        b.app.send_task(constants.START_FLOW_RUN, args=[run_id], queue=b.settings.queue)
        report.redispatched.append(run_id)
    return report
