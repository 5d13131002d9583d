"""The Celery app of the orchestrator: :func:`make_app` builds it from a broker URL
and :class:`~orchestrator.config.Settings` (JSON only, late acks, prefetch 1,
events on), with :class:`ShadowNamedAMQP` naming sent events readably.

Every message sent is stamped (:func:`stamp`) with when it was sent (workers count
its queue delay) and the current trace context (:mod:`orchestrator.telemetry`).

Building an app connects to nothing. It may import Celery, :mod:`orchestrator.config`,
:mod:`orchestrator.telemetry` and :mod:`orchestrator.transport`; nothing of the
client layer or the database."""

from __future__ import annotations

import time
from typing import Any

from celery import Celery
from celery.app.amqp import AMQP
from celery.signals import before_task_publish

import orchestrator.telemetry as telemetry
import orchestrator.transport as transport
from orchestrator.config import Settings, sentinel_url

#: The message header with when it was sent (seconds since the epoch).
SENT_HEADER = "orchestrator_sent"


def stamp(headers: dict[str, Any] | None = None, **_: Any) -> None:
    """Stamp a message about to be sent: when, and the current trace context."""
    if headers is not None:
        headers[SENT_HEADER] = time.time()
        telemetry.inject(headers)


before_task_publish.connect(stamp, weak=False)


class ShadowNamedAMQP(AMQP):  # type: ignore[misc]
    """Celery's message builder, with the ``task-sent`` event named like the task.

    A task sent with ``shadow="flow/slug"`` is named so in its ``task-received``
    and later events, but Celery names its ``task-sent`` event by the real task
    (``orchestrator.node``). Sender and worker publish events on separate
    connections, so a ``task-sent`` often reaches Flower after the task finished,
    and Celery's event state then overwrites the readable name with the real one
    (measured: about a third of the nodes of a small flow). Naming the sent event
    by the shadow too keeps the readable name, whatever the order.

    Its connections are :class:`orchestrator.transport.Connection`, whose URL keeps
    the ``redis://`` scheme with this project's transport.
    """

    Connection = transport.Connection

    def as_task_v2(self, task_id: str, name: str, *args: Any, **kwargs: Any) -> Any:
        """Build the message; its sent event takes the shadow name when there is one."""
        message = super().as_task_v2(task_id, name, *args, **kwargs)
        shadow = message.headers.get("shadow")
        if shadow and message.sent_event is not None:
            message.sent_event["name"] = shadow
        return message


def make_app(broker_url: str, settings: Settings) -> Celery:
    """Build the Celery app: JSON only, late acks, prefetch 1, events on.

    Args:
        broker_url: the Redis URL as Celery spells it (``redis+socket://`` for a
            unix socket); it is the result backend too.
        settings: the queue, time limit and visibility timeout.

    Returns:
        The app (not set as Celery's current app; nothing connected yet).
    """
    sentinel = sentinel_url(broker_url)
    if sentinel is not None:
        broker_url = sentinel.celery_url
    app = Celery(
        "orchestrator",
        broker=broker_url,
        backend=broker_url,
        set_as_current=False,
        amqp=ShadowNamedAMQP,
    )
    time_limit = settings.task_time_limit
    visibility = settings.visibility_timeout or time_limit + 3600
    transport_options = _transport_options(visibility)
    backend_options: dict[str, Any] = {"visibility_timeout": visibility}
    if sentinel is not None:  # the master is the one the sentinels name, after a failover too
        transport_options["master_name"] = backend_options["master_name"] = sentinel.master_name
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
        broker_transport_options=transport_options,
        result_backend_transport_options=backend_options,
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
        app.conf.broker_transport = transport.TRANSPORT
    if sentinel is not None:
        app.conf.broker_transport = transport.SENTINEL_TRANSPORT
    return app


def _transport_options(visibility: float) -> dict[str, Any]:
    """The broker's transport options for a visibility timeout."""
    options: dict[str, Any] = {"visibility_timeout": visibility}
    if visibility < 1000:
        # kombu looks for messages past their visibility timeout every 10 x 10 s; a
        # short timeout (tests, small fleets) is honoured as set
        options.update(
            unacked_restore_interval=max(1, int(visibility / 3)), unacked_restore_throttle=1
        )
    return options
