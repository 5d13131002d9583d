"""The ``orchestrator`` command line.

Every subcommand lives in a module of this package, one module per command group,
each listing its commands in ``COMMANDS``; they are all added to :data:`main` here.
Errors are one line on stderr and exit code 1, never a traceback (see
:mod:`orchestrator.cli.group`).

May import every module of this package; no module of the package imports it but
``__main__``.
"""

from __future__ import annotations

import click

from orchestrator.cli import (
    database,
    demo,
    fleet,
    flows,
    limits,
    logs,
    restart,
    runs,
    schedules,
    server,
)
from orchestrator.cli.group import OrchestratorGroup, fail, scrub
from orchestrator.config import VERSION


@click.group(cls=OrchestratorGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(VERSION, "--version", prog_name="orchestrator")
def main() -> None:
    """Dependent flows (flow-of-flows) on a Celery worker fleet.

    With no settings everything lives in ORCHESTRATOR_HOME (default ~/.orchestrator):
    a SQLite database and an embedded Redis. ORCHESTRATOR_REDIS_URL and
    ORCHESTRATOR_DATABASE_URL point at shared servers. Start with `orchestrator demo`.
    """


for _module in (flows, runs, restart, logs, fleet, schedules, database, demo, limits, server):
    for _command in _module.COMMANDS:
        main.add_command(_command)

__all__ = ["OrchestratorGroup", "fail", "main", "scrub"]
