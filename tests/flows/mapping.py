"""Mapped flows for the mapping tests."""

from __future__ import annotations

from orchestrator import Flow, Parameter, flatten, task, unmapped
from orchestrator.tasks import StartFlowRun
from tests.flows.common import finished

PROJECT = "mapping"


@task
def numbers(n: int) -> list[int]:
    """0 .. n-1, computed at run time."""
    finished()
    return list(range(n))


@task
def scale(x: int, factor: int) -> int:
    """Multiply; with factor 3, element 13 fails (one failed child)."""
    finished()
    if x == 13 and factor == 3:
        raise ValueError("unlucky thirteen")
    return x * factor


@task
def inc(x: int) -> int:
    """Add one."""
    finished()
    return x + 1


@task
def total(xs: list[int]) -> int:
    """Sum a whole list."""
    finished()
    return sum(xs)


@task
def nested() -> list[list[int]]:
    """A list of lists."""
    finished()
    return [[1, 2], [], [3, 4, 5]]


@task
def not_a_list() -> int:
    """Something that cannot be mapped over."""
    return 7


@task
def params_for(n: int) -> list[dict[str, str]]:
    """One parameter dict per child flow."""
    return [{"name": f"child-{i}"} for i in range(n)]


@task
def greet(name: str) -> str:
    """Use a parameter (taking a moment, so that a fault finds one in flight)."""
    finished(0.1)
    return f"hello {name}"


with Flow("map-big") as map_big:
    n = Parameter("n", default=1000)
    doubled = scale.map(numbers(n), factor=unmapped(2))
    total(doubled)

with Flow("map-one-fails") as map_one_fails:
    scale.map(numbers(20), factor=unmapped(3))

with Flow("map-of-map") as map_of_map:
    first = scale.map(numbers(5), factor=unmapped(10))
    inc.map(first)

with Flow("map-flatten") as map_flatten:
    inc.map(flatten(nested()))

with Flow("map-empty") as map_empty:
    emptied = inc.map(numbers(0))
    total(emptied)

with Flow("map-not-list") as map_not_list:
    inc.map(not_a_list())

with Flow("greeter") as greeter:
    greet(Parameter("name"))

with Flow("map-children") as map_children:
    StartFlowRun(flow_name="greeter", project_name=PROJECT, wait=True).map(
        parameters=params_for(Parameter("n", default=50))
    )

ALL = [
    map_big,
    map_one_fails,
    map_of_map,
    map_flatten,
    map_empty,
    map_not_list,
    greeter,
    map_children,
]
