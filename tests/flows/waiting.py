"""Flows for the waiting tests (project "waiting"): tasks that wait for other flow
runs (``get_task_run_result``, a child waiting for a slot), retry many times, take
labels as a string, return too much, or schedule children relative to now."""

from __future__ import annotations

from datetime import timedelta

from orchestrator import FAIL, Flow, Parameter, task
from orchestrator.context import current
from orchestrator.tasks import StartFlowRun, create_flow_run, get_task_run_result
from tests.flows.common import finished

PROJECT = "waiting"
#: The label of ``slot-child``, whose limit the slot test sets.
SLOT_LABEL = "slotwait"
#: The label a client run gets as a string in the label test.
CLIENT_LABEL = "lbclient"
#: The size limit of values the waiting fleet runs with.
MAX_VALUE_BYTES = 100_000


@task
def step(label: str, seconds: float = 0.0) -> str:
    """Sleep, record the execution, return the label."""
    finished(seconds)
    return label


@task
def boom() -> None:
    """Fail."""
    finished()
    raise RuntimeError("child failed on purpose")


@task(max_retries=40, retry_delay=0)
def fails_forty_times() -> int:
    """Fail on the first 40 attempts; return the attempt that succeeded."""
    ctx = current()
    attempt = ctx.attempt if ctx is not None else 0
    if attempt <= 40:
        raise RuntimeError(f"attempt {attempt} fails on purpose")
    finished()
    return attempt


@task
def too_big() -> str:
    """Return a result just over the fleet's size limit."""
    return "x" * MAX_VALUE_BYTES


@task
def not_called() -> None:
    """Never reached: its upstream fails."""
    raise FAIL("should not run")


# a child of two steps: a canvas of two nodes, so it runs across Celery tasks
with Flow("two-steps") as two_steps:
    first = step("first", 0.5, task_args={"name": "first"})
    step("second", 0.5, task_args={"name": "second"}, upstream_tasks=[first])

with Flow("fails-late") as fails_late:
    boom(upstream_tasks=[step("first", 0.5, task_args={"name": "first"})])

# create two children and read one task run's result of each before they finished
with Flow("reads-results") as reads_results:
    ok = create_flow_run(
        flow_name="two-steps", project_name=PROJECT, task_args={"name": "start_ok"}
    )
    get_task_run_result(ok, "second", task_args={"name": "read_ok"})
    bad = create_flow_run(
        flow_name="fails-late", project_name=PROJECT, task_args={"name": "start_bad"}
    )
    get_task_run_result(bad, "boom", task_args={"name": "read_bad"})

# the same read of a run given as a parameter, for flow.run()
with Flow("reads-a-run") as reads_a_run:
    get_task_run_result(Parameter("child"), "second", task_args={"name": "read"})

with Flow("slot-child", labels=SLOT_LABEL) as slot_child:
    step("started")

with Flow("slot-parent") as slot_parent:
    StartFlowRun(flow_name="slot-child", project_name=PROJECT, wait=True)()

with Flow("forty-retries") as forty_retries:
    fails_forty_times()

# labels given as one string, to the flow and to a StartFlowRun
with Flow("string-labelled", labels="lbflow") as string_labelled:
    step("labelled")

with Flow("starts-string-labelled") as starts_string_labelled:
    StartFlowRun(flow_name="string-labelled", project_name=PROJECT, labels="lbtask")()

with Flow("big-result") as big_result:
    not_called(upstream_tasks=[too_big()])

# children scheduled a day after the task that creates them runs
with Flow("schedules-children") as schedules_children:
    StartFlowRun(
        flow_name="two-steps",
        project_name=PROJECT,
        scheduled_start_time=timedelta(days=1),
        name="start_later",
    )()
    create_flow_run(
        flow_name="two-steps",
        project_name=PROJECT,
        scheduled_start_time=timedelta(days=1),
        task_args={"name": "create_later"},
    )

ALL = [
    two_steps,
    fails_late,
    reads_results,
    reads_a_run,
    slot_child,
    slot_parent,
    forty_retries,
    string_labelled,
    starts_string_labelled,
    big_result,
    schedules_children,
]
