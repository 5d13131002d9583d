"""Fixtures for real backends: a real Redis (the server at ORCHESTRATOR_TEST_REDIS_URL,
else the embedded one), SQLite always and PostgreSQL when
ORCHESTRATOR_TEST_DATABASE_URL is set (set and unreachable fails, never skips), and
real Celery worker processes."""

from __future__ import annotations

import contextlib
import os
import random
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from orchestrator import embedded
from orchestrator.backends import backends
from orchestrator.client import Client
from orchestrator.config import Settings
from orchestrator.db import Store
from orchestrator.processes import WorkerProcess
from tests.webhook import Webhook

ROOT = Path(__file__).resolve().parent.parent
REDIS_ENV = "ORCHESTRATOR_TEST_REDIS_URL"
DATABASE_ENV = "ORCHESTRATOR_TEST_DATABASE_URL"

# Anything that reads settings from the environment in this test process (for
# example `workers`, which connects when imported) must not touch the user's
# ~/.orchestrator: give it a home of its own and the test Redis.
os.environ["ORCHESTRATOR_HOME"] = tempfile.mkdtemp(prefix="orchestrator-tests-")
os.environ.pop("ORCHESTRATOR_DATABASE_URL", None)
if os.environ.get(REDIS_ENV):
    os.environ["ORCHESTRATOR_REDIS_URL"] = os.environ[REDIS_ENV]
else:
    os.environ.pop("ORCHESTRATOR_REDIS_URL", None)


@pytest.fixture(scope="session")
def session_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh ORCHESTRATOR_HOME for this test session."""
    return tmp_path_factory.mktemp("home")


@contextlib.contextmanager
def _reserved_redis_database(client: redis.Redis) -> Iterator[int]:
    """A database number (1-15) of the test Redis that no other test session holds:
    each session reserves its number with a key in database 0 (set only if absent,
    expiring after a day in case a session dies) and gives it back at the end."""
    token = uuid.uuid4().hex
    numbers = list(range(1, 16))
    random.shuffle(numbers)
    for db in numbers:
        key = f"orchestrator-tests:redis-db:{db}"
        if client.set(key, token, nx=True, ex=24 * 3600):
            try:
                yield db
            finally:
                if client.get(key) == token.encode():
                    client.delete(key)
            return
    pytest.fail("every database 1-15 of the test Redis is held by another test session")


@pytest.fixture(scope="session")
def redis_url(session_home: Path) -> Iterator[str]:
    """A Redis URL with an empty database: the test server's, or the embedded one."""
    url = os.environ.get(REDIS_ENV)
    if url:
        client = redis.Redis.from_url(url, socket_connect_timeout=3)
        try:
            client.ping()
        except redis.RedisError as exc:
            pytest.fail(f"{REDIS_ENV}={url} is set but unreachable: {exc}")
        base = url.rsplit("/", 1)[0] if url.count("/") > 2 else url
        with _reserved_redis_database(client) as db:
            fresh = f"{base}/{db}"
            redis.Redis.from_url(fresh).flushdb()
            yield fresh
            redis.Redis.from_url(fresh).flushdb()
        return
    home = session_home / "redis"
    home.mkdir()
    sock = embedded.ensure_running(home)
    yield f"redis+socket://{sock}"
    embedded.stop(home)


def _postgres_schema_url(base: str) -> Iterator[str]:
    from sqlalchemy import create_engine, text

    schema = f"orch_test_{uuid.uuid4().hex[:10]}"
    engine = create_engine(base, pool_pre_ping=True)
    try:
        with engine.begin() as conn:
            conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    except Exception as exc:
        pytest.fail(f"{DATABASE_ENV}={base} is set but unusable: {exc}".splitlines()[0])
    sep = "&" if "?" in base else "?"
    try:
        # the application name lets a fault test cut exactly this run's connections
        yield f"{base}{sep}options=-csearch_path%3D{schema}&application_name={schema}"
    finally:
        with engine.begin() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        engine.dispose()


def _migrate(url: str) -> None:
    store = Store(url)
    try:
        store.upgrade()
    finally:
        store.close()


def _database_params() -> list[str]:
    return ["sqlite", "postgres"]


def fresh_database(kind: str, folder: Path) -> Iterator[str]:
    """Yield the URL of a new, migrated database: an SQLite file in ``folder``, or a
    fresh PostgreSQL schema (skipped when ORCHESTRATOR_TEST_DATABASE_URL is unset,
    a failure when it is set and unreachable)."""
    if kind == "sqlite":
        url = f"sqlite:///{folder / 'orchestrator.db'}"
        _migrate(url)
        yield url
        return
    base = os.environ.get(DATABASE_ENV)
    if not base:
        pytest.skip(f"{DATABASE_ENV} is not set")
    for url in _postgres_schema_url(base):
        _migrate(url)
        yield url


