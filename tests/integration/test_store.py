"""The SQL store, on SQLite always and on PostgreSQL when
ORCHESTRATOR_TEST_DATABASE_URL is set: migrations, flow versioning, idempotent
flow run creation, compare-and-set state changes, and task run leases.

Each test works in its own project (the ``project`` fixture) of a shared, migrated
database (the ``database_url`` fixture); the migration tests make brand-new ones.
"""

from __future__ import annotations

import contextlib
import gc
import json
import os
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, func, inspect, select, text

from orchestrator import (
    ConfigurationError,
    Flow,
    FlowNotFound,
    Parameter,
    State,
    task,
)
from orchestrator.client import Client
from orchestrator.config import Settings
from orchestrator.models import FlowRun, FlowVersion
from orchestrator.store import Link, Mirror, Store, new_flow_run, task_run_id, utcnow
from tests.conftest import DATABASE_ENV

TABLES = {"projects", "flows", "flow_runs", "task_runs", "state_events", "alembic_version"}
IMPORT_REF = "tests.flows.x:flow"


@task
def extract() -> list[int]:
    return [1, 2, 3]


@task
def load(rows: list[int], limit: int = 10) -> int:
    return len(rows[:limit])


def build(name: str = "etl", limit: int = 10, extra_task: bool = False) -> Flow:
    """A small flow; ``limit`` and ``extra_task`` change its structure."""
    with Flow(name) as flow:
        load(extract(), limit=limit)
        if extra_task:
            extract()
    return flow


def register(store: Store, project: str, flow: Flow) -> FlowVersion:
    """Store a flow as ``Client.register`` does, without needing an import reference."""
    return store.register_flow(
        project_name=project,
        name=flow.name,
        structure_hash=flow.structural_hash(),
        structure=json.loads(json.dumps(flow.structure(), default=repr)),
        import_ref=IMPORT_REF,
        parameters=[p.declaration() for p in flow.parameters()],
        schedule=None,
        labels=list(flow.labels),
    )


@pytest.fixture(scope="module", autouse=True)
def _reap_undisposed_setup_store(database_url: str) -> None:
    """Collect, quietly, the Store conftest's ``database_url`` migrates with and never
    disposes: on PostgreSQL its pooled psycopg connection warns (an error here) when the
    garbage collector finds it, at a random moment, failing whichever test runs then."""
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
    s = Store(database_url)
    yield s
    s.engine.dispose()


@pytest.fixture()
def flow_version(store: Store, project: str) -> FlowVersion:
    return register(store, project, build())


@contextlib.contextmanager
def brand_new_database(database_url: str, tmp_path: Path) -> Iterator[str]:
    """An empty database of the same kind as ``database_url``, never migrated."""
    if database_url.startswith("sqlite"):
        yield f"sqlite:///{tmp_path / 'brand-new.db'}"
        return
    base = os.environ[DATABASE_ENV]
    schema = f"orch_fresh_{uuid.uuid4().hex[:10]}"
    engine = create_engine(base)
    with engine.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    sep = "&" if "?" in base else "?"
    try:
        yield f"{base}{sep}options=-csearch_path%3D{schema}"
    finally:
        with engine.begin() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        engine.dispose()


# --- migrations -------------------------------------------------------------------------------


def test_brand_new_database_upgrades_to_head(database_url: str, tmp_path: Path) -> None:
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
            fresh.engine.dispose()


def test_unmigrated_database_is_refused_with_the_fix(database_url: str, tmp_path: Path) -> None:
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
            fresh.engine.dispose()


def test_shared_test_database_is_at_head(store: Store) -> None:
    assert store.current_revision() == store.head_revision()
    store.check_migrated()


# --- versioning -------------------------------------------------------------------------------


def test_same_structure_registered_twice_stays_version_1(store: Store, project: str) -> None:
    # Given a flow registered once
    first = register(store, project, build())
    # When the same structure (built again) is registered again
    second = register(store, project, build())
    # Then both registrations are version 1, one and the same row
    assert (first.version, second.version) == (1, 1)
    assert second.id == first.id
    mine = [f for p, f in store.list_flows(include_archived=True) if p == project]
    assert [(f.name, f.version, f.archived) for f in mine] == [("etl", 1, False)]


