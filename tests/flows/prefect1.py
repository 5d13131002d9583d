"""Flows for the Prefect 1 semantics tests on workers (issue 23): a timeout that must
stop the code, a raising trigger, a trigger without upstreams, an empty reference
set, a Parameter copy, a reduce after a map with a skipped child, mapping over
ordering edges and with only unmapped arguments, flatten() over failed children,
and StartFlowRun.map over a mapped ordering upstream."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Sequence
from typing import Any

import redis

from orchestrator import (
    SKIP,
    Flow,
    Parameter,
    State,
    case,
    flatten,
    ifelse,
    merge,
    switch,
    task,
    unmapped,
)
from orchestrator import triggers as T
from orchestrator.context import current
from orchestrator.tasks import StartFlowRun
from tests.flows.common import finished, redis_client

PROJECT = "prefect1"


def marks_key(flow_run_id: str) -> str:
    """The Redis hash of what the timed-out task's code got to do in a flow run."""
    return f"test:marks:{flow_run_id}"


def _mark(what: str, value: str) -> None:
    ctx = current()
    if ctx is None or ctx.local or ctx.flow_run_id is None:
        return
    with contextlib.suppress(redis.RedisError):
        redis_client().hset(marks_key(ctx.flow_run_id), what, value)


@task(timeout=1)
def overslept() -> str:
    """Sleeps far past its timeout; records how the sleep ended, and what comes after."""
    try:
        time.sleep(60)
    except BaseException as exc:
        _mark("interrupted", type(exc).__name__)
        raise
    _mark("after", "the side effect after the timeout")
    return "too late"


with Flow("p1-timeout") as p1_timeout:
    overslept()


# --- triggers, reference tasks, parameters ----------------------------------------------------


def broken(upstream: Sequence[State]) -> bool:
    """A trigger that raises."""
    raise KeyError("no such state")


@task
def source() -> int:
    return 1


@task(trigger=broken)
def guarded(x: int) -> int:
    return x


@task(trigger=T.all_finished)
def cleanup() -> str:
    return "cleaned"


@task(trigger=T.some_successful(at_least=1))
def root_counted() -> str:
    return "ran without upstream"


@task
def echo(word: str) -> str:
    return word


@task
def boom() -> None:
    raise ValueError("the source is down")


@task
def one() -> int:
    return 1


with Flow("p1-triggers") as p1_triggers:
    g = guarded(source())
    cleanup(upstream_tasks=[g])
    root_counted()
    echo(Parameter("greeting", default="hi").copy(name="word"))

with Flow("p1-empty-reference") as p1_empty_reference:
    boom()
p1_empty_reference.set_reference_tasks([])

with Flow("p1-empty-reference-2", reference_tasks=[]) as p1_empty_reference_2:
    boom()
    one()


# --- mapping ----------------------------------------------------------------------------------


@task
def numbers(n: int = 3) -> list[int]:
    return list(range(n))


@task
def skip_one(x: int) -> int:
    if x == 1:
        raise SKIP("not this one")
    return x


@task
def total(xs: list[Any]) -> int:
    return sum(x for x in xs if x is not None)


@task
def picky(x: int) -> int:
    """2 fails, anything else passes."""
    if x == 2:
        raise ValueError("two fails")
    return x


@task
def which() -> int:
    """This child's map index."""
    ctx = current()
    return ctx.map_index if ctx else -2


@task
def inc(x: int) -> int:
    return x + 1


@task
def add(x: Any, y: Any) -> Any:
    return x + y


@task
def listed(x: int) -> list[int]:
    """[10x, 10x + 1]; 1 is skipped, 2 fails."""
    if x == 1:
        raise SKIP("one is skipped")
    if x == 2:
        raise ValueError("two fails")
    return [x * 10, x * 10 + 1]


with Flow("p1-map-skip-reduce") as p1_map_skip_reduce:
    skipping = skip_one.map(numbers(3))
    total(skipping)
    total(skipping, task_args={"name": "tolerant", "skip_on_upstream_skip": False})

with Flow("p1-map-ordering") as p1_map_ordering:
    gate = picky.map([0, 2, 3])
    which.map(upstream_tasks=[gate], task_args={"name": "after_gate"})
    which.map(upstream_tasks=[[10, 20, 30, 40]], task_args={"name": "over_constant"})
    inc.map(numbers(3), upstream_tasks=[unmapped(inc(5))], task_args={"name": "unmapped_order"})
    add.map(unmapped(1), unmapped(2), task_args={"name": "all_unmapped"})

with Flow("p1-flatten-failed") as p1_flatten_failed:
    inc.map(flatten(listed.map([0, 1, 2, 3])))

with Flow("p1-greeter") as p1_greeter:
    echo(Parameter("word"))

with Flow("p1-map-children") as p1_map_children:
    StartFlowRun(flow_name="p1-greeter", project_name=PROJECT, wait=True).map(
        parameters=unmapped({"word": "hello"}), upstream_tasks=[picky.map([0, 2, 3])]
    )

# --- state handlers ---------------------------------------------------------------------------

#: What the recording handler saw in process (``flow.run()``), line by line.
LOCAL_TRANSITIONS: list[str] = []


