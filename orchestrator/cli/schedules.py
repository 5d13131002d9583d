"""``orchestrator beat`` and ``orchestrator schedules``: firing registered flows'
schedules with Celery beat, listing them with their next fire times, pausing and
resuming them.

May import :mod:`~orchestrator.cli.display`, :mod:`~orchestrator.cli.launch`, the
backends, the database package and the core; no other command module."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from datetime import datetime

import click
from rich.markup import escape
from rich.table import Table

from orchestrator.backends import backends
from orchestrator.cli.display import make_console
from orchestrator.cli.launch import PASS_THROUGH, describe_backends, exec_command, has_option
from orchestrator.config import Settings
from orchestrator.db import Store
from orchestrator.db.models import FlowVersion
from orchestrator.errors import ScheduleError
from orchestrator.schedules import schedule_from_dict
from orchestrator.schedules.text import describe, fire_times

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


@click.command(context_settings=PASS_THROUGH)
@click.pass_context
def beat(ctx: click.Context) -> None:
    """Start Celery beat with the flow scheduler: it fires registered flows' schedules.

    Schedules are read from the database and re-read every few seconds, so newly
    registered, changed, paused or resumed flows need no restart. Only one beat
    fires at a time (a leader lock in Redis); a second one stands by and takes
    over within 15 seconds when the first dies, without creating any run twice.

    Other options go to `celery beat` unchanged, for example --loglevel/-l,
    --schedule/-s, --pidfile, --logfile/-f.
    """
    settings = Settings.from_env()
    _store(settings).close()  # a clear error now if the schema is behind
    backends(settings)  # Redis answers (the embedded one is started for this home)
    args = list(ctx.args)
    if not has_option(args, "-l", "--loglevel"):
        args += ["--loglevel", "INFO"]
    click.echo(f"beat firing schedules for {describe_backends(settings)}", err=True)
    argv = [sys.executable, "-m", "celery", "-A", "workers", "beat", "-S", SCHEDULER, *args]
    exec_command(argv, what="celery beat")


# --- listing ---------------------------------------------------------------------


def schedule_table(
    rows: Sequence[tuple[str, FlowVersion]], count: int = 5, now: datetime | None = None
) -> Table:
    """The table ``orchestrator schedules`` prints.

    Args:
        rows: (project, flow version) pairs with a schedule.
        count: How many next fire times to show.
        now: List fire times after this (default: now).

    Returns:
        A rich table: project, flow, schedule, zone, paused, next times (zone, UTC).
    """
    table = Table(title="scheduled flows", title_justify="left", show_lines=True)
    table.add_column("project")
    table.add_column("flow", style="bold")
    table.add_column("schedule")
    table.add_column("zone")
    table.add_column("paused")
    table.add_column(f"next {count} (schedule's zone)")
    table.add_column(f"next {count} (UTC)")
    for project, flow in rows:
        try:
            schedule = schedule_from_dict(flow.schedule or {})
        except ScheduleError as exc:
            problem = f"[red]unreadable: {escape(str(exc))}[/]"
            table.add_row(escape(project), escape(flow.name), problem, "", "", "", "")
            continue
        times = fire_times(schedule, count, after=now)
        paused = "[yellow]paused[/]" if flow.schedule_paused else "no"
        local = "\n".join(t for t, _ in times) or "[dim]none (ended)[/]"
        utc = "\n".join(u for _, u in times) or "[dim]none (ended)[/]"
        name = f"{escape(flow.name)}\n[dim]v{flow.version}[/]"
        what = escape(describe(schedule))
        table.add_row(escape(project), name, what, escape(schedule.timezone), paused, local, utc)
    return table


@click.group(invoke_without_command=True)
@click.option("--project", "-p", help="Only this project's flows.")
@click.option(
    "--count",
    "-n",
    type=click.IntRange(1, 50),
    default=5,
    show_default=True,
    help="How many next fire times to show.",
)
@click.pass_context
def schedules(ctx: click.Context, project: str | None, count: int) -> None:
    """List scheduled flows with their next fire times; pause or resume one.

    Fire times are shown in the schedule's zone (its start date's) and in UTC.
    """
    if ctx.invoked_subcommand is not None:
        return
    store = _store()
    try:
        rows = store.schedules.flows(include_paused=True)
    finally:
        store.close()
    if project is not None:
        rows = [(p, f) for p, f in rows if p == project]
    console = make_console()
    if not rows:
        where = f" in project {project!r}" if project else ""
        console.print(f"no scheduled flows{where}")
        return
    console.print(schedule_table(rows, count))


def _set_paused(flow: str, project: str, paused: bool) -> None:
    store = _store()
    try:
        version = store.schedules.set_paused(project, flow, paused)
    finally:
        store.close()
    if paused:
        text = "paused: beat creates no runs for it until `orchestrator schedules resume`"
    else:
        schedule = schedule_from_dict(version.schedule or {})
        upcoming = fire_times(schedule, 1)
        when = f"; next fire {upcoming[0][0]} ({upcoming[0][1]})" if upcoming else ""
        text = f"resumed (slots missed while paused do not run){when}"
    make_console().print(
        f"schedule of flow {escape(flow)} in project {escape(project)} "
        f"(version {version.version}) {text}"
    )


@schedules.command()
@click.argument("flow")
@click.option("--project", "-p", required=True, help="The flow's project.")
def pause(flow: str, project: str) -> None:
    """Stop beat from creating runs of FLOW (its newest version)."""
    _set_paused(flow, project, True)


@schedules.command()
@click.argument("flow")
@click.option("--project", "-p", required=True, help="The flow's project.")
def resume(flow: str, project: str) -> None:
    """Let beat create runs of FLOW again, from now on."""
    _set_paused(flow, project, False)


COMMANDS: list[click.Command] = [beat, schedules]


def register(main: click.Group) -> None:
    """Add ``beat`` and ``schedules`` to the ``orchestrator`` command group."""
    for command in COMMANDS:
        main.add_command(command)


__all__ = ["COMMANDS", "SCHEDULER", "describe", "fire_times", "register", "schedule_table"]
