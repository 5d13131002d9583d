"""Lease renewal for the task runs running in this process: one thread per process
(:data:`heartbeat`, started in each forked process on first use) renews every held
lease, and its flow run's concurrency slots, a third of the way through the lease,
instead of a thread started for each task run; a task run that ends before its
first renewal, as most do, costs a dictionary entry. :class:`KeepAlive` runs a
process's liveness refresh (see :mod:`workers.liveness`) in a thread of its own, so a
slow database renewal never delays it. Imports the standard library only."""

from __future__ import annotations

import contextlib
import itertools
import logging
import os
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

log = logging.getLogger(__name__)


@dataclass
class _Lease:
    renew: Callable[[], None]
    every: float
    due: float


class Heartbeat:
    """Renews the leases registered with :meth:`holding` until their block ends."""

    def __init__(self) -> None:
        self._leases: dict[int, _Lease] = {}
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._next = float("inf")
        self._pid: int | None = None
        self._ids = itertools.count()

    @contextlib.contextmanager
    def holding(self, renew: Callable[[], None], lease_seconds: float) -> Iterator[None]:
        """Call ``renew`` every third of ``lease_seconds`` while the block runs."""
        every = max(lease_seconds / 3, 0.05)
        due = time.monotonic() + every
        with self._lock:
            key = next(self._ids)
            self._leases[key] = _Lease(renew, every, due)
            self._ensure_thread()
            if due < self._next:
                self._next = due
                self._wake.set()
        try:
            yield
        finally:
            with self._lock:
                self._leases.pop(key, None)

    def _ensure_thread(self) -> None:
        if self._pid == os.getpid():
            return
        # first use in this process (a forked pool process has no thread of its parent)
        self._pid = os.getpid()
        threading.Thread(target=self._run, daemon=True, name="orchestrator-heartbeat").start()

    def _run(self) -> None:
        while True:
            with self._lock:
                wait = self._next - time.monotonic()
            if wait > 0:
                self._wake.wait(min(wait, 60.0))
            self._wake.clear()
            now = time.monotonic()
            with self._lock:
                due = [lease for lease in self._leases.values() if lease.due <= now]
                for lease in due:
                    lease.due = now + lease.every
                self._next = min((x.due for x in self._leases.values()), default=float("inf"))
            for lease in due:
                try:
                    lease.renew()
                except Exception as exc:  # the next beat tries again; the lease may lapse
                    log.warning("could not renew a lease: %s", exc)


class KeepAlive:
    """Calls a refresh every few seconds in a daemon thread, one per process (a
    forked process starts its own on :meth:`start`)."""

    def __init__(self) -> None:
        self._pid: int | None = None
        self._stop = threading.Event()

    def start(self, refresh: Callable[[], None], every: float, name: str) -> None:
        """Call ``refresh`` now and then every ``every`` seconds until :meth:`stop`
        (a second start in the same process does nothing)."""
        if self._pid == os.getpid():
            return
        self._pid = os.getpid()
        self._stop = threading.Event()
        stop = self._stop

        def run() -> None:
            while not stop.is_set():
                try:
                    refresh()
                except Exception as exc:  # the next round tries again
                    log.warning("%s: %s", name, exc)
                stop.wait(every)

        threading.Thread(target=run, daemon=True, name=name).start()

    def stop(self) -> None:
        """Stop calling the refresh (the thread ends after its current call)."""
        self._stop.set()
        self._pid = None


#: The heartbeat of this process.
heartbeat = Heartbeat()
