"""``orchestrator register`` and ``orchestrator flows``: storing flows and listing them.

May import :mod:`~orchestrator.cli.display`, the client layer, the loader and the
core; no other command module."""

from __future__ import annotations

from typing import Any

import click
from rich.markup import escape
from rich.table import Table

from orchestrator.cli.display import make_console
from orchestrator.client import Client
from orchestrator.errors import FlowLoadError, FlowNotFound
from orchestrator.flow import Flow
from orchestrator.loader import flows_in


def _previous_version(client: Client, project: str, name: str) -> int | None:
    """The newest non-archived version of a flow before registering, if any."""
    try:
        return client.backends.store.flows.newest(project, name).version
    except FlowNotFound:
        return None


def _unique(flows: list[Flow]) -> list[Flow]:
    seen: set[int] = set()
    out = []
    for f in flows:
        if id(f) not in seen:
            seen.add(id(f))
            out.append(f)
    return out


@click.command()
@click.argument("target", metavar="PATH|MODULE")
@click.option("--project", "-p", required=True, help="The project to register into.")
def register(target: str, project: str) -> None:
    """Register every flow defined at the top level of a file or module.

    A flow gets a new version only when its structure changed; the older versions
    are archived. Workers import the flow from the same file or module, so they
    need the code too.
    """
    found = _unique(flows_in(target))
    if not found:
        raise FlowLoadError(f"{target} defines no Flow at its top level")
    client = Client()
    table = Table(title=f"project {escape(project)}", title_justify="left")
    table.add_column("flow", style="bold")
    table.add_column("version", justify="right")
    table.add_column("status")
    table.add_column("archived")
    for flow in found:
        before = _previous_version(client, project, flow.name)
        version = client.register(flow, project_name=project)
        new = before != version
        table.add_row(
            escape(flow.name),
            str(version),
            "[green]new[/]" if new else "[dim]unchanged[/]",
            f"v{before}" if new and before is not None else "",
        )
    make_console().print(table)


def describe_schedule(schedule: dict[str, Any] | None, paused: bool = False) -> str:
    """A registered schedule in a few words (``no`` when there is none)."""
    if not schedule:
        return "no"
    if "cron" in schedule:
        what = f"cron {schedule['cron']}"
    elif "interval_seconds" in schedule:
        what = f"every {schedule['interval_seconds']}s"
    else:
        what = str(schedule.get("type", "yes"))
    zone = schedule.get("timezone")
    text = f"yes: {what}" + (f" ({zone})" if zone else "")
    return text + (" (paused)" if paused else "")


@click.command("flows")
@click.option("--all", "show_all", is_flag=True, help="Include archived versions.")
def list_flows(show_all: bool) -> None:
    """List the registered flows (the newest version of each, unless --all)."""
    store = Client().backends.store
    rows = store.flows.list(include_archived=show_all)
    paused = store.schedules.pauses()
    console = make_console()
    if not rows:
        console.print("no flows registered; try `orchestrator register PATH --project P`")
        return
    table = Table()
    table.add_column("project")
    table.add_column("flow", style="bold")
    table.add_column("version", justify="right")
    table.add_column("schedule")
    table.add_column("labels")
    if show_all:
        table.add_column("archived")
    for project, f in rows:
        row = [
            escape(project),
            escape(f.name),
            str(f.version),
            describe_schedule(f.schedule, (f.project_id, f.name) in paused and not f.archived),
            escape(", ".join(f.labels or [])) or "-",
        ]
        if show_all:
            row.append("yes" if f.archived else "")
        table.add_row(*row)
    console.print(table)


COMMANDS: list[click.Command] = [register, list_flows]
