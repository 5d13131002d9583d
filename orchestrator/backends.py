"""The process-wide connections: the database store, the Celery app and Redis,
built once from :class:`~orchestrator.config.Settings` on the first call of
:func:`backends` (nothing connects at import).

The one Celery app lives on the orchestrator side (:func:`celery_app_for`), so a
client enqueues by task name without importing worker code. May import Redis,
Celery (through :mod:`orchestrator.celery_app`), :mod:`orchestrator.embedded`, the
database package and the pure core; nothing of the client layer."""

from __future__ import annotations

import contextlib
import functools
import json
import time
from collections.abc import Collection
from dataclasses import dataclass
from typing import cast

import redis
from celery import Celery
from redis.sentinel import Sentinel

import orchestrator.constants as constants
import orchestrator.embedded as embedded
import orchestrator.telemetry as telemetry
from orchestrator.cancelling import Canceller, cancel_tree
from orchestrator.celery_app import make_app
from orchestrator.config import Settings, hide_password, sentinel_url
from orchestrator.db import Store
from orchestrator.errors import BackendUnavailable
from orchestrator.states import State

#: Flow versions' (name, project) by id, for the spans of runs that end here.
_FLOW_NAMES: dict[str, tuple[str, str]] = {}


@dataclass
class Backends:
    """The connections of one process, for one configuration.

    Attributes:
        settings: the configuration they were built from.
        broker_url: the Redis URL as Celery spells it.
        redis: a redis-py client for locks, semaphores and notices.
        store: the database.
        app: the Celery app.
    """

    settings: Settings
    broker_url: str
    redis: redis.Redis
    store: Store
    app: Celery

    def set_flow_run_state(
        self,
        flow_run_id: str,
        new: State,
        message: str | None = None,
        from_states: Collection[State] | None = None,
    ) -> bool:
        """Compare-and-set a flow run's state and announce the change on Redis.

        Args:
            flow_run_id: the run.
            new: its new state.
            message: why.
            from_states: the states it may change from (None: every state ``new``
                may be reached from).

        Returns:
            True when this call changed the state.
        """
        changed = self.store.flow_runs.set_state(flow_run_id, new, message, from_states)
        if changed:
            self.notify(flow_run_id, new)
        return changed

    def notify(self, flow_run_id: str, state: State) -> None:
        """Publish a state-change notice for waiting clients (best effort); a final
        state also writes the run's span when tracing is on."""
        if state.is_final and telemetry.enabled():
            self._trace_end(flow_run_id)
        # best effort: waiters fall back to reading the database
        with contextlib.suppress(redis.RedisError):
            self.redis.publish(
                constants.FLOW_RUN_CHANNEL.format(id=flow_run_id),
                json.dumps({"id": flow_run_id, "state": state.value}),
            )

    def _trace_end(self, flow_run_id: str) -> None:
        """Write a finished run's span (see :mod:`orchestrator.telemetry`)."""
        run = self.store.flow_runs.get(flow_run_id)
        flow, project = self._flow_names(run.flow_id)
        attributes = {
            "orchestrator.flow_run.id": run.id,
            "orchestrator.flow.name": flow,
            "orchestrator.project": project,
            "orchestrator.state": run.state,
        }
        failed = State(run.state).is_failed
        failure = (run.message or run.state) if failed else None
        end = run.end_time or run.updated
        trace = telemetry.context_of(run.id, run.trace_context)
        telemetry.run_ended(trace, f"flow run {flow}", run.start_time, end, attributes, failure)

    def _flow_names(self, flow_id: str) -> tuple[str, str]:
        """A flow version's name and project (read once per process: they never change)."""
        found = _FLOW_NAMES.get(flow_id)
        if found is None:
            version = self.store.flows.get(flow_id)
            project = self.store.flows.project_name(version.project_id)
            found = _FLOW_NAMES[flow_id] = (version.name, project)
        return found

    def cancel_flow_run(
        self, flow_run_id: str, message: str = "cancelled by request", cancel_children: bool = True
    ) -> bool:
        """Cancel a flow run that is not final yet, and by default its unfinished children.

        Its unfinished task runs are cancelled and its concurrency slots given back;
        task code that is running is stopped (its Celery task revoked with
        ``terminate``: the pool replaces the process). Children started by a
        ``StartFlowRun(on_parent_cancel="abandon")`` keep running.

        Args:
            flow_run_id: the run.
            message: why (kept in the run's history).
            cancel_children: also cancel its unfinished child runs, and theirs.

        Returns:
            True when the run was cancelled by this call.
        """
        canceller = Canceller(self.store, self.redis, self.app, self.settings.queue)
        return cancel_tree(canceller, flow_run_id, message, cancel_children)

    def dispatch(
        self, flow_run_id: str, flow_name: str, trace: telemetry.RunTrace | None = None
    ) -> None:
        """Send ``start_flow_run`` for a flow run to the workers (its headers carry the
        run's ``trace`` context)."""
        with telemetry.within(trace):
            self._send_start(flow_run_id, flow_name)

    def _send_start(self, flow_run_id: str, flow_name: str) -> None:
        self.app.send_task(
            constants.START_FLOW_RUN,
            args=[flow_run_id],
            queue=self.settings.queue,
            shadow=f"{flow_name}/start",
        )


