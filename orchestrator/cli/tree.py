"""How the command line draws runs: one-line labels for flow runs and task runs,
the run tree (task runs and, under each, the child run it started), the task-run
table, and the last log lines of failed task runs.

``runs``, ``logs`` and ``demo`` share these. May import :mod:`orchestrator.cli.display`,
the client layer (:mod:`orchestrator.client`, :mod:`orchestrator.infos`) and the
core; never a command module."""

from __future__ import annotations

from datetime import datetime

from rich.markup import escape
from rich.table import Table
from rich.text import Text
from rich.tree import Tree

from orchestrator.cli.display import log_line_text, running_duration, short, state_text
from orchestrator.client import Client
from orchestrator.errors import FlowRunNotFound
from orchestrator.infos import FlowRunInfo, TaskRunInfo
from orchestrator.states import State

#: How many mapped children ``show`` lists under their task (the rest are counted).
SHOWN_MAPPED = 10

#: How many of a failed task run's last lines ``orchestrator show`` prints.
SHOW_LAST_LINES = 10

#: One level of indentation in log listings.
INDENT = "  "


def task_name(tr: TaskRunInfo) -> str:
    """A task run's slug, with its map index when it is a mapped child (``slug[2]``)."""
    return tr.slug if tr.map_index < 0 else f"{tr.slug}[{tr.map_index}]"


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
    text.append(task_name(tr))
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


# --- the run tree -----------------------------------------------------------------


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
            escape(task_name(tr)),
            state_text(tr.state),
            running_duration(tr.start_time, tr.end_time),
            str(tr.attempts),
            escape(tr.worker or "-"),
            Text(detail),
        )
    return table


# --- the last lines of failed task runs ------------------------------------------------


def _failed_lines(client: Client, info: FlowRunInfo, last: int) -> list[Text]:
    """The last log lines of one run's failed task runs, each under a header."""
    failed = [tr for tr in sorted_task_runs(info) if tr.state.is_failed]
    if not failed:
        return []
    rows = client.task_run_logs(info.id, [tr.id for tr in failed], last=last)
    out: list[Text] = []
    for tr in failed:
        if not rows.get(tr.id):
            continue
        header = Text(INDENT)
        header.append(f"{info.flow_name}/{task_name(tr)}", style="bold")
        header.append("  ")
        header.append_text(state_text(tr.state))
        header.append(f"  run {info.id}", style="dim")
        out.append(header)
        for row in rows[tr.id]:
            out.append(log_line_text(row.timestamp, row.level, row.logger, row.message, INDENT * 2))
    return out


def _walk_failed(client: Client, run_id: str, last: int, seen: set[str], out: list[Text]) -> None:
    if run_id in seen:
        return
    seen.add(run_id)
    try:
        info = client.get_flow_run(run_id)
    except FlowRunNotFound:
        return
    out.extend(_failed_lines(client, info, last))
    children = [tr.child_flow_run_id for tr in info.task_runs if tr.child_flow_run_id]
    for child_id in [*children, *info.children]:
        _walk_failed(client, child_id, last, seen, out)


def failed_tails(client: Client, flow_run_id: str, last: int = SHOW_LAST_LINES) -> list[Text]:
    """The last log lines of every failed task run of a flow run and of its child
    runs (recursively), each under a header naming the flow, the task and why it failed.
    """
    out: list[Text] = []
    _walk_failed(client, flow_run_id, last, set(), out)
    return out
