"""How ``orchestrator schedules`` shows schedules and their slots: a schedule in a few
words (:func:`describe`), fire times in the schedule's zone and in UTC
(:func:`fire_times`), the table of scheduled flows with their pauses and recent
slots (:func:`schedule_table`), one schedule's recent slots (:func:`slots_table`) and
a backfill's slots (:func:`backfill_heading`, :func:`backfill_table`,
:func:`backfill_summary`).

May import rich, pendulum, :mod:`~orchestrator.cli.display`, the database package's
row types and the core; no command module."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime

import pendulum
from rich.markup import escape
from rich.table import Table

from orchestrator.cli.display import short
from orchestrator.db.models import FlowRun, FlowVersion
from orchestrator.db.schedules import Pause
from orchestrator.errors import ScheduleError
from orchestrator.schedules import Schedule, schedule_from_dict
from orchestrator.schedules.backfill import BackfillReport, Outcome
from orchestrator.schedules.overlap import Overlap
from orchestrator.schedules.text import describe, fire_times, slot_times
from orchestrator.states import State

__all__ = [
    "backfill_heading",
    "backfill_summary",
    "backfill_table",
    "describe",
    "fire_times",
    "pause_text",
    "schedule_table",
    "slot_outcome",
    "slots_table",
]

#: Rich styles per slot outcome.
_OUTCOME_STYLES = {
    "Success": "green",
    "Failed": "red",
    "skipped": "yellow",
    "missed": "yellow",
    "buffered": "blue",
    "Cancelled": "magenta",
}


def pause_text(pause: Pause | None) -> str:
    """``no``, or who paused the schedule, when (UTC) and why, as rich markup."""
    if pause is None:
        return "no"
    when = pendulum.instance(pause.at).in_timezone("UTC").format("YYYY-MM-DD HH:mm zz")
    note = f"\n[italic]{escape(pause.note)}[/]" if pause.note else ""
    return f"[yellow]paused[/] by {escape(pause.by)}\n{when}{note}"


def slot_outcome(run: FlowRun) -> str:
    """What happened to a slot, from its run: ``skipped`` (by the overlap policy),
    ``missed`` (beat was down), ``buffered`` (waiting its turn), or the run's state."""
    state = State(run.state)
    if state is State.SKIPPED:
        return "missed" if (run.message or "").startswith("missed") else "skipped"
    if state is State.SCHEDULED and run.buffered:
        return "buffered"
    return state.value


def _outcome(text: str) -> str:
    style = _OUTCOME_STYLES.get(text)
    return f"[{style}]{escape(text)}[/]" if style else escape(text)


def _recent(schedule: Schedule, runs: Sequence[FlowRun]) -> str:
    """The last slots of a schedule, newest first: time in its zone and outcome."""
    if not runs:
        return "[dim]none yet[/]"
    lines = []
    for run in runs:
        when = run.scheduled_start_time
        local = pendulum.instance(when).in_timezone(schedule.timezone) if when else None
        stamp = local.format("MM-DD HH:mm:ss") if local else "?"
        lines.append(f"{stamp} {_outcome(slot_outcome(run))}")
    return "\n".join(lines)


def schedule_table(
    rows: Sequence[tuple[str, FlowVersion]],
    count: int = 5,
    now: datetime | None = None,
    pauses: Mapping[tuple[int, str], Pause] | None = None,
    recent: Mapping[tuple[int, str], Sequence[FlowRun]] | None = None,
) -> Table:
    """The table ``orchestrator schedules`` prints.

    Args:
        rows: (project, flow version) pairs with a schedule.
        count: How many next fire times (and recent slots) to show.
        now: List fire times after this (default: now).
        pauses: The paused schedules, by (project id, flow name).
        recent: Each schedule's latest slot runs, newest first.

    Returns:
        A rich table: project, flow, schedule, zone, paused, recent slots, next
        times (zone, UTC).
    """
    table = Table(title="scheduled flows", title_justify="left", show_lines=True)
    for column in ("project", "flow", "schedule", "zone", "paused", "last slots"):
        table.add_column(column, style="bold" if column == "flow" else None)
    table.add_column(f"next {count} (schedule's zone)")
    table.add_column(f"next {count} (UTC)")
    for project, flow in rows:
        key = (flow.project_id, flow.name)
        paused = pause_text((pauses or {}).get(key))
        try:
            schedule = schedule_from_dict(flow.schedule or {})
        except ScheduleError as exc:
            problem = f"[red]unreadable: {escape(str(exc))}[/]"
            table.add_row(escape(project), escape(flow.name), problem, "", paused, "", "", "")
            continue
        times = fire_times(schedule, count, after=now)
        local = "\n".join(t for t, _ in times) or "[dim]none (ended)[/]"
        utc = "\n".join(u for _, u in times) or "[dim]none (ended)[/]"
        name = f"{escape(flow.name)}\n[dim]v{flow.version}[/]"
        what = escape(describe(schedule))
        last = _recent(schedule, (recent or {}).get(key, ()))
        table.add_row(
            escape(project), name, what, escape(schedule.timezone), paused, last, local, utc
        )
    return table


