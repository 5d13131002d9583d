"""The transactions spanning flow runs and task runs (``store.runs``): a run begun
with its task runs, a child started with its parent's link, ended with its mirror."""

from __future__ import annotations

import pytest

from orchestrator.db import Link, Mirror, Store
from orchestrator.db.models import FlowVersion
from orchestrator.ids import task_run_id
from orchestrator.states import State
from tests.integration.db.common import new_run


class TestRuns:
    """``store.runs`` on SQLite and PostgreSQL."""

    def test_begin_creates_the_task_runs_and_runs_the_flow(
        self, store: Store, flow_version: FlowVersion
    ) -> None:
        run, _ = store.flow_runs.insert(new_run(flow_version))
        tasks = [("extract", "extract"), ("load", "load")]
        # a run that is not in from_states is left alone, with nothing written
        assert store.runs.begin(run.id, tasks, {}, [State.QUEUED]) is False
        assert store.task_runs.of_flow_run(run.id) == []
        # one that is begins
        assert store.runs.begin(run.id, tasks, {}, [State.SUBMITTED]) is True
        assert store.flow_runs.get(run.id).state == "Running"
        assert len(store.task_runs.of_flow_run(run.id)) == 2
        # and beginning it again changes nothing
        assert store.runs.begin(run.id, tasks, {}) is False

    def test_begin_refuses_from_states_outside_the_transition_table(
        self, store: Store, flow_version: FlowVersion
    ) -> None:
        run, _ = store.flow_runs.insert(new_run(flow_version))
        tasks = [("extract", "extract")]
        with pytest.raises(ValueError, match="illegal transition Success -> Running"):
            store.runs.begin(run.id, tasks, {}, [State.SUCCESS])
        with pytest.raises(ValueError, match="illegal transition Running -> Running"):
            store.runs.begin_and_claim(
                run.id, tasks, {}, [State.RUNNING], "extract", "child", 60, "w"
            )
        assert store.flow_runs.get(run.id).state == "Submitted"
        assert store.task_runs.of_flow_run(run.id) == []

    def test_a_child_starts_with_its_parents_link_and_ends_with_the_mirror(
        self, store: Store, task_run: tuple[str, str], flow_version: FlowVersion
    ) -> None:
        parent_id, parent_tr = task_run
        # Given a parent task run that started a child run and waits for it
        store.task_runs.claim(parent_tr, parent_id, "parent", lease_seconds=60, worker="w")
        child, _ = store.flow_runs.insert(new_run(flow_version, parent_flow_run_id=parent_id))
        link = Link(parent_tr, parent_id, "parent", f"waiting for {child.id}")
        # When the child starts: its task runs, its claim and the parent's link at once
        claim = store.runs.begin_and_claim(
            child.id,
            [("extract", "extract")],
            {},
            [State.SUBMITTED],
            "extract",
            "child",
            60,
            "w",
            link,
        )
        assert claim is not None and claim.claimed
        waiting = store.task_runs.get(parent_tr)
        assert waiting is not None
        assert (waiting.state, waiting.child_flow_run_id) == ("Running", child.id)
        # ... and a second start finds it started, and writes nothing
        assert (
            store.runs.begin_and_claim(
                child.id,
                [("extract", "extract")],
                {},
                [State.SUBMITTED],
                "extract",
                "other",
                60,
                "w",
                Link(parent_tr, parent_id, "parent", "second"),
            )
            is None
        )
        assert (store.task_runs.get(parent_tr) or waiting).message == f"waiting for {child.id}"
        # When its task ends the child, the parent takes the child's state with it
        mirror = Mirror(
            parent_tr, parent_id, State.SUCCESS, "child ended", {"flow_run_id": child.id}
        )
        done = store.runs.finish_task_and_flow(
            task_run_id(child.id, "extract"),
            child.id,
            State.SUCCESS,
            None,
            [1],
            "child",
            State.SUCCESS,
            "all reference tasks succeeded",
            mirror,
        )
        assert done == (True, True, True)
        parent_task = store.task_runs.get(parent_tr)
        assert parent_task is not None
        assert (parent_task.state, parent_task.result) == ("Success", {"flow_run_id": child.id})
        assert store.flow_runs.get(child.id).state == "Success"
        events = [(e.task_run_id, e.state) for e in store.flow_runs.history(parent_id)]
        assert events[-2:] == [(parent_tr, "Running"), (parent_tr, "Success")]

    def test_a_new_child_is_stored_started_and_linked_in_one_transaction(
        self, store: Store, task_run: tuple[str, str], flow_version: FlowVersion
    ) -> None:
        parent_id, parent_tr = task_run
        # Given a parent task run that built a child run (not stored yet) to wait for
        store.task_runs.claim(parent_tr, parent_id, "parent", lease_seconds=60, worker="w")
        key = f"{parent_id}:start:-1"
        child = new_run(flow_version, {"x": 1}, State.SUBMITTED, key, parent_flow_run_id=parent_id)
        link = Link(parent_tr, parent_id, "parent", f"waiting for {child.id}")
        # When the worker starts it
        claim = store.runs.begin_and_claim(
            child.id,
            [("extract", "extract")],
            {},
            [State.SUBMITTED],
            "extract",
            "child",
            60,
            "w",
            link,
            create=child,
        )
        # Then the child is stored Running, its task claimed, the parent linked to it
        assert claim is not None and claim.claimed
        assert (claim.flow_run.id, claim.flow_run.state) == (child.id, "Running")
        stored = store.flow_runs.get(child.id)
        assert (stored.state, stored.parameters, stored.idempotency_key) == (
            "Running",
            {"x": 1},
            key,
        )
        assert stored.start_time is not None
        assert [e.state for e in store.flow_runs.history(child.id) if e.task_run_id is None] == [
            "Submitted",
            "Running",
        ]
        waiting = store.task_runs.get(parent_tr)
        assert waiting is not None
        assert (waiting.state, waiting.child_flow_run_id) == ("Running", child.id)
        # ... and another attempt building the same child (same key) stores nothing
        again = new_run(flow_version, {"x": 2}, State.SUBMITTED, key, parent_flow_run_id=parent_id)
        assert again.id == child.id
        assert (
            store.runs.begin_and_claim(
                again.id,
                [("extract", "extract")],
                {},
                [State.SUBMITTED],
                "extract",
                "other",
                60,
                "w",
                Link(parent_tr, parent_id, "parent", "second"),
                create=again,
            )
            is None
        )
        assert store.flow_runs.get(child.id).parameters == {"x": 1}
        assert (store.task_runs.get(parent_tr) or waiting).message == f"waiting for {child.id}"
        found, created = store.flow_runs.insert(again)
        assert (found.id, found.state, created) == (child.id, "Running", False)

    def test_ending_a_flow_that_is_no_longer_running_records_only_the_task(
        self, store: Store, flow_version: FlowVersion
    ) -> None:
        # Given a one-task run whose task is claimed, then the run is cancelled
        run, _ = store.flow_runs.insert(new_run(flow_version))
        claim = store.runs.begin_and_claim(
            run.id, [("extract", "extract")], {}, None, "extract", "me", 60, "w"
        )
        assert claim is not None and claim.claimed
        assert store.flow_runs.set_state(run.id, State.CANCELLED, "cancelled by request")
        # When the task ends the run
        done = store.runs.finish_task_and_flow(
            task_run_id(run.id, "extract"),
            run.id,
            State.SUCCESS,
            None,
            [1],
            "me",
            State.SUCCESS,
            "all reference tasks succeeded",
        )
        # Then the task is recorded, the cancelled run is not changed
        assert done == (True, False, False)
        assert store.flow_runs.get(run.id).state == "Cancelled"
