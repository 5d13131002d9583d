"""The state-event feed: the recorded state changes of flow runs and task runs after
a given event id, each with its run's parent and flow name and its task's slug (one
query per batch), and the state each key (flow run, task run) was in before a given
event, for the events whose previous state the reader has not seen. The server reads
it for ``/api/events``. Imports SQLAlchemy, the standard library, the sibling modules
browse, database and statements."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import and_, func, or_, select

from orchestrator.db.browse import tree_cte
from orchestrator.db.database import Database
from orchestrator.db.statements import EVENTS, FLOW_RUNS, FLOWS, TASK_RUNS

#: (flow run id, task run id or None): whose state an event records.
Key = tuple[str, str | None]

_e = EVENTS.c


@dataclass(frozen=True)
class EventRow:
    """One recorded state change, with the names a watcher needs.

    Attributes:
        id: the event's id (increasing, with gaps).
        flow_run_id: the flow run it is about (or whose task run it is about).
        task_run_id: the task run it is about; None for the flow run itself.
        state: the state entered.
        message: the state's message.
        timestamp: when it was recorded.
        parent_flow_run_id: the flow run's parent (None for a root).
        flow_name: the flow run's flow.
        task_slug: the task run's slug (None for a flow run's event).
        map_index: the task run's map index (-1 when not mapped or not a task run).
    """

    id: int
    flow_run_id: str
    task_run_id: str | None
    state: str
    message: str | None
    timestamp: datetime
    parent_flow_run_id: str | None
    flow_name: str | None
    task_slug: str | None
    map_index: int

    @property
    def key(self) -> Key:
        """Whose state this is: (flow run id, task run id or None)."""
        return (self.flow_run_id, self.task_run_id)


class Events:
    """The state events of one database.

    Args:
        db: the database.
    """

    def __init__(self, db: Database) -> None:
        self._db = db

    def last_id(self) -> int:
        """The id of the newest event (0 when there is none)."""
        row = self._db.one(select(func.max(_e.id)))
        return int(row[0]) if row is not None and row[0] is not None else 0

    def since(
        self,
        after: int,
        also: Iterable[int] = (),
        limit: int = 1000,
        tree_of: str | None = None,
    ) -> list[EventRow]:
        """The events with an id above ``after`` (and those of ``also``), oldest first.

        Args:
            after: the newest id seen so far.
            also: ids below it to look at again (gaps: transactions that may commit
                late, as ids are handed out before commit).
            limit: at most this many.
            tree_of: only the events of this run and of every run under it.

        Returns:
            The events with their run's parent and flow and their task's slug.
        """
        again = list(also)
        cond: Any = _e.id > after if not again else or_(_e.id > after, _e.id.in_(again))
        if tree_of is not None:
            cond = and_(cond, _e.flow_run_id.in_(select(tree_cte([tree_of], "watched").c.id)))
        q = (
            select(
                EVENTS,
                FLOW_RUNS.c.parent_flow_run_id,
                FLOWS.c.name.label("flow_name"),
                TASK_RUNS.c.slug,
                TASK_RUNS.c.map_index,
            )
            .select_from(EVENTS)
            .outerjoin(FLOW_RUNS, FLOW_RUNS.c.id == _e.flow_run_id)
            .outerjoin(FLOWS, FLOWS.c.id == FLOW_RUNS.c.flow_id)
            .outerjoin(TASK_RUNS, TASK_RUNS.c.id == _e.task_run_id)
            .where(cond)
            .order_by(_e.id)
            .limit(limit)
        )
        out = []
        for r in self._db.all(q):
            m = r._mapping
            index = m["map_index"]
            out.append(
                EventRow(
                    id=int(m["id"]),
                    flow_run_id=m["flow_run_id"],
                    task_run_id=m["task_run_id"],
                    state=m["state"],
                    message=m["message"],
                    timestamp=m["timestamp"],
                    parent_flow_run_id=m["parent_flow_run_id"],
                    flow_name=m["flow_name"],
                    task_slug=m["slug"],
                    map_index=-1 if index is None else int(index),
                )
            )
        return out

    def states_before(self, keys: Sequence[Key], before: int) -> dict[Key, str]:
        """The state each key was in just before event ``before`` (keys with no older
        event are left out), in one query per thousand flow runs."""
        wanted = set(keys)
        runs = sorted({run for run, _ in wanted})
        out: dict[Key, str] = {}
        for start in range(0, len(runs), 1000):
            chunk = runs[start : start + 1000]
            newest = (
                select(func.max(_e.id).label("id"))
                .where(_e.flow_run_id.in_(chunk), _e.id < before)
                .group_by(_e.flow_run_id, _e.task_run_id)
                .subquery()
            )
            q = select(_e.flow_run_id, _e.task_run_id, _e.state).join(newest, newest.c.id == _e.id)
            for row in self._db.all(q):
                key = (row.flow_run_id, row.task_run_id)
                if key in wanted:
                    out[key] = row.state
        return out
