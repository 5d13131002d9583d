"""The sweeper's questions (``store.recovery``): which Running runs are stale, which
Submitted and Queued runs to send again."""

from __future__ import annotations

from datetime import timedelta

import pytest

from orchestrator.clock import utcnow
from orchestrator.db import Store
from orchestrator.db.models import FlowVersion
from orchestrator.ids import task_run_id
from orchestrator.states import State
from tests.integration.db.common import new_run


class TestRecovery:
    """``store.recovery`` on SQLite and PostgreSQL."""

    @pytest.mark.parametrize(
        ("child_state", "parent_stale"),
        [
            (State.RUNNING, False),
            (State.SUBMITTED, True),
            (State.QUEUED, True),
            (State.SUCCESS, True),
        ],
    )
    def test_a_parent_waiting_on_a_child_is_stale_unless_the_child_runs(
        self, store: Store, flow_version: FlowVersion, child_state: State, parent_stale: bool
    ) -> None:
        # Given a parent whose task "load" waits on a child run, and no live lease anywhere
        parent, _ = store.flow_runs.insert(new_run(flow_version, state=State.RUNNING))
        store.task_runs.create(parent.id, [("load", "load")])
        tr_id = task_run_id(parent.id, "load")
        child, _ = store.flow_runs.insert(
            new_run(
                flow_version,
                state=child_state,
                parent_flow_run_id=parent.id,
                parent_task_run_id=tr_id,
            )
        )
        store.task_runs.finish(tr_id, parent.id, State.RUNNING, child_flow_run_id=child.id)
        # When the sweeper looks an hour later
        later = utcnow() + timedelta(hours=1)
        stale = set(store.recovery.stale_running(later, later, limit=100_000))
        # Then a Running child is watched on its own; one that never started (its start
        # was lost with the parent's node) or has ended makes the parent stale
        assert (parent.id in stale) is parent_stale
        assert (child.id in stale) is (child_state is State.RUNNING)

    def test_a_live_lease_or_a_recent_change_is_not_stale(
        self, store: Store, flow_version: FlowVersion
    ) -> None:
        # Given a Running run whose task holds a two-hour lease, and one with no lease
        leased, _ = store.flow_runs.insert(new_run(flow_version, state=State.RUNNING))
        store.task_runs.create(leased.id, [("load", "load")])
        store.task_runs.claim(task_run_id(leased.id, "load"), leased.id, "me", 7200, "w")
        idle, _ = store.flow_runs.insert(new_run(flow_version, state=State.RUNNING))
        later = utcnow() + timedelta(hours=1)
        earlier = utcnow() - timedelta(hours=1)
        # When the sweeper looks an hour later: the lease is live, the idle run is stale
        stale = store.recovery.stale_running(later, later, limit=100_000)
        assert leased.id not in stale and idle.id in stale
        # When its cutoff is before their last change: neither is stale
        recent = store.recovery.stale_running(later, earlier, limit=100_000)
        assert leased.id not in recent and idle.id not in recent

    def test_old_submitted_and_every_queued_run_are_sent_again(
        self, store: Store, flow_version: FlowVersion
    ) -> None:
        submitted, _ = store.flow_runs.insert(new_run(flow_version))
        queued, _ = store.flow_runs.insert(new_run(flow_version, state=State.QUEUED))
        running, _ = store.flow_runs.insert(new_run(flow_version, state=State.RUNNING))
        # Submitted runs wait for the cutoff; Queued ones are always sent again
        before = utcnow() - timedelta(hours=1)
        early = set(store.recovery.to_redispatch(before, limit=100_000))
        assert queued.id in early and submitted.id not in early
        later = utcnow() + timedelta(hours=1)
        due = set(store.recovery.to_redispatch(later, limit=100_000))
        assert {submitted.id, queued.id} <= due
        assert running.id not in due
