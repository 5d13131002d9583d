"""``orchestrator run``, ``runs``, ``show`` and ``cancel``: creating flow runs,
watching them and reading their tree of task runs and child runs."""

from __future__ import annotations

import contextlib
import json
import threading
import time
from datetime import datetime
from typing import Any

import click
from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.markup import escape
from rich.spinner import Spinner
from rich.table import Table
from rich.text import Text
from rich.tree import Tree

from orchestrator.cli.display import (
    fmt_duration,
    fmt_time,
    make_console,
    running_duration,
    short,
    state_text,
)
from orchestrator.client import Client, FlowRunInfo, TaskRunInfo
from orchestrator.errors import FlowRunNotFound
from orchestrator.states import State

#: Seconds a run may stay Submitted before the wait display suggests starting a worker.
NO_WORKER_HINT_AFTER = 5.0

# --- the run tree -----------------------------------------------------------------


def flow_run_label(info: FlowRunInfo) -> Text:
    """One line for a flow run: flow, version, project, state, duration, id, and the
    message when the run did not succeed."""
    text = Text()
    text.append(info.flow_name, style="bold")
    text.append(f" v{info.version}", style="dim")
    text.append(f" [{info.project}]  ", style="dim")
    text.append_text(state_text(info.state))
    text.append(f"  {running_duration(info.start_time, info.end_time)}")
    if info.name:
        text.append(f"  {info.name!r}", style="italic")
    text.append(f"  {info.id}", style="dim")
    if info.message and info.state is not State.SUCCESS:
        text.append(f"  {short(info.message, 120)}", style="yellow")
    return text


def task_run_label(tr: TaskRunInfo) -> Text:
    """One line for a task run: slug, state, duration, attempts, worker, and the
    message when the run did not succeed."""
    text = Text()
    text.append(tr.slug if tr.map_index < 0 else f"{tr.slug}[{tr.map_index}]")
    text.append("  ")
    text.append_text(state_text(tr.state))
    text.append(f"  {running_duration(tr.start_time, tr.end_time)}")
    if tr.attempts:
        text.append(f"  attempt{'s' if tr.attempts != 1 else ''} {tr.attempts}", style="dim")
    if tr.worker:
        text.append(f"  on {tr.worker}", style="dim")
    if tr.state is not State.SUCCESS and tr.message:
        text.append(f"  {short(tr.message, 120)}", style="yellow")
    return text


def sorted_task_runs(info: FlowRunInfo) -> list[TaskRunInfo]:
    """A run's task runs in the order they started; those not started yet last."""

    def key(tr: TaskRunInfo) -> tuple[bool, datetime, str, int]:
        return (tr.start_time is None, tr.start_time or info.created, tr.slug, tr.map_index)

    return sorted(info.task_runs, key=key)


#: How many mapped children ``show`` lists under their task (the rest are counted).
SHOWN_MAPPED = 10


def _add_flow_run(client: Client, node: Tree, info: FlowRunInfo, seen: set[str]) -> None:
    seen.add(info.id)
    linked: set[str] = set()
    mapped: dict[str, list[TaskRunInfo]] = {}
    for tr in info.task_runs:
        if tr.map_index >= 0:
            mapped.setdefault(tr.slug, []).append(tr)
    for tr in sorted_task_runs(info):
        if tr.map_index >= 0:
            continue
        branch = node.add(task_run_label(tr))
        if tr.child_flow_run_id:
            linked.add(tr.child_flow_run_id)
            _add_child(client, branch, tr.child_flow_run_id, seen)
        children = sorted(mapped.get(tr.slug, []), key=lambda c: c.map_index)
        if children:
            _add_mapped(client, branch, children, seen, linked)
    for child_id in info.children:
        if child_id not in linked:
            _add_child(client, node, child_id, seen)


