"""Fault: every message delivered twice, the copy out of order. Results are
unchanged, user code finishes once per task run, one child run per StartFlowRun."""

from __future__ import annotations

import time

from orchestrator import State
from orchestrator.backends import backends
from tests.conftest import Fleet
from tests.flows import duplicating
from tests.integration.helpers import finished_counts


def test_duplicate_and_out_of_order_messages_change_nothing(fresh_fleet: Fleet) -> None:
    # Given workers that publish every orchestrator message twice
    fresh_fleet.env[duplicating.ENV] = "1"
    for flow in duplicating.ALL:
        fresh_fleet.client.register(flow, duplicating.PROJECT)
    fresh_fleet.start_worker()
    fresh_fleet.start_worker()
    published = backends(fresh_fleet.settings).redis
    before = int(published.get(duplicating.PUBLISHED_KEY) or 0)
    # When five Flow-of-Flows runs execute (children of one task and of four)
    started = time.monotonic()
    ids = [fresh_fleet.client.create_flow_run("dup-parent", duplicating.PROJECT) for _ in range(5)]
    runs = [fresh_fleet.client.wait_for_flow_run(i, timeout=180) for i in ids]
    # Then every run succeeds with the same result as without duplicates
    duplicates = 0
    for run in runs:
        assert run.state is State.SUCCESS, (run.message, fresh_fleet.logs())
        assert run.task_run("combine").result == ["B", "C"]
        # exactly one child run per StartFlowRun node
        names = sorted(
            fresh_fleet.client.get_flow_run(c, task_runs=False).flow_name for c in run.children
        )
        assert names == ["dup-A", "dup-B", "dup-C", "dup-D"]
        # and each task's code finished once, in the parent and in every child
        for run_id in [run.id, *run.children]:
            counts = finished_counts(fresh_fleet, run_id)
            duplicates += sum(n - 1 for n in counts.values())
            assert set(counts.values()) == {1}, counts
    # and the duplicates were really sent: at least one per message of every run
    sent = int(published.get(duplicating.PUBLISHED_KEY) or 0) - before
    print(
        f"\nduplicates scenario: runs started {len(ids)}, finished {len(runs)}, "
        f"duplicate messages published {sent}, duplicated executions {duplicates}, "
        f"in {time.monotonic() - started:.1f}s"
    )
    assert sent >= len(ids), sent
