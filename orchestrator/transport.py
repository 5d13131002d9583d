"""Kombu's Redis transport, made to survive a broker restart.

When the broker connection drops, Celery collects the lost connection, which
detaches its transport; later operations on the old channel (closing it puts the
worker's unacknowledged messages back; a task that finishes after the reconnect
acks its message) then fail inside kombu with ``AttributeError``, which Celery
treats as unrecoverable: the worker exits, and a Redis restart takes the fleet
down with it (Celery and kombu 5.7).

Here such a channel raises a connection error instead, which Celery handles as
it should: the close is ignored and the ack is logged as failed. Nothing is lost:
the message stays in Redis's unacked index and comes back after the visibility
timeout, and a node delivered again returns its recorded state (or, when Redis
restarted empty, the sweeper sends the run again).

Celery's ``broker_transport`` setting names it (:data:`TRANSPORT`), and
:class:`Connection` keeps that name out of the URLs shown to people and to Flower.
May import only kombu and redis.
"""

from __future__ import annotations

from typing import Any

import redis
from kombu.connection import Connection as KombuConnection
from kombu.transport import redis as kombu_redis


class Channel(kombu_redis.Channel):
    """A Redis channel that reports a detached connection as a connection error."""

    def _connparams(self, asynchronous: bool = False) -> Any:
        if self.connection.client is None:
            raise redis.ConnectionError("this broker channel's connection was closed")
        return super()._connparams(asynchronous=asynchronous)  # type: ignore[no-untyped-call]


class Transport(kombu_redis.Transport):
    """Kombu's Redis transport with :class:`Channel`."""

    Channel = Channel


#: The value of Celery's ``broker_transport`` setting for this transport.
TRANSPORT = f"{__name__}:Transport"


class Connection(KombuConnection):
    """A kombu connection whose URI says ``redis://`` when it uses :class:`Transport`.

    Kombu spells a connection's URI with its transport's name, which for this
    transport is the class path: Flower would log the broker as
    ``orchestrator.transport:Transport://...`` and, not knowing that scheme, could
    not read queue lengths. The password stays masked unless asked for.
    """

    def as_uri(self, *args: Any, **kwargs: Any) -> str:
        """The connection's URL, with the Redis scheme for this transport."""
        uri: str = super().as_uri(*args, **kwargs)
        prefix = f"{TRANSPORT}://"
        return "redis://" + uri[len(prefix) :] if uri.startswith(prefix) else uri
