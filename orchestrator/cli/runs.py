"""``orchestrator run``, ``runs``, ``show`` and ``cancel``: creating flow runs,
watching them and reading their tree of task runs and child runs.

May import the other CLI helpers (:mod:`~orchestrator.cli.display`,
:mod:`~orchestrator.cli.tree`, :mod:`~orchestrator.cli.progress`,
:mod:`~orchestrator.cli.tries`), the client layer
and the core; no other command module."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from orchestrator.browsing import RunSummary
from orchestrator.cli.display import (
    fmt_duration,
    fmt_time,
    make_console,
    running_duration,
    short,
    state_text,
)
from orchestrator.cli.progress import wait_with_progress
from orchestrator.cli.run_ids import resolve_run_id
from orchestrator.cli.tree import SHOW_LAST_LINES, failed_tails, run_tree, task_runs_table
from orchestrator.cli.tries import tries_tables
from orchestrator.client import Client
from orchestrator.infos import FlowRunInfo
from orchestrator.states import State


def parse_params(pairs: tuple[str, ...], params_json: str | None) -> dict[str, Any]:
    """Parameters from ``--params-json`` (a JSON object, or ``@path`` of a file
    holding one) or from ``--param k=v`` pairs; giving both is an error.

    A ``--param`` value is parsed as JSON when it parses (``n=3`` gives 3,
    ``xs=[1,2]`` a list) and kept as a string otherwise.
    """
    if params_json and pairs:
        raise click.UsageError(
            "give parameters either with --param or with --params-json, not both"
        )
    if params_json:
        return _params_json(params_json)
    params: dict[str, Any] = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep or not key.strip():
            raise click.BadParameter(f"{pair!r} is not KEY=VALUE", param_hint="--param")
        try:
            value: Any = json.loads(raw)
        except json.JSONDecodeError:
            value = raw
        params[key.strip()] = value
    return params


def _params_json(text: str) -> dict[str, Any]:
    """The object of ``--params-json``: JSON text, or ``@path`` of a JSON file."""
    where = "--params-json"
    if text.startswith("@"):
        path = Path(text[1:])
        where = f"--params-json file {path}"
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise click.BadParameter(
                f"cannot read {path}: {exc.strerror or exc}", param_hint="--params-json"
            ) from None
    try:
        loaded = json.loads(text)
    except json.JSONDecodeError as exc:
        raise click.BadParameter(f"not valid JSON: {exc}", param_hint=where) from None
    if not isinstance(loaded, dict):
        raise click.BadParameter(
            f"must be a JSON object, got {type(loaded).__name__}", param_hint=where
        )
    return loaded


@click.command()
@click.argument("flow")
@click.option("--project", "-p", required=True, help="The flow's project.")
@click.option(
    "--param",
    "params",
    multiple=True,
    metavar="KEY=VALUE",
    help="A parameter value (JSON when it parses, else a string); repeatable.",
)
@click.option(
    "--params-json",
    metavar="JSON|@FILE",
    help="Parameters as one JSON object, or @path of a file holding one.",
)
@click.option("--label", "labels", multiple=True, help="An extra label for the run; repeatable.")
@click.option("--name", "run_name", help="A readable name for the run.")
@click.option("--wait", is_flag=True, help="Wait for the run to finish and show its task runs.")
@click.option(
    "--timeout",
    type=click.FloatRange(min=0, min_open=True),
    metavar="SECONDS",
    help="With --wait (required): give up after this many seconds.",
)
@click.pass_context
def run(
    ctx: click.Context,
    flow: str,
    project: str,
    params: tuple[str, ...],
    params_json: str | None,
    labels: tuple[str, ...],
    run_name: str | None,
    wait: bool,
    timeout: float | None,
) -> None:
    """Create a run of the newest version of FLOW and send it to the workers.

    Without --wait, print the run id. With --wait, show its progress, then its
    final state and task runs; the exit code is 0 on Success and 1 otherwise.
    """
    if timeout is not None and not wait:
        raise click.UsageError("--timeout only applies with --wait")
    values = parse_params(params, params_json)
    client = Client()
    run_id = client.create_flow_run(
        flow_name=flow,
        project_name=project,
        parameters=values,
        run_name=run_name,
        labels=list(labels),
    )
    if not wait:
        click.echo(run_id)
        return
    info = wait_with_progress(client, run_id, f"{flow} {run_id}", timeout=timeout)
    console = make_console()
    line = Text(f"{info.flow_name} v{info.version} run {info.id}: ")
    line.append_text(state_text(info.state))
    line.append(f" in {fmt_duration(info.duration)}")
    if info.message and info.state is not State.SUCCESS:
        line.append(f" ({short(info.message, 160)})")
    console.print(line)
    if info.task_runs:
        console.print(task_runs_table(info))
    ctx.exit(0 if info.state is State.SUCCESS else 1)


@click.command("runs")
@click.option(
    "--limit",
    "-n",
    type=click.IntRange(min=1, max=500),
    default=20,
    show_default=True,
    help="How many runs, newest first.",
)
@click.option(
    "--state",
    "-s",
    type=click.Choice([s.value for s in State], case_sensitive=False),
    help="Only runs in this state.",
)
@click.option(
    "--roots",
    is_flag=True,
    help="Only runs no other run started, each with the states of the runs under it.",
)
@click.option("--flow", "-f", help="Only runs of this flow.")
@click.option("--project", "-p", help="Only runs of this project's flows.")
def list_runs(
    limit: int, state: str | None, roots: bool, flow: str | None, project: str | None
) -> None:
    """List the newest flow runs (children and parents mixed; --roots: parents only)."""
    wanted = None
    if state is not None:
        wanted = next(s for s in State if s.value.lower() == state.lower())
    client = Client(reading=True)
    console = make_console()
    if roots or flow or project:
        page = client.flow_runs_page(limit, None, roots, wanted, flow, project)
        if not page.runs:
            console.print("no flow runs" + (f" in state {wanted.value}" if wanted else ""))
            return
        console.print(_summary_table(page.runs, roots))
        return
    infos = client.list_flow_runs(limit=limit, state=wanted)
    if not infos:
        console.print("no flow runs" + (f" in state {wanted.value}" if wanted else ""))
        return
    table = _runs_table()
    table.add_column("parent", no_wrap=True)
    for info in infos:
        parent = info.parent_flow_run_id[:8] + "…" if info.parent_flow_run_id else "-"
        table.add_row(*_run_cells(info), parent)
    console.print(table)


def _runs_table() -> Table:
    table = Table()
    table.add_column("id", no_wrap=True, min_width=36)
    table.add_column("flow", style="bold")
    table.add_column("project / version")
    table.add_column("state")
    table.add_column("started")
    table.add_column("duration", justify="right")
    return table


def _run_cells(info: FlowRunInfo) -> list[str | Text]:
    return [
        info.id,
        escape(info.flow_name),
        escape(f"{info.project} v{info.version}"),
        state_text(info.state),
        fmt_time(info.start_time),
        running_duration(info.start_time, info.end_time),
    ]


def rollup_text(summary: RunSummary) -> Text:
    """The states of the runs under a run: ``4 Success``, ``1 Failed, 3 Success``, ``-``."""
    text = Text()
    for i, (st, n) in enumerate(summary.rollup()):
        if i:
            text.append(", ")
        text.append(f"{n} ")
        text.append_text(state_text(st))
    return text if summary.descendants else Text("-")


def _summary_table(runs: list[RunSummary], roots: bool) -> Table:
    table = _runs_table()
    table.add_column("runs under it")
    if not roots:
        table.add_column("parent", no_wrap=True)
    for s in runs:
        cells = [*_run_cells(s.info), rollup_text(s)]
        if not roots:
            parent = s.info.parent_flow_run_id
            cells.append(parent[:8] + "…" if parent else "-")
        table.add_row(*cells)
    return table


@click.command()
@click.argument("run_id", metavar="RUN_ID")
def show(run_id: str) -> None:
    """Show a flow run as a tree: its task runs and the child runs they started, then
    the tries of each restarted run in it.

    The last log lines of failed task runs (its own and its children's) follow the tree.
    RUN_ID may be a prefix of the id that only one run has.
    """
    client = Client(reading=True)
    run_id = resolve_run_id(client, run_id)
    console = make_console()
    console.print(run_tree(client, run_id))
    for table in tries_tables(client, run_id):  # a restarted run: each of its tries
        console.print(table)
    tails = failed_tails(client, run_id)
    if tails:
        console.print(
            f"\nlast log lines of failed task runs (at most {SHOW_LAST_LINES} each; "
            f"all of them: orchestrator logs {run_id} --children)",
            style="bold",
        )
        for line in tails:
            console.print(line, soft_wrap=True)


@click.command()
@click.argument("run_id", metavar="RUN_ID")
@click.option("--no-children", is_flag=True, help="Leave its child runs running.")
def cancel(run_id: str, no_children: bool) -> None:
    """Cancel a flow run that has not finished (and, by default, its unfinished children).

    RUN_ID may be a prefix of the id that only one run has.
    """
    client = Client()
    run_id = resolve_run_id(client, run_id)
    before = client.get_flow_run(run_id, task_runs=False)
    pending = [] if no_children else _unfinished_descendants(client, before)
    cancelled = client.cancel_flow_run(run_id, cancel_children=not no_children)
    console = make_console()
    if cancelled:
        console.print(f"cancelled flow run {run_id} ({escape(before.flow_name)})")
    else:
        now = client.get_flow_run(run_id, task_runs=False)
        console.print(f"flow run {run_id} is already {now.state.value}; not cancelled")
    for child in pending:
        now = client.get_flow_run(child.id, task_runs=False)
        if now.state is State.CANCELLED:
            console.print(f"  cancelled child run {child.id} ({escape(child.flow_name)})")


def _unfinished_descendants(client: Client, info: FlowRunInfo) -> list[FlowRunInfo]:
    out: list[FlowRunInfo] = []
    for child_id in info.children:
        child = client.get_flow_run(child_id, task_runs=False)
        if not child.state.is_final:
            out.append(child)
        out.extend(_unfinished_descendants(client, child))
    return out


COMMANDS: list[click.Command] = [run, list_runs, show, cancel]
