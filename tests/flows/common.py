"""Helpers for test flows: count each execution of a task's code in Redis, so tests
can check that user code finished exactly once."""

from __future__ import annotations

import contextlib
import os
import time

import redis

from orchestrator.backends import redis_client as connect_redis
from orchestrator.context import current

_client: redis.Redis | None = None


def redis_client() -> redis.Redis:
    """A client of the Redis the workers use (ORCHESTRATOR_REDIS_URL), made once."""
    global _client
    if _client is None:
        # Celery's spelling of the URL, sentinel:// included
        _client = connect_redis(os.environ["ORCHESTRATOR_REDIS_URL"])
    return _client


def count_key(flow_run_id: str) -> str:
    """The Redis hash counting finished executions per task slug of a flow run."""
    return f"test:finished:{flow_run_id}"


def finished(seconds: float = 0.0) -> None:
    """Sleep, then record that the current task's code finished once."""
    if seconds:
        time.sleep(seconds)
    ctx = current()
    if ctx is None or ctx.local or ctx.flow_run_id is None:
        return
    slug = ctx.task_slug if ctx.map_index < 0 else f"{ctx.task_slug}[{ctx.map_index}]"
    # instrumentation only: a Redis outage (the fault tests make some) must not fail the task
    with contextlib.suppress(redis.RedisError):
        redis_client().hincrby(count_key(ctx.flow_run_id), slug, 1)
