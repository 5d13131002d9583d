"""The flow runs repository (``store.flow_runs``): idempotent creation, compare-and-set
state changes along the transition table, listings with their flows and children."""

from __future__ import annotations

import contextlib
import threading
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import event, func, select

from orchestrator.clock import aware
from orchestrator.db import FlowRunSummary, Store
from orchestrator.db.models import FlowRun, FlowVersion
from orchestrator.states import State
from tests.integration.db.common import build, new_run, register

#: statements that only begin or end a transaction (SQLite's BEGIN is sent by us)
TRANSACTION = {"BEGIN", "COMMIT", "ROLLBACK"}


@contextlib.contextmanager
def counted(store: Store) -> Iterator[list[str]]:
    """The SQL statements the store sends while the block runs."""
    statements: list[str] = []

    def record(*args: Any) -> None:
        statements.append(str(args[2]))

    event.listen(store.engine, "before_cursor_execute", record)
    try:
        yield statements
    finally:
        event.remove(store.engine, "before_cursor_execute", record)


class TestFlowRuns:
    """``store.flow_runs`` on SQLite and PostgreSQL."""

    def test_same_idempotency_key_returns_the_same_run(
        self, store: Store, flow_version: FlowVersion
    ) -> None:
        key = f"parent/{uuid.uuid4()}/start/-1"
        # Given a run created with an idempotency key
        run, created = store.flow_runs.insert(new_run(flow_version, {"x": 1}, idempotency_key=key))
        # When a run is created again with the same key (and other parameters)
        again, created_again = store.flow_runs.insert(
            new_run(flow_version, {"x": 2}, idempotency_key=key)
        )
        # Then the first run comes back, unchanged, and nothing new is created
        assert (created, created_again) == (True, False)
        assert again.id == run.id
        assert store.flow_runs.get(run.id).parameters == {"x": 1}
        assert store.flow_runs.by_key(key) is not None

    def test_runs_without_a_key_are_distinct(self, store: Store, flow_version: FlowVersion) -> None:
        a, created_a = store.flow_runs.insert(new_run(flow_version))
        b, created_b = store.flow_runs.insert(new_run(flow_version))
        assert created_a and created_b
        assert a.id != b.id

    def test_concurrent_creation_with_one_key_makes_one_run(
        self, store: Store, flow_version: FlowVersion
    ) -> None:
        # Given 8 threads about to create a run with the same idempotency key
        key = f"concurrent/{uuid.uuid4()}"
        barrier = threading.Barrier(8)
        answers: list[tuple[str, bool]] = []
        errors: list[BaseException] = []

        def create() -> None:
            try:
                barrier.wait(10)
                run, created = store.flow_runs.insert(new_run(flow_version, idempotency_key=key))
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

    def test_a_final_run_is_stored_final_with_its_message(
        self, store: Store, flow_version: FlowVersion
    ) -> None:
        # Given a skipped schedule slot, recorded final from the start
        key = f"slot/{uuid.uuid4()}"
        new = new_run(flow_version, state=State.SKIPPED, idempotency_key=key)
        run, created = store.flow_runs.insert_final(new, "missed while paused")
        # Then it is stored Skipped, ended, with its message, and once only
        assert created is True
        stored = store.flow_runs.get(run.id)
        assert (stored.state, stored.message) == ("Skipped", "missed while paused")
        assert stored.end_time is not None
        again, created_again = store.flow_runs.insert_final(new, "another beat")
        assert (again.id, created_again, again.message) == (run.id, False, "missed while paused")
        # and a run that is not final is refused
        with pytest.raises(ValueError, match="not a final state"):
            store.flow_runs.insert_final(new_run(flow_version), "no")

    def test_state_compare_and_set(self, store: Store, flow_version: FlowVersion) -> None:
        run, _ = store.flow_runs.insert(new_run(flow_version))
        # Given a running run
        assert store.flow_runs.set_state(run.id, State.RUNNING) is True
        # When it is set to Success twice (a duplicate message)
        first = store.flow_runs.set_state(run.id, State.SUCCESS, "all reference tasks succeeded")
        second = store.flow_runs.set_state(run.id, State.SUCCESS, "a duplicate")
        # Then only the first changes it
        assert (first, second) == (True, False)
        stored = store.flow_runs.get(run.id)
        assert (stored.state, stored.message) == ("Success", "all reference tasks succeeded")
        assert stored.start_time is not None and stored.end_time is not None
        assert [e.state for e in store.flow_runs.history(run.id)] == [
            "Submitted",
            "Running",
            "Success",
        ]

    def test_illegal_transition_is_refused(self, store: Store, flow_version: FlowVersion) -> None:
        # Given a finished run
        run, _ = store.flow_runs.insert(new_run(flow_version))
        store.flow_runs.set_state(run.id, State.RUNNING)
        store.flow_runs.set_state(run.id, State.SUCCESS)
        # When something tries to move it back to Running, or fail it
        # Then nothing changes
        assert store.flow_runs.set_state(run.id, State.RUNNING) is False
        assert store.flow_runs.set_state(run.id, State.FAILED) is False
        assert store.flow_runs.get(run.id).state == "Success"
        assert [e.state for e in store.flow_runs.history(run.id)] == [
            "Submitted",
            "Running",
            "Success",
        ]

    def test_from_states_narrow_the_compare(self, store: Store, flow_version: FlowVersion) -> None:
        run, _ = store.flow_runs.insert(new_run(flow_version))
        assert store.flow_runs.set_state(run.id, State.RUNNING, from_states=[State.QUEUED]) is False
        assert store.flow_runs.get(run.id).state == "Submitted"
        assert (
            store.flow_runs.set_state(run.id, State.RUNNING, from_states=[State.SUBMITTED]) is True
        )

    @pytest.mark.parametrize(
        ("new", "from_states", "named"),
        [
            (State.RUNNING, [State.SUCCESS], "Success -> Running"),
            (State.SCHEDULED, [State.QUEUED], "Queued -> Scheduled"),
            (State.RUNNING, [State.SUBMITTED, State.RUNNING], "Running -> Running"),
        ],
    )
    def test_from_states_outside_the_transition_table_are_an_error(
        self,
        store: Store,
        flow_version: FlowVersion,
        new: State,
        from_states: list[State],
        named: str,
    ) -> None:
        # Given a submitted run
        run, _ = store.flow_runs.insert(new_run(flow_version))
        # When a caller asks for a move the transition table does not allow
        # Then it is an error naming the transition, and nothing is written
        with pytest.raises(ValueError, match=f"illegal transition {named}"):
            store.flow_runs.set_state(run.id, new, "bypass", from_states=from_states)
        assert store.flow_runs.get(run.id).state == "Submitted"
        assert [e.state for e in store.flow_runs.history(run.id)] == ["Submitted"]

    def test_touch_moves_the_updated_time_only(
        self, store: Store, flow_version: FlowVersion
    ) -> None:
        run, _ = store.flow_runs.insert(new_run(flow_version))
        store.flow_runs.touch(run.id)
        stored = store.flow_runs.get(run.id)
        assert stored.state == "Submitted"
        assert (aware(stored.updated) or run.updated) >= run.updated

    def test_children_are_the_runs_a_run_started(
        self, store: Store, flow_version: FlowVersion
    ) -> None:
        parent, _ = store.flow_runs.insert(new_run(flow_version, state=State.RUNNING))
        a, _ = store.flow_runs.insert(new_run(flow_version, parent_flow_run_id=parent.id))
        b, _ = store.flow_runs.insert(new_run(flow_version, parent_flow_run_id=parent.id))
        assert [c.id for c in store.flow_runs.children(parent.id)] == [a.id, b.id]
        assert store.flow_runs.children(a.id) == []

    def test_list_gives_the_newest_runs_with_their_flow_names(
        self, store: Store, flow_version: FlowVersion
    ) -> None:
        first, _ = store.flow_runs.insert(new_run(flow_version))
        second, _ = store.flow_runs.insert(new_run(flow_version, state=State.QUEUED))
        newest = store.flow_runs.list(2)
        assert [(r.id, name) for r, name in newest] == [(second.id, "etl"), (first.id, "etl")]
        queued = store.flow_runs.list(1, State.QUEUED)
        assert [r.id for r, _ in queued] == [second.id]


