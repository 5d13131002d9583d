"""The Celery app the workers register their tasks on, and what every task module
shares: :class:`InfraRetrying` (the base task, retrying infrastructure faults), this
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
from typing import Any

import redis
from celery import Celery
from celery import Task as CeleryTask
from celery.signals import worker_init

from orchestrator.backends import Backends, backends, celery_app_for
from orchestrator.config import Settings
from orchestrator.db.models import TaskRun
from orchestrator.errors import BackendUnavailable
from orchestrator.states import State
from workers.slots import Slots

__all__ = [
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


class InfraRetrying(CeleryTask):  # type: ignore[misc]
    """Base of our tasks: infrastructure faults (the database or Redis unreachable)
    are retried with exponential backoff and jitter, up to 30 times (about a quarter
    of an hour); after that the run is left to the sweeper. A user task's failure
    never gets here: it is a recorded state."""

    autoretry_for = (BackendUnavailable, redis.ConnectionError, redis.TimeoutError)
    retry_backoff = 1
    retry_backoff_max = 30
    retry_jitter = True
    max_retries = 30


@functools.cache
def current_backends() -> Backends:
    """This process's connections (database, Redis, the app), made on first use."""
    return backends(SETTINGS)


@functools.cache
def current_slots() -> Slots:
    """This process's concurrency-limit semaphores, made on first use."""
    b = current_backends()
    return Slots(b.redis, max(2 * b.settings.lease_seconds, 10.0))


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
