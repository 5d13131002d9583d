"""PostgreSQL connections lost mid-run: every backend connection of the test's
schema (its ``application_name``, which the conftest sets; no other session's) is
terminated with ``pg_terminate_backend``, three times while Flow-of-Flows runs are
under way, with no beat. Every run finishes with its four children, nothing is
recorded twice, and every worker stays up."""

from __future__ import annotations

import time

import pytest
from sqlalchemy import create_engine, text

from orchestrator.backends import backends
from tests.conftest import Fleet
from tests.faults.checks import busy_pool_process, check_parents, wait_all
from tests.flows import recovery


def _terminate(database_url: str) -> int:
    """Terminate every connection of this schema's application name; how many."""
    app_name = database_url.rsplit("application_name=", 1)[1].split("&")[0]
    engine = create_engine(database_url.split("?", 1)[0])
    try:
        with engine.connect() as conn:
            ended = conn.execute(
                text(
                    "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                    "WHERE application_name = :app AND pid <> pg_backend_pid()"
                ),
                {"app": app_name},
            ).scalar_one()
            conn.commit()
    finally:
        engine.dispose()
    return int(ended)


@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
def test_postgres_connections_terminated_mid_run(fresh_fleet: Fleet) -> None:
    # Given three workers, no beat, and 12 Flow-of-Flows runs under way on PostgreSQL
    fleet = fresh_fleet
    for flow in recovery.ALL:
        fleet.client.register(flow, recovery.PROJECT)
    for _ in range(3):
        fleet.start_worker(wait=False)
    for w in fleet.workers:
        w.wait_ready(backends(fleet.settings).app)
    ids = [fleet.client.create_flow_run("rec-parent", recovery.PROJECT) for _ in range(12)]
    # When every connection of the fleet is terminated, three times, while tasks run
    ended = []
    for _ in range(3):
        busy_pool_process(fleet)
        ended.append(_terminate(fleet.settings.resolved_database_url()))
        time.sleep(1.5)
    print(f"\nconnections terminated: {ended}")
    assert sum(ended) > 0
    # Then every run finishes with its four children, nothing finished twice
    runs = wait_all(fleet, ids, 300)
    assert check_parents(fleet, runs) == 0
    # and no worker died of it
    dead = [w.hostname for w in fleet.workers if w.proc.poll() is not None]
    assert not dead, f"workers exited: {dead}\n{fleet.logs()}"


pytestmark = pytest.mark.timeout(600)
