"""Flow concurrency limits: a Redis semaphore per label whose slots are leases.

A flow run holds one slot of each limited label it carries from Running to its end.
Slots are leases renewed by the run's node tasks (and their heartbeats), walking up
to the runs it is spliced under, so a dead worker's slot comes back when its lease
runs out. A run without a slot waits (in arrival order) and holds no worker
process. A child spliced into a waiting parent (``wait=True``) runs under the
parent's slots: it needs none for a label the parent already holds, so a
Flow-of-Flows never deadlocks on a limit, even a limit of 1. Each operation is one
Lua script (``workers/lua/*.lua``, read once), so checks and updates are atomic.
Imports redis-py and :mod:`orchestrator.constants` only."""

from __future__ import annotations

import functools
import time
from collections.abc import Iterable, Sequence
from importlib import resources
from typing import Any

import redis

import orchestrator.constants as constants

__all__ = ["Slots"]


@functools.cache
def _script(name: str) -> str:
    """The text of ``workers/lua/{name}.lua``, its key prefix filled in (read once)."""
    text = resources.files("workers").joinpath("lua", f"{name}.lua").read_text(encoding="utf-8")
    return text.replace("__PREFIX__", constants.KEY_PREFIX)


def _ms(t: float) -> int:
    return int(t * 1000)


def _decoded(raw: Iterable[Any]) -> list[str]:
    return [w.decode() if isinstance(w, bytes) else str(w) for w in raw]


class Slots:
    """The concurrency-limit semaphores on one Redis.

    Args:
        client: a redis-py client.
        lease_seconds: how long a slot lasts without renewal.
    """

    def __init__(self, client: redis.Redis, lease_seconds: float) -> None:
        self.client = client
        self.lease = lease_seconds
        # registering computes each script's digest locally: nothing is sent yet
        self._acquire = client.register_script(_script("acquire"))
        self._release = client.register_script(_script("release"))
        self._renew = client.register_script(_script("renew"))

    def acquire(
        self, run_id: str, labels: Sequence[str], arrival: float, parent_id: str | None = None
    ) -> bool:
        """Take a slot of every limited label of a run, or join the waiting lines.

        Labels an ancestor run holds need no slot.

        Args:
            run_id: the run.
            labels: its labels.
            arrival: when it arrived (seconds since the epoch): earlier runs go first.
            parent_id: the run it is spliced under, if any.

        Returns:
            True when the run may start.
        """
        now = time.time()
        args: list[str | int] = [
            run_id,
            parent_id or "",
            _ms(now),
            _ms(now + self.lease),
            _ms(arrival),
            *labels,
        ]
        return bool(self._acquire(args=args))

    def release(self, run_id: str, labels: Sequence[str] = (), wake: int = 16) -> list[str]:
        """Give back a run's slots; returns the runs waiting longest, to wake."""
        return _decoded(self._release(args=[run_id, wake, *labels]))

    def waiting(self, label: str, count: int = 16) -> list[str]:
        """The runs waiting longest for a label."""
        return _decoded(self.client.zrange(constants.WAITING + label, 0, count - 1))

    def renew(self, run_id: str) -> None:
        """Extend the leases of a run and of every run it is spliced under."""
        self._renew(args=[run_id, _ms(time.time() + self.lease)])
