"""The ``orchestrator`` command group's error handling: every error is one
``error:`` line on stderr (passwords hidden) and a non-zero exit, never a traceback
(set ``ORCHESTRATOR_DEBUG=1`` to see the traceback of an unexpected error).

May import click, redis and SQLAlchemy (to name a backend's error), and the core's
config and errors; never a command module."""

from __future__ import annotations

import os
import re
import sys
import traceback
from collections.abc import Sequence
from typing import Any

import click
import redis
from sqlalchemy.exc import DBAPIError

from orchestrator.config import Settings, hide_password
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
