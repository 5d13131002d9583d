"""Cancelling a flow run and the runs under it so that running code stops
(:func:`cancel_tree`): each run is recorded Cancelled (with its unfinished task runs)
and its slots given back, then the Celery tasks running its task runs' code (recorded
by the workers under :data:`~orchestrator.constants.RUNNING_CODE`) are revoked with
``terminate``: the pool ends those processes and starts fresh ones. Children follow
their StartFlowRun's ``on_parent_cancel`` policy (:data:`CANCEL` by default,
:data:`ABANDON` leaves a child running). A cancelled child whose parent goes on has
its parent's canvas sent again, so the waiting task takes the Cancelled state even
when the code that would have reported it was stopped. Imports redis-py, Celery (the
app's type), :mod:`orchestrator.db` and the core's constants and states."""

from __future__ import annotations

import contextlib
import json
from dataclasses import dataclass, field

import redis
from celery import Celery

import orchestrator.constants as constants
from orchestrator.db import Store
from orchestrator.db.models import FlowRun
from orchestrator.states import State

__all__ = ["ABANDON", "CANCEL", "POLICIES", "Canceller", "cancel_tree"]

#: A child is cancelled with its parent (the default).
CANCEL = "cancel"
#: A child keeps running when its parent is cancelled.
ABANDON = "abandon"
#: The policies a StartFlowRun's ``on_parent_cancel`` may name.
POLICIES = (CANCEL, ABANDON)


@dataclass
class Canceller:
    """What a cancel works with: the database, Redis, the Celery app and its queue."""

    store: Store
    redis: redis.Redis
    app: Celery
    queue: str
    revoked: list[str] = field(default_factory=list)

    def notify(self, flow_run_id: str, state: State) -> None:
        """Announce a state change to waiting clients (best effort)."""
        with contextlib.suppress(redis.RedisError):
            self.redis.publish(
                constants.FLOW_RUN_CHANNEL.format(id=flow_run_id),
                json.dumps({"id": flow_run_id, "state": state.value}),
            )

    def cancel_one(self, run: FlowRun, message: str) -> bool:
        """Record one run Cancelled (its unfinished task runs too), give back its slots
        and stop its running code; whether this call cancelled it."""
        store = self.store
        if not store.flow_runs.set_state(run.id, State.CANCELLED, message):
            return False
        self.notify(run.id, State.CANCELLED)
        store.task_runs.cancel_pending(run.id, "flow run cancelled")
        self.app.send_task(
            constants.RELEASE_SLOTS, args=[run.id, list(run.labels or [])], queue=self.queue
        )
        self.stop_code(run.id)
        return True

    def stop_code(self, flow_run_id: str) -> None:
        """Revoke, terminating them, the Celery tasks running the run's task code."""
        key = constants.RUNNING_CODE.format(id=flow_run_id)
        marker = constants.RUNNING_CODE_CANCELLED
        try:
            # one transaction: code recorded after it sees the marker and does not start
            with self.redis.pipeline() as pipe:
                pipe.hset(key, marker, "1")
                pipe.expire(key, constants.RUNNING_CODE_TTL)
                pipe.hgetall(key)
                recorded: dict[bytes, bytes] = pipe.execute()[-1]
        except redis.RedisError:
            return  # the code runs on; its result changes nothing (the run is Cancelled)
        ids = sorted({v.decode() for k, v in recorded.items() if k.decode() != marker})
        if ids:
            self.app.control.revoke(ids, terminate=True, signal="SIGTERM")
            self.revoked.extend(ids)

    def policy(self, child: FlowRun) -> str:
        """The ``on_parent_cancel`` of the StartFlowRun that started ``child``."""
        if not child.parent_task_run_id or not child.parent_flow_run_id:
            return CANCEL
        task_run = self.store.task_runs.get(child.parent_task_run_id)
        if task_run is None:
            return CANCEL
        parent = self.store.flow_runs.get(child.parent_flow_run_id)
        structure = self.store.flows.get(parent.flow_id).structure or {}
        for task in structure.get("tasks", []):
            if task.get("slug") == task_run.slug:
                value = (task.get("options") or {}).get("on_parent_cancel")
                return str(value) if value in POLICIES else CANCEL
        return CANCEL

    def resume_parent(self, run: FlowRun) -> None:
        """Send the canvas of the unfinished parent waiting on ``run`` again, so its
        waiting task takes the Cancelled state (the code that would have told it may
        have been stopped)."""
        if not run.parent_flow_run_id or not run.parent_task_run_id:
            return
        waiting = self.store.task_runs.get(run.parent_task_run_id)
        if waiting is None or waiting.child_flow_run_id != run.id:
            return
        parent = self.store.flow_runs.get(run.parent_flow_run_id)
        if State(parent.state) is State.RUNNING:
            self.app.send_task(constants.RESUBMIT, args=[parent.id], queue=self.queue)


def cancel_tree(c: Canceller, flow_run_id: str, message: str, cancel_children: bool) -> bool:
    """Cancel a flow run that is not final yet, its running code stopped, and (with
    ``cancel_children``) its unfinished children that follow it, theirs and so on.

    Returns:
        True when the run itself was cancelled by this call.
    """
    root = c.store.flow_runs.get(flow_run_id)
    cancelled = c.cancel_one(root, message)
    todo = [root] if cancel_children else []
    while todo:
        run = todo.pop(0)
        for child in c.store.flow_runs.children(run.id):
            if State(child.state).is_final or c.policy(child) == ABANDON:
                continue
            c.cancel_one(child, f"parent {run.id} cancelled: {message}")
            todo.append(child)
    if c.revoked:
        c.resume_parent(root)
    return cancelled
