"""``orchestrator logs``: the log lines captured from a flow run's task runs (the
user's ``logging`` records and printed output), and its child runs' with
``--children``.

May import :mod:`~orchestrator.cli.display`, :mod:`~orchestrator.cli.tree`, the
client layer and the core; no other command module."""

from __future__ import annotations

import click
from rich.console import Console
from rich.text import Text

from orchestrator.cli.display import log_line_text, make_console, state_text
from orchestrator.cli.run_ids import resolve_run_id
from orchestrator.cli.tree import INDENT, sorted_task_runs, task_name
from orchestrator.client import Client
from orchestrator.db.models import TaskRunLog
from orchestrator.errors import FlowRunNotFound
from orchestrator.infos import FlowRunInfo, TaskRunInfo


class _Printer:
    """Walks a flow run (and, optionally, its children) and prints their lines."""

    def __init__(
        self,
        client: Client,
        console: Console,
        children: bool,
        tasks: tuple[str, ...],
        tail: int | None,
    ) -> None:
        self.client = client
        self.console = console
        self.children = children
        self.tasks = set(tasks)
        self.tail = tail
        self.lines = 0
        self.seen: set[str] = set()
        self.slugs: set[str] = set()

    def print(self, text: Text) -> None:
        self.console.print(text, soft_wrap=True)

    def flow_run(self, info: FlowRunInfo, depth: int) -> None:
        self.seen.add(info.id)
        header = Text(INDENT * depth)
        header.append(f"{info.flow_name}", style="bold")
        header.append(f" v{info.version} run {info.id}  ")
        header.append_text(state_text(info.state))
        self.print(header)
        rows = self.client.task_run_logs(info.id, last=self.tail)
        self.slugs.update(_task_slugs(self.client, info.id))
        linked: set[str] = set()
        for tr in sorted_task_runs(info):
            mine = rows.get(tr.id, []) if not self.tasks or tr.slug in self.tasks else []
            if mine:
                self.task_run(tr, mine, depth + 1)
            if self.children and tr.child_flow_run_id:
                linked.add(tr.child_flow_run_id)
                if not mine:
                    self.task_header(tr, depth + 1)
                self.child(tr.child_flow_run_id, depth + 2)
        if self.children:
            for child_id in info.children:
                if child_id not in linked:
                    self.child(child_id, depth + 1)

    def task_header(self, tr: TaskRunInfo, depth: int) -> None:
        header = Text(INDENT * depth)
        header.append(task_name(tr), style="bold")
        header.append("  ")
        header.append_text(state_text(tr.state))
        if tr.attempts > 1:
            header.append(f"  {tr.attempts} attempts", style="dim")
        if tr.worker:
            header.append(f"  on {tr.worker}", style="dim")
        self.print(header)

    def task_run(self, tr: TaskRunInfo, rows: list[TaskRunLog], depth: int) -> None:
        self.task_header(tr, depth)
        several = len({r.attempt for r in rows}) > 1 or tr.attempts > 1
        attempt = None
        for row in rows:
            if several and row.attempt != attempt:
                attempt = row.attempt
                self.print(Text(f"{INDENT * (depth + 1)}-- attempt {attempt} --", style="dim"))
            self.print(
                log_line_text(
                    row.timestamp, row.level, row.logger, row.message, INDENT * (depth + 1)
                )
            )
            self.lines += 1

    def child(self, child_id: str, depth: int) -> None:
        if child_id in self.seen:
            return
        try:
            info = self.client.get_flow_run(child_id)
        except FlowRunNotFound:
            self.print(Text(f"{INDENT * depth}flow run {child_id} (not found)", style="red"))
            return
        self.flow_run(info, depth)


def _task_slugs(client: Client, run_id: str) -> set[str]:
    """The slugs of the tasks of a run's flow version (task runs or not yet)."""
    store = client.backends.store
    structure = store.flows.get(store.flow_runs.get(run_id).flow_id).structure or {}
    return {str(t.get("slug")) for t in structure.get("tasks", []) if t.get("slug")}


@click.command()
@click.argument("run_id", metavar="RUN_ID")
@click.option(
    "--children",
    "-c",
    is_flag=True,
    help="Also the lines of the child runs its tasks started, recursively.",
)
@click.option(
    "--task",
    "-t",
    "tasks",
    multiple=True,
    metavar="SLUG",
    help="Only the lines of this task (in every run shown); repeatable.",
)
@click.option(
    "--tail",
    "-n",
    type=click.IntRange(min=1),
    metavar="N",
    help="Only the last N lines of each task run.",
)
def logs(run_id: str, children: bool, tasks: tuple[str, ...], tail: int | None) -> None:
    """Print the log lines captured from a flow run's task runs.

    What a task's code logs with `logging` (at the level the worker logs, INFO
    with `orchestrator worker`) and prints to stdout or stderr while it runs is
    stored with its task run when the attempt ends: the last 1,000 lines per task
    run. Each line shows its local time, its level (STDOUT and STDERR for printed
    lines) and its logger.
    """
    client = Client(reading=True)
    info = client.get_flow_run(resolve_run_id(client, run_id))
    console = make_console()
    printer = _Printer(client, console, children, tasks, tail)
    printer.flow_run(info, 0)
    unknown = set(tasks) - printer.slugs
    if unknown:
        known = ", ".join(sorted(printer.slugs)) or "none"
        raise click.BadParameter(
            f"no task {', '.join(sorted(unknown))} in the runs shown; their tasks: {known}",
            param_hint="--task",
        )
    if printer.lines == 0:
        hint = ""
        if info.children and not children:
            hint = " (its child runs may have some: add --children)"
        elif not info.state.is_final:
            hint = " yet (lines are stored when each task run attempt ends)"
        what = f"task {', '.join(sorted(tasks))}" if tasks else "its task runs"
        console.print(f"no log lines captured from {what}{hint}", style="dim")


COMMANDS: list[click.Command] = [logs]

__all__ = ["COMMANDS", "logs"]
