"""The flows repository (``store.flows``): versions made only by a changed
structure, the newest version by name, and errors that say what exists."""

from __future__ import annotations

from pathlib import Path

import pytest

from orchestrator.client import Client
from orchestrator.config import Settings
from orchestrator.db import Store
from orchestrator.errors import FlowNotFound
from orchestrator.flow import Flow
from orchestrator.task import Parameter
from tests.integration.db.common import IMPORT_REF, build, extract, load, register


class TestFlows:
    """``store.flows`` on SQLite and PostgreSQL."""

    def test_same_structure_registered_twice_stays_version_1(
        self, store: Store, project: str
    ) -> None:
        # Given a flow registered once
        first = register(store, project, build())
        # When the same structure (built again) is registered again
        second = register(store, project, build())
        # Then both registrations are version 1, one and the same row
        assert (first.version, second.version) == (1, 1)
        assert second.id == first.id
        mine = [f for p, f in store.flows.list(include_archived=True) if p == project]
        assert [(f.name, f.version, f.archived) for f in mine] == [("etl", 1, False)]

    def test_changed_structure_makes_version_2_and_archives_version_1(
        self, store: Store, project: str
    ) -> None:
        # Given version 1 of a flow
        v1 = register(store, project, build(limit=10))
        # When a flow with a different structure is registered under the same name
        v2 = register(store, project, build(limit=20))
        # Then it is version 2, version 1 is archived, and the newest is version 2
        assert (v1.version, v2.version) == (1, 2)
        mine = [f for p, f in store.flows.list(include_archived=True) if p == project]
        assert [(f.version, f.archived) for f in mine] == [(2, False), (1, True)]
        newest = store.flows.newest(project, "etl")
        assert (newest.id, newest.version) == (v2.id, 2)
        assert newest.structure_hash == build(limit=20).structural_hash()
        assert [f.version for p, f in store.flows.list() if p == project] == [2]

    def test_going_back_to_an_old_structure_is_a_new_version(
        self, store: Store, project: str
    ) -> None:
        register(store, project, build(limit=10))
        register(store, project, build(limit=20))
        v3 = register(store, project, build(limit=10))
        assert v3.version == 3
        assert store.flows.newest(project, "etl").id == v3.id

    def test_flows_are_versioned_per_name_and_project(self, store: Store, project: str) -> None:
        other_project = f"{project}-other"
        assert register(store, project, build("etl")).version == 1
        assert register(store, project, build("report", extra_task=True)).version == 1
        assert register(store, other_project, build("etl", limit=3)).version == 1
        assert store.flows.newest(project, "etl").version == 1

    def test_parameters_are_stored_with_the_version(self, store: Store, project: str) -> None:
        with Flow("parametrised") as flow:
            load(extract(), limit=Parameter("limit", default=5))
        stored = register(store, project, flow)
        assert store.flows.newest(project, "parametrised").parameters == [
            {"name": "limit", "default": 5, "required": False}
        ]
        assert stored.import_ref == IMPORT_REF

    def test_versions_and_projects_by_id(self, store: Store, project: str) -> None:
        v1 = register(store, project, build(limit=1))
        v2 = register(store, project, build(limit=2))
        assert store.flows.get(v1.id).version == 1
        assert store.flows.project_name(v2.project_id) == project
        assert store.flows.project_name(-1) == "?"
        found = store.flows.by_ids([v1.id, v2.id, "no-such-flow"])
        assert {k: f.version for k, f in found.items()} == {v1.id: 1, v2.id: 2}
        assert store.flows.by_ids([]) == {}
        with pytest.raises(FlowNotFound, match="no flow version 'no-such-flow'"):
            store.flows.get("no-such-flow")

    def test_client_register_versions_flows(
        self, database_url: str, redis_url: str, tmp_path: Path, project: str
    ) -> None:
        # Given a client on the test database and Redis
        client = Client(Settings(home=tmp_path, redis_url=redis_url, database_url=database_url))
        # When a flow is registered twice, then changed
        # Then the versions are 1, 1, 2
        assert client.register(build(), project, import_ref=IMPORT_REF) == 1
        assert client.register(build(), project, import_ref=IMPORT_REF) == 1
        assert client.register(build(extra_task=True), project, import_ref=IMPORT_REF) == 2
        assert client.backends.store.flows.newest(project, "etl").version == 2

    def test_unknown_flow_names_the_projects_flows(self, store: Store, project: str) -> None:
        # Given a project with two flows
        register(store, project, build("etl"))
        register(store, project, build("report"))
        # When an unknown flow is looked up there
        # Then the error names the project's flows
        with pytest.raises(FlowNotFound) as err:
            store.flows.newest(project, "etl2")
        assert str(err.value) == f"no flow 'etl2' in project {project!r}; its flows: etl, report"

    def test_unknown_project_names_the_projects(self, store: Store, project: str) -> None:
        register(store, project, build())
        with pytest.raises(FlowNotFound) as err:
            store.flows.newest(f"{project}-typo", "etl")
        message = str(err.value)
        assert message.startswith(f"no project '{project}-typo' (flow 'etl'); projects: ")
        assert project in message.split("projects: ", 1)[1].split(", ")
