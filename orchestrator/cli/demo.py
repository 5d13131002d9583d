"""``orchestrator demo``: the seed's Flow-of-Flows, end to end, on real workers.

It registers the flows of :mod:`orchestrator.demo_flows` in project "examples",
starts worker processes, runs "parent-flow" (A -> (B, C) -> D, each a child flow
run), prints the run tree, and stops everything it started: the workers, and the
embedded Redis when this process started it.

May import the CLI helpers (display, tree, progress, and ``describe_backends`` of
:mod:`~orchestrator.cli.fleet`), the client layer, the backends and the core.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import time
import uuid
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from types import FrameType

import click
from celery import Celery
from rich.text import Text

import orchestrator.demo_flows as demo_flows
import orchestrator.embedded as embedded
from orchestrator.backends import backends
from orchestrator.cli.display import fmt_duration, make_console, state_text
from orchestrator.cli.fleet import describe_backends
from orchestrator.cli.progress import wait_with_progress
from orchestrator.cli.tree import run_tree
from orchestrator.client import Client
from orchestrator.config import (
    ENV_DATABASE_URL,
    ENV_HOME,
    ENV_QUEUE,
    ENV_REDIS_URL,
    Settings,
)
from orchestrator.infos import FlowRunInfo
from orchestrator.processes import ServerProcess, WorkerProcess
from orchestrator.states import State

PROJECT = "examples"
PARENT = "parent-flow"


def worker_env(settings: Settings) -> dict[str, str]:
    """This process's environment plus the settings it resolved, for its workers.

    The workers get the same ``ORCHESTRATOR_HOME``, so with no Redis URL they find
    the embedded server this process runs (and do not own it).
    """
    env = dict(os.environ)
    env[ENV_HOME] = str(settings.home)
    env[ENV_QUEUE] = settings.queue
    env["ORCHESTRATOR_LEASE_SECONDS"] = f"{settings.lease_seconds:g}"
    for name, value in (
        (ENV_REDIS_URL, settings.redis_url),
        (ENV_DATABASE_URL, settings.database_url),
    ):
        if value:
            env[name] = value
        else:
            env.pop(name, None)
    return env


def _raise_interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


@contextlib.contextmanager
def _uninterruptible() -> Iterator[None]:
    """Ignore Ctrl-C and SIGTERM while cleaning up (each step has its own timeout)."""
    old_int = signal.signal(signal.SIGINT, signal.SIG_IGN)
    old_term = signal.signal(signal.SIGTERM, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, old_int)
        signal.signal(signal.SIGTERM, old_term)


def _span(info: FlowRunInfo) -> tuple[datetime, datetime] | None:
    if info.start_time is None or info.end_time is None:
        return None
    return info.start_time, info.end_time


def summarize(client: Client, info: FlowRunInfo) -> Text:
    """One line on how the parent run went: its state, time, and the order its
    children ran in (``A -> (B, C) -> D, B and C overlapped``)."""
    line = Text(f"{info.flow_name} ")
    line.append_text(state_text(info.state))
    line.append(f" in {fmt_duration(info.duration)}")
    children = {}
    for child_id in info.children:
        child = client.get_flow_run(child_id, task_runs=False)
        children[child.flow_name] = child
    spans = {name: _span(children[name]) for name in "ABCD" if name in children}
    if len(spans) == 4 and all(spans.values()):
        a, b, c, d = (spans[n] for n in "ABCD")
        assert a and b and c and d
        in_order = a[1] <= min(b[0], c[0]) and max(b[1], c[1]) <= d[0]
        shape = "A -> (B, C) -> D" if in_order else "NOT in the order A -> (B, C) -> D"
        overlap = max(b[0], c[0]) < min(b[1], c[1])
        line.append(f": {shape}, ")
        line.append("B and C overlapped" if overlap else "B and C ran one after the other")
    elif info.message:
        line.append(f": {info.message}")
    else:
        done = ", ".join(f"{n} {c.state.value}" for n, c in sorted(children.items()))
        line.append(f": children {done or 'none'}")
    return line


def _start_workers(
    settings: Settings, count: int, concurrency: int, log_dir: Path
) -> list[WorkerProcess]:
    env = worker_env(settings)
    log_dir.mkdir(parents=True, exist_ok=True)
    node = os.uname().nodename
    tag = uuid.uuid4().hex[:4]
    workers: list[WorkerProcess] = []
    for i in range(count):
        hostname = f"demo{i + 1}-{tag}@{node}"
        workers.append(
            WorkerProcess(
                hostname,
                env,
                concurrency=concurrency,
                queues=settings.queue,
                log_path=log_dir / f"{hostname}.log",
            )
        )
    return workers


def _stop_workers(workers: list[WorkerProcess]) -> None:
    for w in workers:
        w.kill(signal.SIGTERM)  # all at once, then wait for each
    for w in workers:
        w.stop(timeout=15)


class _Demo:
    """One ``orchestrator demo``: what it started, so that it stops exactly that."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.out = make_console()
        self.err = make_console(stderr=True)
        self.client = Client(settings)
        self.workers: list[WorkerProcess] = []
        self.started_redis = False
        self.run_id: str | None = None
        self.log_dir = settings.home / "logs"
        self.server: ServerProcess | None = None
        self.finished = False

    def connect(self) -> Celery:
        """Reach Redis and the database (starting the embedded Redis if needed)."""
        settings = self.settings
        with self.err.status("connecting to Redis and the database…"):
            b = backends(settings)
            self.started_redis = settings.embedded_redis and embedded.started_here(settings.home)
            if not settings.embedded_database:
                b.store.check_migrated()
        how = "started here" if self.started_redis else "already running"
        self.out.print(
            f"backends: {describe_backends(settings)}"
            + (f" (embedded Redis {how})" if settings.embedded_redis else "")
        )
        return b.app

    def register(self) -> None:
        """Register the child flows and the parent in project "examples"."""
        versions = []
        for f in [*demo_flows.CHILD_FLOWS, demo_flows.flow]:
            versions.append(f"{f.name} v{self.client.register(f, project_name=PROJECT)}")
        self.out.print(f"registered in project {PROJECT!r}: {', '.join(versions)}")

    def start_workers(self, app: Celery, count: int, concurrency: int) -> None:
        """Start ``count`` worker processes and wait until each answers a ping."""
        t0 = time.monotonic()
        with self.err.status(f"starting {count} worker process(es)…"):
            self.workers = _start_workers(self.settings, count, concurrency, self.log_dir)
            for w in self.workers:
                w.wait_ready(app)
        self.out.print(
            f"{count} worker(s) ready in {fmt_duration(time.monotonic() - t0)} "
            f"(logs in {self.log_dir})"
        )

    def start_server(self, port: int) -> None:
        """Start ``orchestrator server`` on 127.0.0.1:``port`` and wait until it answers."""
        with self.err.status("starting the server…"):
            self.server = ServerProcess(
                worker_env(self.settings), port=port, log_path=self.log_dir / "server.log"
            )
            url = self.server.wait_ready()
        self.out.print(f"server on {url} (log in {self.log_dir / 'server.log'})")

    def serve(self) -> None:
        """Keep the server running on the demo's run until Ctrl-C (or SIGTERM)."""
        assert self.server is not None
        self.out.print(
            f"serving the run at {self.server.url}/runs/{self.run_id} "
            "(Ctrl-C stops the server, the workers and Redis)"
        )
        while self.server.proc.poll() is None:
            time.sleep(0.5)
        self.err.print(f"the server stopped with {self.server.proc.returncode}")

    def run_parent(self, timeout: float) -> int:
        """Run parent-flow, print its tree and how it went; 0 when it succeeded."""
        client, out = self.client, self.out
        self.run_id = run_id = client.create_flow_run(PARENT, PROJECT, run_name="demo")
        out.print(f"created flow run {run_id} of {PARENT}")
        if self.server is not None:
            out.print(f"watch it live: {self.server.url}/runs/{run_id}")
        info = wait_with_progress(
            client, run_id, PARENT, timeout=timeout, tree=True, console=self.err
        )
        out.print(run_tree(client, run_id))
        out.print(summarize(client, info))
        code = 0 if info.state is State.SUCCESS else 1
        self.finished = True
        if code:
            out.print(f"worker logs: {self.log_dir}")
        return code

    def interrupted(self) -> None:
        """Say so and cancel the run, if one was created."""
        self.err.print("interrupted: stopping what the demo started")
        if self.run_id is not None:
            with _uninterruptible(), contextlib.suppress(Exception):
                if Client(self.settings).cancel_flow_run(self.run_id):
                    self.err.print(f"cancelled flow run {self.run_id}")

    def clean_up(self) -> None:
        """Stop the server, the workers, and the embedded Redis when this process started it."""
        with _uninterruptible():
            if self.server is not None:
                self.server.stop()
            if self.workers:
                _stop_workers(self.workers)
            if self.started_redis:
                embedded.stop(self.settings.home)


