"""Flow concurrency limits: a Redis semaphore per label whose slots are leases.

A flow run holds one slot of each limited label it carries from Running to its
end. Slots are leases renewed by the run's node tasks (and their heartbeats),
walking up to the runs it is spliced under, so a dead worker's slot comes back
when its lease runs out. A run without a slot waits (in arrival order) and holds
no worker process. A child spliced into a waiting parent (``wait=True``) runs
under the parent's slots: it needs none for a label the parent already holds, so
a Flow-of-Flows never deadlocks on a limit, even a limit of 1.

Each operation is one Lua script, so checks and updates are atomic."""

from __future__ import annotations

import time
from collections.abc import Sequence

import redis

from orchestrator import constants

_ACQUIRE = """
-- KEYS: none (keys are built from prefixes, as every label is dynamic)
-- ARGV: run_id, parent_id or '', now_ms, expiry_ms, arrival_ms, label...
local run, parent = ARGV[1], ARGV[2]
local now, expiry, arrival = tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5])
local P = '__PREFIX__'
local limits = P .. 'limits'
if parent ~= '' then
  redis.call('SET', P .. 'parent:' .. run, parent, 'PX', 7 * 24 * 3600 * 1000)
end
-- labels held by an ancestor are exempt
local exempt = {}
local up = parent
local depth = 0
while up and up ~= '' and depth < 32 do
  for _, l in ipairs(redis.call('SMEMBERS', P .. 'held:' .. up)) do exempt[l] = true end
  up = redis.call('GET', P .. 'parent:' .. up)
  depth = depth + 1
end
local need = {}
for i = 6, #ARGV do
  local label = ARGV[i]
  local limit = redis.call('HGET', limits, label)
  if limit and not exempt[label] then table.insert(need, {label, tonumber(limit)}) end
end
local ok = true
for _, item in ipairs(need) do
  local slots = P .. 'slots:' .. item[1]
  redis.call('ZREMRANGEBYSCORE', slots, '-inf', now)
  if not redis.call('ZSCORE', slots, run) then
    if redis.call('ZCARD', slots) >= item[2] then ok = false end
    local older = redis.call('ZRANGEBYSCORE', P .. 'waiting:' .. item[1], '-inf', '(' .. arrival, 'LIMIT', 0, 1)
    if #older > 0 and older[1] ~= run then ok = false end
  end
end
if not ok then
  for _, item in ipairs(need) do
    redis.call('ZADD', P .. 'waiting:' .. item[1], 'NX', arrival, run)
  end
  return 0
end
for _, item in ipairs(need) do
  redis.call('ZADD', P .. 'slots:' .. item[1], expiry, run)
  redis.call('SADD', P .. 'held:' .. run, item[1])
  redis.call('ZREM', P .. 'waiting:' .. item[1], run)
end
return 1
"""

_RELEASE = """
-- ARGV: run_id, max_woken, label... ; returns the runs to wake, oldest first
local run, wake = ARGV[1], tonumber(ARGV[2])
local P = '__PREFIX__'
local labels = redis.call('SMEMBERS', P .. 'held:' .. run)
for i = 3, #ARGV do table.insert(labels, ARGV[i]) end
local woken, seen = {}, {}
for _, label in ipairs(labels) do
  redis.call('ZREM', P .. 'slots:' .. label, run)
  redis.call('ZREM', P .. 'waiting:' .. label, run)
  for _, w in ipairs(redis.call('ZRANGE', P .. 'waiting:' .. label, 0, wake - 1)) do
    if not seen[w] then seen[w] = true; table.insert(woken, w) end
  end
end
redis.call('DEL', P .. 'held:' .. run, P .. 'parent:' .. run)
return woken
"""

_RENEW = """
-- ARGV: run_id, expiry_ms ; renews the run's slots and those of the runs above it
local P = '__PREFIX__'
local up, expiry, depth = ARGV[1], tonumber(ARGV[2]), 0
while up and depth < 32 do
  for _, label in ipairs(redis.call('SMEMBERS', P .. 'held:' .. up)) do
    redis.call('ZADD', P .. 'slots:' .. label, 'XX', expiry, up)
  end
  up = redis.call('GET', P .. 'parent:' .. up)
  depth = depth + 1
end
return 1
"""


def _ms(t: float) -> int:
    return int(t * 1000)


class Slots:
    """The concurrency-limit semaphores on one Redis.

    Args:
        client: a redis-py client.
        lease_seconds: how long a slot lasts without renewal.
    """

    def __init__(self, client: redis.Redis, lease_seconds: float) -> None:
        self.client = client
        self.lease = lease_seconds
        prefix = constants.KEY_PREFIX
        self._acquire = client.register_script(_ACQUIRE.replace("__PREFIX__", prefix))
        self._release = client.register_script(_RELEASE.replace("__PREFIX__", prefix))
        self._renew = client.register_script(_RENEW.replace("__PREFIX__", prefix))

    def acquire(
        self, run_id: str, labels: Sequence[str], arrival: float, parent_id: str | None = None
    ) -> bool:
        """Take a slot of every limited label of a run, or join the waiting lines.

        Labels an ancestor run holds need no slot. Returns True when the run may start.
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
        woken = self._release(args=[run_id, wake, *labels])
        return [w.decode() if isinstance(w, bytes) else str(w) for w in woken]

    def waiting(self, label: str, count: int = 16) -> list[str]:
        """The runs waiting longest for a label."""
        raw = self.client.zrange(constants.WAITING + label, 0, count - 1)
        return [w.decode() if isinstance(w, bytes) else str(w) for w in raw]

    def renew(self, run_id: str) -> None:
        """Extend the leases of a run and of every run it is spliced under."""
        self._renew(args=[run_id, _ms(time.time() + self.lease)])
