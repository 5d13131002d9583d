"""Scheduled flows for the overlap, catch-up and backfill tests. Workers import them by
module path (``tests.flows.policies:buffer_one``).

A *gated* task holds its run open until the test opens its gate (a Redis key per flow
run) or the run is cancelled, so a test decides when each run finishes and never
depends on timing."""

from __future__ import annotations

import os
import time
from datetime import timedelta

from orchestrator import Flow, Parameter, task
from orchestrator.backends import backends
from orchestrator.context import current
from orchestrator.schedules import CronSchedule, IntervalSchedule
from orchestrator.states import State
from orchestrator.tasks import StartFlowRun
from tests.flows.common import redis_client

#: The project of the cancel_other flows (StartFlowRun names its child's project).
CANCEL_PROJECT = "policies-cancel"
#: How long a gated task waits at most (a test that forgot to open it fails, not hangs).
GATE_TIMEOUT = 300.0


def gate_key(flow_run_id: str, queue: str | None = None) -> str:
    """The Redis key that lets a flow run's gated task finish. It names the fleet's
    queue too: run ids come from slot keys, so two databases may share one."""
    return f"test:gate:{queue or os.environ['ORCHESTRATOR_QUEUE']}:{flow_run_id}"


@task
def gated() -> str:
    """Wait until the test opens this run's gate, or the run is cancelled."""
    ctx = current()
    if ctx is None or ctx.flow_run_id is None:
        return "no run"
    store = backends().store
    deadline = time.monotonic() + GATE_TIMEOUT
    while time.monotonic() < deadline:
        if redis_client().exists(gate_key(ctx.flow_run_id)):
            return "opened"
        if State(store.flow_runs.get(ctx.flow_run_id).state).is_final:
            return "run ended"
        time.sleep(0.2)
    raise TimeoutError(f"gate of flow run {ctx.flow_run_id} never opened")


@task
def nap(seconds: float) -> float:
    """Sleep, then return how long."""
    time.sleep(seconds)
    return seconds


@task
def greet(greeting: str) -> str:
    """Return the greeting the schedule passed."""
    return f"{greeting}, world"


# Every minute, each run held open by its gate: driven by a hand-moved clock.
with Flow("buffer-one", schedule=CronSchedule("* * * * *", overlap="buffer_one")) as buffer_one:
    gated()

with Flow("buffer-all", schedule=CronSchedule("* * * * *", overlap="buffer_all")) as buffer_all:
    gated()

with Flow("skip-minutely", schedule=CronSchedule("* * * * *", overlap="skip")) as skip_minutely:
    gated()

# The case: a 5 s flow on a 2 s interval that skips while a run is going.
with Flow(
    "five-seconds-every-two",
    schedule=IntervalSchedule(timedelta(seconds=2), overlap="skip"),
) as five_seconds_every_two:
    nap(5.0)

# cancel_other: a parent whose child is gated; a new slot cancels both, then starts.
with Flow("gated-child") as gated_child:
    gated()

with Flow(
    "cancel-parent", schedule=CronSchedule("* * * * *", overlap="cancel_other")
) as cancel_parent:
    StartFlowRun(flow_name="gated-child", project_name=CANCEL_PROJECT, wait=True)()

# Catch-up: missed slots younger than 4 minutes run after downtime, older ones are missed.
with Flow(
    "catch-up-window",
    schedule=CronSchedule(
        "* * * * *", catchup_window=timedelta(minutes=4), parameter_defaults={"greeting": "late"}
    ),
) as catch_up_window:
    greet(Parameter("greeting", default="hi"))

# Backfilled: a quick flow with a parameter default from its schedule.
with Flow(
    "minutely-greeting",
    schedule=CronSchedule("* * * * *", parameter_defaults={"greeting": "backfilled"}),
) as minutely_greeting:
    greet(Parameter("greeting", default="hi"))
