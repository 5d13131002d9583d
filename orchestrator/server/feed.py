"""The live feed of state changes behind ``/api/events``: one thread per server reads
the state-event table after the last event it saw (woken at once by the Redis notice
of each flow-run state change, and at least every :data:`POLL_SECONDS` for task runs,
which send no notice) and hands each change to every subscriber whose run it is
about, so the database is read once per change, not once per viewer.

Event ids are handed out before their transactions commit, so a PostgreSQL commit can
land after a higher id was read: ids skipped over are looked at again for
:data:`GAP_SECONDS`. Each change carries the state its run or task run was in before
(remembered from earlier events, else read back) and the chain of runs above it, so a
subscriber to one run gets the changes of every run under it.

May import redis, the standard library, the database's row types and the core's
constants and clock."""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import redis

import orchestrator.constants as constants
from orchestrator.clock import aware
from orchestrator.db import EventRow, Store
from orchestrator.db.browse import MAX_TREE_DEPTH
from orchestrator.db.events import Key

#: Longest wait between two reads of the event table while someone watches.
POLL_SECONDS = 0.5
#: How long an id skipped over is looked for again (a transaction committing late).
GAP_SECONDS = 10.0
#: How many events one read takes at most.
BATCH = 1000
#: How many runs' parents and keys' states are remembered.
REMEMBERED = 200_000
#: How many changes wait for a slow subscriber before it is dropped (it reconnects).
QUEUE_SIZE = 5000


@dataclass(frozen=True)
class Change:
    """One state change, as ``/api/events`` sends it."""

    id: int
    flow_run_id: str
    parent_flow_run_id: str | None
    flow_name: str | None
    task_run_id: str | None
    task: str | None
    old_state: str | None
    new_state: str
    message: str | None
    timestamp: datetime
    ancestors: tuple[str, ...]

    def to_json(self) -> dict[str, Any]:
        """The change as JSON (the chain of runs above it left out)."""
        stamp = aware(self.timestamp)
        return {
            "id": self.id,
            "flow_run_id": self.flow_run_id,
            "parent_flow_run_id": self.parent_flow_run_id,
            "flow_name": self.flow_name,
            "task_run_id": self.task_run_id,
            "task": self.task,
            "old_state": self.old_state,
            "new_state": self.new_state,
            "message": self.message,
            "timestamp": stamp.isoformat() if stamp else None,
        }

    def concerns(self, run_id: str | None) -> bool:
        """Whether a watcher of ``run_id`` (None: of every run) wants this change."""
        return run_id is None or run_id == self.flow_run_id or run_id in self.ancestors


class Subscriber:
    """One watcher's queue of changes, on the server's event loop; None ends it."""

    def __init__(self, loop: asyncio.AbstractEventLoop, run_id: str | None) -> None:
        self.loop = loop
        self.run_id = run_id
        self.queue: asyncio.Queue[Change | None] = asyncio.Queue(QUEUE_SIZE + 1)

    def offer(self, changes: Sequence[Change] | None) -> None:
        """Queue the changes this watcher wants (on the loop; None: the end)."""
        if changes is None:
            self.queue.put_nowait(None)
            return
        for change in changes:
            if not change.concerns(self.run_id):
                continue
            if self.queue.qsize() >= QUEUE_SIZE:
                self.queue.put_nowait(None)  # too slow: end the stream, it reconnects
                return
            self.queue.put_nowait(change)


class _Memory(OrderedDict[Any, Any]):
    """A dict that forgets its oldest entries past :data:`REMEMBERED`."""

    def remember(self, key: Any, value: Any) -> None:
        self[key] = value
        self.move_to_end(key)
        if len(self) > REMEMBERED:
            self.popitem(last=False)


