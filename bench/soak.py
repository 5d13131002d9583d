"""``python -m bench.soak --minutes N --workers K --kill-every S [--database sqlite|postgres]``

A soak test, not part of CI: runs the seed's Flow-of-Flows, fan-outs and one-task
runs continuously on K real workers (no beat, default recovery settings) and every S
seconds SIGKILLs a worker process that is running a task (by the database), a pool
process alone and a whole worker by turns (a new worker replaces a whole one). At
the end it waits for the runs to finish and prints: runs started, finished, failed
and stuck, duplicated children (a StartFlowRun node with more than one child), task
runs recorded finished twice, and the recovery times: from each kill until every
task run the killed processes were running is taken over (running elsewhere) or
final, p50, p99 and max; and how long after the last kill the last run ended.

Redis comes from ``ORCHESTRATOR_REDIS_URL`` (else ``redis://127.0.0.1:6379/15``),
PostgreSQL from ``ORCHESTRATOR_DATABASE_URL``, as for ``python -m bench``."""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import socket
import statistics
import sys
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import func, select

from bench import soak_flows
from bench.fleet import ROOT, BenchError, Environment, Worker
from orchestrator.backends import backends
from orchestrator.client import Client
from orchestrator.clock import aware, utcnow
from orchestrator.config import Settings
from orchestrator.db import Store
from orchestrator.db.models import FlowRun, StateEvent, TaskRun
from orchestrator.states import State

FINAL = [s.value for s in State if s.is_final]
HOST = socket.gethostname()


@dataclass
class Kill:
    """One kill: when, whom, and the task runs its processes were running."""

    at: float
    victims: set[str]
    task_runs: set[str]
    recovered_at: float | None = None