def test_changed_structure_makes_version_2_and_archives_version_1(
    store: Store, project: str
) -> None:
    # Given version 1 of a flow
    v1 = register(store, project, build(limit=10))
    # When a flow with a different structure is registered under the same name
    v2 = register(store, project, build(limit=20))
    # Then it is version 2, version 1 is archived, and the newest is version 2
    assert (v1.version, v2.version) == (1, 2)
    mine = [f for p, f in store.list_flows(include_archived=True) if p == project]
    assert [(f.version, f.archived) for f in mine] == [(2, False), (1, True)]
    newest = store.newest_flow(project, "etl")
    assert (newest.id, newest.version) == (v2.id, 2)
    assert newest.structure_hash == build(limit=20).structural_hash()
    assert [f.version for p, f in store.list_flows() if p == project] == [2]


def test_going_back_to_an_old_structure_is_a_new_version(store: Store, project: str) -> None:
    register(store, project, build(limit=10))
    register(store, project, build(limit=20))
    v3 = register(store, project, build(limit=10))
    assert v3.version == 3
    assert store.newest_flow(project, "etl").id == v3.id


def test_flows_are_versioned_per_name_and_project(store: Store, project: str) -> None:
    other_project = f"{project}-other"
    assert register(store, project, build("etl")).version == 1
    assert register(store, project, build("report", extra_task=True)).version == 1
    assert register(store, other_project, build("etl", limit=3)).version == 1
    assert store.newest_flow(project, "etl").version == 1


def test_parameters_are_stored_with_the_version(store: Store, project: str) -> None:
    with Flow("parametrised") as flow:
        load(extract(), limit=Parameter("limit", default=5))
    stored = register(store, project, flow)
    assert store.newest_flow(project, "parametrised").parameters == [
        {"name": "limit", "default": 5, "required": False}
    ]
    assert stored.import_ref == IMPORT_REF


def test_client_register_versions_flows(
    database_url: str, redis_url: str, tmp_path: Path, project: str
) -> None:
    # Given a client on the test database and Redis
    client = Client(Settings(home=tmp_path, redis_url=redis_url, database_url=database_url))
    # When a flow is registered twice, then changed
    # Then the versions are 1, 1, 2
    assert client.register(build(), project, import_ref=IMPORT_REF) == 1
    assert client.register(build(), project, import_ref=IMPORT_REF) == 1
    assert client.register(build(extra_task=True), project, import_ref=IMPORT_REF) == 2
    assert client.backends.store.newest_flow(project, "etl").version == 2


def test_unknown_flow_names_the_projects_flows(store: Store, project: str) -> None:
    # Given a project with two flows
    register(store, project, build("etl"))
    register(store, project, build("report"))
    # When an unknown flow is looked up there
    # Then the error names the project's flows
    with pytest.raises(FlowNotFound) as err:
        store.newest_flow(project, "etl2")
    assert str(err.value) == f"no flow 'etl2' in project {project!r}; its flows: etl, report"


def test_unknown_project_names_the_projects(store: Store, project: str) -> None:
    register(store, project, build())
    with pytest.raises(FlowNotFound) as err:
        store.newest_flow(f"{project}-typo", "etl")
    message = str(err.value)
    assert message.startswith(f"no project '{project}-typo' (flow 'etl'); projects: ")
    assert project in message.split("projects: ", 1)[1].split(", ")


# --- flow runs ---------------------------------------------------------------------------------


def test_same_idempotency_key_returns_the_same_run(store: Store, flow_version: FlowVersion) -> None:
    key = f"parent/{uuid.uuid4()}/start/-1"
    # Given a run created with an idempotency key
    run, created = store.create_flow_run(flow_version, {"x": 1}, State.SUBMITTED, key)
    # When a run is created again with the same key (and other parameters)
    again, created_again = store.create_flow_run(flow_version, {"x": 2}, State.SUBMITTED, key)
    # Then the first run comes back, unchanged, and nothing new is created
    assert (created, created_again) == (True, False)
    assert again.id == run.id
    assert store.get_flow_run(run.id).parameters == {"x": 1}


def test_runs_without_a_key_are_distinct(store: Store, flow_version: FlowVersion) -> None:
    a, created_a = store.create_flow_run(flow_version, {}, State.SUBMITTED)
    b, created_b = store.create_flow_run(flow_version, {}, State.SUBMITTED)
    assert created_a and created_b
    assert a.id != b.id