def _add_mapped(
    client: Client, node: Tree, children: list[TaskRunInfo], seen: set[str], linked: set[str]
) -> None:
    """Under a mapped task: counts per state, then its first children (failed ones first)."""
    counts: dict[State, int] = {}
    for c in children:
        counts[c.state] = counts.get(c.state, 0) + 1
    summary = Text(f"{len(children)} mapped: ", style="bold")
    for i, (state, n) in enumerate(sorted(counts.items(), key=lambda kv: -kv[1])):
        if i:
            summary.append(", ")
        summary.append(f"{n} ")
        summary.append_text(state_text(state))
    group = node.add(summary)
    shown = sorted(children, key=lambda c: (c.state is State.SUCCESS, c.map_index))[:SHOWN_MAPPED]
    for c in shown:
        branch = group.add(task_run_label(c))
        if c.child_flow_run_id:
            linked.add(c.child_flow_run_id)
            _add_child(client, branch, c.child_flow_run_id, seen)
    for c in children:
        if c.child_flow_run_id:
            linked.add(c.child_flow_run_id)
    if len(children) > len(shown):
        group.add(Text(f"... and {len(children) - len(shown)} more", style="dim"))


def _add_child(client: Client, node: Tree, child_id: str, seen: set[str]) -> None:
    if child_id in seen:
        node.add(Text(f"flow run {child_id} (shown above)", style="dim"))
        return
    try:
        child = client.get_flow_run(child_id)
    except FlowRunNotFound:
        node.add(Text(f"flow run {child_id} (not found)", style="red"))
        return
    branch = node.add(flow_run_label(child))
    _add_flow_run(client, branch, child, seen)


def run_tree(client: Client, flow_run_id: str) -> Tree:
    """The tree of a flow run: its task runs and, under each, the child run it
    started, recursively (children not linked to a task run hang from the run).

    Args:
        client: where to read the runs.
        flow_run_id: the root run.

    Returns:
        A rich tree.
    """
    info = client.get_flow_run(flow_run_id)
    tree = Tree(flow_run_label(info), guide_style="dim")
    _add_flow_run(client, tree, info, set())
    return tree


def task_runs_table(info: FlowRunInfo) -> Table:
    """The task runs of one flow run as a table."""
    table = Table()
    table.add_column("task")
    table.add_column("state")
    table.add_column("duration", justify="right")
    table.add_column("attempts", justify="right")
    table.add_column("worker")
    table.add_column("result / message", overflow="fold")
    for tr in sorted_task_runs(info):
        detail = short(tr.result) if tr.state is State.SUCCESS else short(tr.message, 100)
        table.add_row(
            escape(tr.slug if tr.map_index < 0 else f"{tr.slug}[{tr.map_index}]"),
            state_text(tr.state),
            running_duration(tr.start_time, tr.end_time),
            str(tr.attempts),
            escape(tr.worker or "-"),
            Text(detail),
        )
    return table


# --- waiting with a display ---------------------------------------------------------


class _WaitDisplay:
    """What a terminal shows while a run is waited for: a spinner line, and
    optionally the live run tree (rebuilt from the database twice a second)."""

    def __init__(self, client: Client, flow_run_id: str, title: str, tree: bool) -> None:
        self.client = client
        self.flow_run_id = flow_run_id
        self.title = title
        self.tree = tree
        self.state: State | None = None
        self.started = time.monotonic()
        self.spinner = Spinner("dots", style="cyan")
        self._tree: RenderableType | None = None
        self._tree_at = 0.0
        self._lock = threading.Lock()

    def line(self) -> Text:
        elapsed = time.monotonic() - self.started
        text = Text(f"{self.title}  ")
        text.append_text(state_text(self.state) if self.state else Text("…"))
        text.append(f"  {fmt_duration(elapsed)}", style="dim")
        if self.state in (State.SUBMITTED, State.SCHEDULED) and elapsed > NO_WORKER_HINT_AFTER:
            text.append(
                "  (no worker has taken it yet: is `orchestrator worker` running?)",
                style="yellow",
            )
        return text

    def render(self) -> RenderableType:
        self.spinner.update(text=self.line())
        if not self.tree:
            return self.spinner
        now = time.monotonic()
        with self._lock:
            if self._tree is None or now - self._tree_at > 0.5:
                self._tree_at = now
                with contextlib.suppress(Exception):  # a transient read error: keep the last
                    self._tree = run_tree(self.client, self.flow_run_id)
            return Group(self.spinner, self._tree) if self._tree is not None else self.spinner


