"""Fixtures of the database contract tests. Every test class runs on SQLite, and on
PostgreSQL when ORCHESTRATOR_TEST_DATABASE_URL is set (set and unreachable fails):
the ``store`` fixture is parametrised through conftest's ``database_url``.

Each test works in its own project (the ``project`` fixture) of a shared, migrated
database; the migration tests make brand-new ones."""

from __future__ import annotations

import gc
import sys
from collections.abc import Iterator
from typing import Any

import pytest

from orchestrator.db import Store
from orchestrator.db.models import FlowVersion
from orchestrator.ids import task_run_id
from orchestrator.states import State
from tests.integration.db.common import build, new_run, register


@pytest.fixture(scope="module", autouse=True)
def _reap_undisposed_setup_store(database_url: str) -> None:
    """Collect, quietly, a Store left undisposed by setup code: on PostgreSQL its
    pooled psycopg connection warns (an error here) when the garbage collector finds
    it, at a random moment, failing whichever test runs then."""
    previous = sys.unraisablehook

    def hook(unraisable: Any) -> None:
        if not (
            isinstance(unraisable.exc_value, ResourceWarning)
            and "psycopg.Connection" in str(unraisable.exc_value)
        ):
            previous(unraisable)

    sys.unraisablehook = hook
    try:
        gc.collect()
    finally:
        sys.unraisablehook = previous


@pytest.fixture()
def store(database_url: str) -> Iterator[Store]:
    """A store on the shared, migrated database (SQLite, then PostgreSQL)."""
    s = Store(database_url)
    yield s
    s.close()


@pytest.fixture()
def flow_version(store: Store, project: str) -> FlowVersion:
    """Version 1 of the small flow "etl" in this test's project."""
    return register(store, project, build())


@pytest.fixture()
def task_run(store: Store, flow_version: FlowVersion) -> tuple[str, str]:
    """A Pending task run "load" in a new flow run: (flow run id, task run id)."""
    run, _ = store.flow_runs.insert(new_run(flow_version, state=State.RUNNING))
    store.task_runs.create(run.id, [("extract", "extract"), ("load", "load")])
    return run.id, task_run_id(run.id, "load")
