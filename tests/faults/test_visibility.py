"""A retry delay or a scheduled start longer than Redis's visibility timeout runs
once, on time (celery#2599, kombu#337: a countdown past the visibility timeout is
redelivered and runs twice in plain Celery). Real workers with
``ORCHESTRATOR_VISIBILITY_TIMEOUT=3`` and no beat, SQLite and PostgreSQL."""

from __future__ import annotations

import itertools
from datetime import timedelta

import pytest
from sqlalchemy import select

from orchestrator import State
from orchestrator.backends import backends
from orchestrator.clock import aware
from orchestrator.db.models import StateEvent
from tests.conftest import Fleet
from tests.faults.checks import finished_twice, wait_all
from tests.flows import recovery
from tests.integration.helpers import finished_counts

SHORT_VISIBILITY = {"ORCHESTRATOR_VISIBILITY_TIMEOUT": "3", "ORCHESTRATOR_SWEEP_SECONDS": "2"}


@pytest.fixture()
def short_visibility(fresh_fleet: Fleet) -> Fleet:
    """Two workers whose broker redelivers a message held three seconds."""
    fresh_fleet.env.update(SHORT_VISIBILITY)
    for flow in recovery.ALL:
        fresh_fleet.client.register(flow, recovery.PROJECT)
    for _ in range(2):
        fresh_fleet.start_worker(wait=False)
    for w in fresh_fleet.workers:
        w.wait_ready(backends(fresh_fleet.settings).app)
    return fresh_fleet


def test_retry_delay_longer_than_visibility_timeout_runs_each_attempt_once(
    short_visibility: Fleet,
) -> None:
    fleet = short_visibility
    # Given runs of a task that fails twice, retried after 6 s (twice the visibility timeout)
    ids = [fleet.client.create_flow_run("rec-retry", recovery.PROJECT) for _ in range(3)]
    # When they run
    runs = wait_all(fleet, ids, 120)
    # Then each succeeds at its third attempt, each attempt ran once and on time
    for run in runs:
        assert run.state is State.SUCCESS, run.message
        task = run.task_run("flaky_twice")
        assert task.attempts == 3, task
        assert finished_counts(fleet, run.id) == {"flaky_twice": 3}
        with fleet.store.reading() as s:
            events = s.execute(
                select(StateEvent.state, StateEvent.timestamp)
                .where(StateEvent.task_run_id == task.id)
                .order_by(StateEvent.id)
            ).all()
        states = [e.state for e in events]
        assert states == ["Running", "Retrying", "Running", "Retrying", "Running", "Success"]
        for before, after in itertools.pairwise(events):
            if before.state == "Retrying":
                waited = aware(after.timestamp) - aware(before.timestamp)
                assert waited >= timedelta(seconds=recovery.RETRY_DELAY), waited
    assert finished_twice(fleet, ids) == 0


def test_scheduled_start_longer_than_visibility_timeout_runs_once(short_visibility: Fleet) -> None:
    fleet = short_visibility
    # Given runs scheduled 8 s ahead (past the visibility timeout), and no beat
    ids = [
        fleet.client.create_flow_run(
            "rec-once", recovery.PROJECT, scheduled_start_time=timedelta(seconds=8)
        )
        for _ in range(3)
    ]
    # When their time comes, then each runs once (the workers start them: no beat)
    runs = wait_all(fleet, ids, 120)
    for run in runs:
        assert run.state is State.SUCCESS, run.message
        assert finished_counts(fleet, run.id) == {"once": 1}
        assert aware(run.start_time) >= aware(run.scheduled_start_time)
    assert finished_twice(fleet, ids) == 0


pytestmark = pytest.mark.timeout(600)
