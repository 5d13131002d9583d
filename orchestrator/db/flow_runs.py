"""Flow runs: inserting one (idempotent by its key), reading it by id or key, its
compare-and-set state changes (only along ``orchestrator.states.TRANSITIONS``),
listings, children and history; reads by id and state changes run prebuilt Core
statements on plain connections (the hot path), listings use ORM sessions. Imports
SQLAlchemy, the standard library, the sibling modules database, models and statements,
and the core's errors, states and requests."""

from __future__ import annotations

import builtins
import functools
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, cast

from sqlalchemy import Row, select, update
from sqlalchemy.orm import Session

import orchestrator.db.statements as sql
from orchestrator.db.database import Database, Tx
from orchestrator.db.models import FlowRun, FlowVersion, Project, StateEvent
from orchestrator.db.statements import FLOW_RUNS
from orchestrator.errors import FlowRunNotFound
from orchestrator.requests import NewFlowRun
from orchestrator.states import State, can_transition, states_before

#: How many run ids one ``IN`` list of :meth:`FlowRuns.list_summaries` carries.
_IDS_PER_QUERY = 1000


@dataclass(frozen=True)
class FlowRunSummary:
    """A flow run as a listing shows it.

    Attributes:
        run: the stored run (detached).
        flow_name: its flow's name.
        project: its flow's project name.
        version: its flow version's number.
        children: the ids of the flow runs its tasks started, oldest first.
    """

    run: FlowRun
    flow_name: str
    project: str
    version: int
    children: tuple[str, ...]


def flow_run(row: Row[Any] | FlowRun) -> FlowRun:
    """A flow run read with a Core statement, as a (detached) ORM object."""
    return row if isinstance(row, FlowRun) else FlowRun(**row._mapping)


def row_of(new: NewFlowRun, **changes: Any) -> dict[str, Any]:
    """The columns of a new flow run, to insert (``changes`` override some)."""
    row: dict[str, Any] = {
        "id": new.id,
        "flow_id": new.flow_id,
        "name": new.name,
        "state": State(new.state).value,
        "message": None,
        "parameters": new.parameters,
        "labels": list(new.labels),
        "idempotency_key": new.idempotency_key,
        "parent_flow_run_id": new.parent_flow_run_id,
        "parent_task_run_id": new.parent_task_run_id,
        "scheduled_start_time": new.scheduled_start_time,
        "start_time": None,
        "end_time": None,
        "created": new.created,
        "updated": new.created,
        "buffered": new.buffered,
        "trace_context": new.trace_context,
    }
    row.update(changes)
    return row


@functools.cache
def _before(new: State) -> list[str]:
    """Every state ``new`` may be reached from, as stored (never mutated)."""
    return sorted(x.value for x in states_before(new))


def allowed_states(new: State, from_states: Iterable[State] | None) -> list[str]:
    """The states a compare-and-set to ``new`` accepts, as stored.

    Args:
        new: the state to set.
        from_states: the states the run may be in; None means every state ``new``
            may be reached from.

    Raises:
        ValueError: a state in ``from_states`` may not move to ``new``.
    """
    if from_states is None:
        return _before(new)
    allowed = []
    for old in from_states:
        if not can_transition(State(old), new):
            raise ValueError(f"illegal transition {State(old).value} -> {new.value}")
        allowed.append(State(old).value)
    return allowed


def set_state_in(
    tx: Tx, flow_run_id: str, new: State, message: str | None, allowed: Sequence[str]
) -> Row[Any] | None:
    """Compare-and-set a flow run's state in ``tx``, recording the event.

    Args:
        tx: the transaction.
        flow_run_id: the run.
        new: its new state.
        message: its new message.
        allowed: the states it may be in (see :func:`allowed_states`).

    Returns:
        The flow run as it is now, or None when it was in none of ``allowed``.
    """
    params = {"target": flow_run_id, "allowed": allowed, "new_message": message, "now": tx.now}
    row = tx.execute(sql.set_flow_run_state(new), params).first()
    if row is not None:
        tx.event(flow_run_id, new, message)
    return cast("Row[Any] | None", row)