class Feed:
    """The server's one reader of the state-event table.

    Args:
        store: the database.
        client: Redis, for the flow-run notices that wake the reader early.
    """

    def __init__(self, store: Store, client: redis.Redis) -> None:
        self.store = store
        self.redis = client
        self._subscribers: set[Subscriber] = set()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._last = 0
        self._idle = True
        self._gaps: dict[int, float] = {}
        self._states = _Memory()
        self._parents = _Memory()

    def start(self) -> None:
        """Start reading in a thread of its own (from the newest event on, once someone
        watches)."""
        self._thread = threading.Thread(target=self._run, name="orchestrator-feed", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop reading and end every subscriber's stream."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        with self._lock:
            subscribers = list(self._subscribers)
        for sub in subscribers:
            with contextlib.suppress(RuntimeError):  # its loop is closed already
                sub.loop.call_soon_threadsafe(sub.offer, None)

    def subscribe(self, run_id: str | None, loop: asyncio.AbstractEventLoop) -> Subscriber:
        """A new watcher of ``run_id`` and every run under it (None: of every run), fed
        on ``loop``; every event recorded after this call reaches it. Blocks on the
        database when nobody watched (call it in a worker thread)."""
        sub = Subscriber(loop, run_id)
        with self._lock:
            if self._idle:  # nobody watched: read on from the newest event
                self._last, self._gaps, self._idle = self.store.events.last_id(), {}, False
            self._subscribers.add(sub)
        return sub

    def unsubscribe(self, sub: Subscriber) -> None:
        """Forget a watcher."""
        with self._lock:
            self._subscribers.discard(sub)

    def replay(self, after: int, run_id: str | None, most: int = 5 * BATCH) -> list[Change]:
        """The changes after event ``after`` that a watcher of ``run_id`` wants (at most
        ``most`` events read), for a watcher that catches up."""
        out: list[Change] = []
        read = 0
        while read < most:
            rows = self.store.events.since(after, (), BATCH, tree_of=run_id)
            if not rows:
                break
            read += len(rows)
            after = rows[-1].id
            known = dict(self.store.events.states_before([r.key for r in rows], rows[0].id))
            out.extend(c for c in self._changes(rows, known) if c.concerns(run_id))
        return out

    # --- the reading thread ------------------------------------------------------

    def _run(self) -> None:
        notices = _Notices(self.redis)
        try:
            while not self._stop.is_set():
                notices.wait(POLL_SECONDS, self._stop)
                if self._stop.is_set():
                    break
                with contextlib.suppress(Exception):  # a lost database: try again next time
                    self._tick()
        finally:
            notices.close()

    def _tick(self) -> None:
        with self._lock:
            subscribers = list(self._subscribers)
            if not subscribers:
                # nobody watches: no reads; forget the states, which may change unseen
                self._idle = True
                self._states.clear()
                return
        while True:
            rows = self.store.events.since(self._last, list(self._gaps), BATCH)
            if not rows:
                return
            self._note_gaps(rows)
            missing = [r.key for r in rows if r.key not in self._states]
            known = {r.key: self._states[r.key] for r in rows if r.key in self._states}
            if missing:
                known.update(self.store.events.states_before(missing, rows[0].id))
            changes = self._changes(rows, known)
            for key, state in ((r.key, r.state) for r in rows):
                self._states.remember(key, state)
            for sub in subscribers:
                with contextlib.suppress(RuntimeError):
                    sub.loop.call_soon_threadsafe(sub.offer, changes)
            if len(rows) < BATCH:
                return

    def _note_gaps(self, rows: Sequence[EventRow]) -> None:
        now = time.monotonic()
        for r in rows:
            self._gaps.pop(r.id, None)
            if r.id > self._last:
                for skipped in range(self._last + 1, min(r.id, self._last + 1 + BATCH)):
                    self._gaps.setdefault(skipped, now)
                self._last = r.id
        self._gaps = {i: t for i, t in self._gaps.items() if now - t < GAP_SECONDS}

    def _changes(self, rows: Sequence[EventRow], known: dict[Key, str]) -> list[Change]:
        """The rows as changes, each with its old state (``known`` is updated) and
        the chain of runs above it."""
        chains = self._ancestry(rows)
        out = []
        for r in rows:
            old = known.get(r.key)
            known[r.key] = r.state
            task = None
            if r.task_run_id is not None:
                slug = r.task_slug or "?"
                task = slug if r.map_index < 0 else f"{slug}[{r.map_index}]"
            out.append(
                Change(
                    id=r.id,
                    flow_run_id=r.flow_run_id,
                    parent_flow_run_id=r.parent_flow_run_id,
                    flow_name=r.flow_name,
                    task_run_id=r.task_run_id,
                    task=task,
                    old_state=old,
                    new_state=r.state,
                    message=r.message,
                    timestamp=r.timestamp,
                    ancestors=chains.get(r.flow_run_id, ()),
                )
            )
        return out

    def _ancestry(self, rows: Sequence[EventRow]) -> dict[str, tuple[str, ...]]:
        """The runs above each row's run, nearest first (parents read when unknown)."""
        for r in rows:
            if r.flow_name is not None:  # the run exists: its parent is known
                self._parents.remember(r.flow_run_id, r.parent_flow_run_id)
        runs = {r.flow_run_id for r in rows}
        for _ in range(MAX_TREE_DEPTH):
            missing = {m for run in runs if (m := self._first_unknown(run)) is not None}
            if not missing:
                break
            found = self.store.browse.parents(sorted(missing))
            for m in missing:
                self._parents.remember(m, found.get(m))
        return {run: self._chain(run) for run in runs}

    def _first_unknown(self, run: str) -> str | None:
        cur: str | None = run
        for _ in range(MAX_TREE_DEPTH):
            if cur is None:
                return None
            if cur not in self._parents:
                return cur
            cur = self._parents[cur]
        return None

    def _chain(self, run: str) -> tuple[str, ...]:
        chain: list[str] = []
        cur = self._parents.get(run)
        while cur is not None and len(chain) < MAX_TREE_DEPTH:
            chain.append(cur)
            cur = self._parents.get(cur)
        return tuple(chain)


class _Notices:
    """A pattern subscription to every flow run's Redis notices (best effort: without
    Redis the reader just waits :data:`POLL_SECONDS`)."""

    def __init__(self, client: redis.Redis) -> None:
        self.client = client
        self.pubsub: Any = None
        self._retry_at = 0.0

    def wait(self, seconds: float, stop: threading.Event) -> None:
        """Return on the next notice (and drain the others), or after ``seconds``."""
        if self.pubsub is None and time.monotonic() >= self._retry_at:
            try:
                self.pubsub = self.client.pubsub(ignore_subscribe_messages=True)  # type: ignore[no-untyped-call,unused-ignore]
                self.pubsub.psubscribe(constants.FLOW_RUN_CHANNEL.format(id="*"))
            except redis.RedisError:
                self.pubsub, self._retry_at = None, time.monotonic() + 5
        if self.pubsub is None:
            stop.wait(seconds)
            return
        try:
            if self.pubsub.get_message(timeout=seconds) is not None:
                while self.pubsub.get_message(timeout=0) is not None:
                    pass
        except (redis.RedisError, OSError, ValueError):
            self.close()
            self._retry_at = time.monotonic() + 5
            stop.wait(seconds)

    def close(self) -> None:
        """Unsubscribe (best effort)."""
        if self.pubsub is not None:
            with contextlib.suppress(redis.RedisError, OSError):
                self.pubsub.close()
        self.pubsub = None
