# The seed's second listing; only the imports changed (and the missing colon added).
from orchestrator import Task, Flow
from orchestrator.tasks import StartFlowRun


class ExtractSomeData(Task):
    def run(self):
        return {"param-key": "some-random-piece-of-data"}


extract_some_data = ExtractSomeData(name="extract_some_data")

# assumes you have registered a flow named "exampled" in a project named "examples"
flow_run = StartFlowRun(flow_name="example", project_name="examples")

with Flow("parent-flow") as flow:
    flow_run.set_upstream(extract_some_data, key="parameters")
