"""Servers a test starts for itself on a free loopback port: a Redis that requires a
password, and a PostgreSQL that checks passwords (``initdb --auth=scram-sha-256``,
unlike the shared trust-auth server). Each is checked to be up, and to refuse a
client without the password, before a test gets it."""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import redis

#: The packages that hold the PostgreSQL server binaries (initdb, postgres, pg_ctl).
POSTGRES_PACKAGES = "postgresql (Debian/Ubuntu: apt-get install postgresql)"


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def redis_requiring_password(folder: Path, password: str) -> Iterator[int]:
    """A redis-server with ``--requirepass password``: yields its port once it
    answers a PING with the password and refuses one without it."""
    port = free_port()
    proc = subprocess.Popen(
        ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--requirepass", password,
         "--save", "", "--appendonly", "no", "--dir", str(folder)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        authed = redis.Redis(port=port, password=password, socket_connect_timeout=0.5)
        deadline = time.monotonic() + 15
        while True:
            try:
                assert authed.ping()
                break
            except redis.ConnectionError:
                assert proc.poll() is None, f"redis-server exited with {proc.returncode}"
                assert time.monotonic() < deadline, f"redis-server on port {port} did not start"
                time.sleep(0.05)
        # it is up, and it really wants the password
        with pytest.raises(redis.AuthenticationError):
            redis.Redis(port=port, socket_connect_timeout=2).ping()
        yield port
    finally:
        proc.terminate()
        proc.wait(10)


@dataclass(frozen=True)
class PostgresServer:
    """A PostgreSQL server this test session started, with one role and database."""

    host: str
    port: int
    user: str
    password: str
    database: str

    def url(self, password: str | None = None) -> str:
        """The SQLAlchemy URL of its database, with ``password`` (default: the right one)."""
        secret = self.password if password is None else password
        return f"postgresql+psycopg://{self.user}:{secret}@{self.host}:{self.port}/{self.database}"


def _postgres_bin() -> Path:
    """The newest PostgreSQL server binaries' folder; fails naming what to install."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if not found and shutil.which("initdb") and shutil.which("pg_ctl"):
        return Path(shutil.which("initdb") or "").parent
    if not found:
        pytest.fail(
            "no PostgreSQL server binaries (initdb, pg_ctl) under /usr/lib/postgresql/*/bin "
            f"or on PATH: install {POSTGRES_PACKAGES}"
        )
    return Path(found[-1]).parent


def _as_postgres(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """Run a server binary as the ``postgres`` user (initdb refuses root)."""
    command = list(args)
    if os.geteuid() == 0:
        command = ["runuser", "-u", "postgres", "--", *command]
    result = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
    assert result.returncode == 0, f"{' '.join(command)} failed:\n{result.stdout}{result.stderr}"
    return result


@contextlib.contextmanager
def postgres_checking_passwords(
    user: str, password: str, database: str
) -> Iterator[PostgresServer]:
    """Start a PostgreSQL that authenticates every connection by scram-sha-256
    password (over TCP and its socket), with role ``user`` owning ``database``;
    yields it once the right password connects and a wrong one is refused."""
    import psycopg

    bin_dir = _postgres_bin()
    folder = Path(tempfile.mkdtemp(prefix="orch-pg-"))
    if os.geteuid() == 0:
        owner = pwd.getpwnam("postgres")
        os.chown(folder, owner.pw_uid, owner.pw_gid)
    data, admin_secret = folder / "data", "admin-" + os.urandom(8).hex()
    pwfile = folder / "pwfile"
    pwfile.write_text(admin_secret + "\n")
    if os.geteuid() == 0:
        os.chown(pwfile, owner.pw_uid, owner.pw_gid)
    _as_postgres(str(bin_dir / "initdb"), "-D", str(data), "--auth=scram-sha-256",
                 "-U", "postgres", f"--pwfile={pwfile}", "--no-sync")  # fmt: skip
    port = free_port()
    options = f"-c listen_addresses=127.0.0.1 -p {port} -k {folder} -c fsync=off"
    _as_postgres(str(bin_dir / "pg_ctl"), "-D", str(data), "-o", options,
                 "-l", str(folder / "server.log"), "-w", "-t", "60", "start")  # fmt: skip
    try:
        admin = f"host=127.0.0.1 port={port} user=postgres password={admin_secret} dbname=postgres"
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f"CREATE ROLE \"{user}\" LOGIN PASSWORD '{password}'")
            conn.execute(f'CREATE DATABASE "{database}" OWNER "{user}"')
        server = PostgresServer("127.0.0.1", port, user, password, database)
        # the right password connects, a wrong one (and none) is refused
        with psycopg.connect(server.url().replace("+psycopg", "")) as conn:
            assert conn.execute("SELECT current_user").fetchone() == (user,)
        for wrong in (f"user={user} password=not-it", f"user={user}"):
            with pytest.raises(psycopg.OperationalError, match="password"):
                psycopg.connect(f"host=127.0.0.1 port={port} dbname={database} {wrong}").close()
        yield server
    finally:
        _as_postgres(str(bin_dir / "pg_ctl"), "-D", str(data), "-m", "fast", "-w", "stop")
        shutil.rmtree(folder, ignore_errors=True)
