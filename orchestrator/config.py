"""Configuration from the environment.

With no settings at all everything lives in ``ORCHESTRATOR_HOME`` (default
``~/.orchestrator``): a SQLite database file and an embedded Redis server on a
unix socket. ``ORCHESTRATOR_REDIS_URL`` and ``ORCHESTRATOR_DATABASE_URL`` point a
fleet at shared servers instead. Also holds the package's :data:`VERSION`.

Pure: imports only the standard library.
"""

from __future__ import annotations

import getpass
import ipaddress
import os
import socket
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from orchestrator.errors import ConfigurationError

#: The package's version (``orchestrator --version``, ``orchestrator.__version__``).
VERSION = "0.1.0"

ENV_HOME = "ORCHESTRATOR_HOME"
ENV_REDIS_URL = "ORCHESTRATOR_REDIS_URL"
ENV_DATABASE_URL = "ORCHESTRATOR_DATABASE_URL"
ENV_QUEUE = "ORCHESTRATOR_QUEUE"
ENV_SERVER_TOKEN = "ORCHESTRATOR_SERVER_TOKEN"
ENV_SERVER_READ_TOKEN = "ORCHESTRATOR_SERVER_READ_TOKEN"
ENV_MAX_VALUE_BYTES = "ORCHESTRATOR_MAX_VALUE_BYTES"
ENV_MAX_DEPTH = "ORCHESTRATOR_MAX_DEPTH"

#: How many levels of child runs a tree of flow runs may have under its root, by default.
DEFAULT_MAX_DEPTH = 10

#: The largest JSON encoding of a run's parameters or a task's result, by default.
DEFAULT_MAX_VALUE_BYTES = 1_000_000


def max_value_bytes() -> int:
    """The size limit of parameters and results this process's environment sets
    (``ORCHESTRATOR_MAX_VALUE_BYTES``, default :data:`DEFAULT_MAX_VALUE_BYTES`)."""
    return int(os.environ.get(ENV_MAX_VALUE_BYTES) or DEFAULT_MAX_VALUE_BYTES)


def max_depth() -> int:
    """How many levels of child runs may grow under a root run
    (``ORCHESTRATOR_MAX_DEPTH``, default :data:`DEFAULT_MAX_DEPTH`)."""
    return int(os.environ.get(ENV_MAX_DEPTH) or DEFAULT_MAX_DEPTH)


@dataclass(frozen=True)
class Settings:
    """Where this process finds Redis and the database.

    Attributes:
        home: the folder holding the embedded database and Redis.
        redis_url: a shared Redis (None: the embedded one).
        database_url: a shared database (None: SQLite in ``home``).
        queue: the Celery queue flow runs are sent to.
        lease_seconds: how long a running task run's lease lasts without a heartbeat.
        task_time_limit: the longest any task may run, in seconds (Celery's hard limit).
        visibility_timeout: seconds before Redis redelivers an unacknowledged message
            (None: an hour more than ``task_time_limit``; keep it above that limit).
        sweep_seconds: how often beat looks for stuck runs.
        stale_seconds: how long a running flow run may show no progress (and hold
            no live lease) before beat sends it again.
        max_resubmits: how often a stuck run is sent again before it is failed.
        recheck_seconds: how often a waiting task looks again: for a concurrency
            slot, for a child run to end, for a duplicate delivery's twin.
        max_value_bytes: the largest JSON encoding of a run's parameters, or of a
            task's result, accepted.
        liveness_seconds: how long a worker process's liveness key lasts without a
            refresh (refreshed every second): a worker whose key is gone this long
            is dead, and a live worker takes over its task runs.
    """

    home: Path
    redis_url: str | None
    database_url: str | None
    queue: str = "orchestrator"
    lease_seconds: float = 60.0
    task_time_limit: float = 6 * 3600
    visibility_timeout: float | None = None
    sweep_seconds: float = 10.0
    stale_seconds: float = 120.0
    max_resubmits: int = 3
    recheck_seconds: float = 1.0
    max_value_bytes: int = DEFAULT_MAX_VALUE_BYTES
    liveness_seconds: float = 5.0

    @classmethod
    def from_env(cls) -> Settings:
        """Read the settings from environment variables."""
        home = Path(os.environ.get(ENV_HOME) or Path.home() / ".orchestrator").expanduser()
        return cls(
            home=home,
            redis_url=os.environ.get(ENV_REDIS_URL) or None,
            database_url=os.environ.get(ENV_DATABASE_URL) or None,
            queue=os.environ.get(ENV_QUEUE) or "orchestrator",
            lease_seconds=float(os.environ.get("ORCHESTRATOR_LEASE_SECONDS") or 60),
            task_time_limit=float(os.environ.get("ORCHESTRATOR_TASK_TIME_LIMIT") or 6 * 3600),
            visibility_timeout=float(os.environ["ORCHESTRATOR_VISIBILITY_TIMEOUT"])
            if os.environ.get("ORCHESTRATOR_VISIBILITY_TIMEOUT")
            else None,
            sweep_seconds=float(os.environ.get("ORCHESTRATOR_SWEEP_SECONDS") or 10),
            stale_seconds=float(os.environ.get("ORCHESTRATOR_STALE_SECONDS") or 120),
            max_resubmits=int(os.environ.get("ORCHESTRATOR_MAX_RESUBMITS") or 3),
            recheck_seconds=float(os.environ.get("ORCHESTRATOR_RECHECK_SECONDS") or 1),
            max_value_bytes=max_value_bytes(),
            liveness_seconds=float(os.environ.get("ORCHESTRATOR_LIVENESS_SECONDS") or 5),
        )

    @property
    def embedded_redis(self) -> bool:
        """True when no Redis URL is set and the embedded server is used."""
        return self.redis_url is None

    @property
    def embedded_database(self) -> bool:
        """True when no database URL is set and SQLite in ``home`` is used."""
        return self.database_url is None

    def resolved_database_url(self) -> str:
        """The database URL to connect to."""
        if self.database_url:
            return self.database_url
        return f"sqlite:///{self.home / 'orchestrator.db'}"


