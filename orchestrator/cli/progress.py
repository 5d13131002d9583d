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

#: Seconds a run may stay Submitted before the wait asks the workers which queues
#: they consume (and says so when none consumes the run's).
NO_WORKER_HINT_AFTER = 5.0
#: Seconds between two such questions while the run stays Submitted.
NO_WORKER_RECHECK = 10.0


def queue_consumers(client: Client, queue: str) -> list[str]:
    """The workers that answer a Celery inspect within a second and consume ``queue``."""
    inspect = client.backends.app.control.inspect(timeout=1.0)
    replies = inspect.active_queues() or {}
    return sorted(w for w, qs in replies.items() if any(q.get("name") == queue for q in qs or []))


class _QueueWatch:
    """While a run stays Submitted, asks every few seconds whether any worker
    consumes its queue; ``warning`` says so when none does."""

    def __init__(self, client: Client, display: _WaitDisplay, announce: bool, console: Console):
        self.client = client
        self.display = display
        self.announce = announce
        self.console = console
        self.warning: str | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True, name="queue-watch")

    def __enter__(self) -> _QueueWatch:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()

    def _watch(self) -> None:
        queue = self.client.settings.queue
        wait = NO_WORKER_HINT_AFTER
        while not self._stop.wait(wait):
            wait = NO_WORKER_RECHECK
            if self.display.state is not State.SUBMITTED:
                continue
            try:
                found = queue_consumers(self.client, queue)
            except Exception:  # the broker is down: the wait itself will say so
                continue
            before, self.warning = self.warning, None
            if not found:
                self.warning = (
                    f"no worker consumes queue {queue!r}: start one with `orchestrator worker`"
                    f" (ORCHESTRATOR_QUEUE={queue}); still waiting"
                )
            self.display.warning = self.warning
            if self.announce and self.warning and self.warning != before:
                self.console.print(f"{self.display.title}  {self.warning}", style="yellow")


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
        self.warning: str | None = None

    def line(self) -> Text:
        elapsed = time.monotonic() - self.started
        text = Text(f"{self.title}  ")
        text.append_text(state_text(self.state) if self.state else Text("…"))
        text.append(f"  {fmt_duration(elapsed)}", style="dim")
        if self.state is State.SUBMITTED and self.warning:
            text.append(f"  ({self.warning})", style="yellow")
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
    watch = _QueueWatch(client, display, not console.is_terminal, console)

    if not console.is_terminal:

        def log_change(state: State) -> None:
            display.state = state
            console.print(display.line())

        with watch:
            return client.wait_for_flow_run(flow_run_id, timeout=timeout, on_change=log_change)

    def on_change(state: State) -> None:
        display.state = state

    with (
        watch,
        Live(console=console, get_renderable=display.render, refresh_per_second=8, transient=True),
    ):
        return client.wait_for_flow_run(flow_run_id, timeout=timeout, on_change=on_change)
