"""The flows ``orchestrator demo`` registers in project "examples": four small child
flows A, B, C, D and the seed's Flow-of-Flows "parent-flow", which runs
A -> (B, C) -> D every weekday at 09:30 New York time.

They live in the installed package so workers import them by reference
(``orchestrator.demo_flows:flow``, ``orchestrator.demo_flows:child_a``, ...). May
import the flow model and :mod:`orchestrator.tasks` (client layer); the CLI imports
this module, never the reverse.
"""

import time

import pendulum

from orchestrator.flow import Flow
from orchestrator.schedules import CronSchedule
from orchestrator.task import task
from orchestrator.tasks import StartFlowRun


@task
def work(name: str) -> str:
    """A stand-in for real work: wait a moment, then say which flow ran.

    Args:
        name: the flow's name.

    Returns:
        ``"<name> done"``.
    """
    time.sleep(0.2)
    return f"{name} done"


with Flow("A") as child_a:
    work("A")

with Flow("B") as child_b:
    work("B")

with Flow("C") as child_c:
    work("C")

with Flow("D") as child_d:
    work("D")

#: The child flows, in the order they are registered.
CHILD_FLOWS = [child_a, child_b, child_c, child_d]


# The seed's third listing, as it is written there (its imports above, taken from
# their modules).
weekday_schedule = CronSchedule("30 9 * * 1-5", start_date=pendulum.now(tz="US/Eastern"))


# assumes you have registered the following flows in a project named "examples"
flow_a = StartFlowRun(flow_name="A", project_name="examples", wait=True)
flow_b = StartFlowRun(flow_name="B", project_name="examples", wait=True)
flow_c = StartFlowRun(flow_name="C", project_name="examples", wait=True)
flow_d = StartFlowRun(flow_name="D", project_name="examples", wait=True)

with Flow("parent-flow", schedule=weekday_schedule) as flow:
    b = flow_b(upstream_tasks=[flow_a])
    c = flow_c(upstream_tasks=[flow_a])
    d = flow_d(upstream_tasks=[b, c])
