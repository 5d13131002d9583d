"""``orchestrator db``: the database schema (Alembic migrations): ``db upgrade``
applies the pending ones, ``db current`` says where the database stands; ``db
prune`` deletes finished trees of runs older than a cut-off.

May import :mod:`~orchestrator.cli.display`, the database package and the core's
config; no other command module."""

from __future__ import annotations

import re
import sys
from datetime import timedelta

import click

from orchestrator.cli.display import make_console
from orchestrator.clock import utcnow
from orchestrator.config import Settings, hide_password
from orchestrator.db import Store


@click.group()
def db() -> None:
    """The database schema (Alembic migrations)."""


def _store() -> Store:
    return Store(Settings.from_env().resolved_database_url())


@db.command()
def upgrade() -> None:
    """Apply every pending migration and print the revision."""
    store = _store()
    revision = store.upgrade()
    make_console().print(f"database {hide_password(store.url)} is at revision {revision} (head)")


@db.command()
def current() -> None:
    """Print the database's revision and whether it is up to date."""
    store = _store()
    revision = store.current_revision()
    head = store.head_revision()
    status = "up to date" if revision == head else f"behind {head}: run `orchestrator db upgrade`"
    make_console().print(
        f"database {hide_password(store.url)} is at revision {revision or 'none'} ({status})"
    )
    if revision != head:
        sys.exit(1)


_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def parse_age(text: str) -> timedelta:
    """An age such as ``30d``, ``12h``, ``90m``, ``2w`` or ``45s``.

    Raises:
        click.BadParameter: not a positive number and one of those units.
    """
    found = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*", text.lower())
    if not found or float(found.group(1)) <= 0:
        raise click.BadParameter(
            f"expected a positive age like 30d, 12h, 90m or 2w, got {text!r}",
            param_hint="--older-than",
        )
    return timedelta(**{_UNITS[found.group(2)]: float(found.group(1))})


@db.command()
@click.option(
    "--older-than",
    "older_than",
    required=True,
    metavar="AGE",
    help="Prune trees whose every run finished this long ago: 30d, 12h, 90m, 2w.",
)
@click.option("--dry-run", is_flag=True, help="Count what would go; delete nothing.")
@click.option(
    "--batch-size",
    type=click.IntRange(1, 10_000),
    default=500,
    show_default=True,
    help="Root runs per transaction.",
)
def prune(older_than: str, dry_run: bool, batch_size: int) -> None:
    """Delete finished runs older than AGE, whole trees only: a root run with its
    children (and theirs), their task runs, log lines and state events. A tree with
    a run unfinished, or changed within AGE, is kept whole."""
    age = parse_age(older_than)
    store = _store()
    store.check_migrated()
    cutoff = utcnow() - age
    report = store.retention.prune(cutoff, batch_size=batch_size, dry_run=dry_run)
    verb = "would prune" if dry_run else "pruned"
    make_console().print(
        f"{verb} {_n(report.trees, 'tree')} finished before {cutoff:%Y-%m-%d %H:%M} UTC: "
        f"{_n(report.flow_runs, 'flow run')}, {_n(report.task_runs, 'task run')}, "
        f"{_n(report.logs, 'log line')}, {_n(report.events, 'state event')}; "
        f"kept {_n(report.kept, 'old tree')} with a run unfinished or newer",
        highlight=False,
    )


def _n(count: int, what: str) -> str:
    return f"{count:,} {what}{'' if count == 1 else 's'}"


COMMANDS: list[click.Command] = [db]
