"""What the client reports when browsing runs: :class:`RunSummary` (a run with the
states of every run under it counted), :class:`FlowRunPage` (a keyset page of them),
:class:`RunNode` and :class:`TaskNode` (a whole run tree), :class:`LogLine` and
:class:`LogPage` (log lines across a tree, by time); the page cursors; and the
builders that make these from the database's rows.

May import the core (clock, errors, states) and :mod:`orchestrator.infos`; the
database's row types only for type checking."""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING

from orchestrator.clock import as_utc, aware
from orchestrator.errors import InvalidCursor
from orchestrator.infos import FlowRunInfo, TaskRunInfo, flow_run_info, task_run_info
from orchestrator.states import State

if TYPE_CHECKING:
    from orchestrator.db.browse import LogRow, RunRow
    from orchestrator.db.models import TaskRun

#: States in the order a rolled-up summary lists them: trouble first.
ROLLUP_ORDER: tuple[State, ...] = (
    State.FAILED,
    State.TIMED_OUT,
    State.TRIGGER_FAILED,
    State.CANCELLED,
    State.RUNNING,
    State.RETRYING,
    State.SUBMITTED,
    State.QUEUED,
    State.SCHEDULED,
    State.PENDING,
    State.SKIPPED,
    State.SUCCESS,
)


def encode_cursor(moment: datetime, key: str | int) -> str:
    """A page cursor: the (time, id) of the last item of a page, opaque to users."""
    raw = json.dumps([as_utc(moment).isoformat(), key], separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_cursor(cursor: str, kind: type[str] | type[int]) -> tuple[datetime, str | int]:
    """The (time, id) a cursor of :func:`encode_cursor` holds.

    Raises:
        InvalidCursor: the text is not such a cursor.
    """
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        stamp, key = json.loads(raw)
        moment = as_utc(datetime.fromisoformat(stamp))
    except (ValueError, TypeError, binascii.Error, UnicodeDecodeError) as exc:
        raise InvalidCursor(f"cursor {cursor[:40]!r} is not one a listing handed out") from exc
    if not isinstance(key, kind) or isinstance(key, bool):
        raise InvalidCursor(f"cursor {cursor[:40]!r} is not one a listing handed out")
    return moment, key


@dataclass(frozen=True)
class RunSummary:
    """A flow run as a listing shows it, with its tree rolled up.

    Attributes:
        info: the run (without its task runs; ``children`` empty).
        descendants: how many runs under it (children, theirs, ...) are in each state.
    """

    info: FlowRunInfo
    descendants: Mapping[State, int] = field(default_factory=dict)

    @property
    def descendant_count(self) -> int:
        """How many runs are under this one."""
        return sum(self.descendants.values())

    def rollup(self) -> list[tuple[State, int]]:
        """The descendants' (state, count) pairs, trouble first."""
        return [(s, self.descendants[s]) for s in ROLLUP_ORDER if self.descendants.get(s)]

    @property
    def failed_descendants(self) -> int:
        """How many runs under this one failed (Failed, TimedOut, TriggerFailed)."""
        return sum(n for s, n in self.descendants.items() if s.is_failed)


@dataclass(frozen=True)
class FlowRunPage:
    """One page of a listing, newest first; ``next_cursor`` fetches the next (None: last)."""

    runs: list[RunSummary]
    next_cursor: str | None


@dataclass
class TaskNode:
    """A task run in a run tree, with the child run it started (if any)."""

    info: TaskRunInfo
    child: RunNode | None = None


@dataclass
class RunNode:
    """A flow run in a run tree: its task runs (each with the child run it started)
    and the children no task run of it names (``orphans``)."""

    info: FlowRunInfo
    tasks: list[TaskNode] = field(default_factory=list)
    orphans: list[RunNode] = field(default_factory=list)

    def children(self) -> list[RunNode]:
        """The runs directly under this one: those its task runs started, then the rest."""
        return [t.child for t in self.tasks if t.child is not None] + self.orphans

    def walk(self) -> Iterator[RunNode]:
        """This run and every run under it, depth first."""
        yield self
        for child in self.children():
            yield from child.walk()


def summary(row: RunRow, counts: Mapping[str, int] | None = None) -> RunSummary:
    """A listed run and its descendants' state counts as a :class:`RunSummary`."""
    info = flow_run_info(row.run, row.flow_name, row.project, row.version)
    return RunSummary(info, {State(s): n for s, n in (counts or {}).items()})


def _start_key(tr: TaskRun) -> tuple[bool, datetime, str, int]:
    started = aware(tr.start_time)
    return (started is None, started or datetime.max.replace(tzinfo=None), tr.slug, tr.map_index)


def build_tree(rows: Sequence[RunRow], task_runs: Sequence[TaskRun]) -> RunNode:
    """The tree of :meth:`Browse.tree`'s rows (the root first).

    Raises:
        ValueError: ``rows`` is empty.
    """
    if not rows:
        raise ValueError("a run tree needs its root")
    by_run: dict[str, list[TaskRun]] = {}
    for tr in task_runs:
        by_run.setdefault(tr.flow_run_id, []).append(tr)
    kids: dict[str, list[str]] = {}
    for r in rows[1:]:
        kids.setdefault(r.run.parent_flow_run_id or "", []).append(r.run.id)
    nodes = {
        r.run.id: RunNode(
            flow_run_info(r.run, r.flow_name, r.project, r.version, kids.get(r.run.id, ()))
        )
        for r in rows
    }
    for run_id, node in nodes.items():
        linked: set[str] = set()
        ordered = sorted(by_run.get(run_id, []), key=_start_key)
        for tr in ordered:
            info = task_run_info(tr)
            child = nodes.get(tr.child_flow_run_id or "")
            if child is not None and tr.child_flow_run_id in kids.get(run_id, ()):
                linked.add(child.info.id)
            else:
                child = None
            node.info.task_runs.append(info)
            node.tasks.append(TaskNode(info, child))
        node.orphans = [nodes[k] for k in kids.get(run_id, ()) if k not in linked]
    return nodes[rows[0].run.id]


@dataclass(frozen=True)
class LogLine:
    """One captured log line, naming its run and task."""

    id: int
    timestamp: datetime
    level: str
    logger: str | None
    message: str
    attempt: int
    flow_run_id: str
    flow_name: str
    task_run_id: str
    task_slug: str | None
    map_index: int

    @property
    def task(self) -> str:
        """The task's slug, with its map index when mapped (``slug[2]``)."""
        slug = self.task_slug or "?"
        return slug if self.map_index < 0 else f"{slug}[{self.map_index}]"


@dataclass(frozen=True)
class LogPage:
    """Log lines oldest first; ``next_cursor`` fetches the lines after them (None: no more)."""

    lines: list[LogLine]
    next_cursor: str | None


def log_line(row: LogRow) -> LogLine:
    """A stored log line (with its names) as a :class:`LogLine`."""
    ln = row.line
    return LogLine(
        id=ln.id,
        timestamp=aware(ln.timestamp) or ln.timestamp,
        level=ln.level,
        logger=ln.logger,
        message=ln.message,
        attempt=ln.attempt,
        flow_run_id=ln.flow_run_id,
        flow_name=row.flow_name,
        task_run_id=ln.task_run_id,
        task_slug=row.task_slug,
        map_index=row.map_index,
    )
