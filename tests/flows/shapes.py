"""Flows of several shapes for the fleet tests. Workers import them by module path."""

from __future__ import annotations

import random

from orchestrator import FAIL, Flow, Parameter, task
from orchestrator.triggers import any_failed
from tests.flows.common import finished


@task
def work(label: str, seconds: float = 0.05) -> str:
    """Record one execution and return the label."""
    finished(seconds)
    return label


@task
def add(x: int, y: int) -> int:
    """Add two numbers."""
    finished()
    return x + y


@task
def total(values: list[int]) -> int:
    """Sum a list."""
    finished()
    return sum(values)


@task
def collect(**parts: object) -> dict[str, object]:
    """Return its keyword arguments."""
    finished()
    return dict(sorted(parts.items()))


def _chain(n: int) -> Flow:
    with Flow(f"chain-{n}") as f:
        prev = None
        for i in range(n):
            t = work(
                f"c{i}",
                seconds=0.01,
                task_args={"name": f"c{i}"},
                upstream_tasks=[prev] if prev else None,
            )
            prev = t
    return f


chain = _chain(5)

with Flow("fan") as fan:
    x = Parameter("x", default=1)
    firsts = [add(x, i, task_args={"name": f"add{i}"}) for i in range(6)]
    merged = collect(**{f"a{i}": t for i, t in enumerate(firsts)})

with Flow("diamond") as diamond:
    a = work("A", task_args={"name": "A"})
    b = work("B", seconds=0.3, task_args={"name": "B"}, upstream_tasks=[a])
    c = work("C", seconds=0.3, task_args={"name": "C"}, upstream_tasks=[a])
    d = collect(b=b, c=c, task_args={"name": "D"})

with Flow("n-shape") as n_shape:
    na = work("A", task_args={"name": "A"})
    nb = work("B", task_args={"name": "B"})
    nc = work("C", task_args={"name": "C"}, upstream_tasks=[na, nb])
    nd = work("D", task_args={"name": "D"}, upstream_tasks=[nb])


def _random_dag(n: int, seed: int) -> Flow:
    rng = random.Random(seed)
    with Flow(f"random-{n}") as f:
        nodes = []
        for i in range(n):
            ups = [nodes[j] for j in rng.sample(range(i), k=min(i, rng.randint(0, 3)))] if i else []
            nodes.append(
                work(f"r{i}", seconds=0, task_args={"name": f"r{i:03d}"}, upstream_tasks=ups)
            )
    return f


random_200 = _random_dag(200, seed=7)


@task(max_retries=2, retry_delay=0.2)
def flaky_until_third() -> str:
    """Fail on the first two attempts, succeed on the third."""
    from orchestrator.context import current

    ctx = current()
    assert ctx is not None
    if ctx.attempt < 3:
        raise RuntimeError(f"attempt {ctx.attempt} fails")
    finished()
    return "third time lucky"


@task
def always_fails() -> None:
    """Fail."""
    raise ValueError("no luck")


@task(trigger=any_failed)
def on_failure() -> str:
    """Run only when an upstream failed."""
    finished()
    return "cleaned up"


@task
def after(value: object) -> object:
    """Pass a value on."""
    finished()
    return value


with Flow("retries") as retries:
    after(flaky_until_third)

with Flow("triggers") as triggers:
    bad = always_fails()
    cleanup = on_failure(upstream_tasks=[bad])
    skipped_by_trigger = after(bad, task_args={"name": "needs_success"})


@task
def not_json() -> object:
    """Return something JSON cannot carry."""
    return {1, 2, 3}


with Flow("not-json") as not_json_flow:
    not_json()


@task
def fail_signal() -> None:
    """Fail through the FAIL signal."""
    raise FAIL("told to fail")


with Flow("fail-signal") as fail_signal_flow:
    fail_signal()

#: Every flow in this module, for registering them all at once.
ALL = [chain, fan, diamond, n_shape, random_200, retries, triggers, not_json_flow, fail_signal_flow]