def test_concurrent_creation_with_one_key_makes_one_run(
    store: Store, flow_version: FlowVersion
) -> None:
    # Given 8 threads about to create a run with the same idempotency key
    key = f"concurrent/{uuid.uuid4()}"
    barrier = threading.Barrier(8)
    answers: list[tuple[str, bool]] = []
    errors: list[BaseException] = []

    def create() -> None:
        try:
            barrier.wait(10)
            run, created = store.create_flow_run(flow_version, {}, State.SUBMITTED, key)
            answers.append((run.id, created))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=create) for _ in range(8)]
    # When they all create at once
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)

    # Then every thread got the same run, exactly one created it, and one row exists
    assert errors == []
    assert len(answers) == 8
    assert len({run_id for run_id, _ in answers}) == 1
    assert sum(created for _, created in answers) == 1
    with store.reading() as s:
        rows = s.scalar(
            select(func.count()).select_from(FlowRun).where(FlowRun.idempotency_key == key)
        )
    assert rows == 1


def test_state_compare_and_set(store: Store, flow_version: FlowVersion) -> None:
    run, _ = store.create_flow_run(flow_version, {}, State.SUBMITTED)
    # Given a running run
    assert store.set_flow_run_state(run.id, State.RUNNING) is True
    # When it is set to Success twice (a duplicate message)
    first = store.set_flow_run_state(run.id, State.SUCCESS, "all reference tasks succeeded")
    second = store.set_flow_run_state(run.id, State.SUCCESS, "a duplicate")
    # Then only the first changes it
    assert (first, second) == (True, False)
    stored = store.get_flow_run(run.id)
    assert (stored.state, stored.message) == ("Success", "all reference tasks succeeded")
    assert stored.start_time is not None and stored.end_time is not None
    assert [e.state for e in store.history(run.id)] == ["Submitted", "Running", "Success"]


def test_illegal_transition_is_refused(store: Store, flow_version: FlowVersion) -> None:
    # Given a finished run
    run, _ = store.create_flow_run(flow_version, {}, State.SUBMITTED)
    store.set_flow_run_state(run.id, State.RUNNING)
    store.set_flow_run_state(run.id, State.SUCCESS)
    # When something tries to move it back to Running, or fail it
    # Then nothing changes
    assert store.set_flow_run_state(run.id, State.RUNNING) is False
    assert store.set_flow_run_state(run.id, State.FAILED) is False
    assert store.get_flow_run(run.id).state == "Success"
    assert [e.state for e in store.history(run.id)] == ["Submitted", "Running", "Success"]


def test_expected_states_narrow_the_compare(store: Store, flow_version: FlowVersion) -> None:
    run, _ = store.create_flow_run(flow_version, {}, State.SUBMITTED)
    assert store.set_flow_run_state(run.id, State.RUNNING, expected=[State.QUEUED]) is False
    assert store.get_flow_run(run.id).state == "Submitted"
    assert store.set_flow_run_state(run.id, State.RUNNING, expected=[State.SUBMITTED]) is True


# --- task run leases ---------------------------------------------------------------------------


@pytest.fixture()
def task_run(store: Store, flow_version: FlowVersion) -> tuple[str, str]:
    """A Pending task run "load" in a new flow run: (flow run id, task run id)."""
    run, _ = store.create_flow_run(flow_version, {}, State.RUNNING)
    store.create_task_runs(run.id, [("extract", "extract"), ("load", "load")])
    return run.id, task_run_id(run.id, "load")


def test_claim_lease_and_takeover_after_expiry(store: Store, task_run: tuple[str, str]) -> None:
    flow_run_id, tr_id = task_run
    # Given a pending task run claimed by worker A with a short lease
    first = store.claim_task_run(tr_id, flow_run_id, "owner-a", lease_seconds=0.2, worker="a")
    assert first.claimed is True
    assert (first.task_run.state, first.task_run.attempts) == ("Running", 1)
    assert first.task_run.lease_owner == "owner-a"

    # When worker B claims it while the lease is live
    second = store.claim_task_run(tr_id, flow_run_id, "owner-b", lease_seconds=0.2, worker="b")
    # Then B is refused and A keeps it
    assert second.claimed is False
    assert second.task_run.lease_owner == "owner-a"
    assert second.task_run.attempts == 1

    # When the lease expires (A died) and B claims again
    time.sleep(0.4)
    third = store.claim_task_run(tr_id, flow_run_id, "owner-b", lease_seconds=30, worker="b")
    # Then B takes it over, as a new attempt
    assert third.claimed is True
    assert third.task_run.lease_owner == "owner-b"
    assert third.task_run.attempts == 2