#: The Sentinel master name when a ``sentinel://`` URL names none.
DEFAULT_MASTER_NAME = "mymaster"


@dataclass(frozen=True)
class SentinelURL:
    """A ``sentinel://`` Redis URL: ``sentinel://[:password@]host:port[/db];sentinel://
    host2:port2...[?master_name=NAME]`` (Celery's spelling: one URL per sentinel,
    joined by ``;``; the master name defaults to :data:`DEFAULT_MASTER_NAME`).

    Attributes:
        sentinels: (host, port) of each sentinel.
        master_name: the monitored master's name.
        db: the database number.
        username: the master's user, if any.
        password: the master's password, if any.
        celery_url: the URL as Celery takes it (without ``master_name``).
    """

    sentinels: tuple[tuple[str, int], ...]
    master_name: str
    db: int
    username: str | None
    password: str | None
    celery_url: str


def sentinel_url(url: str) -> SentinelURL | None:
    """Parse a ``sentinel://`` URL (None for any other URL).

    Raises:
        ConfigurationError: a sentinel without a host, or a database that is not a number.
    """
    if not url.startswith("sentinel://"):
        return None
    hosts, clean = [], []
    master, db, user, password = DEFAULT_MASTER_NAME, 0, None, None
    for part in url.split(";"):
        s = urlsplit(part.strip())
        query = parse_qsl(s.query)
        master = dict(query).get("master_name", master)
        clean.append(
            urlunsplit(s._replace(query=urlencode([q for q in query if q[0] != "master_name"])))
        )
        if not s.hostname:
            raise ConfigurationError(f"Redis URL {hide_password(url)}: a sentinel has no host")
        hosts.append((s.hostname, s.port or 26379))
        user, password = user or s.username or None, password or s.password
        if s.path.strip("/"):
            if not s.path.strip("/").isdigit():
                raise ConfigurationError(
                    f"Redis URL {hide_password(url)}: the database must be a number"
                )
            db = int(s.path.strip("/"))
    return SentinelURL(tuple(hosts), master, db, user, password, ";".join(clean))


def hide_password(url: str) -> str:
    """``url`` with any password replaced by ``***``, for messages and logs."""
    if ";" in url and url.startswith("sentinel://"):
        return ";".join(hide_password(part) for part in url.split(";"))
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<unparseable url>"
    if parts.password is None:
        return url
    netloc = parts.netloc.rsplit("@", 1)
    user = parts.username or ""
    return urlunsplit(parts._replace(netloc=f"{user}:***@{netloc[-1]}"))


def is_loopback(address: str) -> bool:
    """Whether a listening address is a loopback one (``localhost``, ``127.x``, ``::1``)."""
    if address == "localhost":
        return True
    try:
        return ipaddress.ip_address(address.strip("[]")).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True)
class ServerAuth:
    """Who may use ``orchestrator server``: its tokens, from the environment.

    Attributes:
        token: the token that may do everything (``ORCHESTRATOR_SERVER_TOKEN``).
        read_token: a token that may only look (``ORCHESTRATOR_SERVER_READ_TOKEN``).
    """

    token: str | None = None
    read_token: str | None = None

    @classmethod
    def from_env(cls) -> ServerAuth:
        """Read the tokens from the environment (empty counts as unset)."""
        return cls(
            token=os.environ.get(ENV_SERVER_TOKEN) or None,
            read_token=os.environ.get(ENV_SERVER_READ_TOKEN) or None,
        )

    @property
    def enabled(self) -> bool:
        """True when requests must carry a token (or a login)."""
        return self.token is not None

    def problem(self, host: str) -> str | None:
        """Why the server may not listen on ``host`` with these tokens, or None.

        Any address but a loopback one needs ``ORCHESTRATOR_SERVER_TOKEN``; a read
        token needs the full one too, and the two must differ.
        """
        if self.token is None and self.read_token is not None:
            return f"{ENV_SERVER_READ_TOKEN} is set without {ENV_SERVER_TOKEN}: set both"
        if self.token is not None and self.token == self.read_token:
            return f"{ENV_SERVER_READ_TOKEN} must differ from {ENV_SERVER_TOKEN}"
        if self.token is None and not is_loopback(host):
            return (
                f"refusing to serve on {host} without a token: set {ENV_SERVER_TOKEN} "
                "(or listen on 127.0.0.1)"
            )
        return None


def default_user() -> str:
    """``user@host``: who pauses a schedule when nobody says."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):  # no name for this uid (a bare container)
        user = f"uid {os.getuid()}"
    return f"{user}@{socket.gethostname()}"
