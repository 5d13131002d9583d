"""Assertions shared by the fleet tests."""

from __future__ import annotations

from orchestrator.backends import backends
from orchestrator.client import FlowRunInfo
from orchestrator.flow import Flow
from orchestrator.task import Parameter
from tests.conftest import Fleet
from tests.flows.common import count_key


def run_and_wait(
    fleet: Fleet, flow: str, project: str, timeout: float = 90, **kw: object
) -> FlowRunInfo:
    """Create a run, wait for it, and return it (with worker logs on timeout)."""
    run_id = fleet.client.create_flow_run(flow, project, **kw)  # type: ignore[arg-type]
    try:
        return fleet.client.wait_for_flow_run(run_id, timeout=timeout)
    except Exception as exc:
        raise AssertionError(f"{exc}\n{fleet.logs()}") from exc


def finished_counts(fleet: Fleet, flow_run_id: str) -> dict[str, int]:
    """How many times each task's code finished in a flow run."""
    raw = backends(fleet.settings).redis.hgetall(count_key(flow_run_id))
    return {k.decode(): int(v) for k, v in raw.items()}


def assert_order_and_once(fleet: Fleet, flow: Flow, info: FlowRunInfo) -> None:
    """Every task ran after all its upstreams, and every task's code finished once."""
    runs = {tr.slug: tr for tr in info.task_runs}
    assert set(runs) == {t.slug for t in flow.tasks}
    for e in flow.edges:
        up, down = runs[e.upstream.slug or ""], runs[e.downstream.slug or ""]
        assert up.end_time is not None and down.start_time is not None
        assert up.end_time <= down.start_time, f"{down.slug} started before {up.slug} ended"
    counts = finished_counts(fleet, info.id)
    expected = {t.slug for t in flow.tasks if not isinstance(t, Parameter)}
    assert counts == dict.fromkeys(expected, 1), counts


def celery_work_of(fleet: Fleet, run_id: str) -> list[str]:
    """What the fleet's workers hold for a flow run right now: Celery tasks with the
    run id in their arguments, running (active), prefetched (reserved) or waiting
    for a countdown (scheduled), as ``state name args``."""
    inspect = backends(fleet.settings).app.control.inspect(
        [w.hostname for w in fleet.workers], timeout=2
    )
    held = []
    for state, answer in (
        ("active", inspect.active()),
        ("reserved", inspect.reserved()),
        ("scheduled", inspect.scheduled()),
    ):
        assert answer is not None, f"no worker answered inspect {state}"
        for tasks in answer.values():
            for t in tasks:
                request = t.get("request", t)  # a scheduled task wraps its request
                if run_id in str(request.get("args")):
                    held.append(f"{state} {request.get('name')} {request.get('args')}")
    return held