def test_finish_with_a_wrong_owner_changes_nothing(store: Store, task_run: tuple[str, str]) -> None:
    flow_run_id, tr_id = task_run
    # Given a task run held by B
    assert store.claim_task_run(tr_id, flow_run_id, "owner-b", 30, "b").claimed
    # When A (whose lease was lost) tries to record its result
    done = store.finish_task_run(
        tr_id, flow_run_id, State.SUCCESS, result={"rows": 1}, owner="owner-a"
    )
    # Then nothing changed
    assert done is False
    stored = store.get_task_run(tr_id)
    assert stored is not None
    assert (stored.state, stored.result, stored.lease_owner) == ("Running", None, "owner-b")
    # and B records its own
    assert store.finish_task_run(
        tr_id, flow_run_id, State.SUCCESS, result={"rows": 3}, owner="owner-b"
    )
    stored = store.get_task_run(tr_id)
    assert stored is not None
    assert (stored.state, stored.result, stored.lease_owner) == ("Success", {"rows": 3}, None)


def test_finished_task_run_cannot_be_claimed_again(store: Store, task_run: tuple[str, str]) -> None:
    flow_run_id, tr_id = task_run
    assert store.claim_task_run(tr_id, flow_run_id, "owner-a", 30, "a").claimed
    assert store.finish_task_run(tr_id, flow_run_id, State.FAILED, "boom", owner="owner-a")
    again = store.claim_task_run(tr_id, flow_run_id, "owner-b", 30, "b")
    assert again.claimed is False
    assert (again.task_run.state, again.task_run.message) == ("Failed", "boom")


def test_renew_lease_only_by_its_owner(store: Store, task_run: tuple[str, str]) -> None:
    flow_run_id, tr_id = task_run
    assert store.claim_task_run(tr_id, flow_run_id, "owner-a", 0.2, "a").claimed
    assert store.renew_lease(tr_id, "owner-b", 30) is False
    assert store.renew_lease(tr_id, "owner-a", 30) is True
    time.sleep(0.4)
    # the renewed lease is still live, so B cannot take over
    assert store.claim_task_run(tr_id, flow_run_id, "owner-b", 30, "b").claimed is False


def test_task_runs_are_created_once(store: Store, task_run: tuple[str, str]) -> None:
    flow_run_id, _ = task_run
    store.create_task_runs(flow_run_id, [("extract", "extract"), ("load", "load")])
    runs: list[Any] = store.task_runs(flow_run_id)
    assert sorted((r.slug, r.state, r.attempts) for r in runs) == [
        ("extract", "Pending", 0),
        ("load", "Pending", 0),
    ]


def test_a_child_starts_with_its_parents_link_and_ends_with_the_mirror(
    store: Store, task_run: tuple[str, str], flow_version: FlowVersion
) -> None:
    parent_id, parent_tr = task_run
    # Given a parent task run that started a child run and waits for it
    store.claim_task_run(parent_tr, parent_id, "parent", lease_seconds=60, worker="w")
    child, _ = store.create_flow_run(
        flow_version, {}, State.SUBMITTED, parent_flow_run_id=parent_id
    )
    link = Link(parent_tr, parent_id, "parent", f"waiting for {child.id}")
    # When the child starts: its task runs, its claim and the parent's link at once
    claim = store.begin_and_claim(
        child.id, [("extract", "extract")], {}, [State.SUBMITTED], "extract", "child", 60, "w",
        link,
    )  # fmt: skip
    assert claim is not None and claim.claimed
    waiting = store.get_task_run(parent_tr)
    assert waiting is not None
    assert (waiting.state, waiting.child_flow_run_id) == ("Running", child.id)
    # ... and a second start finds it started, and writes nothing
    assert store.begin_and_claim(
        child.id, [("extract", "extract")], {}, [State.SUBMITTED], "extract", "other", 60, "w",
        Link(parent_tr, parent_id, "parent", "second"),
    ) is None  # fmt: skip
    assert (store.get_task_run(parent_tr) or waiting).message == f"waiting for {child.id}"
    # When its task ends the child, the parent takes the child's state with it
    mirror = Mirror(parent_tr, parent_id, State.SUCCESS, "child ended", {"flow_run_id": child.id})
    done = store.finish_task_and_flow_run(
        task_run_id(child.id, "extract"), child.id, State.SUCCESS, None, [1], "child",
        State.SUCCESS, "all reference tasks succeeded", mirror,
    )  # fmt: skip
    assert done == (True, True, True)
    parent_task = store.get_task_run(parent_tr)
    assert parent_task is not None
    assert (parent_task.state, parent_task.result) == ("Success", {"flow_run_id": child.id})
    assert store.get_flow_run(child.id).state == "Success"
    events = [(e.task_run_id, e.state) for e in store.history(parent_id)]
    assert events[-2:] == [(parent_tr, "Running"), (parent_tr, "Success")]


