"""Waiting for a flow run with a display: a live spinner line with its state and
elapsed time (and, optionally, the run tree as it grows) on a terminal, or one line
per new state otherwise.

``run --wait`` and ``demo`` use it. May import :mod:`orchestrator.cli.display`,
:mod:`orchestrator.cli.tree`, the client layer and the core; never a command module."""

from __future__ import annotations

import contextlib
import threading
import time

from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.spinner import Spinner
from rich.text import Text

from orchestrator.cli.display import fmt_duration, make_console, state_text
from orchestrator.cli.tree import run_tree
from orchestrator.client import Client
from orchestrator.infos import FlowRunInfo
from orchestrator.states import State

#: Seconds a run may stay Submitted before the wait display suggests starting a worker.
NO_WORKER_HINT_AFTER = 5.0


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
