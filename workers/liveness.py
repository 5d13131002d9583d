"""Worker liveness. Every worker process (a worker's main process and each of its
pool processes) keeps a key ``alive:{host}:{pid}`` in Redis that lasts
``ORCHESTRATOR_LIVENESS_SECONDS`` (5 by default), refreshed every second by a thread of
its own (:class:`~workers.heartbeat.KeepAlive`, so a slow database never delays it),
and is listed in the set of workers. Its task runs' leases name it (the task run's
``worker`` column, :func:`workers.app.worker_id`). A worker's main process also
records the delivery tag of every message it receives (its unacknowledged messages),
so that when it dies a live worker hands them back to the queue at once instead of
waiting for Redis's visibility timeout; and it runs the :class:`~workers.takeover.Watcher`.

Celery's signals start it all: ``worker_process_init`` in each pool process,
``worker_ready`` in the main process; the shutdown signals take the liveness key
away at once, so whatever a stopping process still held is taken over without
waiting for the key to expire. Imports Celery's signals, redis-py, the
pure core (constants), :mod:`orchestrator.db` and :mod:`orchestrator.backends`, and
:mod:`workers.app`, :mod:`workers.heartbeat`, :mod:`workers.takeover`."""

from __future__ import annotations

import contextlib
import logging
from typing import Any

import redis
from celery.signals import (
    task_received,
    worker_process_init,
    worker_process_shutdown,
    worker_ready,
    worker_shutdown,
)

import orchestrator.constants as constants
from orchestrator.backends import Backends
from orchestrator.db import Store
from workers.app import app, current_backends, worker_id
from workers.heartbeat import KeepAlive
from workers.takeover import Watcher

__all__ = ["refresh", "refresh_every"]

log = logging.getLogger(__name__)

_liveness = KeepAlive()
_watching = KeepAlive()
_watcher: Watcher | None = None


def refresh(client: redis.Redis, wid: str, ttl_seconds: float) -> None:
    """Set a worker process's liveness key for ``ttl_seconds`` and list it."""
    pipe = client.pipeline(transaction=False)
    pipe.set(constants.ALIVE + wid, "1", px=int(ttl_seconds * 1000))
    pipe.sadd(constants.WORKERS, wid)
    pipe.execute()


def refresh_every(ttl_seconds: float) -> float:
    """How often a liveness key is refreshed: every second, or a third of a short TTL."""
    return max(min(1.0, ttl_seconds / 3), 0.05)


def _keep_alive() -> None:
    """Start this process's liveness thread."""
    b = current_backends()
    wid = worker_id()
    ttl = b.settings.liveness_seconds
    _liveness.start(lambda: refresh(b.redis, wid, ttl), refresh_every(ttl), "orchestrator-liveness")


def _on_process_init(**_: Any) -> None:
    """A pool process starts: forget the parent's watcher connections, keep alive."""
    if _watcher is not None:
        _watcher.backends.store.after_fork()
    _keep_alive()


def _on_ready(sender: Any = None, **_: Any) -> None:
    """The main process is ready: keep alive and watch the other workers."""
    if getattr(sender, "app", None) is not app:
        return
    global _watcher
    _keep_alive()
    base = current_backends()
    # the watcher's own database connections: pool processes forked later forget them
    store = Store(base.settings.resolved_database_url())
    watcher_backends = Backends(base.settings, base.broker_url, base.redis, store, base.app)
    _watcher = Watcher(watcher_backends, worker_id())
    _watching.start(_watcher.tick, 1.0, "orchestrator-watcher")


def _on_received(request: Any = None, **_: Any) -> None:
    """The main process received a message: note its delivery tag (best effort)."""
    message = getattr(request, "message", None)
    tag = getattr(message, "delivery_tag", None)
    if tag is None:
        return
    with contextlib.suppress(redis.RedisError):
        current_backends().redis.sadd(constants.RESERVED + worker_id(), tag)


def _on_stop(**_: Any) -> None:
    """This process stops: no more refreshes, and its liveness key goes at once. It
    stays listed, so a live worker takes over at once whatever it still held (a
    task interrupted by a SIGTERM to the whole process group), usually nothing."""
    _liveness.stop()
    _watching.stop()
    with contextlib.suppress(redis.RedisError):
        current_backends().redis.delete(constants.ALIVE + worker_id())


worker_process_init.connect(_on_process_init, weak=False)
worker_ready.connect(_on_ready, weak=False)
task_received.connect(_on_received, weak=False)
worker_process_shutdown.connect(_on_stop, weak=False)
worker_shutdown.connect(_on_stop, weak=False)
