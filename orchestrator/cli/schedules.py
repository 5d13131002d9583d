"""``orchestrator beat`` and ``orchestrator schedules``: firing registered flows'
schedules with Celery beat, listing them with their next fire times and last slots,
one schedule's slots, pausing (with a note) and resuming them, and backfills.

May import :mod:`~orchestrator.cli.display`, :mod:`~orchestrator.cli.launch`,
:mod:`~orchestrator.cli.slot_view`, the client, the backends, the database package
and the core; no other command module."""

from __future__ import annotations

import os
import sys

import click
from rich.markup import escape

from orchestrator.backends import backends
from orchestrator.cli.display import make_console
from orchestrator.cli.launch import (
    PASS_THROUGH,
    describe_backends,
    exec_command,
    has_option,
    metrics_env,
    metrics_port_option,
)
from orchestrator.cli.slot_view import (
    backfill_heading,
    backfill_summary,
    backfill_table,
    describe,
    fire_times,
    pause_text,
    schedule_table,
    slots_table,
)
from orchestrator.client import Client, default_user
from orchestrator.config import Settings
from orchestrator.db import Store
from orchestrator.errors import ConfigurationError
from orchestrator.schedules import schedule_from_dict
from orchestrator.schedules.overlap import Overlap

#: The beat scheduler class, as ``celery beat -S`` names it.
SCHEDULER = "workers.scheduler:FlowScheduler"


def _store(settings: Settings | None = None) -> Store:
    """The database of this configuration, checked to be migrated (dispose it after use)."""
    settings = settings or Settings.from_env()
    store = Store(settings.resolved_database_url(), auto_migrate=settings.embedded_database)
    try:
        store.check_migrated()
    except Exception:
        store.close()
        raise
    return store


def _check_retention(raw: str) -> None:
    """ORCHESTRATOR_RETENTION_DAYS is unset or a positive number of days."""
    try:
        ok = not raw.strip() or float(raw) > 0
    except ValueError:
        ok = False
    if not ok:
        raise ConfigurationError(
            f"ORCHESTRATOR_RETENTION_DAYS must be a positive number of days, got {raw!r}"
        )


@click.command(context_settings=PASS_THROUGH)
@metrics_port_option
@click.pass_context
def beat(ctx: click.Context, metrics_port: int | None) -> None:
    """Start Celery beat with the flow scheduler: it fires registered flows' schedules.

    Schedules are read from the database and re-read every few seconds, so newly
    registered, changed, paused or resumed flows need no restart. Only one beat
    fires at a time (a leader lock in Redis); a second one stands by and takes
    over within 15 seconds when the first dies, without creating any run twice.

    With --metrics-port, serves its Prometheus metrics (schedule lag, runs swept
    as stuck) at /metrics; with ORCHESTRATOR_RETENTION_DAYS, prunes finished trees
    older than that once a day. Other options go to `celery beat` unchanged, for
    example --loglevel/-l, --schedule/-s, --pidfile, --logfile/-f.
    """
    settings = Settings.from_env()
    _check_retention(os.environ.get("ORCHESTRATOR_RETENTION_DAYS", ""))
    _store(settings).close()  # a clear error now if the schema is behind
    backends(settings)  # Redis answers (the embedded one is started for this home)
    args = list(ctx.args)
    if not has_option(args, "-l", "--loglevel"):
        args += ["--loglevel", "INFO"]
    click.echo(f"beat firing schedules for {describe_backends(settings)}", err=True)
    argv = [sys.executable, "-m", "celery", "-A", "workers", "beat", "-S", SCHEDULER, *args]
    exec_command(argv, metrics_env(metrics_port, settings.home, pool=False), what="celery beat")


# --- listing ---------------------------------------------------------------------


@click.group(invoke_without_command=True)
@click.option("--project", "-p", help="Only this project's flows.")
@click.option(
    "--count",
    "-n",
    type=click.IntRange(1, 50),
    default=5,
    show_default=True,
    help="How many next fire times and last slots to show.",
)
@click.pass_context
def schedules(ctx: click.Context, project: str | None, count: int) -> None:
    """List scheduled flows: their next fire times, last slots and pauses.

    Fire times are shown in the schedule's zone (its start date's) and in UTC. The
    last slots say what happened to each: the run's state, skipped (by the overlap
    policy), missed (beat was down), or buffered (waiting for the running one).
    """
    if ctx.invoked_subcommand is not None:
        return
    store = _store()
    try:
        rows = store.schedules.flows(include_paused=True)
        if project is not None:
            rows = [(p, f) for p, f in rows if p == project]
        pauses = store.schedules.pauses()
        recent = {
            (f.project_id, f.name): store.schedules.slot_runs(f.project_id, f.name, count)
            for _, f in rows
        }
    finally:
        store.close()
    console = make_console()
    if not rows:
        where = f" in project {project!r}" if project else ""
        console.print(f"no scheduled flows{where}")
        return
    console.print(schedule_table(rows, count, pauses=pauses, recent=recent))


