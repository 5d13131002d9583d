"""Pooled PostgreSQL connections (ORCHESTRATOR_TEST_DATABASE_URL): a connection the
server dropped while it sat in the pool is replaced before use, without the
round trip of a ping on every checkout."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from orchestrator import State
from orchestrator.db import Store
from tests.conftest import fresh_database


@pytest.fixture()
def postgres_url(tmp_path: Path) -> Iterator[str]:
    """A fresh PostgreSQL schema (skipped when ORCHESTRATOR_TEST_DATABASE_URL is unset)."""
    yield from fresh_database("postgres", tmp_path)


def test_a_pooled_connection_the_server_dropped_is_replaced_unseen(postgres_url: str) -> None:
    # Given a store whose one pooled connection is idle
    store = Store(postgres_url)
    try:
        pid = store._db.one(text("SELECT pg_backend_pid()"))
        assert pid is not None
        # When the server terminates that connection's backend (as a restart does)
        killer = create_engine(postgres_url)
        with killer.connect() as conn:
            assert conn.execute(text("SELECT pg_terminate_backend(:p)"), {"p": pid[0]}).scalar()
        killer.dispose()
        time.sleep(0.2)  # the server's goodbye reaches the pooled socket
        # Then the next read and write work, on a new connection
        again = store._db.one(text("SELECT pg_backend_pid()"))
        assert again is not None and again[0] != pid[0]
        assert store.flow_runs.set_state("no-such-run", State.RUNNING) is False
    finally:
        store.close()
