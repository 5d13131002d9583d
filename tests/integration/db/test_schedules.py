"""The schedules repository (``store.schedules``): scheduled flows, bookmarks that
only move forward, pausing (who, when, why; kept by a new version) and resuming, a
schedule's unfinished and recent slot runs, and the Scheduled runs that are due or
buffered."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from alembic import command
from sqlalchemy import text

from orchestrator.clock import utcnow
from orchestrator.db import Store
from orchestrator.db.migrate import _alembic_config
from orchestrator.db.models import FlowVersion
from orchestrator.db.schedules import Pause
from orchestrator.errors import FlowNotFound, ScheduleError
from orchestrator.requests import FlowRunRequest, NewFlowRun
from orchestrator.schedules.slots import slot_key
from orchestrator.states import State
from tests.integration.db.common import IMPORT_REF, brand_new_database, build

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
        flow, pause = store.schedules.pause(project, "ticker", "db upgrade", "alice@ops")
        assert flow.id == ticker.id and pause.by == "alice@ops" and pause.note == "db upgrade"
        assert [f for p, f in store.schedules.flows() if p == project] == []
        assert [f.name for p, f in store.schedules.flows(include_paused=True) if p == project] == [
            "ticker"
        ]

    def test_a_pause_records_who_when_and_why_and_survives_a_new_version(
        self, store: Store, project: str
    ) -> None:
        ticker = register_scheduled(store, project)
        at = datetime(2031, 6, 1, 9, 30, tzinfo=UTC)
        store.schedules.pause(project, "ticker", "vendor API down", "bob@laptop", now=at)
        assert store.schedules.pauses()[(ticker.project_id, "ticker")] == Pause(
            by="bob@laptop", at=at, note="vendor API down"
        )
        # a changed structure makes version 2: still paused, with the same note
        flow = build("ticker", extra_task=True)
        v2 = store.flows.register(
            project_name=project,
            name="ticker",
            structure_hash=flow.structural_hash(),
            structure={},
            import_ref=IMPORT_REF,
            parameters=[],
            schedule=SCHEDULE,
            labels=[],
        )
        assert v2.version == 2
        assert [f for p, f in store.schedules.flows() if p == project] == []
        assert store.schedules.pauses()[(ticker.project_id, "ticker")].note == "vendor API down"
        # pausing again replaces the note
        store.schedules.pause(project, "ticker", "still down", "bob@laptop", now=at)
        assert store.schedules.pauses()[(ticker.project_id, "ticker")].note == "still down"

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
        store.schedules.pause(project, "ticker", "maintenance", "ops")
        resumed_at = datetime(2031, 6, 1, 9, 30, tzinfo=UTC)
        flow, was = store.schedules.resume(project, "ticker", now=resumed_at)
        assert flow.id == ticker.id and was is not None and was.note == "maintenance"
        assert key not in store.schedules.pauses()
        assert [f.name for p, f in store.schedules.flows() if p == project] == ["ticker"]
        assert store.schedules.marks()[key][0] == resumed_at
        assert store.schedules.resume(project, "ticker", now=resumed_at)[1] is None

    def test_pausing_needs_a_scheduled_flow(
        self, store: Store, project: str, flow_version: FlowVersion
    ) -> None:
        with pytest.raises(ScheduleError, match="has no schedule"):
            store.schedules.pause(project, "etl", "why")
        with pytest.raises(FlowNotFound):
            store.schedules.pause(project, "nope", "why")
        with pytest.raises(ScheduleError, match="has no schedule"):
            store.schedules.resume(project, "etl")

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

    def test_a_schedules_unfinished_and_recent_slot_runs(self, store: Store, project: str) -> None:
        ticker = register_scheduled(store, project)
        now = datetime(2031, 1, 1, 12, tzinfo=UTC)

        def slot(minutes: int, state: State, buffered: bool = False, key: bool = True) -> str:
            at = now + timedelta(minutes=minutes)
            asked = FlowRunRequest(
                "ticker",
                project,
                idempotency_key=slot_key(project, "ticker", at) if key else None,
                scheduled_start_time=at,
            )
            new = NewFlowRun.of(asked, ticker.id, {}, state=state)
            new = dataclasses.replace(new, buffered=buffered)
            if state.is_final:
                return store.flow_runs.insert_final(new, f"{state.value} slot")[0].id
            return store.flow_runs.insert(new, "a note")[0].id

        done = slot(-4, State.SUCCESS)
        skipped = slot(-3, State.SKIPPED)
        running = slot(-2, State.RUNNING)
        held = slot(-1, State.SCHEDULED, buffered=True)
        by_hand = slot(-1, State.RUNNING, key=False)  # not a slot: created by hand
        future = slot(+5, State.SCHEDULED, buffered=True)
        # unfinished: the due slot runs that are not final, oldest first
        unfinished = store.schedules.unfinished(ticker.project_id, "ticker", now)
        assert [r.id for r in unfinished] == [running, held]
        assert [r.buffered for r in unfinished] == [False, True]
        assert by_hand not in {r.id for r in unfinished}
        # recent: every slot recorded, latest first
        recent = store.schedules.slot_runs(ticker.project_id, "ticker", limit=10)
        assert [r.id for r in recent] == [future, held, running, skipped, done]
        assert store.schedules.slot_runs(ticker.project_id, "ticker", limit=2)[1].id == held
        # buffered runs are not due runs: beat releases them on their turn
        assert (ticker.project_id, "ticker") in store.schedules.buffering(now)
        assert held not in {r.id for r, _ in store.schedules.due_runs(now, limit=100_000)}
        # the message of a run's first state is kept with it and in its history
        assert store.flow_runs.get(held).message == "a note"
        assert [e.message for e in store.flow_runs.history(skipped)] == ["Skipped slot"]
        found = store.flow_runs.by_keys([slot_key(project, "ticker", now - timedelta(minutes=3))])
        assert [r.id for r in found.values()] == [skipped]


class TestPauseMigration:
    """Migration 0005 moves pauses from flow versions to the flow, and back."""

    def test_a_paused_version_becomes_a_paused_flow_and_back(
        self, database_url: str, tmp_path: Path
    ) -> None:
        with brand_new_database(database_url, tmp_path) as url:
            store = Store(url)
            try:
                # Given a database at 0003 with a paused, scheduled flow version
                _migrate(store, "upgrade", "0003")
                now = utcnow()
                with store.engine.begin() as conn:
                    conn.execute(
                        text("INSERT INTO projects (id, name, created) VALUES (1, 'p', :now)"),
                        {"now": now},
                    )
                    conn.execute(
                        text(
                            "INSERT INTO flows (id, project_id, name, version, archived, "
                            "import_ref, parameters, schedule, schedule_paused, labels, "
                            "structure_hash, structure, created) VALUES ('f1', 1, 'ticker', 1, "
                            ":no, 'x:y', '[]', :schedule, :yes, '[]', 'h', '{}', :now)"
                        ),
                        {"no": False, "yes": True, "now": now, "schedule": '{"type": "x"}'},
                    )
                # When it is upgraded
                store.upgrade()
                # Then the flow is paused (by "unknown"), its version no longer says so
                [(key, pause)] = store.schedules.pauses().items()
                assert key == (1, "ticker") and pause.by.startswith("unknown")
                assert store.flows.newest("p", "ticker").schedule_paused is False
                assert store.schedules.flows() == []
                # and downgrading marks the version paused again
                _migrate(store, "downgrade", "0003")
                with store.engine.connect() as conn:
                    paused = conn.execute(text("SELECT schedule_paused FROM flows")).scalar()
                assert bool(paused) is True
            finally:
                store.close()


def _migrate(store: Store, direction: str, revision: str) -> None:
    """Upgrade or downgrade ``store`` to ``revision`` with Alembic."""
    cfg = _alembic_config(store.url)
    with store.engine.begin() as conn:
        cfg.attributes["connection"] = conn
        getattr(command, direction)(cfg, revision)
