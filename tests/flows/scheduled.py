"""Scheduled flows for the beat tests. Workers import them by module path
(``tests.flows.scheduled:every_two_seconds``)."""

from __future__ import annotations

from datetime import timedelta

import pendulum

from orchestrator import Flow, Parameter, task
from orchestrator.schedules import CronSchedule, IntervalSchedule
from orchestrator.tasks import StartFlowRun


@task
def greet(greeting: str) -> str:
    """Return the greeting the schedule passed."""
    return f"{greeting}, world"


# The seed's Flow-of-Flows, as the page writes it: weekdays at 09:30 New York time.
weekday_schedule = CronSchedule("30 9 * * 1-5", start_date=pendulum.now(tz="US/Eastern"))

flow_a = StartFlowRun(flow_name="A", project_name="examples", wait=True)
flow_b = StartFlowRun(flow_name="B", project_name="examples", wait=True)
flow_c = StartFlowRun(flow_name="C", project_name="examples", wait=True)
flow_d = StartFlowRun(flow_name="D", project_name="examples", wait=True)

with Flow("parent-flow", schedule=weekday_schedule) as parent_flow:
    b = flow_b(upstream_tasks=[flow_a])
    c = flow_c(upstream_tasks=[flow_a])
    d = flow_d(upstream_tasks=[b, c])

# Fires every two seconds, with a parameter from the schedule: beat runs it for real.
with Flow(
    "every-two-seconds",
    schedule=IntervalSchedule(timedelta(seconds=2), parameter_defaults={"greeting": "hello"}),
) as every_two_seconds:
    greet(Parameter("greeting", default="hi"))

# Fires every minute on the minute; registered while beat runs.
with Flow("every-minute", schedule=CronSchedule("* * * * *")) as every_minute:
    greet(Parameter("greeting", default="hi"))

# Every hour, catching up every missed hour after an outage.
with Flow("hourly-catchup", schedule=CronSchedule("0 * * * *", catchup=True)) as hourly_catchup:
    greet(Parameter("greeting", default="hi"))

# Every hour, but its required parameter has no value: each slot records a failure.
with Flow("needs-a-value", schedule=CronSchedule("0 * * * *")) as needs_a_value:
    greet(Parameter("greeting"))

# No schedule: clients create its runs, some for a later time.
with Flow("later") as later:
    greet(Parameter("greeting", default="hi"))
