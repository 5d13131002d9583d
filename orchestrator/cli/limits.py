"""``orchestrator limits``: flow concurrency limits per label.

May import :mod:`~orchestrator.cli.display`, the client layer and the core; no
other command module."""

from __future__ import annotations

import click
from rich.table import Table

from orchestrator.cli.display import make_console
from orchestrator.client import Client


@click.group("limits", invoke_without_command=True)
@click.pass_context
def limits(ctx: click.Context) -> None:
    """Flow concurrency limits per label (list them when no subcommand is given)."""
    if ctx.invoked_subcommand is None:
        ctx.invoke(list_limits)


@limits.command("list")
def list_limits() -> None:
    """Each limit with its used and free slots and the runs waiting."""
    rows = Client().concurrency_limits()
    console = make_console()
    if not rows:
        console.print("no concurrency limits; set one with `orchestrator limits set LABEL N`")
        return
    table = Table("label", "limit", "used", "free", "waiting")
    for r in rows:
        table.add_row(r.label, str(r.limit), str(r.used), str(r.free), str(r.waiting))
    console.print(table)


@limits.command("set", context_settings={"ignore_unknown_options": True})
@click.argument("label")
@click.argument("slots", type=int)
def set_limit(label: str, slots: int) -> None:
    """Allow at most SLOTS running flow runs with LABEL (takes effect at once)."""
    if slots < 0:
        raise click.BadParameter(f"the limit must be >= 0, got {slots}", param_hint="SLOTS")
    Client().set_concurrency_limit(label, slots)
    make_console().print(f"limit for {label!r} set to {slots}")


@limits.command("delete")
@click.argument("label")
def delete_limit(label: str) -> None:
    """Remove the limit of LABEL (its waiting runs start)."""
    if Client().delete_concurrency_limit(label):
        make_console().print(f"limit for {label!r} removed")
    else:
        make_console().print(f"{label!r} had no limit")


COMMANDS: list[click.Command] = [limits]
