"""Reading and changing flow concurrency limits (per label) from the client side:
:class:`LimitInfo`, :func:`set_limit`, :func:`delete_limit`, :func:`list_limits`.

The limits live in the database (the client writes them there first) and are cached
in Redis, where the slots live (see ``workers/slots.py`` for how runs take and give
back slots, and how a flushed Redis loads the limits again); changing a limit wakes
the runs waiting for that label (:func:`change_limit` and :func:`remove_limit` send
that wake-up). May import redis, the backends (for their database, Redis and app) and
the pure core (constants, errors, labels); nothing of the CLI."""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

import redis

import orchestrator.constants as constants
from orchestrator.errors import ConcurrencyLimitError
from orchestrator.labels import check_label

if TYPE_CHECKING:
    from orchestrator.backends import Backends

#: How many waiting runs :func:`list_limits` names per label (all are counted).
SHOWN_WAITING = 100


@dataclass(frozen=True)
class LimitInfo:
    """A label's limit and how its slots are used right now.

    Attributes:
        label: the label.
        limit: how many runs with it may run at once.
        used: how many slots are held (live leases).
        waiting: how many runs wait for a slot.
        holders: the ids of the runs holding its slots.
        waiting_runs: the ids of the first :data:`SHOWN_WAITING` waiting runs, in arrival order.
    """

    label: str
    limit: int
    used: int
    waiting: int
    holders: tuple[str, ...] = ()
    waiting_runs: tuple[str, ...] = ()

    @property
    def free(self) -> int:
        """Slots free now."""
        return max(0, self.limit - self.used)


def check_limit(label: str, slots: int) -> None:
    """Refuse a bad label or a limit that is not a whole number >= 0.

    Raises:
        ConcurrencyLimitError: naming what was wrong.
    """
    check_label(label)
    if isinstance(slots, bool) or not isinstance(slots, int) or slots < 0:
        raise ConcurrencyLimitError(
            f"limit for label {label!r} must be a whole number >= 0, got {slots!r}"
        )


def set_limit(client: redis.Redis, label: str, slots: int) -> None:
    """Allow at most ``slots`` running flow runs carrying ``label`` (the Redis cache;
    the client records the limit in the database first)."""
    check_limit(label, slots)
    client.hset(constants.LIMITS, label, slots)


def delete_limit(client: redis.Redis, label: str) -> bool:
    """Remove a label's limit; returns False when it had none."""
    check_label(label)
    return bool(client.hdel(constants.LIMITS, label))


def list_limits(client: redis.Redis, limits: Mapping[str, int] | None = None) -> list[LimitInfo]:
    """Every limit (``limits``, as the database has them, else Redis's cache), with
    the runs holding its slots (live leases) and the runs waiting (the first
    :data:`SHOWN_WAITING` of them, in arrival order)."""
    now = int(time.time() * 1000)
    out = []
    if limits is None:
        limits = {_text(k): int(v) for k, v in client.hgetall(constants.LIMITS).items()}
    for label, raw_limit in sorted(limits.items()):
        holders = [_text(m) for m in client.zrangebyscore(constants.SLOTS + label, now, "+inf")]
        waiting = int(client.zcard(constants.WAITING + label))
        first = [_text(m) for m in client.zrange(constants.WAITING + label, 0, SHOWN_WAITING - 1)]
        out.append(
            LimitInfo(label, int(raw_limit), len(holders), waiting, tuple(holders), tuple(first))
        )
    return out


def _text(raw: object) -> str:
    return raw.decode() if isinstance(raw, bytes) else str(raw)


def change_limit(b: Backends, label: str, limit: int) -> None:
    """Set a label's limit: in the database, then in Redis; waiting runs look again."""
    check_limit(label, limit)
    b.store.limits.set(label, limit)
    set_limit(b.redis, label, limit)
    _wake(b, label)


def remove_limit(b: Backends, label: str) -> bool:
    """Remove a label's limit (waiting runs start); False when it had none."""
    cached = delete_limit(b.redis, label)  # (checks the label first)
    deleted = b.store.limits.delete(label) or cached
    _wake(b, label)
    return deleted


def limits_of(b: Backends) -> list[LimitInfo]:
    """Every limit (from the database) with its used slots and waiting runs."""
    return list_limits(b.redis, b.store.limits.all())


def _wake(b: Backends, label: str) -> None:
    """Let the runs waiting for ``label`` look at its limit again."""
    b.app.send_task(constants.WAKE_LABEL, args=[label], queue=b.settings.queue)