def transitions_key(flow_run_id: str) -> str:
    """The Redis list of the transitions the recording handler saw in a flow run."""
    return f"test:transitions:{flow_run_id}"


def record(obj: Any, old: Any, new: Any) -> None:
    """A state handler recording ``where: old > new`` (in Redis on workers)."""
    ctx = current()
    where = (ctx.task_slug if ctx else "") or obj.name
    if ctx is not None and ctx.map_index >= 0:
        where += f"[{ctx.map_index}]"
    line = f"{where}: {old.state.value} > {new.state.value}"
    if ctx is None or ctx.local or ctx.flow_run_id is None:
        LOCAL_TRANSITIONS.append(line)
        return
    redis_client().rpush(transitions_key(ctx.flow_run_id), line)


def recover(obj: Any, old: Any, new: Any) -> Any:
    """Turn a failure into a success with a fallback result."""
    if new.is_failed():
        return type(new)(State.SUCCESS, result="fallback", message="recovered")
    return None


def unreachable(obj: Any, old: Any, new: Any) -> None:
    """A notification that cannot be sent once the task succeeded."""
    if new.is_successful():
        raise RuntimeError("webhook unreachable")


@task(max_retries=1, retry_delay=0, state_handlers=[record])
def flaky() -> int:
    ctx = current()
    if ctx is not None and ctx.attempt == 1:
        raise ValueError("first attempt fails")
    return 7


@task(state_handlers=[recover, record])
def recovered() -> None:
    raise ValueError("the source is down")


@task(state_handlers=[record])
def inc_recorded(x: int) -> int:
    return x + 1


@task(state_handlers=[record, unreachable])
def notified() -> int:
    return 1


with Flow("p1-handlers", state_handlers=[record]) as p1_handlers:
    flaky()
    recovered()
    inc_recorded.map([1, 2])
    notified()


def refuse_start(obj: Any, old: Any, new: Any) -> None:
    """A flow handler that cannot let a run start."""
    if new.is_running():
        raise RuntimeError("no config for today")


@task(state_handlers=[record])
def boom_recorded() -> None:
    raise ValueError("the source is down")


@task
def counted() -> int:
    finished()
    return 1


with Flow("p1-one-handled", state_handlers=[record]) as p1_one_handled:
    boom_recorded()

with Flow("p1-refused", state_handlers=[refuse_start]) as p1_refused:
    counted.copy()(upstream_tasks=[counted()])

with Flow("p1-refused-one", state_handlers=[refuse_start]) as p1_refused_one:
    counted()

with Flow("p1-queued", state_handlers=[record]) as p1_queued:
    one()

with Flow("p1-two-step") as p1_two_step:
    echo(echo("two"))

with Flow("p1-handled-parent") as p1_handled_parent:
    StartFlowRun(
        flow_name="p1-greeter",
        project_name=PROJECT,
        wait=True,
        parameters={"word": "hi"},
        state_handlers=[record],
    )()
    StartFlowRun(
        flow_name="p1-two-step", project_name=PROJECT, wait=True, state_handlers=[record]
    )()

# --- control flow -----------------------------------------------------------------------------


@task
def pick(x: Any) -> Any:
    return x


@task
def shout(x: str) -> str:
    return x.upper()


with Flow("p1-branches") as p1_branches:
    a_side, b_side = (
        shout("a", task_args={"name": "a_side"}),
        shout("b", task_args={"name": "b_side"}),
    )
    switch(pick("b"), {"a": a_side, "b": b_side})
    shout(a_side, task_args={"name": "after_a"})
    yes, no = pick("yes", task_args={"name": "yes"}), pick("no", task_args={"name": "no"})
    ifelse(pick(0, task_args={"name": "falsy"}), yes, no)
    merge(yes, no)
    colour = pick("red", task_args={"name": "colour"})
    with case(colour, "red"):
        with case(pick("big", task_args={"name": "size"}), "small"):
            shout("tiny", task_args={"name": "small_red"})
        shout("red", task_args={"name": "red"})
    with case(colour, "blue"):
        shout("blue", task_args={"name": "blue"})

with Flow("p1-branch-children") as p1_branch_children:
    chosen = pick("a", task_args={"name": "chosen"})
    with case(chosen, "a"):
        StartFlowRun(
            flow_name="p1-greeter", project_name=PROJECT, wait=True, parameters={"word": "a"}
        )(task_args={"name": "child_a"})
    with case(chosen, "b"):
        StartFlowRun(
            flow_name="p1-greeter", project_name=PROJECT, wait=True, parameters={"word": "b"}
        )(task_args={"name": "child_b"})

#: Flows run both in process and on workers, compared.
COMPARED = [
    p1_triggers,
    p1_empty_reference,
    p1_empty_reference_2,
    p1_map_skip_reduce,
    p1_map_ordering,
    p1_flatten_failed,
    p1_branches,
]
ALL = [
    p1_branch_children,
    *COMPARED,
    p1_timeout,
    p1_greeter,
    p1_map_children,
    p1_handlers,
    p1_one_handled,
    p1_refused,
    p1_refused_one,
    p1_queued,
    p1_two_step,
    p1_handled_parent,
]
