"""The benchmark's environment: Redis, a fresh database, and the two worker
processes (ours and plain Celery), each started and stopped by us."""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import psutil
import redis
from celery import Celery

from orchestrator.backends import backends
from orchestrator.client import Client
from orchestrator.config import Settings, hide_password
from orchestrator.db import Store

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_REDIS = "redis://127.0.0.1:6379/15"  # the tests use dbs 1-14
DEFAULT_POSTGRES = "postgresql+psycopg://root@127.0.0.1:5432/test"
CONCURRENCY = 2


class BenchError(Exception):
    """A clear, one-line reason the benchmark cannot go on."""


def _die_with_parent() -> None:
    """In the child, before exec: get SIGTERM when the benchmark process dies."""
    with contextlib.suppress(Exception):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


class Worker:
    """One ``celery worker`` process (prefork, ``CONCURRENCY`` pool processes) we started."""

    def __init__(
        self, app_module: str, queue: str, env: Mapping[str, str], log_dir: Path, tag: str
    ) -> None:
        self.hostname = f"bench-{tag}-{uuid.uuid4().hex[:6]}@{os.uname().nodename}"
        self.log_path = log_dir / f"{tag}-{uuid.uuid4().hex[:6]}.log"
        cmd = [
            sys.executable,
            "-m",
            "celery",
            "-A",
            app_module,
            "worker",
            "--hostname",
            self.hostname,
            "--concurrency",
            str(CONCURRENCY),
            "--pool",
            "prefork",
            "--loglevel",
            "WARNING",
            "--without-mingle",
            "--without-gossip",
            "--queues",
            queue,
        ]
        preexec = _die_with_parent if sys.platform.startswith("linux") else None
        with open(self.log_path, "ab") as out:
            self.proc = subprocess.Popen(
                cmd,
                env=dict(env),
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # Ctrl-C reaches us only; we stop it
                preexec_fn=preexec,
            )

    @property
    def pid(self) -> int:
        return self.proc.pid

    def pool_pids(self) -> list[int]:
        try:
            return [c.pid for c in psutil.Process(self.pid).children()]
        except psutil.NoSuchProcess:
            return []

    def rss(self) -> tuple[int, list[int]]:
        """Resident bytes of the main process and of each pool process."""
        main = psutil.Process(self.pid)
        pool = []
        for c in main.children():
            with contextlib.suppress(psutil.NoSuchProcess):
                pool.append(c.memory_info().rss)
        return main.memory_info().rss, pool

    def log_tail(self, chars: int = 3000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return ""

    def check_alive(self) -> None:
        if self.proc.poll() is not None:
            raise BenchError(
                f"worker {self.hostname} exited with {self.proc.returncode}; "
                f"see {self.log_path}:\n{self.log_tail()}"
            )

    def wait_ready(self, app: Celery, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.check_alive()
            with contextlib.suppress(Exception):
                answered = app.control.ping(destination=[self.hostname], timeout=0.5)
                if answered and len(self.pool_pids()) >= CONCURRENCY:
                    return
            time.sleep(0.2)
        raise BenchError(f"worker {self.hostname} did not answer within {timeout:g}s")

    def stop(self, timeout: float = 15) -> None:
        """Warm shutdown (SIGTERM), then SIGKILL the whole process group."""
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(timeout)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(5)


@dataclass
class Environment:
    """Redis and a database for one benchmark run, and everything to undo at the end."""

    redis_url: str
    database_url: str
    database: str
    workdir: Path
    _cleanups: list[tuple[str, object]] = field(default_factory=list)

    @classmethod
    def create(cls, database: str) -> Environment:
        workdir = Path(tempfile.mkdtemp(prefix="orchestrator-bench-"))
        env = cls(redis_url="", database_url="", database=database, workdir=workdir)
        try:
            env.redis_url = env._redis()
            env.database_url = env._database()
        except BaseException:
            env.close()
            raise
        return env

    def _redis(self) -> str:
        configured = os.environ.get("ORCHESTRATOR_REDIS_URL")
        url = configured or DEFAULT_REDIS
        client = redis.Redis.from_url(
            url.replace("redis+socket://", "unix://"), socket_connect_timeout=3
        )
        try:
            client.ping()
        except redis.RedisError as exc:
            raise BenchError(
                f"Redis at {hide_password(url)} is unreachable ({exc}); start one or set "
                "ORCHESTRATOR_REDIS_URL"
            ) from None
        if not configured:
            # our own database number: empty it first and last
            client.flushdb()
            self._cleanups.append(("flush redis", client.flushdb))
        return url

    def _database(self) -> str:
        if self.database == "sqlite":
            url = f"sqlite:///{self.workdir / 'bench.db'}"
        else:
            from sqlalchemy import create_engine, text

            configured = os.environ.get("ORCHESTRATOR_DATABASE_URL") or ""
            base = configured if configured.startswith("postgres") else DEFAULT_POSTGRES
            schema = f"bench_{uuid.uuid4().hex[:10]}"
            engine = create_engine(base, connect_args={"connect_timeout": 5}, pool_pre_ping=True)
            try:
                with engine.begin() as conn:
                    conn.execute(text(f'CREATE SCHEMA "{schema}"'))
            except Exception as exc:
                engine.dispose()
                detail = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
                raise BenchError(
                    f"PostgreSQL at {hide_password(base)} is unusable: {detail}"
                ) from None

            def drop() -> None:
                try:
                    for attempt in range(3):  # the server may have dropped our connections
                        try:
                            with engine.begin() as conn:
                                conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
                            return
                        except Exception:
                            if attempt == 2:
                                raise
                            engine.dispose()
                            time.sleep(1)
                finally:
                    engine.dispose()

            self._cleanups.append((f"drop schema {schema}", drop))
            sep = "&" if "?" in base else "?"
            url = f"{base}{sep}options=-csearch_path%3D{schema}"
        store = Store(url)
        try:
            store.upgrade()
        finally:
            store.close()
        return url

    def close(self) -> None:
        for what, undo in reversed(self._cleanups):
            try:
                undo()  # type: ignore[operator]
            except Exception as exc:  # keep cleaning up
                print(f"cleanup: could not {what}: {exc}", file=sys.stderr)
        self._cleanups.clear()
        import shutil

        shutil.rmtree(self.workdir, ignore_errors=True)


class Fleet:
    """Our worker and the plain Celery worker, on fresh queues, with a client for each."""

    def __init__(self, env: Environment, tracing_endpoint: str | None = None) -> None:
        self.env = env
        self.tracing_endpoint = tracing_endpoint
        self.ours: Worker | None = None
        self.plain: Worker | None = None
        self.traced: Worker | None = None
        self.client: Client
        self.plain_app: Celery
        self.generation = 0
        self._configure()

    def _configure(self) -> None:
        from bench.plain import plain_app

        self.generation += 1
        tag = uuid.uuid4().hex[:6]
        self.queue = f"bench-ours-{tag}"
        self.plain_queue = f"bench-plain-{tag}"
        self.home = self.env.workdir / "home"
        self.home.mkdir(exist_ok=True)
        self.settings = Settings(
            home=self.home,
            redis_url=self.env.redis_url,
            database_url=self.env.database_url,
            queue=self.queue,
        )
        self.client = Client(self.settings)
        self.plain_app = plain_app(self.env.redis_url, self.plain_queue)
        self.worker_env = {
            **os.environ,
            "ORCHESTRATOR_HOME": str(self.home),
            "ORCHESTRATOR_REDIS_URL": self.env.redis_url,
            "ORCHESTRATOR_DATABASE_URL": self.env.database_url,
            "ORCHESTRATOR_QUEUE": self.queue,
            "BENCH_PLAIN_QUEUE": self.plain_queue,
            "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
        }
        # with tracing, a second worker of ours on a queue of its own exports spans
        self.traced_queue = f"bench-traced-{tag}"
        self.traced_client = Client(
            Settings(
                home=self.home,
                redis_url=self.env.redis_url,
                database_url=self.env.database_url,
                queue=self.traced_queue,
            )
        )
        self.traced_env = {
            **self.worker_env,
            "ORCHESTRATOR_QUEUE": self.traced_queue,
            "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": self.tracing_endpoint or "",
            "OTEL_SERVICE_NAME": "bench-worker",
        }

    @property
    def app(self) -> Celery:
        return backends(self.settings).app

    def start(self) -> None:
        """Start both workers and wait until both answer."""
        self.ours = Worker("workers", self.queue, self.worker_env, self.env.workdir, "ours")
        self.plain = Worker(
            "bench.plain_worker", self.plain_queue, self.worker_env, self.env.workdir, "plain"
        )
        if self.tracing_endpoint:
            self.traced = Worker(
                "workers", self.traced_queue, self.traced_env, self.env.workdir, "traced"
            )
        self.ours.wait_ready(self.app)
        self.plain.wait_ready(self.plain_app)
        if self.traced is not None:
            self.traced.wait_ready(self.app)

    def stop(self) -> None:
        for w in (self.ours, self.plain, self.traced):
            if w is not None:
                w.stop()
        self.ours = self.plain = self.traced = None

    def restart(self) -> None:
        """Fresh workers on fresh queues (after a timed-out case left work behind)."""
        self.stop()
        self._configure()
        self.start()

    def check_alive(self) -> None:
        for w in (self.ours, self.plain, self.traced):
            if w is not None:
                w.check_alive()
