"""The schedules repository (``store.schedules``): scheduled flows, bookmarks that
only move forward, pausing and resuming, and the Scheduled runs that are due."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from orchestrator.clock import utcnow
from orchestrator.db import Store
from orchestrator.db.models import FlowVersion
from orchestrator.errors import FlowNotFound, ScheduleError
from orchestrator.requests import FlowRunRequest, NewFlowRun
from orchestrator.states import State
from tests.integration.db.common import IMPORT_REF, build

SCHEDULE = {"type": "interval", "interval": 60}


def register_scheduled(store: Store, project: str, name: str = "ticker") -> FlowVersion:
    """A flow with a schedule."""
    flow = build(name)
    return store.flows.register(
        project_name=project,
        name=name,
        structure_hash=flow.structural_hash(),
        structure={},
        import_ref=IMPORT_REF,
        parameters=[],
        schedule=SCHEDULE,
        labels=[],
    )


class TestSchedules:
    """``store.schedules`` on SQLite and PostgreSQL."""

    def test_scheduled_flows_leave_out_unscheduled_and_paused_ones(
        self, store: Store, project: str, flow_version: FlowVersion
    ) -> None:
        ticker = register_scheduled(store, project)
        mine = [(p, f.name) for p, f in store.schedules.flows() if p == project]
        assert mine == [(project, "ticker")]  # "etl" has no schedule
        paused = store.schedules.set_paused(project, "ticker", True)
        assert paused.id == ticker.id and paused.schedule_paused
        assert [f for p, f in store.schedules.flows() if p == project] == []
        assert [f.name for p, f in store.schedules.flows(include_paused=True) if p == project] == [
            "ticker"
        ]

    def test_a_bookmark_only_moves_forward(self, store: Store, project: str) -> None:
        ticker = register_scheduled(store, project)
        noon = datetime(2030, 1, 1, 12, tzinfo=UTC)
        key = (ticker.project_id, "ticker")
        assert store.schedules.advance_mark(*key, noon, "h1") == (noon, "h1")
        # an earlier instant leaves it, a new hash is recorded all the same
        assert store.schedules.advance_mark(*key, noon - timedelta(hours=1), "h2") == (noon, "h2")
        later = noon + timedelta(minutes=5)
        assert store.schedules.advance_mark(*key, later) == (later, "h2")
        assert store.schedules.marks()[key] == (later, "h2")

    def test_resuming_moves_the_bookmark_to_now(self, store: Store, project: str) -> None:
        ticker = register_scheduled(store, project)
        key = (ticker.project_id, "ticker")
        store.schedules.advance_mark(*key, datetime(2020, 1, 1, tzinfo=UTC))
        store.schedules.set_paused(project, "ticker", True)
        resumed_at = datetime(2031, 6, 1, 9, 30, tzinfo=UTC)
        flow = store.schedules.set_paused(project, "ticker", False, now=resumed_at)
        assert flow.schedule_paused is False
        assert store.flows.newest(project, "ticker").schedule_paused is False
        assert store.schedules.marks()[key][0] == resumed_at

    def test_pausing_needs_a_scheduled_flow(
        self, store: Store, project: str, flow_version: FlowVersion
    ) -> None:
        with pytest.raises(ScheduleError, match="has no schedule"):
            store.schedules.set_paused(project, "etl", True)
        with pytest.raises(FlowNotFound):
            store.schedules.set_paused(project, "nope", True)

    def test_due_runs_are_the_scheduled_ones_whose_time_came(
        self, store: Store, project: str
    ) -> None:
        ticker = register_scheduled(store, project)
        now = utcnow()

        def scheduled(at: datetime) -> str:
            asked = FlowRunRequest("ticker", project, scheduled_start_time=at)
            new = NewFlowRun.of(asked, ticker.id, {}, state=State.SCHEDULED)
            return store.flow_runs.insert(new)[0].id

        past, future = scheduled(now - timedelta(minutes=1)), scheduled(now + timedelta(hours=1))
        due = {run.id: name for run, name in store.schedules.due_runs(now, limit=100_000)}
        assert due.get(past) == "ticker"
        assert future not in due
