"""The Celery app the workers register their tasks on, and what every task module
shares: :class:`InfraRetrying` (the base task: waits and retries unbounded by
Celery's retry counter, infrastructure faults retried with a bound of their own), this
process's backends and concurrency :class:`~workers.slots.Slots` (built on first
use; a starting worker warms them on Celery's ``worker_init``), who this worker is,
and the shape of what the tasks return. Importing it connects to nothing. Imports
Celery, redis-py, :mod:`orchestrator.backends`, the pure core (config, constants,
errors, states), :mod:`orchestrator.db.models` and :mod:`workers.slots`."""

from __future__ import annotations

import functools
import os
import socket
import uuid
from collections.abc import Mapping
from typing import Any

import redis
from celery import Celery
from celery import Task as CeleryTask
from celery.exceptions import Retry
from celery.signals import worker_init
from celery.utils.time import get_exponential_backoff_interval

from orchestrator.backends import Backends, backends, celery_app_for
from orchestrator.config import Settings
from orchestrator.db.models import TaskRun
from orchestrator.errors import BackendUnavailable
from orchestrator.states import State
from workers.slots import Slots

__all__ = [
    "FAULTS_HEADER",
    "INFRA_FAULTS",
    "SETTINGS",
    "InfraRetrying",
    "app",
    "current_backends",
    "current_slots",
    "lease_owner",
    "recorded",
    "recorded_state",
    "run_answer",
    "worker_id",
]

#: This process's settings, read from the environment once.
SETTINGS = Settings.from_env()
#: The one Celery app for them (built without connecting).
app: Celery = celery_app_for(SETTINGS)
_HOSTNAME = socket.gethostname()


#: The infrastructure faults a task is sent again for (with backoff), up to
#: :attr:`InfraRetrying.max_faults` in a row.
INFRA_FAULTS: tuple[type[BaseException], ...] = (
    BackendUnavailable,
    redis.ConnectionError,
    redis.TimeoutError,
)
#: The message header counting a task's infrastructure faults in a row.
FAULTS_HEADER = "orchestrator_faults"


class InfraRetrying(CeleryTask):  # type: ignore[misc]
    """Base of our tasks: every resend goes through :meth:`again` or the fault
    handling here, never through Celery's retry counter (DESIGN rule 11).

    Celery's ``max_retries`` counts every retry of a message, and its ``None``
    means the task's default (30), not "forever". Here it is None on the class, so
    Celery bounds nothing: waiting (for a slot, a child, a duplicate's twin) and a
    user task's retries (bounded by the task's own ``max_retries``, counted in the
    database) go on as long as they need. Infrastructure faults (the database or
    Redis unreachable) keep a bound of their own: a count of faults in a row,
    carried in a message header (:data:`FAULTS_HEADER`) and reset by every
    :meth:`again`, so earlier waits eat none of it. They are sent again with
    exponential backoff and jitter (1 s doubling to 30 s), up to
    :attr:`max_faults` times in a row (about a quarter of an hour); after that the
    task fails and the run is left to the sweeper. A user task's failure never
    gets here: it is a recorded state."""

    max_retries = None
    #: Infrastructure faults in a row before the task gives up.
    max_faults = 30
    #: The longest backoff between two tries after a fault, in seconds.
    fault_backoff_max = 30

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        """Run the task; an infrastructure fault sends it again with backoff."""
        try:
            return super().__call__(*args, **kwargs)
        except INFRA_FAULTS as exc:
            resend = self._after_fault(exc)
            if resend is None:
                raise
            raise resend from exc

    def again(self, countdown: float) -> Retry:
        """Send this task again in ``countdown`` seconds, however often it was sent
        before (a wait or a user task's retry); raise what this returns.

        The count of infrastructure faults in a row starts again from zero."""
        return self.retry(countdown=countdown, headers=self._headers(0), throw=False)

    def _after_fault(self, exc: BaseException) -> Retry | None:
        """The resend with backoff after an infrastructure fault; None (let the
        fault fail the task) after :attr:`max_faults` faults in a row, or outside a
        worker."""
        faults = self.faults() + 1
        if faults > self.max_faults or self.request.called_directly:
            return None
        countdown = get_exponential_backoff_interval(
            factor=1, retries=faults - 1, maximum=self.fault_backoff_max, full_jitter=True
        )
        return self.retry(exc=exc, countdown=countdown, headers=self._headers(faults), throw=False)

    def faults(self) -> int:
        """The infrastructure faults in a row before this delivery."""
        return int((self.request.headers or {}).get(FAULTS_HEADER) or 0)

    def _headers(self, faults: int) -> dict[str, Any]:
        """This message's custom headers, with the count of faults in a row."""
        return {**(self.request.headers or {}), FAULTS_HEADER: faults}


@functools.cache
def current_backends() -> Backends:
    """This process's connections (database, Redis, the app), made on first use."""
    return backends(SETTINGS)


@functools.cache
def current_slots() -> Slots:
    """This process's concurrency-limit semaphores, made on first use (a Redis that
    lost the limits loads them from the database)."""
    b = current_backends()
    return Slots(
        b.redis, max(2 * b.settings.lease_seconds, 10.0), functools.partial(_load_limits, b)
    )


def _load_limits(
    b: Backends, cached: Mapping[str, int]
) -> tuple[dict[str, int], list[tuple[str, tuple[str, ...], str | None]]]:
    """The limits from the database (keeping those only Redis had) and the Running runs."""
    limits = b.store.limits.all()
    for label, slots in cached.items():
        if label not in limits:  # set before the database kept limits
            b.store.limits.set(label, slots)
            limits[label] = slots
    running = [(r.id, r.labels, r.parent_id) for r in b.store.limits.running()]
    return limits, running


def _warm(sender: Any = None, **_: Any) -> None:
    """Connect a starting worker's backends before its pool forks (and before it
    consumes), as importing the tasks once did: the embedded Redis starts here."""
    if getattr(sender, "app", None) is app:
        current_slots()


worker_init.connect(_warm, weak=False)


def worker_id() -> str:
    """This worker process, as task runs record it."""
    return f"{_HOSTNAME}:{os.getpid()}"


def lease_owner() -> str:
    """A fresh lease owner for one claim."""
    return f"{worker_id()}:{uuid.uuid4().hex[:8]}"


def recorded(tr: TaskRun) -> dict[str, str]:
    """What a node returns: the recorded state, no timestamps (identical on every
    delivery), and the child run it took its state from, if any."""
    return recorded_state(tr.id, State(tr.state), tr.child_flow_run_id)


def recorded_state(tr_id: str, state: State, child_id: str | None = None) -> dict[str, str]:
    """What a node returns for task run ``tr_id`` recorded in ``state`` (see :func:`recorded`)."""
    out = {"task_run": tr_id, "state": state.value}
    if child_id:
        out["child_flow_run"] = child_id
    return out


def run_answer(flow_run_id: str, state: State) -> dict[str, str]:
    """What the flow-run tasks (start, finalize, resubmit) return: the run and its state."""
    return {"flow_run": flow_run_id, "state": state.value}