def slots_table(schedule: Schedule, runs: Sequence[FlowRun]) -> Table:
    """One schedule's recent slots, newest first: times, outcome, run and message."""
    table = Table()
    table.add_column(f"slot ({schedule.timezone})", no_wrap=True)
    table.add_column("slot (UTC)", no_wrap=True)
    table.add_column("outcome")
    table.add_column("run", no_wrap=True, min_width=36)
    table.add_column("message")
    slots = [
        pendulum.instance(r.scheduled_start_time).in_timezone(schedule.timezone)
        for r in runs
        if r.scheduled_start_time
    ]
    for run, (local, utc) in zip(runs, slot_times(slots), strict=False):
        outcome = _outcome(slot_outcome(run))
        table.add_row(local, utc, outcome, run.id, escape(short(run.message or "", 120)))
    return table


def backfill_table(report: BackfillReport) -> Table:
    """A backfill's slots in order: times in the schedule's zone and UTC, and what
    happened (``new`` in a dry run, ``created``, ``buffered``, ``skipped``, or
    ``there`` with the state of the run the slot already had), with the run's id."""
    table = Table()
    table.add_column("#", justify="right")
    table.add_column(f"slot ({report.timezone})", no_wrap=True)
    table.add_column("slot (UTC)", no_wrap=True)
    table.add_column("run")
    ids = any(s.run_id for s in report.slots)
    if ids:
        table.add_column("id", no_wrap=True)
    times = slot_times([s.slot for s in report.slots])
    for number, (slot, (local, utc)) in enumerate(zip(report.slots, times, strict=True), 1):
        what = str(slot.outcome)
        if slot.outcome is Outcome.THERE and slot.state is not None:
            what = f"there ({slot.state.value})"
        row = [str(number), local, utc, _outcome(what)] + ([slot.run_id or ""] if ids else [])
        table.add_row(*row)
    return table


def backfill_heading(report: BackfillReport, schedule: str) -> str:
    """The lines above a backfill's table: the flow, its schedule, the range read in
    the schedule's zone, and the overlap policy (or that it is a dry run)."""
    fmt = "ddd YYYY-MM-DD HH:mm zz"
    lines = [
        f"backfill of {report.flow_name} in project {report.project_name} "
        f"(version {report.version}): {schedule}",
        f"from {report.first.format(fmt)} to {report.last.format(fmt)} "
        "(dates in the schedule's zone, end included)",
    ]
    start, end = report.schedule.start_date, report.schedule.end_date
    if (start is not None and report.first < start) or (end is not None and report.last > end):
        lines.append("the schedule's own start and end dates do not limit a backfill")
    policy = f"overlap {report.overlap}"
    if report.overlap is Overlap.BUFFER_ALL:
        policy += ": one run at a time, oldest first"
    lines.append(f"dry run, nothing created; {policy}" if report.dry_run else policy)
    return escape("\n".join(lines))


def backfill_summary(report: BackfillReport) -> str:
    """The last line of a backfill: how many slots, created, buffered, skipped, there."""
    total = len(report.slots)
    there = report.existing
    if report.dry_run:
        return f"{total} slot(s): {report.count(Outcome.NEW)} new, {there} already there"
    created = len(report.created)
    parts = [f"{total} slot(s): created {created} run(s)"]
    buffered = report.count(Outcome.BUFFERED)
    if buffered:
        parts.append(
            f"{buffered} of them buffered (overlap {report.overlap}: one at a time, in order)"
        )
    if report.count(Outcome.SKIPPED):
        parts.append(f"{report.count(Outcome.SKIPPED)} skipped (overlap {report.overlap})")
    if report.cancelled:
        parts.append(f"cancelled {len(report.cancelled)} unfinished run(s)")
    parts.append(f"{there} already there")
    text = ", ".join(parts)
    if report.created:
        text += "\nbeat sends the new runs to the workers: keep `orchestrator beat` running"
    return text
