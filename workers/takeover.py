"""Workers watching each other (DESIGN rule 12): the :class:`Watcher` each worker's
main process runs every second.

1. It reads which registered worker processes lost their liveness key
   (:mod:`workers.liveness`); one missing for :attr:`Watcher.grace` seconds (two
   refreshes, so a Redis that restarted and lost the keys of live workers for a
   moment kills nobody) is dead.
2. One live worker at a time (a redis-py lock) takes over the dead ones
   (:func:`take_over`): the messages a dead main process held go back to the queue
   (kombu's own restore of an unacknowledged message, by its delivery tag), the
   leases its processes held end at once, and each of their Running flow runs is
   sent again as the sweeper does (its topmost waiting parent, whose canvas splices
   it in again): finished nodes return their recorded state, claims and
   compare-and-set states keep every task run to one recorded end, idempotency keys
   keep one child per StartFlowRun node.
3. When no beat holds its leader lock, one worker per ``ORCHESTRATOR_SWEEP_SECONDS``
   (a lock left to expire) runs beat's sweeper and sends due Scheduled runs, so a
   fleet without beat strands nothing.

Imports kombu (through the Celery app), redis-py, :mod:`orchestrator.backends`, the
pure core (clock, constants) and :mod:`workers.dispatching`, :mod:`workers.sweeper`,
:mod:`workers.schedule_runner` (the leader lock's name)."""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import redis
from redis.exceptions import LockError

import orchestrator.constants as constants
from orchestrator.backends import Backends
from orchestrator.clock import utcnow
from orchestrator.errors import BackendUnavailable
from workers.dispatching import dispatch_due
from workers.schedule_runner import lock_name_for
from workers.sweeper import sweep

__all__ = ["Takeover", "Watcher", "restore_messages", "take_over"]

log = logging.getLogger(__name__)

#: How often a worker drops from its set of delivery tags those acknowledged since.
PRUNE_SECONDS = 30.0

#: Keep, of a worker's set of delivery tags, those still unacknowledged.
_PRUNE = """
local kept = 0
for _, tag in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  if redis.call('HEXISTS', KEYS[2], tag) == 0 then
    redis.call('SREM', KEYS[1], tag)
  else
    kept = kept + 1
  end
end
return kept
"""


@dataclass
class Takeover:
    """What one takeover did, for logs and tests."""

    workers: list[str] = field(default_factory=list)
    restored: int = 0
    flow_runs: list[str] = field(default_factory=list)
    resent: list[str] = field(default_factory=list)


def _unacked_key(b: Backends) -> str:
    options = b.app.conf.broker_transport_options or {}
    return str(options.get("unacked_key", "unacked"))


def restore_messages(b: Backends, workers: Sequence[str]) -> int:
    """Put back on their queues the unacknowledged messages dead workers' main
    processes held; how many there were."""
    tags: list[str] = []
    for wid in workers:
        tags += [
            t.decode() if isinstance(t, bytes) else t
            for t in b.redis.smembers(constants.RESERVED + wid)
        ]
    if not tags:
        return 0
    key = _unacked_key(b)
    held = [t for t, there in zip(tags, _pipe_exists(b.redis, key, tags), strict=True) if there]
    if held:
        with b.app.connection_for_write() as conn:
            qos = conn.default_channel.qos
            for tag in held:
                qos.restore_by_tag(tag)
    return len(held)


def _pipe_exists(client: redis.Redis, key: str, tags: Sequence[str]) -> list[bool]:
    pipe = client.pipeline(transaction=False)
    for tag in tags:
        pipe.hexists(key, tag)
    return [bool(x) for x in pipe.execute()]


def take_over(b: Backends, workers: Sequence[str]) -> Takeover:
    """Take over dead worker processes: their held messages go back to the queue,
    their leases end, their Running flow runs are sent again; then they are
    forgotten. The caller holds the takeover lock."""
    report = Takeover(workers=list(workers))
    store = b.store
    report.flow_runs = store.recovery.release_leases(workers, utcnow())
    report.restored = restore_messages(b, workers)
    roots = sorted({store.recovery.spliced_root(r) for r in report.flow_runs})
    for root in roots:
        store.flow_runs.touch(root)
        b.app.send_task(constants.RESUBMIT, args=[root], queue=b.settings.queue)
    report.resent = roots
    pipe = b.redis.pipeline(transaction=False)
    pipe.srem(constants.WORKERS, *workers)
    pipe.delete(*[constants.RESERVED + w for w in workers])
    pipe.execute()
    level = logging.WARNING if report.flow_runs or report.restored else logging.INFO
    log.log(
        level,
        "worker process(es) %s gone: %d held message(s) back on the queue, "
        "%d flow run(s) taken over, sent again: %s",
        ", ".join(workers),
        report.restored,
        len(report.flow_runs),
        ", ".join(roots) or "none",
    )
    return report


