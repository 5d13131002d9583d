"""The task runs repository (``store.task_runs``): leases that one owner holds at a
time and another takes over once expired, results recorded only under the lease,
and reads by id."""

from __future__ import annotations

import time
from typing import Any

from orchestrator.db import Store
from orchestrator.ids import task_run_id
from orchestrator.states import State


class TestTaskRuns:
    """``store.task_runs`` on SQLite and PostgreSQL."""

    def test_claim_lease_and_takeover_after_expiry(
        self, store: Store, task_run: tuple[str, str]
    ) -> None:
        flow_run_id, tr_id = task_run
        # Given a pending task run claimed by worker A with a short lease
        first = store.task_runs.claim(tr_id, flow_run_id, "owner-a", lease_seconds=0.2, worker="a")
        assert first.claimed is True
        assert (first.task_run.state, first.task_run.attempts) == ("Running", 1)
        assert first.task_run.lease_owner == "owner-a"
        assert first.flow_run.id == flow_run_id

        # When worker B claims it while the lease is live
        second = store.task_runs.claim(tr_id, flow_run_id, "owner-b", lease_seconds=0.2, worker="b")
        # Then B is refused and A keeps it
        assert second.claimed is False
        assert second.task_run.lease_owner == "owner-a"
        assert second.task_run.attempts == 1

        # When the lease expires (A died) and B claims again
        time.sleep(0.4)
        third = store.task_runs.claim(tr_id, flow_run_id, "owner-b", lease_seconds=30, worker="b")
        # Then B takes it over, as a new attempt
        assert third.claimed is True
        assert third.task_run.lease_owner == "owner-b"
        assert third.task_run.attempts == 2

    def test_finish_with_a_wrong_owner_changes_nothing(
        self, store: Store, task_run: tuple[str, str]
    ) -> None:
        flow_run_id, tr_id = task_run
        # Given a task run held by B
        assert store.task_runs.claim(tr_id, flow_run_id, "owner-b", 30, "b").claimed
        # When A (whose lease was lost) tries to record its result
        done = store.task_runs.finish(
            tr_id, flow_run_id, State.SUCCESS, result={"rows": 1}, owner="owner-a"
        )
        # Then nothing changed
        assert done is False
        stored = store.task_runs.get(tr_id)
        assert stored is not None
        assert (stored.state, stored.result, stored.lease_owner) == ("Running", None, "owner-b")
        # and B records its own
        assert store.task_runs.finish(
            tr_id, flow_run_id, State.SUCCESS, result={"rows": 3}, owner="owner-b"
        )
        stored = store.task_runs.get(tr_id)
        assert stored is not None
        assert (stored.state, stored.result, stored.lease_owner) == ("Success", {"rows": 3}, None)

    def test_finished_task_run_cannot_be_claimed_again(
        self, store: Store, task_run: tuple[str, str]
    ) -> None:
        flow_run_id, tr_id = task_run
        assert store.task_runs.claim(tr_id, flow_run_id, "owner-a", 30, "a").claimed
        assert store.task_runs.finish(tr_id, flow_run_id, State.FAILED, "boom", owner="owner-a")
        again = store.task_runs.claim(tr_id, flow_run_id, "owner-b", 30, "b")
        assert again.claimed is False
        assert (again.task_run.state, again.task_run.message) == ("Failed", "boom")

    def test_renew_lease_only_by_its_owner(self, store: Store, task_run: tuple[str, str]) -> None:
        flow_run_id, tr_id = task_run
        assert store.task_runs.claim(tr_id, flow_run_id, "owner-a", 0.2, "a").claimed
        assert store.task_runs.renew_lease(tr_id, "owner-b", 30) is False
        assert store.task_runs.renew_lease(tr_id, "owner-a", 30) is True
        time.sleep(0.4)
        # the renewed lease is still live, so B cannot take over
        assert store.task_runs.claim(tr_id, flow_run_id, "owner-b", 30, "b").claimed is False

    def test_task_runs_are_created_once(self, store: Store, task_run: tuple[str, str]) -> None:
        flow_run_id, _ = task_run
        store.task_runs.create(flow_run_id, [("extract", "extract"), ("load", "load")])
        runs: list[Any] = store.task_runs.of_flow_run(flow_run_id)
        assert sorted((r.slug, r.state, r.attempts) for r in runs) == [
            ("extract", "Pending", 0),
            ("load", "Pending", 0),
        ]

    def test_done_slugs_are_created_successful(
        self, store: Store, task_run: tuple[str, str]
    ) -> None:
        flow_run_id, _ = task_run
        store.task_runs.create(flow_run_id, [("limit", "limit")], done={"limit": 5})
        (param,) = store.task_runs.of_flow_run(flow_run_id, ["limit"])
        assert (param.state, param.result, param.attempts) == ("Success", 5, 1)

    def test_reads_by_id_leave_unknown_ids_out(
        self, store: Store, task_run: tuple[str, str]
    ) -> None:
        flow_run_id, tr_id = task_run
        extract_id = task_run_id(flow_run_id, "extract")
        store.task_runs.claim(tr_id, flow_run_id, "owner-a", 30, "a")
        assert set(store.task_runs.by_ids([tr_id, extract_id, "nope"])) == {tr_id, extract_id}
        assert store.task_runs.states([tr_id, extract_id, "nope"]) == {
            tr_id: State.RUNNING,
            extract_id: State.PENDING,
        }
        assert store.task_runs.by_ids([]) == {} and store.task_runs.states([]) == {}
        assert store.task_runs.get("nope") is None

    def test_a_mapped_task_fans_out_and_lets_go_of_its_lease(
        self, store: Store, task_run: tuple[str, str]
    ) -> None:
        flow_run_id, tr_id = task_run
        # Given a mapped task run claimed by its node
        assert store.task_runs.claim(tr_id, flow_run_id, "owner-a", 30, "a").claimed
        # When it fans out over three elements
        store.task_runs.start_mapped(tr_id, flow_run_id, "load", "load", 3, "owner-a")
        # Then its three children are Pending, and it is Running with no lease
        children = [r for r in store.task_runs.of_flow_run(flow_run_id) if r.map_index >= 0]
        assert sorted((r.map_index, r.state) for r in children) == [
            (0, "Pending"),
            (1, "Pending"),
            (2, "Pending"),
        ]
        parent = store.task_runs.get(tr_id)
        assert parent is not None
        assert (parent.state, parent.lease_owner, parent.message) == (
            "Running",
            None,
            "mapped over 3 elements",
        )

    def test_cancel_pending_cancels_every_unfinished_task_run(
        self, store: Store, task_run: tuple[str, str]
    ) -> None:
        flow_run_id, tr_id = task_run
        extract_id = task_run_id(flow_run_id, "extract")
        assert store.task_runs.claim(extract_id, flow_run_id, "owner-a", 30, "a").claimed
        assert store.task_runs.finish(extract_id, flow_run_id, State.SUCCESS, owner="owner-a")
        assert store.task_runs.cancel_pending(flow_run_id, "flow run cancelled") == 1
        states = store.task_runs.states([tr_id, extract_id])
        assert states == {tr_id: State.CANCELLED, extract_id: State.SUCCESS}
