"""Schema migrations: Alembic's upgrade, the current and head revisions, and the check
that a database is not behind this code; two processes upgrading one SQLite file take
turns through a file lock beside it. Imports the standard library, the sibling module
database and the core's errors, config and file_lock; Alembic only inside the
functions that need it."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from orchestrator.config import hide_password
from orchestrator.db.database import Database
from orchestrator.errors import ConfigurationError
from orchestrator.file_lock import file_lock

#: The Alembic script folder (shipped as package data).
MIGRATIONS = Path(__file__).parent / "migrations"


def _alembic_config(url: str) -> Any:
    # alembic is heavy and only needed for migrations: imported when one is asked for
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


@contextlib.contextmanager
def _migration_lock(db: Database) -> Iterator[None]:
    """Hold the lock file beside an SQLite database (nothing for a server)."""
    if not db.is_sqlite:
        yield
        return
    with file_lock(Path(db.url.split("///", 1)[-1] + ".migrate.lock")):
        yield


def upgrade(db: Database) -> str:
    """Apply every pending migration.

    Returns:
        The revision the database is at afterwards (the head).
    """
    # alembic is heavy and only needed for migrations: imported when one is asked for
    from alembic import command

    head = head_revision(db)
    if current_revision(db) == head:
        return head  # nothing to do: no lock file either (a read-only home works)
    cfg = _alembic_config(db.url)
    with _migration_lock(db), db.translate(), db.engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "head")
    return current_revision(db) or ""


def current_revision(db: Database) -> str | None:
    """The revision the database is at, or None before any migration."""
    # alembic is heavy and only needed for migrations: imported when one is asked for
    from alembic.runtime.migration import MigrationContext

    with db.translate(), db.engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def head_revision(db: Database) -> str:
    """The newest migration this code knows."""
    # alembic is heavy and only needed for migrations: imported when one is asked for
    from alembic.script import ScriptDirectory

    return str(ScriptDirectory.from_config(_alembic_config(db.url)).get_current_head())


def check_migrated(db: Database) -> None:
    """Raise a clear error when the schema is behind this code.

    Raises:
        ConfigurationError: the database is not at the head revision, naming the fix.
    """
    current = current_revision(db)
    head = head_revision(db)
    if current != head:
        raise ConfigurationError(
            f"database {hide_password(db.url)} is at migration {current or 'none'}, "
            f"not {head}: run `orchestrator db upgrade`"
        )