class Watcher:
    """What one worker's main process checks every second (see the module).

    Args:
        b: the connections (the watcher's own database connections).
        me: this worker's main process, as liveness keys name it.
    """

    def __init__(self, b: Backends, me: str) -> None:
        self.backends = b
        self.me = me
        #: Seconds a liveness key must stay missing before its worker counts as dead.
        self.grace = max(2.0, 2 * min(1.0, b.settings.liveness_seconds / 3))
        self._missing: dict[str, float] = {}
        self._swept_at = float("-inf")
        self._pruned_at = time.monotonic()
        self.last_takeover: Takeover | None = None

    def tick(self) -> None:
        """One round: take over dead workers, sweep when no beat is alive, prune."""
        now = time.monotonic()
        try:
            dead = self.dead(now)
            if dead:
                self._take_over(dead)
            self._maybe_sweep(now)
            self._maybe_prune(now)
        except (BackendUnavailable, redis.RedisError) as exc:
            log.warning("watcher: Redis or the database is unavailable (%s); next round", exc)

    def dead(self, now: float) -> list[str]:
        """The registered worker processes whose liveness key has been missing for
        :attr:`grace` seconds (by this watcher's clock)."""
        client = self.backends.redis
        members = sorted(
            m.decode() if isinstance(m, bytes) else m for m in client.smembers(constants.WORKERS)
        )
        pipe = client.pipeline(transaction=False)
        for wid in members:
            pipe.exists(constants.ALIVE + wid)
        alive = dict(zip(members, pipe.execute(), strict=True))
        for wid in list(self._missing):
            if alive.get(wid, 1):
                del self._missing[wid]
        out = []
        for wid, there in alive.items():
            if there or wid == self.me:
                continue
            since = self._missing.setdefault(wid, now)
            if now - since >= self.grace:
                out.append(wid)
        return out

    def _take_over(self, dead: list[str]) -> None:
        """Take over ``dead`` under the takeover lock (another worker may hold it)."""
        b = self.backends
        lock = b.redis.lock(constants.TAKEOVER_LOCK, timeout=60, blocking=False, thread_local=False)
        if not lock.acquire():
            return
        try:
            pipe = b.redis.pipeline(transaction=False)
            for wid in dead:
                pipe.exists(constants.ALIVE + wid)
            still = [w for w, there in zip(dead, pipe.execute(), strict=True) if not there]
            if still:
                self.last_takeover = take_over(b, still)
            for wid in dead:
                self._missing.pop(wid, None)
        finally:
            with contextlib.suppress(LockError, redis.RedisError):
                lock.release()

    def _maybe_sweep(self, now: float) -> None:
        """Every sweep interval, when no beat leads: sweep (one worker per interval)."""
        b = self.backends
        settings = b.settings
        if now - self._swept_at < settings.sweep_seconds:
            return
        self._swept_at = now
        leader = lock_name_for(b.store.url)
        if b.redis.exists(leader):
            return  # beat sweeps
        scope = leader.rsplit(":", 1)[-1]
        lock = b.redis.lock(
            constants.SWEEP_LOCK.format(scope=scope),
            timeout=max(settings.sweep_seconds * 0.9, 0.5),
            blocking=False,
            thread_local=False,
        )
        if not lock.acquire():
            return  # another worker sweeps this interval (the lock is left to expire)
        report = sweep(b, utcnow(), settings.stale_seconds, settings.max_resubmits)
        sent = dispatch_due(b, b.dispatch, utcnow(), 100)
        if report.resubmitted or report.failed or sent:
            log.warning(
                "worker sweep (no beat): sent again %s, failed %s, started scheduled %s",
                report.resubmitted,
                report.failed,
                sent,
            )

    def _maybe_prune(self, now: float) -> None:
        """Drop acknowledged messages from this worker's set of delivery tags."""
        if now - self._pruned_at < PRUNE_SECONDS:
            return
        self._pruned_at = now
        client = self.backends.redis
        client.eval(_PRUNE, 2, constants.RESERVED + self.me, _unacked_key(self.backends))
