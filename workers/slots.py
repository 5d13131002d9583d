"""Flow concurrency limits: a Redis semaphore per label whose slots are leases.

A flow run holds one slot of each limited label it carries from Running to its end.
Slots are leases renewed by the run's node tasks (and their heartbeats), walking up
to the runs it is spliced under, so a dead worker's slot comes back when its lease
runs out. A run without a slot waits (in arrival order) and holds no worker
process. A child spliced into a waiting parent (``wait=True``) runs under the
parent's slots: it needs none for a label the parent already holds, so a
Flow-of-Flows never deadlocks on a limit, even a limit of 1. Each operation is one
Lua script (``workers/lua/*.lua``, read once), so checks and updates are atomic.

The limits' source of truth is the database; Redis caches them (``limits``) with a
marker (``limits:loaded``). A Redis that lost them (flushed, restarted without
persistence) has no marker: the next request for a slot loads the limits from the
database through the ``loader`` and gives every Running run its slots back (labels
its waiting parents hold aside) in one script, before any new run may take one, so
no slot is doubled; a slot whose run ended meanwhile is a lease and lapses. Limits
found only in Redis (set before the database kept them) are handed to the loader to
keep. Imports redis-py and :mod:`orchestrator.constants` only."""

from __future__ import annotations

import functools
import json
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
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


def _text(raw: object) -> str:
    return raw.decode() if isinstance(raw, bytes) else str(raw)


def _decoded(raw: Iterable[Any]) -> list[str]:
    return [w.decode() if isinstance(w, bytes) else str(w) for w in raw]


#: A Running run for :meth:`Slots.reload`: (id, labels, the waiting parent it is
#: spliced under or None).
Holder = tuple[str, Sequence[str], str | None]
#: Reads the limits from the database (given those only Redis had, to keep) and the
#: Running runs: ``loader(cached) -> (limits, running)``.
Loader = Callable[[Mapping[str, int]], tuple[Mapping[str, int], Sequence[Holder]]]


def held_slots(limits: Mapping[str, int], running: Sequence[Holder]) -> list[list[object]]:
    """Which limited labels each Running run holds: its own, but those a waiting
    parent above it holds. Returns ``[run, parent or '', [labels]]`` rows."""
    by_id = {run_id: (labels, parent) for run_id, labels, parent in running}
    covered: dict[str, set[str]] = {}

    def cover(run_id: str, depth: int = 0) -> set[str]:
        if run_id in covered or run_id not in by_id or depth > 32:
            return covered.get(run_id, set())
        labels, parent = by_id[run_id]
        above = cover(parent, depth + 1) if parent else set()
        covered[run_id] = above | {label for label in labels if label in limits}
        return covered[run_id]

    rows: list[list[object]] = []
    for run_id, labels, parent in running:
        above = cover(parent) if parent else set()
        held = sorted({label for label in labels if label in limits} - above)
        if held or parent:
            rows.append([run_id, parent or "", held])
    return rows


class Slots:
    """The concurrency-limit semaphores on one Redis.

    Args:
        client: a redis-py client.
        lease_seconds: how long a slot lasts without renewal.
        loader: reads the limits and the Running runs from the database (None: the
            limits Redis has are taken as they are).
    """

    def __init__(
        self, client: redis.Redis, lease_seconds: float, loader: Loader | None = None
    ) -> None:
        self.client = client
        self.lease = lease_seconds
        self._loader = loader
        # registering computes each script's digest locally: nothing is sent yet
        self._acquire = client.register_script(_script("acquire"))
        self._release = client.register_script(_script("release"))
        self._renew = client.register_script(_script("renew"))
        self._rebuild = client.register_script(_script("rebuild"))

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
        answer = int(self._acquire(args=args))
        if answer == -1:  # the limits are not loaded in this Redis
            self.reload()
            answer = int(self._acquire(args=args))
        return answer == 1

    def reload(self) -> bool:
        """Load the limits into Redis and give the Running runs their slots back,
        unless they are loaded already; True when this call loaded them."""
        cached = {_text(k): int(v) for k, v in self.client.hgetall(constants.LIMITS).items()}
        limits, running = self._loader(cached) if self._loader else (cached, ())
        payload = {"limits": dict(limits), "holders": held_slots(limits, running)}
        expiry = _ms(time.time() + self.lease)
        return bool(self._rebuild(args=[expiry, json.dumps(payload)]))

    def release(self, run_id: str, labels: Sequence[str] = (), wake: int = 16) -> list[str]:
        """Give back a run's slots; returns the runs waiting longest, to wake."""
        return _decoded(self._release(args=[run_id, wake, *labels]))

    def waiting(self, label: str, count: int = 16) -> list[str]:
        """The runs waiting longest for a label."""
        return _decoded(self.client.zrange(constants.WAITING + label, 0, count - 1))

    def renew(self, run_id: str) -> None:
        """Extend the leases of a run and of every run it is spliced under."""
        self._renew(args=[run_id, _ms(time.time() + self.lease)])
