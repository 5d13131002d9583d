# The seed's first listing; only the imports changed.
from orchestrator import task, Flow
from orchestrator.tasks import StartFlowRun


@task
def extract_some_data():
    return {"param-key": "some-random-piece-of-data"}


# assumes you have registered a flow named "example" in a project named "examples"
flow_run = StartFlowRun(flow_name="example", project_name="examples")

with Flow("parent-flow") as flow:
    flow_run(parameters=extract_some_data)
