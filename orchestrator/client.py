"""The Python API that registers flows, enqueues flow runs and reads their state:
:class:`Client`. Importing it installs the in-process services the core asks for
(:mod:`orchestrator.inprocess`), so ``Flow.register()`` and ``flow.run()`` of a
Flow-of-Flows work without the core importing the client. May import the backends, the
registry, infos, browsing, concurrency, inprocess, backfills, restarts, watching and the
core; never the CLI or the workers."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import orchestrator.hooks as hooks
from orchestrator.backends import Backends, backends, reading_backends
from orchestrator.backfills import backfill
from orchestrator.browsing import (
    FlowRunPage,
    LogPage,
    RunNode,
    build_tree,
    decode_cursor,
    encode_cursor,
    log_line,
    summary,
)
from orchestrator.concurrency import LimitInfo, change_limit, limits_of, remove_limit
from orchestrator.config import Settings, default_user
from orchestrator.engine import Outcome
from orchestrator.errors import FlowRunNotFound, TaskRunNotFound
from orchestrator.infos import FlowRunInfo, TaskRunInfo, flow_run_info, summary_info
from orchestrator.inprocess import InProcessServices, run_stored
from orchestrator.parameters import resolve_parameters
from orchestrator.registry import register
from orchestrator.requests import FlowRunRequest, NewFlowRun
from orchestrator.restarts import Restarted, restart_flow_run
from orchestrator.schedules.backfill import BackfillReport, Bound
from orchestrator.schedules.overlap import Overlap
from orchestrator.states import State
from orchestrator.watching import wait_until_final

if TYPE_CHECKING:
    from orchestrator.db.models import FlowRun, TaskRunLog
    from orchestrator.db.schedules import Pause
    from orchestrator.flow import Flow

__all__ = ["BackfillReport", "Client", "FlowRunInfo", "Restarted", "TaskRunInfo", "default_user"]


class Client:
    """Registers flows, creates and watches flow runs.

    Args:
        settings: where Redis and the database are; by default from the environment.
        reading: only read run history: Redis is not reached until something needs it.
    """

    def __init__(self, settings: Settings | None = None, reading: bool = False) -> None:
        self.settings = settings or Settings.from_env()
        self._backends: Backends | None = None
        self._reading = reading

    @property
    def backends(self) -> Backends:
        """The connections (made on first use)."""
        if self._backends is None:
            made = reading_backends if self._reading else backends
            self._backends = made(self.settings)
        return self._backends

    # --- flows ----------------------------------------------------------------

    def register(self, flow: Flow, project_name: str, import_ref: str | None = None) -> int:
        """Store ``flow`` in a project and return its version (see :meth:`Flow.register`)."""
        return register(flow, project_name, self.backends.store, import_ref)

    # --- flow runs --------------------------------------------------------------

    def create_flow_run(
        self,
        flow_name: str,
        project_name: str,
        parameters: dict[str, Any] | None = None,
        idempotency_key: str | None = None,
        run_name: str | None = None,
        scheduled_start_time: datetime | timedelta | None = None,
        labels: str | Iterable[str] | None = None,
        parent_flow_run_id: str | None = None,
        parent_task_run_id: str | None = None,
        dispatch: bool = True,
    ) -> str:
        """Create a run of the newest version of a flow and send it to the workers.

        Args:
            flow_name: the flow's name.
            project_name: its project.
            parameters: values for its Parameters (checked before anything is stored).
            idempotency_key: a key already used returns that run instead of a new one.
            run_name: a readable name for the run.
            scheduled_start_time: start no earlier than this: an aware datetime, or
                a timedelta from now (a naive datetime is an error).
            labels: extra labels (concurrency limits count runs per label); a
                string is one label.
            parent_flow_run_id: the flow run that started this one.
            parent_task_run_id: the task run that started this one.
            dispatch: send it to the workers now (False leaves it for the caller).

        Returns:
            The flow run id.
        """
        request = FlowRunRequest(
            flow_name=flow_name,
            project_name=project_name,
            parameters=parameters,
            idempotency_key=idempotency_key,
            run_name=run_name,
            scheduled_start_time=scheduled_start_time,
            labels=labels,
            parent_flow_run_id=parent_flow_run_id,
            parent_task_run_id=parent_task_run_id,
        )
        run, created = self.backends.store.flow_runs.insert(self.prepare_flow_run(request))
        if created and dispatch and State(run.state) is State.SUBMITTED:
            self.backends.dispatch(run.id, flow_name, run.trace_context)
        return run.id

    def prepare_flow_run(self, request: FlowRunRequest) -> NewFlowRun:
        """Check and build the run ``request`` asks for, of the newest version of its
        flow, without storing it (:meth:`create_flow_run` stores and sends it; a
        worker may store it with the transaction that starts it).

        Returns:
            The run, Submitted (Scheduled when it starts later).

        Raises:
            FlowNotFound: the project has no such flow.
            ParameterError: unknown or missing parameters.
        """
        flow = self.backends.store.flows.newest(request.project_name, request.flow_name)
        values = resolve_parameters(
            request.flow_name, flow.parameters, request.parameters, self.settings.max_value_bytes
        )
        return NewFlowRun.of(request, flow.id, values, flow.labels or ())

    def get_flow_run(self, flow_run_id: str, task_runs: bool = True) -> FlowRunInfo:
        """A flow run with its state, parameters, times, children and task runs."""
        return self._info(self.backends.store.flow_runs.get(flow_run_id), task_runs)

    def _info(self, run: FlowRun, task_runs: bool = True) -> FlowRunInfo:
        store = self.backends.store
        flow = store.flows.get(run.flow_id)
        children = [c.id for c in store.flow_runs.children(run.id)]
        trs = store.task_runs.of_flow_run(run.id) if task_runs else []
        project = store.flows.project_name(flow.project_id)
        return flow_run_info(run, flow.name, project, flow.version, children, trs)

    def list_flow_runs(self, limit: int = 20, state: State | None = None) -> list[FlowRunInfo]:
        """The newest flow runs (without their task runs)."""
        return [summary_info(s) for s in self.backends.store.flow_runs.list_summaries(limit, state)]

    def flow_runs_page(
        self,
        limit: int = 50,
        cursor: str | None = None,
        roots: bool = False,
        state: State | None = None,
        flow: str | None = None,
        project: str | None = None,
    ) -> FlowRunPage:
        """One page of flow runs, newest first, each with its descendants' states counted.

        Args:
            limit: at most this many runs (1 to 500).
            cursor: the ``next_cursor`` of the previous page.
            roots: only runs that no other run started.
            state: only runs in this state.
            flow: only runs of flows with this name.
            project: only runs of flows in this project.

        Raises:
            InvalidCursor: ``cursor`` is not one a page handed out.
        """
        limit = max(1, min(limit, 500))
        before = None
        if cursor:
            moment, key = decode_cursor(cursor, str)
            before = (moment, str(key))
        store = self.backends.store
        rows = store.browse.page(limit + 1, roots, state, flow, project, before)
        more, rows = len(rows) > limit, rows[:limit]
        counts = store.browse.descendant_states([r.run.id for r in rows])
        runs = [summary(r, counts.get(r.run.id)) for r in rows]
        last = rows[-1].run if rows else None
        token = encode_cursor(last.created, last.id) if more and last else None
        return FlowRunPage(runs, token)

    def flow_run_tree(self, flow_run_id: str) -> RunNode:
        """A flow run with every run under it and all their task runs (two queries).

        Raises:
            FlowRunNotFound: no such run.
        """
        rows, task_runs = self.backends.store.browse.tree(flow_run_id)
        if not rows:
            raise FlowRunNotFound(f"no flow run {flow_run_id!r}")
        return build_tree(rows, task_runs)

    def flow_run_logs(
        self,
        flow_run_id: str,
        descendants: bool = False,
        limit: int = 1000,
        cursor: str | None = None,
    ) -> LogPage:
        """The log lines of a flow run (and of the runs under it), oldest first.

        Args:
            flow_run_id: the run.
            descendants: also its children's lines, their children's, ...
            limit: at most this many lines (1 to 10,000).
            cursor: the ``next_cursor`` of the previous page.

        Raises:
            FlowRunNotFound: no such run.
            InvalidCursor: ``cursor`` is not one a page handed out.
        """
        store = self.backends.store
        store.flow_runs.get(flow_run_id)
        limit = max(1, min(limit, 10_000))
        after = None
        if cursor:
            moment, key = decode_cursor(cursor, int)
            after = (moment, int(key))
        rows = store.browse.logs(flow_run_id, descendants, limit + 1, after)
        more, rows = len(rows) > limit, rows[:limit]
        lines = [log_line(r) for r in rows]
        token = encode_cursor(lines[-1].timestamp, lines[-1].id) if more and lines else None
        return LogPage(lines, token)

    def wait_for_flow_run(
        self,
        flow_run_id: str,
        timeout: float | None = None,
        on_change: Callable[[State], None] | None = None,
    ) -> FlowRunInfo:
        """Wait until a flow run is final, watching Redis notices (the database as fallback).

        Args:
            flow_run_id: the run.
            timeout: seconds to wait at most (None: no limit).
            on_change: called with each new state seen.

        Returns:
            The final flow run.

        Raises:
            FlowRunTimeout: when the run is not final within ``timeout``.
        """
        wait_until_final(self.backends, flow_run_id, timeout, on_change)
        return self.get_flow_run(flow_run_id)

    def cancel_flow_run(self, flow_run_id: str, cancel_children: bool = True) -> bool:
        """Cancel a flow run that is not final yet, and by default its unfinished children.

        Returns:
            True when the run was cancelled by this call.
        """
        return self.backends.cancel_flow_run(flow_run_id, cancel_children=cancel_children)

    def restart_flow_run(self, flow_run_id: str) -> Restarted:
        """Restart a finished run that did not succeed, in place (:mod:`orchestrator.restarts`)."""
        return restart_flow_run(self.backends, flow_run_id)

    def get_task_run_result(self, flow_run_id: str, task_slug: str, map_index: int = -1) -> Any:
        """The recorded result of one task run (None until it is final)."""
        for tr in self.backends.store.task_runs.of_flow_run(flow_run_id, [task_slug]):
            if tr.map_index == map_index:
                return tr.result if State(tr.state).is_final else None
        raise TaskRunNotFound(f"flow run {flow_run_id} has no task run {task_slug!r}")

    def task_run_logs(
        self,
        flow_run_id: str,
        task_run_ids: Sequence[str] | None = None,
        last: int | None = None,
    ) -> dict[str, list[TaskRunLog]]:
        """The captured log lines of a flow run's task runs, by task run id.

        Args:
            flow_run_id: the flow run.
            task_run_ids: only these task runs (default: all of the run's).
            last: only the last this many lines of each task run.

        Returns:
            Each task run's lines in order (attempt, line); task runs without lines
            are left out.
        """
        rows: dict[str, list[TaskRunLog]] = {}
        if task_run_ids is not None and not task_run_ids:
            return rows
        for row in self.backends.store.logs.of_flow_run(flow_run_id, task_run_ids, last):
            rows.setdefault(row.task_run_id, []).append(row)
        return rows

    def run_in_process(self, flow_run_id: str) -> Outcome:
        """Run a stored flow run in this process (how ``flow.run()`` mirrors a child)."""
        return run_stored(self.backends, flow_run_id)

    # --- schedules ---------------------------------------------------------------------

    def backfill(
        self,
        flow_name: str,
        project_name: str,
        start: Bound,
        end: Bound,
        *,
        overlap: Overlap | str = Overlap.BUFFER_ALL,
        dry_run: bool = False,
    ) -> BackfillReport:
        """Create one run per slot of a flow's schedule from ``start`` to ``end``.

        Dates are read in the schedule's zone, ``end`` included (a date covers its
        whole day; a date and time without an offset is a wall time there); the
        schedule's own start and end dates do not clip the range. Each run has the
        slot as its ``scheduled_start_time`` and the schedule's parameter defaults,
        and the key beat gives that slot: backfilling twice, or over slots beat
        already fired, creates nothing new, and the report says which slots were
        there. New slots are decided oldest first by ``overlap`` (default
        ``buffer_all``: one run at a time, in order) against the schedule's
        unfinished runs. Beat sends the runs (``orchestrator beat`` must run).

        Args:
            flow_name: the flow (its newest version's schedule is used).
            project_name: its project.
            start: the first day (a date, datetime or ISO 8601 string).
            end: the last day, included.
            overlap: the overlap policy for the new slots.
            dry_run: only list the slots (and which already have runs); create nothing.

        Returns:
            What was done with each slot.

        Raises:
            FlowNotFound: no such project or flow.
            ScheduleError: the flow has no schedule, a bad range (more than 10,000
                slots, end before start) or an unknown overlap policy.
        """
        return backfill(
            self.backends, flow_name, project_name, start, end, overlap=overlap, dry_run=dry_run
        )

    def pause_schedule(
        self, flow_name: str, project_name: str, note: str | None = None, by: str | None = None
    ) -> Pause:
        """Pause a flow's schedule: beat creates no runs of it until it is resumed.

        The pause belongs to the flow: a new version of it stays paused.

        Args:
            flow_name: the flow.
            project_name: its project.
            note: why (shown by ``orchestrator schedules``).
            by: who (default: the current user at this host).

        Returns:
            The pause as recorded (who, when, why).
        """
        who = by or default_user()
        return self.backends.store.schedules.pause(project_name, flow_name, note, who)[1]

    def resume_schedule(self, flow_name: str, project_name: str) -> Pause | None:
        """Resume a flow's schedule from now on (slots missed while paused do not run).

        Returns:
            The pause it had, or None when it was not paused.
        """
        return self.backends.store.schedules.resume(project_name, flow_name)[1]

    # --- concurrency limits --------------------------------------------------------

    def set_concurrency_limit(self, label: str, limit: int) -> None:
        """Allow at most ``limit`` running flow runs with ``label``, at once (kept in the
        database, which a flushed Redis loads it from again)."""
        change_limit(self.backends, label, limit)

    def delete_concurrency_limit(self, label: str) -> bool:
        """Remove a label's limit (waiting runs start); False when it had none."""
        return remove_limit(self.backends, label)

    def concurrency_limits(self) -> list[LimitInfo]:
        """Every limit with its used slots and waiting runs."""
        return limits_of(self.backends)


hooks.install(InProcessServices())