@click.command("demo")
@click.option(
    "--workers",
    "n_workers",
    type=click.IntRange(1, 16),
    default=2,
    show_default=True,
    help="How many worker processes to start.",
)
@click.option(
    "--concurrency",
    type=click.IntRange(1, 16),
    default=2,
    show_default=True,
    help="Pool processes per worker.",
)
@click.option(
    "--timeout",
    type=click.FloatRange(min=1),
    default=120,
    show_default=True,
    help="Seconds to wait for the flow run.",
)
@click.option(
    "--serve",
    is_flag=True,
    help="Also start `orchestrator server` and leave it running on the run until Ctrl-C.",
)
@click.option(
    "--port",
    type=click.IntRange(0, 65535),
    default=4200,
    show_default=True,
    help="With --serve: the server's port on 127.0.0.1 (0: a free one).",
)
def demo(n_workers: int, concurrency: int, timeout: float, serve: bool, port: int) -> None:
    """Run the seed's Flow-of-Flows end to end on real workers.

    Registers the child flows A, B, C, D and "parent-flow" in project "examples",
    starts worker processes, runs parent-flow (A -> (B, C) -> D, each a child
    flow run), prints the run tree, and stops everything it started. Exits 0 when
    the run succeeded, 1 otherwise. With --serve the server shows the run live
    (its URL is printed) and keeps running, with the workers, until Ctrl-C.
    """
    session = _Demo(Settings.from_env())
    code = 1
    old_term = signal.signal(signal.SIGTERM, _raise_interrupt)
    try:
        app = session.connect()
        session.register()
        session.start_workers(app, n_workers, concurrency)
        if serve:
            session.start_server(port)
        code = session.run_parent(timeout)
        if serve:
            session.serve()
    except KeyboardInterrupt:
        if not session.finished:
            code = 130
            session.interrupted()
    finally:
        session.clean_up()
        signal.signal(signal.SIGTERM, old_term)
    sys.exit(code)


COMMANDS: list[click.Command] = [demo]
