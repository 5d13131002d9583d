"""How the command line shows the tries of restarted runs: one table per run that
was restarted (the run or a run under it), a row per try with its times and how it
ended. ``show`` and ``restart`` share it. May import :mod:`orchestrator.cli.display`,
the client layer and the core; never a command module."""

from __future__ import annotations

from rich.markup import escape
from rich.table import Table

from orchestrator.cli.display import fmt_time, running_duration, short, state_text
from orchestrator.client import Client
from orchestrator.restarts import tries


def tries_tables(client: Client, run_id: str) -> list[Table]:
    """A table of tries for each run of the tree under ``run_id`` that was restarted."""
    nodes = {n.info.id: n.info for n in client.flow_run_tree(run_id).walk()}
    restarted = client.backends.store.restarts.restarted_among(list(nodes))
    tables = []
    for rid in (i for i in nodes if i in restarted):
        found = tries(client.backends, rid)
        name = nodes[rid].flow_name
        table = Table(title=f"tries of {escape(name)} {rid}", title_justify="left")
        for column in ("try", "began", "queued", "started", "state", "duration", "message"):
            table.add_column(column)
        for t in found:
            table.add_row(
                str(t.number),
                escape(short(t.cause or "", 60)),
                fmt_time(t.queued),
                fmt_time(t.started),
                state_text(t.state),
                running_duration(t.started, t.ended) if t.started else "-",
                escape(short(t.message or "", 80)),
            )
        tables.append(table)
    return tables