class TestFlowRunSummaries:
    """``store.flow_runs.list_summaries`` on SQLite and PostgreSQL."""

    @pytest.fixture()
    def tree(self, store: Store, project: str) -> tuple[FlowVersion, str, list[str], str]:
        """Version 2 of a flow; a parent run with two children; then a lone run."""
        register(store, project, build("tree", limit=1))
        flow = register(store, project, build("tree", limit=2))
        parent, _ = store.flow_runs.insert(new_run(flow, state=State.RUNNING))
        kids = [
            store.flow_runs.insert(new_run(flow, parent_flow_run_id=parent.id))[0].id
            for _ in range(2)
        ]
        lone, _ = store.flow_runs.insert(new_run(flow))
        return flow, parent.id, kids, lone.id

    def test_summaries_carry_flow_project_version_and_children(
        self, store: Store, project: str, tree: tuple[FlowVersion, str, list[str], str]
    ) -> None:
        flow, parent, kids, lone = tree
        # When the newest four runs are listed
        summaries = store.flow_runs.list_summaries(4)
        # Then each comes with its flow's name, project and version, and its children
        assert all(isinstance(s, FlowRunSummary) for s in summaries)
        assert [s.run.id for s in summaries] == [lone, kids[1], kids[0], parent]
        by_id = {s.run.id: s for s in summaries}
        assert {(s.flow_name, s.project, s.version) for s in summaries} == {("tree", project, 2)}
        assert by_id[parent].children == tuple(kids)
        assert by_id[lone].children == ()
        assert by_id[kids[0]].children == ()
        assert by_id[parent].run.flow_id == flow.id

    def test_summaries_filter_top_level_runs_and_states(
        self, store: Store, tree: tuple[FlowVersion, str, list[str], str]
    ) -> None:
        _, parent, kids, lone = tree
        top = store.flow_runs.list_summaries(2, top_level_only=True)
        assert [s.run.id for s in top] == [lone, parent]
        assert top[1].children == tuple(kids)
        running = store.flow_runs.list_summaries(1, state=State.RUNNING)
        assert [s.run.id for s in running] == [parent]

    def test_summaries_take_two_queries_however_many_runs(
        self, store: Store, tree: tuple[FlowVersion, str, list[str], str]
    ) -> None:
        # Given runs in the database (at least four, some with children)
        # When one and then forty are listed
        # Then each listing takes two queries: the runs, then their children
        for limit in (1, 40):
            with counted(store) as statements:
                summaries = store.flow_runs.list_summaries(limit)
            assert len(summaries) >= min(limit, 4)
            queries = [s for s in statements if s.split()[0].upper() not in TRANSACTION]
            assert len(queries) == 2, statements