def test_a_new_child_is_stored_started_and_linked_in_one_transaction(
    store: Store, task_run: tuple[str, str], flow_version: FlowVersion
) -> None:
    parent_id, parent_tr = task_run
    # Given a parent task run that built a child run (not stored yet) to wait for
    store.claim_task_run(parent_tr, parent_id, "parent", lease_seconds=60, worker="w")
    key = f"{parent_id}:start:-1"
    child = new_flow_run(flow_version, {"x": 1}, State.SUBMITTED, key, parent_flow_run_id=parent_id)
    link = Link(parent_tr, parent_id, "parent", f"waiting for {child.id}")
    # When the worker starts it
    claim = store.begin_and_claim(
        child.id, [("extract", "extract")], {}, [State.SUBMITTED], "extract", "child", 60, "w",
        link, create=child,
    )  # fmt: skip
    # Then the child is stored Running, its task claimed, the parent linked to it
    assert claim is not None and claim.claimed
    assert (claim.flow_run.id, claim.flow_run.state) == (child.id, "Running")
    stored = store.get_flow_run(child.id)
    assert (stored.state, stored.parameters, stored.idempotency_key) == ("Running", {"x": 1}, key)
    assert stored.start_time is not None
    assert [e.state for e in store.history(child.id) if e.task_run_id is None] == [
        "Submitted", "Running"
    ]  # fmt: skip
    waiting = store.get_task_run(parent_tr)
    assert waiting is not None
    assert (waiting.state, waiting.child_flow_run_id) == ("Running", child.id)
    # ... and another attempt building the same child (same key) stores nothing
    again = new_flow_run(flow_version, {"x": 2}, State.SUBMITTED, key, parent_flow_run_id=parent_id)
    assert again.id == child.id
    assert store.begin_and_claim(
        again.id, [("extract", "extract")], {}, [State.SUBMITTED], "extract", "other", 60, "w",
        Link(parent_tr, parent_id, "parent", "second"), create=again,
    ) is None  # fmt: skip
    assert store.get_flow_run(child.id).parameters == {"x": 1}
    assert (store.get_task_run(parent_tr) or waiting).message == f"waiting for {child.id}"
    found, created = store.insert_flow_run(again)
    assert (found.id, found.state, created) == (child.id, "Running", False)


@pytest.mark.parametrize(
    ("child_state", "parent_stale"),
    [(State.RUNNING, False), (State.SUBMITTED, True), (State.QUEUED, True), (State.SUCCESS, True)],
)
def test_a_parent_waiting_on_a_child_is_stale_unless_the_child_runs(
    store: Store, flow_version: FlowVersion, child_state: State, parent_stale: bool
) -> None:
    # Given a parent whose task "load" waits on a child run, and no live lease anywhere
    parent, _ = store.create_flow_run(flow_version, {}, State.RUNNING)
    store.create_task_runs(parent.id, [("load", "load")])
    tr_id = task_run_id(parent.id, "load")
    child, _ = store.create_flow_run(
        flow_version, {}, child_state, parent_flow_run_id=parent.id, parent_task_run_id=tr_id
    )
    store.finish_task_run(tr_id, parent.id, State.RUNNING, child_flow_run_id=child.id)
    # When the sweeper looks an hour later
    later = utcnow() + timedelta(hours=1)
    stale = set(store.stale_running_runs(later, later, limit=100_000))
    # Then a Running child is watched on its own; one that never started (its start
    # was lost with the parent's node) or has ended makes the parent stale
    assert (parent.id in stale) is parent_stale
    assert (child.id in stale) is (child_state is State.RUNNING)
