"""The child flows the seed page assumes are registered in project "examples":
"example" (takes the parameter "param-key") and A, B, C, D for the Flow-of-Flows.

    orchestrator register examples/seed_flows.py --project examples
"""

import time

from orchestrator import Flow, Parameter, task


@task
def echo(value):
    """Print the value the parent computed, and return it."""
    print(f"example received {value!r}")
    return value


@task
def step(name: str, seconds: float = 0.2):
    """A stand-in for real work: wait a moment, then say which flow ran."""
    time.sleep(seconds)
    return f"{name} done"


with Flow("example") as example:
    echo(Parameter("param-key"))

with Flow("A") as flow_a:
    step("A")

with Flow("B") as flow_b:
    step("B", seconds=0.5)

with Flow("C") as flow_c:
    step("C", seconds=0.5)

with Flow("D") as flow_d:
    step("D")
