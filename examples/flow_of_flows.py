# The seed's third listing; only the imports changed (and the missing `import pendulum` added).
import pendulum

from orchestrator import Flow
from orchestrator.schedules import CronSchedule
from orchestrator.tasks import StartFlowRun


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