@dataclass
class Soak:
    """One soak run on its own queue (see the module)."""

    env: Environment
    workers: int
    kill_every: float
    queue: str = field(default_factory=lambda: f"soak-{uuid.uuid4().hex[:6]}")
    fleet: list[Worker] = field(default_factory=list)
    ids: list[str] = field(default_factory=list)
    kills: list[Kill] = field(default_factory=list)
    last_kill: datetime | None = None

    def __post_init__(self) -> None:
        home = self.env.workdir / "home"
        home.mkdir(exist_ok=True)
        self.settings = Settings(
            home=home,
            redis_url=self.env.redis_url,
            database_url=self.env.database_url,
            queue=self.queue,
        )
        self.client = Client(self.settings)
        self.store: Store = backends(self.settings).store
        self.worker_env = {
            **os.environ,
            "ORCHESTRATOR_HOME": str(home),
            "ORCHESTRATOR_REDIS_URL": self.env.redis_url,
            "ORCHESTRATOR_DATABASE_URL": self.env.database_url,
            "ORCHESTRATOR_QUEUE": self.queue,
            "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
        }

    def start_worker(self) -> Worker:
        """One more worker (prefork, two pool processes)."""
        w = Worker("workers", self.queue, self.worker_env, self.env.workdir, "soak")
        self.fleet.append(w)
        return w

    def run(self, minutes: float) -> None:
        """Keep runs coming and kill workers for ``minutes``, then let them finish."""
        for flow in soak_flows.ALL:
            self.client.register(flow, soak_flows.PROJECT)
        for _ in range(self.workers):
            self.start_worker()
        for w in self.fleet:
            w.wait_ready(backends(self.settings).app)
        end = time.monotonic() + minutes * 60
        next_kill = time.monotonic() + self.kill_every
        turn = 0
        while time.monotonic() < end:
            self._top_up(4 * self.workers, turn)
            turn += 1
            if time.monotonic() >= next_kill:
                self._kill(whole=len(self.kills) % 2 == 1)
                next_kill += self.kill_every
            self._watch_recoveries()
            time.sleep(0.2)
        drain = time.monotonic() + 180
        while self._unfinished() and time.monotonic() < drain:
            self._watch_recoveries()
            time.sleep(0.5)

    def stop(self) -> None:
        """Stop every worker we started."""
        for w in self.fleet:
            w.stop()

    def _unfinished(self) -> list[str]:
        with self.store.reading() as s:
            done = set(s.scalars(select(FlowRun.id).where(FlowRun.state.in_(FINAL))).all())
        return [i for i in self.ids if i not in done]

    def _top_up(self, in_flight: int, turn: int) -> None:
        """Start runs until ``in_flight`` roots are under way."""
        missing = in_flight - len(self._unfinished())
        for i in range(max(0, missing)):
            kind = soak_flows.KINDS[(turn + i) % len(soak_flows.KINDS)]
            self.ids.append(self.client.create_flow_run(kind, soak_flows.PROJECT))

    def _busy(self) -> dict[str, set[str]]:
        """Running task runs by the worker process (``host:pid``) running them."""
        with self.store.reading() as s:
            rows = s.execute(
                select(TaskRun.id, TaskRun.worker).where(
                    TaskRun.state == State.RUNNING.value,
                    TaskRun.lease_owner.is_not(None),
                    TaskRun.child_flow_run_id.is_(None),
                )
            ).all()
        busy: dict[str, set[str]] = {}
        for tr_id, worker in rows:
            busy.setdefault(worker or "", set()).add(tr_id)
        return busy

    def _kill(self, whole: bool) -> None:
        """SIGKILL a pool process running a task, or its whole worker."""
        busy = self._busy()
        for w in [w for w in self.fleet if w.proc.poll() is None]:
            for pid in w.pool_pids():
                if f"{HOST}:{pid}" not in busy:
                    continue
                victims = {f"{HOST}:{pid}"}
                if whole:
                    victims |= {f"{HOST}:{p}" for p in [w.pid, *w.pool_pids()]}
                    with contextlib.suppress(ProcessLookupError):
                        os.killpg(w.pid, signal.SIGKILL)
                    w.proc.wait(10)
                    self.fleet.remove(w)
                    self.start_worker()
                else:
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(pid, signal.SIGKILL)
                held = set().union(*(busy.get(v, set()) for v in victims))
                self.kills.append(Kill(time.monotonic(), victims, held))
                self.last_kill = utcnow()
                return

    def _watch_recoveries(self) -> None:
        """Mark the kills whose task runs are all final or running elsewhere."""
        pending = [k for k in self.kills if k.recovered_at is None]
        if not pending:
            return
        ids = set().union(*(k.task_runs for k in pending))
        with self.store.reading() as s:
            rows = s.execute(
                select(TaskRun.id, TaskRun.state, TaskRun.worker).where(TaskRun.id.in_(ids))
            ).all()
        # recovered: running elsewhere, or no longer running (final, waiting for a retry)
        held = {(tr, worker) for tr, state, worker in rows if state == State.RUNNING.value}
        now = time.monotonic()
        for k in pending:
            stuck = {t for t, worker in held if t in k.task_runs and worker in k.victims}
            if not stuck:
                k.recovered_at = now

    def report(self) -> list[tuple[str, str]]:
        """The table's rows."""
        with self.store.reading() as s:
            states = dict(
                s.execute(
                    select(FlowRun.state, func.count())
                    .where(FlowRun.id.in_(self.ids))
                    .group_by(FlowRun.state)
                ).all()
            )
            per_node = (
                s.execute(
                    select(func.count())
                    .where(FlowRun.parent_task_run_id.is_not(None))
                    .group_by(FlowRun.parent_task_run_id)
                )
                .scalars()
                .all()
            )
            twice = (
                s.execute(
                    select(func.count())
                    .where(StateEvent.task_run_id.is_not(None), StateEvent.state.in_(FINAL))
                    .group_by(StateEvent.task_run_id)
                )
                .scalars()
                .all()
            )
            ends = s.scalars(
                select(func.max(FlowRun.end_time)).where(FlowRun.id.in_(self.ids))
            ).all()
        finished = sum(n for st, n in states.items() if st in FINAL)
        times = sorted(k.recovered_at - k.at for k in self.kills if k.recovered_at and k.task_runs)
        unrecovered = sum(1 for k in self.kills if k.recovered_at is None)
        last = aware(ends[0]) if ends and ends[0] else None
        after = (
            f"{(last - self.last_kill).total_seconds():.1f} s" if last and self.last_kill else "-"
        )
        return [
            ("runs started", str(len(self.ids))),
            ("runs finished", f"{finished} ({states.get('Success', 0)} Success)"),
            ("runs stuck", str(len(self.ids) - finished)),
            ("workers killed", f"{len(self.kills)} ({unrecovered} not recovered)"),
            ("duplicated children", str(sum(n - 1 for n in per_node if n > 1))),
            ("task runs finished twice", str(sum(n - 1 for n in twice if n > 1))),
            ("recovery p50", _seconds(times, 0.5)),
            ("recovery p99", _seconds(times, 0.99)),
            ("recovery max", f"{times[-1]:.1f} s" if times else "-"),
            ("last run ended after the last kill", after),
        ]


def _seconds(times: list[float], q: float) -> str:
    if not times:
        return "-"
    if len(times) == 1:
        return f"{times[0]:.1f} s"
    cuts = statistics.quantiles(times, n=100, method="inclusive")
    return f"{cuts[min(98, max(0, int(q * 100) - 1))]:.1f} s"


def main(argv: list[str] | None = None) -> int:
    """Run the soak and print its table."""
    parser = argparse.ArgumentParser(
        prog="python -m bench.soak", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--minutes", type=float, default=10)
    parser.add_argument("--workers", type=int, default=3)
    parser.add_argument("--kill-every", type=float, default=10, metavar="SECONDS")
    parser.add_argument("--database", choices=["sqlite", "postgres"], default="sqlite")
    args = parser.parse_args(argv)
    try:
        env = Environment.create(args.database)
    except BenchError as exc:
        print(f"soak: {exc}", file=sys.stderr)
        return 2
    soak = Soak(env, args.workers, args.kill_every)
    try:
        soak.run(args.minutes)
        rows = soak.report()
    finally:
        soak.stop()
        env.close()
    print(
        f"\nsoak: {args.minutes:g} min, {args.workers} workers, a kill every {args.kill_every:g} s, {args.database}"
    )
    print("| figure | value |\n|---|---|")
    for name, value in rows:
        print(f"| {name} | {value} |")
    return 0 if rows[2][1] == "0" else 1


if __name__ == "__main__":
    sys.exit(main())