@pytest.fixture(scope="session", params=_database_params())
def database_url(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """A migrated, empty database shared by the session: SQLite, and PostgreSQL when configured."""
    yield from fresh_database(request.param, tmp_path_factory.mktemp("db"))


class Fleet:
    """Real worker processes over a real Redis and database, and a client for them."""

    def __init__(self, home: Path, redis_url: str, database_url: str, log_dir: Path) -> None:
        self.queue = f"q-{uuid.uuid4().hex[:8]}"
        self.settings = Settings(
            home=home,
            redis_url=redis_url,
            database_url=database_url,
            queue=self.queue,
            lease_seconds=float(os.environ.get("ORCHESTRATOR_TEST_LEASE_SECONDS", "4")),
        )
        self.env = {
            **os.environ,
            "ORCHESTRATOR_HOME": str(home),
            "ORCHESTRATOR_REDIS_URL": redis_url,
            "ORCHESTRATOR_DATABASE_URL": database_url,
            "ORCHESTRATOR_QUEUE": self.queue,
            "ORCHESTRATOR_LEASE_SECONDS": str(self.settings.lease_seconds),
            "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
        }
        self.log_dir = log_dir
        self.workers: list[WorkerProcess] = []
        self.client = Client(self.settings)
        self.store = backends(self.settings).store

    def start_worker(
        self,
        name: str | None = None,
        concurrency: int = 2,
        wait: bool = True,
        pool: str = "prefork",
    ) -> WorkerProcess:
        """Start one more worker process and wait until it answers."""
        name = name or f"w{len(self.workers) + 1}-{uuid.uuid4().hex[:4]}@%h"
        hostname = name.replace("%h", os.uname().nodename)
        w = WorkerProcess(
            hostname,
            self.env,
            concurrency=concurrency,
            pool=pool,
            queues=self.queue,
            log_path=self.log_dir / f"{hostname}.log",
        )
        self.workers.append(w)
        if wait:
            w.wait_ready(backends(self.settings).app)
        return w

    def stop(self) -> None:
        """Stop every worker."""
        for w in self.workers:
            w.stop()
        self.workers.clear()

    def describe(self, run_id: str) -> str:
        """A run that did not finish, for a failure message: its task runs (with
        their leases), its children's, and the tail of every log."""
        from sqlalchemy import select

        from orchestrator.db.models import TaskRun

        lines = [f"flow run {run_id} did not finish:"]
        for i, rid in enumerate([run_id, *self.client.get_flow_run(run_id).children]):
            run = self.client.get_flow_run(rid)
            pad = "  " if i == 0 else "    "
            lines.append(f"{pad[:-2]}{run.flow_name} {rid}: {run.state.value} {run.message!r}")
            with self.store.reading() as s:
                leases = dict(
                    s.execute(
                        select(TaskRun.id, TaskRun.lease_until).where(TaskRun.flow_run_id == rid)
                    ).all()
                )
            for t in run.task_runs:
                lines.append(
                    f"{pad}task {t.slug}[{t.map_index}]: {t.state.value} {t.message!r} "
                    f"lease {leases.get(t.id)}"
                )
        return "\n".join(lines) + "\n" + self.logs()

    def log_text(self) -> str:
        """Everything the workers printed, whole."""
        return "\n".join(p.read_text(errors="replace") for p in sorted(self.log_dir.glob("*.log")))

    def logs(self) -> str:
        """Everything the workers printed (for failure messages)."""
        out = []
        for p in sorted(self.log_dir.glob("*.log")):
            out.append(f"==== {p.name}\n{p.read_text(errors='replace')[-4000:]}")
        return "\n".join(out)


@pytest.fixture(scope="session")
def fleet(
    database_url: str, redis_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Fleet]:
    """Two worker processes of two pool processes each, shared by the session."""
    home = tmp_path_factory.mktemp("fleet-home")
    f = Fleet(home, redis_url, database_url, tmp_path_factory.mktemp("worker-logs"))
    try:
        f.start_worker(wait=False)
        f.start_worker(wait=False)
        for w in f.workers:
            w.wait_ready(backends(f.settings).app)
        yield f
    finally:
        f.stop()


@pytest.fixture()
def fresh_fleet(database_url: str, redis_url: str, tmp_path: Path) -> Iterator[Fleet]:
    """A fleet with no workers yet, on its own queue, for tests that kill workers."""
    home = tmp_path / "home"
    home.mkdir()
    logs = tmp_path / "logs"
    logs.mkdir()
    f = Fleet(home, redis_url, database_url, logs)
    try:
        yield f
    finally:
        f.stop()


@pytest.fixture()
def project() -> str:
    """A project name no other test uses."""
    return f"proj-{uuid.uuid4().hex[:8]}"


@pytest.fixture()
def webhook() -> Iterator[Webhook]:
    """A local webhook server keeping what is posted to it."""
    hook = Webhook()
    try:
        yield hook
    finally:
        hook.close()
