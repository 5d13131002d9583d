"""``orchestrator db``: the database schema (Alembic migrations): ``db upgrade``
applies the pending ones, ``db current`` says where the database stands.

May import :mod:`~orchestrator.cli.display`, the database package and the core's
config; no other command module."""

from __future__ import annotations

import sys

import click

from orchestrator.cli.display import make_console
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


COMMANDS: list[click.Command] = [db]