class FlowRuns:
    """The flow runs of one database.

    Args:
        db: the database.
    """

    def __init__(self, db: Database) -> None:
        self._db = db

    def insert(self, new: NewFlowRun, message: str | None = None) -> tuple[FlowRun, bool]:
        """Insert a flow run, or find the one holding its idempotency key.

        Args:
            new: the run.
            message: its first state's message (kept in its history too).

        Returns:
            The run as stored, and True when this call inserted it.
        """
        return self._insert(new, row_of(new, message=message))

    def insert_final(self, new: NewFlowRun, message: str) -> tuple[FlowRun, bool]:
        """Record a flow run that is final from the start (a skipped schedule slot).

        Args:
            new: the run, in a final state.
            message: why it is final.

        Returns:
            The run (the existing one when its key was used), and True when created.

        Raises:
            ValueError: ``new`` is not in a final state.
        """
        if not State(new.state).is_final:
            raise ValueError(f"{new.state} is not a final state")
        return self._insert(new, row_of(new, message=message, end_time=new.created))

    def _insert(self, new: NewFlowRun, row: dict[str, Any]) -> tuple[FlowRun, bool]:
        key = new.idempotency_key
        with self._db.tx() as tx:
            if key:
                # the unique key is the guarantee: a second insert of it adds nothing
                created = tx.insert_one_new(FLOW_RUNS, row)
            else:
                tx.execute(sql.INSERT_FLOW_RUN, row)
                created = True
            if created:
                tx.event(new.id, State(new.state), row["message"])
        if created:
            return FlowRun(**row), True
        existing = self.by_key(key or "")
        if existing is None:
            raise FlowRunNotFound(f"no flow run holds idempotency key {key!r}")
        return existing, False

    def by_keys(self, keys: Iterable[str]) -> dict[str, FlowRun]:
        """The flow runs holding these idempotency keys, by key (absent keys left out)."""
        wanted = sorted(set(keys))
        found: dict[str, FlowRun] = {}
        with self._db.reading() as s:
            for start in range(0, len(wanted), _IDS_PER_QUERY):
                chunk = wanted[start : start + _IDS_PER_QUERY]
                for run in s.scalars(select(FlowRun).where(FlowRun.idempotency_key.in_(chunk))):
                    found[run.idempotency_key or ""] = run
        return found

    def by_key(self, key: str) -> FlowRun | None:
        """The flow run holding an idempotency key, if any."""
        row = self._db.one(sql.FLOW_RUN_BY_KEY, {"key": key})
        return None if row is None else flow_run(row)

    def get(self, flow_run_id: str) -> FlowRun:
        """A flow run by id.

        Raises:
            FlowRunNotFound: no such run.
        """
        row = self._db.one(sql.FLOW_RUN, {"id": flow_run_id})
        if row is None:
            raise FlowRunNotFound(f"no flow run {flow_run_id!r}")
        return flow_run(row)

    def ids_starting_with(self, prefix: str, limit: int = 2) -> builtins.list[str]:
        """At most ``limit`` flow run ids that start with ``prefix`` (hex digits and dashes)."""
        if not prefix or any(c not in "0123456789abcdef-" for c in prefix):
            return []
        with self._db.reading() as s:
            q = select(FlowRun.id).where(FlowRun.id.startswith(prefix)).order_by(FlowRun.id)
            return list(s.scalars(q.limit(limit)))

    def set_state(
        self,
        flow_run_id: str,
        new: State,
        message: str | None = None,
        from_states: Iterable[State] | None = None,
    ) -> bool:
        """Compare-and-set a flow run's state, recording the change in its history.

        Args:
            flow_run_id: the run.
            new: its new state.
            message: its new message.
            from_states: the states it may be in now; each must be allowed to move to
                ``new`` by ``TRANSITIONS``. None means every such state.

        Returns:
            True when the state was set; False when the run was in none of the states.

        Raises:
            ValueError: ``from_states`` holds a state that may not move to ``new``.
        """
        allowed = allowed_states(new, from_states)
        with self._db.tx() as tx:
            return set_state_in(tx, flow_run_id, new, message, allowed) is not None

    def touch(self, flow_run_id: str) -> None:
        """Mark a flow run as just handled (its ``updated`` time)."""
        with self._db.tx() as tx:
            tx.execute(
                update(FLOW_RUNS).where(FLOW_RUNS.c.id == flow_run_id).values(updated=tx.now)
            )

    def list(
        self, limit: int = 20, state: State | None = None, top_level_only: bool = False
    ) -> builtins.list[tuple[FlowRun, str]]:
        """The newest flow runs with their flow names.

        Args:
            limit: at most this many.
            state: only runs in this state.
            top_level_only: only runs no other run started.

        Returns:
            (run, flow name) pairs, the newest first.
        """
        with self._db.reading() as s:
            q = select(FlowRun, FlowVersion.name).join(
                FlowVersion, FlowVersion.id == FlowRun.flow_id
            )
            q = _filtered(q, state, top_level_only).limit(limit)
            return [(r, n) for r, n in s.execute(q).all()]

    def list_summaries(
        self, limit: int = 20, state: State | None = None, top_level_only: bool = False
    ) -> builtins.list[FlowRunSummary]:
        """The newest flow runs with their flow, project, version and children, in
        two queries (one more per thousand runs listed).

        Args:
            limit: at most this many.
            state: only runs in this state.
            top_level_only: only runs no other run started.

        Returns:
            One :class:`FlowRunSummary` per run, the newest first.
        """
        with self._db.reading() as s:
            q = (
                select(FlowRun, FlowVersion.name, FlowVersion.version, Project.name)
                .join(FlowVersion, FlowVersion.id == FlowRun.flow_id)
                .join(Project, Project.id == FlowVersion.project_id)
            )
            rows = s.execute(_filtered(q, state, top_level_only).limit(limit)).all()
            children = _children_of(s, [r.id for r, *_ in rows])
        return [
            FlowRunSummary(r, name, project, version, tuple(children.get(r.id, ())))
            for r, name, version, project in rows
        ]

    def children(self, flow_run_id: str) -> builtins.list[FlowRun]:
        """The flow runs started by tasks of this run, oldest first."""
        with self._db.reading() as s:
            q = (
                select(FlowRun)
                .where(
                    FlowRun.parent_flow_run_id == flow_run_id,
                    FlowRun.parent_flow_run_id.is_not(None),  # the partial index's condition
                )
                .order_by(FlowRun.created)
            )
            return builtins.list(s.scalars(q).all())

    def history(self, flow_run_id: str) -> builtins.list[StateEvent]:
        """The recorded state changes of a flow run and its task runs, oldest first."""
        with self._db.reading() as s:
            q = (
                select(StateEvent)
                .where(StateEvent.flow_run_id == flow_run_id)
                .order_by(StateEvent.id)
            )
            return builtins.list(s.scalars(q).all())


def _children_of(s: Session, ids: Sequence[str]) -> dict[str, list[str]]:
    """The ids of the runs started by each of the runs ``ids``, oldest first."""
    children: dict[str, list[str]] = {}
    for start in range(0, len(ids), _IDS_PER_QUERY):
        q = (
            select(FlowRun.id, FlowRun.parent_flow_run_id)
            .where(FlowRun.parent_flow_run_id.in_(ids[start : start + _IDS_PER_QUERY]))
            .order_by(FlowRun.created)
        )
        for kid, parent in s.execute(q).all():
            if parent is not None:
                children.setdefault(parent, []).append(kid)
    return children


def _filtered(q: Any, state: State | None, top_level_only: bool) -> Any:
    """A listing of flow runs narrowed to a state and to top-level runs, newest first."""
    if state is not None:
        q = q.where(FlowRun.state == state.value)
    if top_level_only:
        q = q.where(FlowRun.parent_flow_run_id.is_(None))
    return q.order_by(FlowRun.created.desc())
