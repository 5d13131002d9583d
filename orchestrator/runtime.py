"""The process-wide connections: the database store, the Celery app and Redis,
built once from :class:`~orchestrator.config.Settings`.

The one Celery app lives here, on the orchestrator side, so a client enqueues by
task name without importing worker code."""

from __future__ import annotations

import contextlib
import functools
import json
import time
from dataclasses import dataclass
from typing import Any

import redis
from celery import Celery
from celery.app.amqp import AMQP

from orchestrator import broker, constants, embedded
from orchestrator.config import Settings, hide_password
from orchestrator.errors import BackendUnavailable
from orchestrator.states import State
from orchestrator.store import Store


@dataclass
class Backends:
    """The connections of one process, for one configuration.

    Attributes:
        settings: the configuration they were built from.
        broker_url: the Redis URL as Celery spells it.
        redis: a redis-py client for locks, semaphores and notices.
        store: the database.
        app: the Celery app.
    """

    settings: Settings
    broker_url: str
    redis: redis.Redis
    store: Store
    app: Celery

    def set_flow_run_state(
        self,
        flow_run_id: str,
        new: State,
        message: str | None = None,
        expected: Any = None,
    ) -> bool:
        """Compare-and-set a flow run's state and announce the change on Redis."""
        changed = self.store.set_flow_run_state(flow_run_id, new, message, expected)
        if changed:
            self.notify(flow_run_id, new)
        return changed

    def notify(self, flow_run_id: str, state: State) -> None:
        """Publish a state-change notice for waiting clients (best effort)."""
        # best effort: waiters fall back to reading the database
        with contextlib.suppress(redis.RedisError):
            self.redis.publish(
                constants.FLOW_RUN_CHANNEL.format(id=flow_run_id),
                json.dumps({"id": flow_run_id, "state": state.value}),
            )

    def dispatch(self, flow_run_id: str, flow_name: str) -> None:
        """Send ``start_flow_run`` for a flow run to the workers."""
        self.app.send_task(
            constants.START_FLOW_RUN,
            args=[flow_run_id],
            queue=self.settings.queue,
            shadow=f"{flow_name}/start",
        )


def redis_urls(settings: Settings) -> tuple[str, str]:
    """The Redis URL for Celery and for redis-py, starting the embedded server if needed."""
    if settings.redis_url:
        url = settings.redis_url
        if url.startswith("redis+socket://"):
            return url, "unix://" + url[len("redis+socket://") :]
        return url, url
    sock = embedded.ensure_running(settings.home)
    return f"redis+socket://{sock}", f"unix://{sock}"


def _ping(client: redis.Redis, url: str, attempts: int = 5) -> None:
    delay = 0.2
    for attempt in range(attempts):
        try:
            client.ping()
            return
        except redis.AuthenticationError as exc:
            raise BackendUnavailable(
                f"Redis at {hide_password(url)} refused the password: {exc}"
            ) from None
        except (redis.ConnectionError, redis.TimeoutError, OSError) as exc:
            if attempt == attempts - 1:
                detail = str(exc).splitlines()[0]
                raise BackendUnavailable(
                    f"Redis at {hide_password(url)} is unreachable: {detail}"
                ) from None
            time.sleep(delay)
            delay *= 2
        except redis.ResponseError as exc:
            raise BackendUnavailable(f"Redis at {hide_password(url)} refused us: {exc}") from None


class ShadowNamedAMQP(AMQP):  # type: ignore[misc]
    """Celery's message builder, with the ``task-sent`` event named like the task.

    A task sent with ``shadow="flow/slug"`` is named so in its ``task-received``
    and later events, but Celery names its ``task-sent`` event by the real task
    (``orchestrator.node``). Sender and worker publish events on separate
    connections, so a ``task-sent`` often reaches Flower after the task finished,
    and Celery's event state then overwrites the readable name with the real one
    (measured: about a third of the nodes of a small flow). Naming the sent event
    by the shadow too keeps the readable name, whatever the order.
    """

    def as_task_v2(self, task_id: str, name: str, *args: Any, **kwargs: Any) -> Any:
        """Build the message; its sent event takes the shadow name when there is one."""
        message = super().as_task_v2(task_id, name, *args, **kwargs)
        shadow = message.headers.get("shadow")
        if shadow and message.sent_event is not None:
            message.sent_event["name"] = shadow
        return message


def make_app(broker_url: str, settings: Settings) -> Celery:
    """Build the Celery app: JSON only, late acks, prefetch 1, events on."""
    app = Celery(
        "orchestrator",
        broker=broker_url,
        backend=broker_url,
        set_as_current=False,
        amqp=ShadowNamedAMQP,
    )
    time_limit = settings.task_time_limit
    visibility = settings.visibility_timeout or time_limit + 3600
    app.conf.update(
        task_serializer="json",
        result_serializer="json",
        accept_content=["json"],
        result_accept_content=["json"],
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        task_default_queue=settings.queue,
        task_time_limit=time_limit,
        broker_transport_options={"visibility_timeout": visibility},
        result_backend_transport_options={"visibility_timeout": visibility},
        broker_connection_retry_on_startup=True,
        worker_send_task_events=True,
        task_send_sent_event=True,
        result_expires=24 * 3600,
        worker_hijack_root_logger=False,
        worker_cancel_long_running_tasks_on_connection_loss=False,
        redis_backend_health_check_interval=30,
        broker_heartbeat=0,
    )
    if broker_url.startswith("redis://"):
        # survives a broker restart (the embedded unix-socket server is restarted
        # only with the process that owns it)
        app.conf.broker_transport = broker.TRANSPORT
    return app


@functools.lru_cache(maxsize=8)
def _backends(settings: Settings) -> Backends:
    celery_url, redis_url = redis_urls(settings)
    client = redis.Redis.from_url(redis_url, socket_connect_timeout=5, health_check_interval=30)
    _ping(client, celery_url)
    store = Store(settings.resolved_database_url(), auto_migrate=settings.embedded_database)
    return Backends(settings, celery_url, client, store, make_app(celery_url, settings))


def backends(settings: Settings | None = None) -> Backends:
    """The connections for ``settings`` (by default, from the environment), made once."""
    return _backends(settings or Settings.from_env())


def reset() -> None:
    """Forget every cached connection (tests and forks)."""
    _backends.cache_clear()
