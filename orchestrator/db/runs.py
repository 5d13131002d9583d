"""The transactions that span a flow run and its task runs: starting a run (its task runs
and its Running state at once), starting a one-task run and claiming its task (storing
it first when it is new, and linking the parent task run that waits for it), and
ending a run with the task that decides it (mirroring its state into the waiting
parent task run). Imports SQLAlchemy, the standard library, the sibling modules
database, flow_runs, task_runs, models and statements, and the core's ids, requests
and states."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Row

from orchestrator.db.database import Database, Tx
from orchestrator.db.flow_runs import allowed_states, row_of, set_state_in
from orchestrator.db.models import FlowRun
from orchestrator.db.statements import FLOW_RUNS
from orchestrator.db.task_runs import Claim, claim_in, finish_in, insert_pending_in
from orchestrator.ids import task_run_id
from orchestrator.requests import NewFlowRun
from orchestrator.states import State


@dataclass(frozen=True)
class Link:
    """A task run that starts waiting for a child flow run (written in the child's
    start transaction): it stays Running, leased by ``owner``, with ``message``.

    Attributes:
        task_run_id: the waiting task run.
        flow_run_id: its flow run.
        owner: the lease it holds.
        message: its new message (naming the child).
        takes: what it takes from the child when that ends (kept as its result
            while it waits): None for the child's state, or one task run's result.
    """

    task_run_id: str
    flow_run_id: str
    owner: str
    message: str | None
    takes: dict[str, Any] | None = None


@dataclass(frozen=True)
class Mirror:
    """A waiting task run taking its child run's final state (written in the
    child's end transaction).

    Attributes:
        task_run_id: the waiting task run.
        flow_run_id: its flow run.
        state: the state it takes.
        message: its message.
        result: its result.
    """

    task_run_id: str
    flow_run_id: str
    state: State
    message: str | None
    result: Any


class Runs:
    """The transactions over flow runs and task runs of one database.

    Args:
        db: the database.
    """

    def __init__(self, db: Database) -> None:
        self._db = db

    def begin(
        self,
        flow_run_id: str,
        tasks: Sequence[tuple[str, str]],
        done: dict[str, Any],
        from_states: Iterable[State] | None = None,
    ) -> bool:
        """Create a flow run's task runs and move it to Running, in one transaction.

        Args:
            flow_run_id: the run.
            tasks: (slug, name) of every task.
            done: slugs recorded as Success at once with their results (parameters).
            from_states: the states the run may be in (each must be allowed to move to
                Running); None means every such state.

        Returns:
            False, with nothing written, when the run was in none of ``from_states``.

        Raises:
            ValueError: ``from_states`` holds a state that may not move to Running.
        """
        allowed = allowed_states(State.RUNNING, from_states)
        with self._db.tx() as tx:
            if set_state_in(tx, flow_run_id, State.RUNNING, None, allowed) is None:
                return False
            insert_pending_in(tx, flow_run_id, tasks, -1, done)
            return True

    def begin_and_claim(
        self,
        flow_run_id: str,
        tasks: Sequence[tuple[str, str]],
        done: dict[str, Any],
        from_states: Iterable[State] | None,
        slug: str,
        owner: str,
        lease_seconds: float,
        worker: str | None,
        link: Link | None = None,
        create: NewFlowRun | None = None,
    ) -> Claim | None:
        """:meth:`begin` and :meth:`~orchestrator.db.task_runs.TaskRuns.claim` of one
        task, in one transaction (a one-task flow run about to run in the same
        worker task).

        Args:
            flow_run_id: the run.
            tasks: (slug, name) of every task.
            done: slugs recorded as Success at once with their results (parameters).
            from_states: the states the run may be in (see :meth:`begin`).
            slug: the task to claim.
            owner: the lease owner of the claim.
            lease_seconds: how long the lease lasts.
            worker: the worker process, as the task run records it.
            link: the parent task run that waits for this run, recorded as waiting
                in the same transaction.
            create: the run, not stored yet: it is inserted Running in the same
                transaction (``from_states`` is then not used).

        Returns:
            The claim; None, with nothing written, when the run was in none of
            ``from_states`` (with ``create``: when its id or key is taken already).

        Raises:
            ValueError: ``from_states`` holds a state that may not move to Running.
        """
        allowed = allowed_states(State.RUNNING, from_states)
        with self._db.tx() as tx:
            flow_run = _start(tx, flow_run_id, allowed, create)
            if flow_run is None:
                return None
            if link is not None:
                finish_in(
                    tx,
                    link.task_run_id,
                    link.flow_run_id,
                    State.RUNNING,
                    link.message,
                    link.takes,
                    owner=link.owner,
                    child_flow_run_id=flow_run_id,
                )
            insert_pending_in(tx, flow_run_id, tasks, -1, done)
            tr_id = task_run_id(flow_run_id, slug)
            return claim_in(tx, tr_id, flow_run_id, owner, lease_seconds, worker, flow_run)

    def finish_task_and_flow(
        self,
        task_run_id: str,
        flow_run_id: str,
        state: State,
        message: str | None,
        result: Any,
        owner: str,
        flow_state: State,
        flow_message: str | None,
        mirror: Mirror | None = None,
    ) -> tuple[bool, bool, bool]:
        """Record the task run that ends a flow (while ``owner`` holds its lease) and
        then the Running flow run's final state, in one transaction.

        Args:
            task_run_id: the task run.
            flow_run_id: its flow run.
            state: the task run's new state.
            message: its message.
            result: its result.
            owner: the lease it must hold.
            flow_state: the flow run's final state.
            flow_message: its message.
            mirror: the parent task run waiting for this flow run, given its final
                state in the same transaction (when the flow run's state is recorded).

        Returns:
            Whether the task run was recorded, whether the flow run was, and whether
            the mirrored state was.

        Raises:
            ValueError: ``flow_state`` may not follow Running.
        """
        allowed = allowed_states(flow_state, [State.RUNNING])
        with self._db.tx() as tx:
            if not finish_in(tx, task_run_id, flow_run_id, state, message, result, owner):
                return False, False, False
            flow = set_state_in(tx, flow_run_id, flow_state, flow_message, allowed)
            mirrored = (
                flow is not None
                and mirror is not None
                and finish_in(
                    tx,
                    mirror.task_run_id,
                    mirror.flow_run_id,
                    mirror.state,
                    mirror.message,
                    mirror.result,
                )
            )
            return True, flow is not None, mirrored


def _start(
    tx: Tx, flow_run_id: str, allowed: Sequence[str], create: NewFlowRun | None
) -> Row[Any] | FlowRun | None:
    """Move a stored run to Running, or store a new one Running, in ``tx``.

    Returns:
        The run as it is now; None when it was in none of ``allowed`` (with
        ``create``: when its id or key is taken already).
    """
    if create is None:
        return set_state_in(tx, flow_run_id, State.RUNNING, None, allowed)
    row = row_of(create, state=State.RUNNING.value, start_time=tx.now, updated=tx.now)
    if not tx.insert_one_new(FLOW_RUNS, row):
        return None
    tx.event(flow_run_id, State(create.state))
    tx.event(flow_run_id, State.RUNNING)
    return FlowRun(**row)