@schedules.command()
@click.argument("flow")
@click.option("--project", "-p", required=True, help="The flow's project.")
@click.option(
    "--limit",
    "-n",
    type=click.IntRange(min=1),
    default=20,
    show_default=True,
    help="How many slots, the latest first.",
)
def slots(flow: str, project: str, limit: int) -> None:
    """List the latest slots of FLOW's schedule and what happened to each.

    Every slot beat fired, skipped (overlap policy), missed (beat was down) or a
    backfill created, with its run and that run's message.
    """
    store = _store()
    try:
        version = store.flows.newest(project, flow)
        runs = store.schedules.slot_runs(version.project_id, version.name, limit)
    finally:
        store.close()
    if not version.schedule:
        raise click.ClickException(f"flow {flow!r} in project {project!r} has no schedule")
    schedule = schedule_from_dict(version.schedule)
    console = make_console()
    console.print(
        f"{escape(flow)} in project {escape(project)}: {escape(describe(schedule))}".replace(
            "\n", ", "
        )
    )
    if not runs:
        console.print("no slots recorded yet")
        return
    console.print(slots_table(schedule, runs))


# --- pausing ---------------------------------------------------------------------


@schedules.command()
@click.argument("flow")
@click.option("--project", "-p", required=True, help="The flow's project.")
@click.option("--note", "-m", metavar="TEXT", help="Why (shown by `orchestrator schedules`).")
@click.option("--by", metavar="NAME", help="Who pauses it (default: user@host).")
def pause(flow: str, project: str, note: str | None, by: str | None) -> None:
    """Stop beat from creating runs of FLOW, recording who, when and why.

    The pause belongs to the flow: registering a new version keeps it paused.
    """
    store = _store()
    try:
        version, done = store.schedules.pause(project, flow, note, by or default_user())
    finally:
        store.close()
    make_console().print(
        f"schedule of flow {escape(flow)} in project {escape(project)} "
        f"(version {version.version}) {pause_text(done)}".replace("\n", ", ")
        + "\nbeat creates no runs for it until `orchestrator schedules resume`"
    )


@schedules.command()
@click.argument("flow")
@click.option("--project", "-p", required=True, help="The flow's project.")
def resume(flow: str, project: str) -> None:
    """Let beat create runs of FLOW again, from now on."""
    store = _store()
    try:
        version, was = store.schedules.resume(project, flow)
    finally:
        store.close()
    schedule = schedule_from_dict(version.schedule or {})
    upcoming = fire_times(schedule, 1)
    when = f"; next fire {upcoming[0][0]} ({upcoming[0][1]})" if upcoming else ""
    before = "" if was is None else f" (it was {pause_text(was)})".replace("\n", ", ")
    make_console().print(
        f"schedule of flow {escape(flow)} in project {escape(project)} "
        f"(version {version.version}) resumed{before}; slots missed while paused do "
        f"not run{when}"
    )


# --- backfill ----------------------------------------------------------------------


@schedules.command()
@click.argument("flow")
@click.option("--project", "-p", required=True, help="The flow's project.")
@click.option("--start", required=True, metavar="DATE", help="First day (2026-03-02), or a time.")
@click.option("--end", required=True, metavar="DATE", help="Last day, included.")
@click.option("--dry-run", is_flag=True, help="List the slots; create nothing.")
@click.option(
    "--overlap",
    type=click.Choice([p.value for p in Overlap]),
    default=Overlap.BUFFER_ALL.value,
    show_default=True,
    help="What to do with a slot while an earlier run has not finished.",
)
def backfill(flow: str, project: str, start: str, end: str, dry_run: bool, overlap: str) -> None:
    """Create one run per slot of FLOW's schedule from --start to --end.

    Dates are read in the schedule's zone and --end is included. Each run gets the
    slot as its scheduled start time and the schedule's parameter defaults, under
    the key beat gives that slot: slots that already have a run (or were skipped)
    get nothing new. Beat sends the runs, so `orchestrator beat` must run.
    """
    report = Client().backfill(flow, project, start, end, overlap=overlap, dry_run=dry_run)
    what = describe(report.schedule).replace("\n", ", ")
    console = make_console()
    console.print(backfill_heading(report, f"{what} in {report.timezone}"))
    if report.slots:
        console.print(backfill_table(report))
    console.print(escape(backfill_summary(report)))


COMMANDS: list[click.Command] = [beat, schedules]


def register(main: click.Group) -> None:
    """Add ``beat`` and ``schedules`` to the ``orchestrator`` command group."""
    for command in COMMANDS:
        main.add_command(command)


__all__ = ["COMMANDS", "SCHEDULER", "register"]
