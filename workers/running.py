"""Which Celery task runs a task run's code right now: recorded in Redis
(:data:`orchestrator.constants.RUNNING_CODE`) while the code runs, so that a cancel
can revoke that Celery task with ``terminate`` and stop the code (the pool replaces
the process). The record and a look at the cancel's marker in the same hash are one
transaction: a cancel that read the records before this one has set its marker, and
the code does not start (the run's state is read only then, so that a marker left by
a cancel before a restart stops nothing). Imports Celery (the current task),
redis-py, :mod:`orchestrator.db` and the core's constants and states."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator

import redis
from celery import current_task

import orchestrator.constants as constants
from orchestrator.db import Store
from orchestrator.states import State

__all__ = ["CodeCancelled", "running_code"]

log = logging.getLogger(__name__)


class CodeCancelled(Exception):
    """The flow run was cancelled just before the code would have started."""


@contextlib.contextmanager
def running_code(
    client: redis.Redis, store: Store, flow_run_id: str, task_run_id: str
) -> Iterator[None]:
    """While the block runs, record that the current Celery task runs ``task_run_id``'s
    code (best effort: without Redis the code runs, but a cancel cannot stop it).

    Raises:
        CodeCancelled: a cancel read the records before this one (its marker is
            there and the run is final), so the code must not run.
    """
    task_id = getattr(getattr(current_task, "request", None), "id", None)
    key = constants.RUNNING_CODE.format(id=flow_run_id)
    recorded = marked = False
    if task_id:
        try:
            with client.pipeline() as pipe:  # one transaction, ordered against a cancel's
                pipe.hset(key, task_run_id, task_id)
                pipe.expire(key, constants.RUNNING_CODE_TTL)
                pipe.hexists(key, constants.RUNNING_CODE_CANCELLED)
                marked = bool(pipe.execute()[-1])
            recorded = True
        except redis.RedisError as exc:
            log.warning("task run %s: running code not recorded: %s", task_run_id, exc)
    if marked and State(store.flow_runs.get(flow_run_id).state).is_final:
        with contextlib.suppress(redis.RedisError):
            client.hdel(key, task_run_id)
        raise CodeCancelled(f"flow run {flow_run_id} cancelled")
    try:
        yield
    finally:
        if recorded:
            with contextlib.suppress(redis.RedisError):
                client.hdel(key, task_run_id)
