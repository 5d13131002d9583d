"""Celery tasks on our base task class for the retry tests: a worker started with
``--include tests.flows.flaky_tasks`` runs them. Each follows a plan, one step per
delivery (``wait``: send itself again; ``fault``: an infrastructure fault; anything
else: done), and records each delivery as ``retries:faults-so-far:step`` in a Redis
list."""

from __future__ import annotations

from celery import Task as CeleryTask

from orchestrator.errors import BackendUnavailable
from tests.flows.common import redis_client
from workers.app import InfraRetrying, app


class FewFaults(InfraRetrying):
    """Gives up after two infrastructure faults in a row."""

    max_faults = 2


def _step(task: CeleryTask, plan: list[str], key: str) -> str:
    retries = task.request.retries
    step = plan[retries] if retries < len(plan) else "ok"
    redis_client().rpush(key, f"{retries}:{task.faults()}:{step}")
    if step == "wait":
        raise task.again(0.02)
    if step == "fault":
        raise BackendUnavailable("the database is down (on purpose)")
    return "done"


@app.task(name="tests.flaky", bind=True, base=InfraRetrying)
def flaky(self: InfraRetrying, plan: list[str], key: str) -> str:
    """Follow ``plan``."""
    return _step(self, plan, key)


@app.task(name="tests.few_faults", bind=True, base=FewFaults)
def few_faults(self: FewFaults, plan: list[str], key: str) -> str:
    """Follow ``plan``, giving up after two faults in a row."""
    return _step(self, plan, key)