def _celery_url(settings: Settings) -> str:
    """The broker URL as Celery spells it, without starting or reaching anything."""
    if settings.redis_url:
        return settings.redis_url
    return f"redis+socket://{embedded.socket_path(settings.home)}"


def _redis_py_url(url: str) -> str:
    """A Redis URL as redis-py spells it (Celery's ``redis+socket://`` is ``unix://``)."""
    prefix = "redis+socket://"
    return "unix://" + url[len(prefix) :] if url.startswith(prefix) else url


def redis_urls(settings: Settings) -> tuple[str, str]:
    """The Redis URL for Celery and for redis-py, starting the embedded server if needed."""
    if settings.redis_url:
        return settings.redis_url, _redis_py_url(settings.redis_url)
    sock = embedded.ensure_running(settings.home)
    return f"redis+socket://{sock}", f"unix://{sock}"


def redis_client(url: str) -> redis.Redis:
    """A redis-py client for a Redis URL (Celery's ``redis+socket://`` spelling too);
    for a ``sentinel://`` URL, a client of the master the sentinels name (found again
    after a failover)."""
    sentinel = sentinel_url(url)
    if sentinel is None:
        return redis.Redis.from_url(
            _redis_py_url(url), socket_connect_timeout=5, health_check_interval=30
        )
    manager = Sentinel(list(sentinel.sentinels), socket_connect_timeout=5, socket_timeout=5)
    return cast(
        redis.Redis,
        manager.master_for(
            sentinel.master_name,
            db=sentinel.db,
            username=sentinel.username,
            password=sentinel.password,
            socket_connect_timeout=5,
            socket_timeout=30,
            health_check_interval=30,
        ),
    )


def _ping(client: redis.Redis, url: str, attempts: int = 5) -> None:
    delay = 0.2
    for attempt in range(attempts):
        try:
            client.ping()
            return
        except redis.AuthenticationError as exc:
            raise BackendUnavailable(
                f"Redis at {hide_password(url)} refused the password: {exc}"
            ) from None
        except (redis.ConnectionError, redis.TimeoutError, OSError) as exc:
            if attempt == attempts - 1:
                detail = str(exc).splitlines()[0]
                raise BackendUnavailable(
                    f"Redis at {hide_password(url)} is unreachable: {detail}"
                ) from None
            time.sleep(delay)
            delay *= 2
        except redis.ResponseError as exc:
            raise BackendUnavailable(f"Redis at {hide_password(url)} refused us: {exc}") from None


@functools.lru_cache(maxsize=8)
def celery_app_for(settings: Settings) -> Celery:
    """The one Celery app for ``settings``, built once and without connecting.

    For the embedded Redis its broker is the socket of ``settings.home``; starting
    that server is left to :func:`backends`. ``backends(settings).app`` is this app.

    Args:
        settings: the configuration.

    Returns:
        The Celery app.
    """
    return make_app(_celery_url(settings), settings)


@functools.lru_cache(maxsize=8)
def _backends(settings: Settings) -> Backends:
    celery_url, redis_url = redis_urls(settings)
    client = redis_client(redis_url)
    _ping(client, celery_url)
    store = Store(settings.resolved_database_url(), auto_migrate=settings.embedded_database)
    return Backends(settings, celery_url, client, store, celery_app_for(settings))


@functools.lru_cache(maxsize=8)
def _reading_backends(settings: Settings) -> Backends:
    url = _celery_url(settings)
    client = redis_client(url)
    store = Store(settings.resolved_database_url(), auto_migrate=settings.embedded_database)
    return Backends(settings, url, client, store, celery_app_for(settings))


def reading_backends(settings: Settings | None = None) -> Backends:
    """Connections for reading run history: the database only. Redis is neither
    started (the embedded one) nor pinged; whatever uses it fails then, not before.
    """
    return _reading_backends(settings or Settings.from_env())


def backends(settings: Settings | None = None) -> Backends:
    """The connections for ``settings`` (by default, from the environment), made once.

    The first call starts the embedded Redis when no Redis URL is set, pings Redis
    and opens the database (migrating the embedded SQLite one).

    Raises:
        BackendUnavailable: Redis does not answer or refuses us.
    """
    return _backends(settings or Settings.from_env())


def reset() -> None:
    """Forget every cached connection (tests and forks); the Celery apps stay."""
    _backends.cache_clear()
    _reading_backends.cache_clear()
