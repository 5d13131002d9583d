"""How the command line shows things: consoles, states, times, durations, short
values and captured log lines.

May import rich and the core's states; nothing else of the orchestrator."""

from __future__ import annotations

import json
import os
import sys
from datetime import UTC, datetime
from typing import Any

from rich.console import Console
from rich.text import Text

from orchestrator.states import State

#: Rich styles per state.
STATE_STYLES: dict[State, str] = {
    State.PENDING: "dim",
    State.SCHEDULED: "blue",
    State.QUEUED: "blue",
    State.SUBMITTED: "blue",
    State.RUNNING: "cyan",
    State.RETRYING: "yellow",
    State.SUCCESS: "green",
    State.FAILED: "bold red",
    State.TRIGGER_FAILED: "red",
    State.TIMED_OUT: "red",
    State.SKIPPED: "dim",
    State.CANCELLED: "magenta",
}


def make_console(stderr: bool = False) -> Console:
    """A console for stdout (or stderr); wide when not writing to a terminal.

    Args:
        stderr: write to stderr instead of stdout.

    Returns:
        The console. Piped output gets a width of 200 columns (unless ``COLUMNS``
        is set), so ids and tables are not folded for scripts and logs.
    """
    stream = sys.stderr if stderr else sys.stdout
    tty = hasattr(stream, "isatty") and stream.isatty()
    width = None if tty or os.environ.get("COLUMNS") else 200
    return Console(stderr=stderr, width=width, highlight=False, soft_wrap=False)


def state_text(state: State | str) -> Text:
    """A state as styled text."""
    st = State(state)
    return Text(st.value, style=STATE_STYLES.get(st, ""))


def fmt_duration(seconds: float | None) -> str:
    """A duration, short: ``0.4s``, ``12.3s``, ``2m05s``, ``1h03m``; ``-`` when unknown."""
    if seconds is None:
        return "-"
    seconds = max(0.0, seconds)
    if seconds < 60:
        return f"{seconds:.1f}s"
    whole = round(seconds)
    if whole < 3600:
        return f"{whole // 60}m{whole % 60:02d}s"
    return f"{whole // 3600}h{(whole % 3600) // 60:02d}m"


def fmt_time(value: datetime | None, now: datetime | None = None) -> str:
    """A time in the local zone, short: ``14:03:07`` today, ``2024-05-02 14:03`` otherwise."""
    if value is None:
        return "-"
    local = value.astimezone()
    today = (now or datetime.now().astimezone()).date()
    if local.date() == today:
        return local.strftime("%H:%M:%S")
    return local.strftime("%Y-%m-%d %H:%M")


def running_duration(start: datetime | None, end: datetime | None) -> str:
    """The duration of a run: finished, or so far (marked with ``…``), or ``-``."""
    if start is None:
        return "-"
    if end is not None:
        return fmt_duration((end - start).total_seconds())
    return fmt_duration((datetime.now(start.tzinfo) - start).total_seconds()) + "…"


def short(value: Any, width: int = 60) -> str:
    """A one-line JSON-ish rendering of a value, cut to ``width`` characters."""
    if value is None:
        return ""
    try:
        text = value if isinstance(value, str) else json.dumps(value, default=repr)
    except (TypeError, ValueError):
        text = repr(value)
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1] + "…"


#: Rich styles per captured log level (``STDOUT``/``STDERR`` are printed lines).
LOG_LEVEL_STYLES: dict[str, str] = {
    "DEBUG": "dim",
    "WARNING": "yellow",
    "ERROR": "red",
    "CRITICAL": "bold red",
    "STDERR": "magenta",
}


def log_line_text(
    timestamp: datetime, level: str, logger: str | None, message: str, indent: str = ""
) -> Text:
    """One captured log line: local time with milliseconds, level, logger and message.

    A message of several lines (a traceback) continues on indented lines.
    """
    stamp = timestamp if timestamp.tzinfo else timestamp.replace(tzinfo=UTC)
    local = stamp.astimezone()
    text = Text(indent)
    text.append(f"{local:%H:%M:%S}.{local.microsecond // 1000:03d}", style="dim")
    text.append(f"  {level:<8} ", style=LOG_LEVEL_STYLES.get(level, ""))
    if logger:
        text.append(f"{logger}: ", style="dim")
    first, *rest = message.split("\n") or [""]
    text.append(first)
    pad = indent + " " * 24
    for more in rest:
        text.append("\n" + pad + more)
    return text
