"""Waiting for a flow run to be final, as a client does: watching the run's
state-change notices on Redis pub/sub, with the database deciding (a lost notice
costs at most one step of waiting). Never Celery's ``AsyncResult.get()``. Imports
redis-py, :mod:`orchestrator.backends` and the core (constants, errors, states)."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable

import redis
from redis.client import PubSub

import orchestrator.constants as constants
from orchestrator.backends import Backends
from orchestrator.errors import FlowRunTimeout
from orchestrator.states import State

__all__ = ["wait_until_final"]

#: The longest a waiter sleeps between two looks at a run's state, in seconds.
_WAIT_STEP = 2.0


def wait_until_final(
    b: Backends,
    flow_run_id: str,
    timeout: float | None = None,
    on_change: Callable[[State], None] | None = None,
) -> State:
    """Return a flow run's final state once it is final.

    Args:
        b: the connections.
        flow_run_id: the run.
        timeout: seconds to wait at most (None: no limit).
        on_change: called with each new state seen.

    Raises:
        FlowRunTimeout: when the run is not final within ``timeout``.
    """
    deadline = None if timeout is None else time.monotonic() + timeout
    notices = _Notices(b.redis, flow_run_id)
    try:
        seen: State | None = None
        while True:
            state = State(b.store.flow_runs.get(flow_run_id).state)
            if state != seen:
                seen = state
                if on_change:
                    on_change(state)
            if state.is_final:
                return state
            remaining = None if deadline is None else deadline - time.monotonic()
            if remaining is not None and remaining <= 0:
                raise FlowRunTimeout(
                    f"flow run {flow_run_id} is still {state.value} after {timeout:g}s"
                )
            notices.wait(_WAIT_STEP if remaining is None else max(0.01, min(_WAIT_STEP, remaining)))
    finally:
        notices.close()


class _Notices:
    """A subscription to a flow run's state-change notices on Redis; without Redis
    (or after a Redis error) waiting is plain sleeping, and the database decides."""

    def __init__(self, client: redis.Redis, flow_run_id: str) -> None:
        self.pubsub: PubSub | None = None
        try:
            self.pubsub = client.pubsub(ignore_subscribe_messages=True)  # type: ignore[no-untyped-call,unused-ignore]
            self.pubsub.subscribe(constants.FLOW_RUN_CHANNEL.format(id=flow_run_id))
        except redis.RedisError:
            self.pubsub = None

    def wait(self, seconds: float) -> None:
        """Return on the next notice, or after ``seconds`` (at most 0.5 s without Redis)."""
        if self.pubsub is not None:
            try:
                self.pubsub.get_message(timeout=seconds)
                return
            except redis.RedisError:
                self.pubsub = None
        time.sleep(min(seconds, 0.5))

    def close(self) -> None:
        """Unsubscribe (best effort)."""
        if self.pubsub is not None:
            with contextlib.suppress(redis.RedisError):
                self.pubsub.close()