def wait_with_progress(
    client: Client,
    flow_run_id: str,
    title: str,
    timeout: float | None = None,
    tree: bool = False,
    console: Console | None = None,
) -> FlowRunInfo:
    """Wait for a flow run to finish, showing its state and elapsed time.

    On a terminal this is a live spinner (and, with ``tree``, the run tree as it
    grows); otherwise each new state is printed as a line. Everything goes to
    stderr, so stdout stays clean for what the command prints at the end.

    Args:
        client: the client.
        flow_run_id: the run.
        title: what to call it in the display.
        timeout: seconds to wait at most (None: no limit).
        tree: also show the live run tree.
        console: where to show it (default: stderr).

    Returns:
        The final flow run.
    """
    console = console or make_console(stderr=True)
    display = _WaitDisplay(client, flow_run_id, title, tree)

    if not console.is_terminal:

        def log_change(state: State) -> None:
            display.state = state
            console.print(display.line())

        return client.wait_for_flow_run(flow_run_id, timeout=timeout, on_change=log_change)

    def on_change(state: State) -> None:
        display.state = state

    with Live(console=console, get_renderable=display.render, refresh_per_second=8, transient=True):
        return client.wait_for_flow_run(flow_run_id, timeout=timeout, on_change=on_change)


# --- commands -------------------------------------------------------------------------


def parse_params(pairs: tuple[str, ...], params_json: str | None) -> dict[str, Any]:
    """Parameters from ``--params-json`` and then ``--param k=v`` (which wins).

    A ``--param`` value is parsed as JSON when it parses (``n=3`` gives 3,
    ``xs=[1,2]`` a list) and kept as a string otherwise.
    """
    params: dict[str, Any] = {}
    if params_json:
        try:
            loaded = json.loads(params_json)
        except json.JSONDecodeError as exc:
            raise click.BadParameter(f"not valid JSON: {exc}", param_hint="--params-json") from None
        if not isinstance(loaded, dict):
            raise click.BadParameter(
                f"must be a JSON object, got {type(loaded).__name__}", param_hint="--params-json"
            )
        params.update(loaded)
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
@click.option("--params-json", metavar="JSON", help="Parameters as one JSON object.")
@click.option("--label", "labels", multiple=True, help="An extra label for the run; repeatable.")
@click.option("--name", "run_name", help="A readable name for the run.")
@click.option("--wait", is_flag=True, help="Wait for the run to finish and show its task runs.")
@click.option(
    "--timeout",
    type=click.FloatRange(min=0, min_open=True),
    metavar="SECONDS",
    help="With --wait: give up after this many seconds.",
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
    values = parse_params(params, params_json)
    client = Client()
    run_id = client.create_flow_run(
        flow_name=flow, project_name=project, parameters=values,
        run_name=run_name, labels=list(labels),
    )  # fmt: skip
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
    type=click.IntRange(min=1),
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
def list_runs(limit: int, state: str | None) -> None:
    """List the newest flow runs."""
    wanted = None
    if state is not None:
        wanted = next(s for s in State if s.value.lower() == state.lower())
    infos = Client().list_flow_runs(limit=limit, state=wanted)
    console = make_console()
    if not infos:
        console.print("no flow runs" + (f" in state {wanted.value}" if wanted else ""))
        return
    table = Table()
    table.add_column("id", no_wrap=True, min_width=36)
    table.add_column("flow", style="bold")
    table.add_column("project / version")
    table.add_column("state")
    table.add_column("started")
    table.add_column("duration", justify="right")
    table.add_column("parent", no_wrap=True)
    for info in infos:
        table.add_row(
            info.id,
            escape(info.flow_name),
            escape(f"{info.project} v{info.version}"),
            state_text(info.state),
            fmt_time(info.start_time),
            running_duration(info.start_time, info.end_time),
            info.parent_flow_run_id[:8] + "…" if info.parent_flow_run_id else "-",
        )
    console.print(table)


@click.command()
@click.argument("run_id", metavar="RUN_ID")
def show(run_id: str) -> None:
    """Show a flow run as a tree: its task runs and the child runs they started.

    The last log lines of failed task runs (its own and its children's) follow the tree.
    """
    from orchestrator.cli.logs import SHOW_LAST_LINES, failed_tails

    client = Client()
    console = make_console()
    console.print(run_tree(client, run_id))
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
    """Cancel a flow run that has not finished (and, by default, its unfinished children)."""
    client = Client()
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
