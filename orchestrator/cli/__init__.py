"""The ``orchestrator`` command line.

Every subcommand lives in a module of this package and is added to :data:`main`
at the end of this file. Errors are one line on stderr and exit code 1, never a
traceback (set ``ORCHESTRATOR_DEBUG=1`` to see the traceback of an unexpected
error).
"""

from __future__ import annotations

import os
import re
import sys
import traceback
from collections.abc import Sequence
from typing import Any

import click

from orchestrator import __version__
from orchestrator.errors import OrchestratorError

_URL_PASSWORD = re.compile(r"(?P<head>[A-Za-z][A-Za-z0-9+.\-]*://[^\s:/@]*:)[^\s@/]+@")


def scrub(message: str) -> str:
    """``message`` on one line, with the password of any URL in it replaced by ``***``."""
    first = next((line.strip() for line in str(message).splitlines() if line.strip()), "")
    return _URL_PASSWORD.sub(lambda m: f"{m.group('head')}***@", first)


def fail(message: str, code: int = 1) -> None:
    """Print ``error: message`` on stderr (one line, passwords hidden) and exit."""
    sys.stdout.flush()
    click.echo(f"error: {scrub(message)}", err=True)
    sys.exit(code)


def _backend_error(exc: BaseException) -> str | None:
    """A one-line message for a Redis or database error that escaped the core."""
    import redis
    from sqlalchemy.exc import DBAPIError

    from orchestrator.config import Settings, hide_password

    settings = Settings.from_env()
    if isinstance(exc, redis.RedisError):
        where = hide_password(settings.redis_url) if settings.redis_url else "the embedded Redis"
        return f"Redis at {where} failed: {type(exc).__name__}: {exc}"
    if isinstance(exc, DBAPIError):
        detail = str(exc.orig) if exc.orig is not None else str(exc)
        url = hide_password(settings.resolved_database_url())
        return f"database {url} failed: {detail}"
    return None


class OrchestratorGroup(click.Group):
    """A click group whose errors are one ``error:`` line on stderr and exit code 1."""

    def main(
        self,
        args: Sequence[str] | None = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        **extra: Any,
    ) -> Any:
        """Run the command line; in standalone mode, turn every error into one line."""
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        try:
            rv = super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        except click.UsageError as exc:
            hint = ""
            if exc.ctx is not None:
                hint = f" (see '{exc.ctx.command_path} --help')"
            fail(exc.format_message() + hint)
        except click.ClickException as exc:
            fail(exc.format_message())
        except click.Abort:
            fail("interrupted", 130)
        except KeyboardInterrupt:
            fail("interrupted", 130)
        except OrchestratorError as exc:
            fail(str(exc) or type(exc).__name__)
        except Exception as exc:
            message = _backend_error(exc)
            if message is None:
                if os.environ.get("ORCHESTRATOR_DEBUG"):
                    traceback.print_exc()
                message = (
                    f"unexpected {type(exc).__name__}: {exc} "
                    "(set ORCHESTRATOR_DEBUG=1 to see the traceback)"
                )
            fail(message)
        sys.exit(rv if isinstance(rv, int) else 0)


@click.group(cls=OrchestratorGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "--version", prog_name="orchestrator")
def main() -> None:
    """Dependent flows (flow-of-flows) on a Celery worker fleet.

    With no settings everything lives in ORCHESTRATOR_HOME (default ~/.orchestrator):
    a SQLite database and an embedded Redis. ORCHESTRATOR_REDIS_URL and
    ORCHESTRATOR_DATABASE_URL point at shared servers. Start with `orchestrator demo`.
    """


# --- subcommand modules ---------------------------------------------------------
# Each module lists its commands in COMMANDS; add a module to _MODULES to register it.
from orchestrator.cli import demo, fleet, flows, limits, runs  # noqa: E402

_MODULES = [flows, runs, fleet, demo, limits]

# >>> Other modules register here (schedules, limits), for example:
#     from orchestrator.cli import schedules
#     _MODULES.append(schedules)
from orchestrator.cli import logs  # noqa: E402

_MODULES.append(logs)
# <<<

for _module in _MODULES:
    for _command in _module.COMMANDS:
        main.add_command(_command)

__all__ = ["OrchestratorGroup", "fail", "main", "scrub"]
__import__("orchestrator.cli.schedules", fromlist=["register"]).register(main)  # beat, schedules
