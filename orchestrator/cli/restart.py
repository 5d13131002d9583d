"""``orchestrator restart RUN_ID [--wait]``: restart a finished run that did not
succeed, in place, from its failure (its failed children with it). May import the
other CLI helpers, the client layer and the core; no other command module."""

from __future__ import annotations

import click
from rich.markup import escape
from rich.text import Text

from orchestrator.cli.display import fmt_duration, make_console, short, state_text
from orchestrator.cli.progress import wait_with_progress
from orchestrator.cli.tree import run_tree
from orchestrator.cli.tries import tries_tables
from orchestrator.client import Client
from orchestrator.states import State


@click.command()
@click.argument("run_id", metavar="RUN_ID")
@click.option("--wait", is_flag=True, help="Wait for the restarted run to finish, then show it.")
@click.option(
    "--timeout",
    type=click.FloatRange(min=0, min_open=True),
    metavar="SECONDS",
    help="With --wait: give up after this many seconds.",
)
@click.pass_context
def restart(ctx: click.Context, run_id: str, wait: bool, timeout: float | None) -> None:
    """Restart a finished flow run that did not succeed, from its failure.

    The same run (same id) runs again: task runs that succeeded keep their results,
    the failed ones and everything after them run again, and a StartFlowRun whose
    child failed restarts that child in place. With --wait, show the run tree and
    its tries at the end; the exit code is 0 on Success and 1 otherwise.
    """
    client = Client()
    done = client.restart_flow_run(run_id)
    console = make_console()
    line = f"restarted flow run {run_id} ({escape(done.flow_name)}): try {done.attempt}"
    console.print(f"{line}, {done.task_runs} task runs to run again")
    for child in done.children:
        name = client.get_flow_run(child, task_runs=False).flow_name
        console.print(f"  restarted child run {child} ({escape(name)})")
    if not wait:
        return
    info = wait_with_progress(client, run_id, f"{done.flow_name} {run_id}", timeout=timeout)
    end = Text(f"{info.flow_name} v{info.version} run {info.id}: ")
    end.append_text(state_text(info.state))
    end.append(f" in {fmt_duration(info.duration)}")
    if info.message and info.state is not State.SUCCESS:
        end.append(f" ({short(info.message, 160)})")
    console.print(end)
    console.print(run_tree(client, run_id))
    for table in tries_tables(client, run_id):
        console.print(table)
    ctx.exit(0 if info.state is State.SUCCESS else 1)


COMMANDS: list[click.Command] = [restart]
