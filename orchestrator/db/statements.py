"""The Core statements of the hot path (claims, state changes, reads by id), built once
with bound parameters: building a statement and its cache key costs more than running
it on a local database, so a statement built once is compiled once and each call only
binds values; variants (which columns an update sets) are built on first use and kept
by :func:`functools.cache`. Imports SQLAlchemy, the tables of the sibling module
models, and the core's states."""

from __future__ import annotations

import functools
from typing import Any, cast

from sqlalchemy import Table, bindparam, func, insert, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite

from orchestrator.db.models import FlowRun, FlowVersion, Project, StateEvent, TaskRun
from orchestrator.states import State

FLOW_RUNS = cast(Table, FlowRun.__table__)
TASK_RUNS = cast(Table, TaskRun.__table__)
EVENTS = cast(Table, StateEvent.__table__)
FLOWS = cast(Table, FlowVersion.__table__)
PROJECTS = cast(Table, Project.__table__)

_fr = FLOW_RUNS.c
_tr = TASK_RUNS.c


def _at(name: str) -> Any:
    """A bound time, typed (so SQLite stores and compares it in its own format)."""
    return bindparam(name, type_=_tr.start_time.type)


#: A flow run by id (``id``).
FLOW_RUN = select(FLOW_RUNS).where(_fr.id == bindparam("id"))
#: A flow run by idempotency key (``key``).
FLOW_RUN_BY_KEY = select(FLOW_RUNS).where(_fr.idempotency_key == bindparam("key"))
#: A task run by id (``id``).
TASK_RUN = select(TASK_RUNS).where(_tr.id == bindparam("id"))
#: Task runs by ids (``ids``, a list).
TASK_RUNS_BY_ID = select(TASK_RUNS).where(_tr.id.in_(bindparam("ids", expanding=True)))
#: The states of task runs by ids (``ids``, a list): no results to decode.
TASK_RUN_STATES = select(_tr.id, _tr.state).where(_tr.id.in_(bindparam("ids", expanding=True)))
#: The states of the children of mapped tasks (``flow_run``, ``slugs``, a list).
CHILD_STATES = select(_tr.slug, _tr.map_index, _tr.state).where(
    _tr.flow_run_id == bindparam("flow_run"),
    _tr.slug.in_(bindparam("slugs", expanding=True)),
    _tr.map_index >= 0,
)

#: The newest non-archived version of a flow (``project``, ``name``).
NEWEST_FLOW = (
    select(FLOWS)
    .join(PROJECTS, PROJECTS.c.id == FLOWS.c.project_id)
    .where(
        PROJECTS.c.name == bindparam("project"),
        FLOWS.c.name == bindparam("name"),
        FLOWS.c.archived.is_(False),
    )
)
#: Insert a flow run (every column).
INSERT_FLOW_RUN = insert(FLOW_RUNS)
#: Insert state events (every column but the id).
INSERT_EVENTS = insert(EVENTS)
# In updates, bound names differ from column names, as SQLAlchemy requires.

#: Extend a held lease (``target``, ``owner``, ``until``).
RENEW_LEASE = (
    update(TASK_RUNS)
    .where(
        _tr.id == bindparam("target"),
        _tr.lease_owner == bindparam("owner"),
        _tr.state == State.RUNNING.value,
    )
    .values(lease_until=_at("until"))
)
#: Claim a task run (``target``, ``owner``, ``until``, ``now``, ``by_worker``): Pending,
#: Retrying once its next attempt is due, or Running with an expired lease or none and
#: no child run it waits for.
CLAIM = (
    update(TASK_RUNS)
    .where(
        _tr.id == bindparam("target"),
        or_(
            _tr.state == State.PENDING.value,
            (_tr.state == State.RETRYING.value)
            & or_(_tr.not_before.is_(None), _tr.not_before <= _at("now")),
            (_tr.state == State.RUNNING.value)
            & or_(_tr.lease_until < _at("now"), _tr.lease_until.is_(None))
            & _tr.child_flow_run_id.is_(None),
        ),
    )
    .values(
        state=State.RUNNING.value,
        lease_owner=bindparam("owner"),
        lease_until=_at("until"),
        attempts=_tr.attempts + 1,
        worker=bindparam("by_worker"),
        start_time=func.coalesce(_tr.start_time, _at("now")),
    )
    .returning(*TASK_RUNS.columns)
)


@functools.cache
def set_flow_run_state(new: State) -> Any:
    """Compare-and-set a flow run's state to ``new`` (``target``, ``allowed``, a list
    of states, ``new_message``, ``now``), returning the run as it is now."""
    values: dict[str, Any] = {
        "state": new.value,
        "message": bindparam("new_message"),
        "updated": _at("now"),
    }
    if new is State.RUNNING:
        values["start_time"] = func.coalesce(_fr.start_time, _at("now"))
    if new.is_final:
        values["end_time"] = _at("now")
    return (
        update(FLOW_RUNS)
        .where(_fr.id == bindparam("target"), _fr.state.in_(bindparam("allowed", expanding=True)))
        .values(**values)
        .returning(*FLOW_RUNS.columns)
    )


@functools.cache
def finish_task_run(final: bool, leased: bool, child: bool, retrying: bool = False) -> Any:
    """Record a task run's new state (``target``, ``new_state``, ``new_message``;
    ``new_result`` and ``now`` when ``final``; ``owner`` when ``leased``, else
    ``allowed``, a list of states; ``child`` when ``child``; ``due`` when
    ``retrying``: when its next attempt is due).

    Args:
        final: the new state is final (the result, end time, lease cleared).
        leased: only while ``owner`` holds the lease of the Running task run (else
            only from one of the ``allowed`` states).
        child: also record the child flow run it waits for (and, when not
            ``final``, ``new_result``: what it takes from that child).
    """
    values: dict[str, Any] = {"state": bindparam("new_state"), "message": bindparam("new_message")}
    if final:
        values.update(
            result=bindparam("new_result", type_=_tr.result.type),
            end_time=_at("now"),
            lease_owner=None,
            lease_until=None,
            start_time=func.coalesce(_tr.start_time, _at("now")),
        )
    if retrying:
        values["not_before"] = _at("due")
    if child:
        values["child_flow_run_id"] = bindparam("child")
        if not final:  # what the waiting task run takes from the child, kept till then
            values["result"] = bindparam("new_result", type_=_tr.result.type)
    cond = [_tr.id == bindparam("target")]
    if leased:
        cond += [_tr.lease_owner == bindparam("owner"), _tr.state == State.RUNNING.value]
    else:
        cond.append(_tr.state.in_(bindparam("allowed", expanding=True)))
    return update(TASK_RUNS).where(*cond).values(**values)


@functools.cache
def insert_new(dialect: str, table: Table, returning: bool) -> Any:
    """Insert rows into ``table``, leaving out those whose unique keys exist already
    (``returning``: give back the primary key of each row that went in)."""
    ins = postgresql.insert(table) if dialect == "postgresql" else sqlite.insert(table)
    stmt = ins.on_conflict_do_nothing()
    return stmt.returning(*table.primary_key.columns) if returning else stmt
