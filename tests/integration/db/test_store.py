"""The store itself (``orchestrator.db.Store``): migrations on brand-new databases,
the refusal of an unmigrated one, and its repositories as attributes."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import inspect

from orchestrator.db import Store
from orchestrator.db.flow_runs import FlowRuns
from orchestrator.db.flows import Flows
from orchestrator.db.logs import Logs
from orchestrator.db.recovery import Recovery
from orchestrator.db.runs import Runs
from orchestrator.db.schedules import Schedules
from orchestrator.db.task_runs import TaskRuns
from orchestrator.errors import ConfigurationError
from tests.integration.db.common import brand_new_database

TABLES = {"projects", "flows", "flow_runs", "task_runs", "state_events", "alembic_version"}


class TestStore:
    """``Store`` on SQLite and PostgreSQL."""

    def test_brand_new_database_upgrades_to_head(self, database_url: str, tmp_path: Path) -> None:
        with brand_new_database(database_url, tmp_path) as url:
            # Given a brand-new database
            fresh = Store(url)
            try:
                assert fresh.current_revision() is None

                # When it is upgraded
                reached = fresh.upgrade()

                # Then it is at the newest migration, with every table
                assert reached == fresh.head_revision()
                assert fresh.current_revision() == fresh.head_revision()
                assert set(inspect(fresh.engine).get_table_names()) >= TABLES
                fresh.check_migrated()  # no error

                # and upgrading again changes nothing
                assert fresh.upgrade() == fresh.head_revision()
            finally:
                fresh.close()

    def test_auto_migrate_upgrades_on_creation(self, database_url: str, tmp_path: Path) -> None:
        with brand_new_database(database_url, tmp_path) as url:
            fresh = Store(url, auto_migrate=True)
            try:
                assert fresh.current_revision() == fresh.head_revision()
            finally:
                fresh.close()

    def test_unmigrated_database_is_refused_with_the_fix(
        self, database_url: str, tmp_path: Path
    ) -> None:
        with brand_new_database(database_url, tmp_path) as url:
            # Given a database nobody migrated
            fresh = Store(url)
            try:
                # When the store checks its schema
                # Then it refuses, telling the user what to run
                with pytest.raises(ConfigurationError, match="orchestrator db upgrade") as err:
                    fresh.check_migrated()
                assert "is at migration none" in str(err.value)
                assert fresh.head_revision() in str(err.value)
            finally:
                fresh.close()

    def test_shared_test_database_is_at_head(self, store: Store) -> None:
        assert store.current_revision() == store.head_revision()
        store.check_migrated()

    def test_a_store_holds_one_repository_per_table_group(
        self, store: Store, database_url: str
    ) -> None:
        assert (store.url, store.is_sqlite) == (database_url, database_url.startswith("sqlite"))
        assert isinstance(store.flows, Flows)
        assert isinstance(store.flow_runs, FlowRuns)
        assert isinstance(store.task_runs, TaskRuns)
        assert isinstance(store.runs, Runs)
        assert isinstance(store.logs, Logs)
        assert isinstance(store.schedules, Schedules)
        assert isinstance(store.recovery, Recovery)

    def test_a_malformed_url_is_a_configuration_error(self) -> None:
        with pytest.raises(ConfigurationError, match="is not usable") as err:
            Store("nosuchdriver://user:secret@host/db")
        assert "secret" not in str(err.value)
