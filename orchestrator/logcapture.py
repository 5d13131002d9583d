"""Capturing a task run's log lines: the user's ``logging`` records and ``print``
output while its ``run()`` executes, kept in memory (the last
:data:`MAX_LINES`) and written to the database in one batch when the task run
ends.

Capture is per thread: a record or a write goes to the capture started in the
thread that emits it. A thread the task started itself has no capture of its
own; its lines go to the only capture of the process when there is exactly one
(a prefork pool process runs one task at a time), and are not captured when
several task runs share the process (the threads pool) and the owner is unknown.

Output still reaches the worker's own log: the logging handler only copies
records, and a printed line of a capture with a label (a task run on a worker)
becomes one record of the ``orchestrator.task`` logger naming it (INFO for stdout,
WARNING for stderr) instead of going on to the stream, which Celery's redirection
would turn into several WARNING lines. Without a label, captured streams are teed.

Pure: imports only the standard library and :mod:`orchestrator.signals` (and the
store, for its type only: the caller hands it in).
"""

from __future__ import annotations

import contextlib
import logging
import sys
import threading
import traceback
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, TextIO, TypeVar

from orchestrator.signals import Signal

if TYPE_CHECKING:
    from orchestrator.db.store import Store

log = logging.getLogger(__name__)
T = TypeVar("T")

#: Lines kept per task run attempt (the last ones).
MAX_LINES = 1000
#: Characters kept per line; longer lines are cut.
MAX_LINE_CHARS = 8000
#: The levels recorded for ``print`` output.
STDOUT, STDERR = "STDOUT", "STDERR"


@dataclass(frozen=True)
class LogLine:
    """One captured line.

    Attributes:
        timestamp: when it was emitted (UTC).
        level: ``DEBUG`` .. ``CRITICAL`` for logging records, ``STDOUT`` or
            ``STDERR`` for printed output.
        logger: the logger's name (None for printed output).
        message: the text (a record's formatted message with its traceback).
    """

    timestamp: datetime
    level: str
    logger: str | None
    message: str


def _cut(text: str) -> str:
    if len(text) <= MAX_LINE_CHARS:
        return text
    return text[:MAX_LINE_CHARS] + f" … ({len(text) - MAX_LINE_CHARS} more characters cut)"


class Capture:
    """The lines captured for one task run attempt (the last ``limit``).

    Args:
        limit: how many lines to keep.
        label: what the worker log calls the task run (its printed lines are logged
            with it); None to pass printed text on to the stream as it is.
    """

    def __init__(self, limit: int = MAX_LINES, label: str | None = None) -> None:
        self.limit = limit
        self.label = label
        self.dropped = 0
        self._lines: deque[LogLine] = deque(maxlen=limit)
        self._partial: dict[str, str] = {}
        self._cut_short: dict[str, bool] = {}
        self._lock = threading.Lock()

    def add(self, level: str, logger: str | None, message: str) -> None:
        """Record one line now."""
        line = LogLine(datetime.now(UTC), level, logger, _cut(message))
        with self._lock:
            if len(self._lines) == self.limit:
                self.dropped += 1
            self._lines.append(line)

    def write(self, level: str, text: str) -> list[str]:
        """Record printed text: whole lines now (returned), a partial line when it is
        completed."""
        with self._lock:
            cut_short = self._cut_short.pop(level, False)
            pending = self._partial.get(level, "") + text
            *complete, rest = pending.split("\n")
            if cut_short and complete and not complete[0]:
                complete.pop(0)  # the newline ending a line already recorded as too long
            if len(rest) > MAX_LINE_CHARS:
                complete.append(rest)
                rest = ""
                self._cut_short[level] = True
            self._partial[level] = rest
        lines = [line.rstrip("\r") for line in complete]
        for line in lines:
            self.add(level, None, line)
        return lines

    def flush(self) -> list[tuple[str, str]]:
        """Record what is left of unfinished printed lines; returns them with their level."""
        with self._lock:
            partial, self._partial = self._partial, {}
        out = [(level, rest) for level, rest in partial.items() if rest.strip()]
        for level, rest in out:
            self.add(level, None, rest)
        return out

    def lines(self) -> list[LogLine]:
        """The captured lines, oldest first, after a note when earlier ones were dropped."""
        with self._lock:
            lines = list(self._lines)
            dropped = self.dropped
        if dropped:
            note = LogLine(
                lines[0].timestamp,
                "WARNING",
                "orchestrator",
                f"{dropped} earlier lines were dropped (the last {self.limit} are kept)",
            )
            lines.insert(0, note)
        return lines


# --- the process-wide hooks, installed while at least one capture is active ---------

_lock = threading.RLock()
_active: dict[int, Capture] = {}
_guard = threading.local()  # set while a tee forwards to the stream it wraps
_handler: _Handler | None = None
_streams: tuple[TextIO, TextIO] | None = None


#: Loggers of the worker's own machinery: from a thread other than the task's (the
#: consumer of a threads or solo pool), their records are not the task's lines.
_MACHINERY = ("celery", "kombu", "amqp", "billiard", "redis")


def _target(logger: str | None = None) -> Capture | None:
    """The capture a line emitted now by this thread (and ``logger``) belongs to."""
    ident = threading.get_ident()
    with _lock:
        found = _active.get(ident)
        if found is not None or len(_active) != 1:
            return found
        if logger is not None and logger.split(".", 1)[0] in _MACHINERY:
            return None
        return next(iter(_active.values()))


class _Handler(logging.Handler):
    """Copies every record that reaches the root logger into the emitting thread's capture."""

    def __init__(self) -> None:
        super().__init__(logging.NOTSET)
        self.setFormatter(logging.Formatter("%(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        if getattr(_guard, "forwarding", False):
            return  # our own tee writing printed output to a stream that logs it
        capture = _target(record.name)
        if capture is None:
            return
        try:
            message = self.format(record)
        except Exception:  # a bad format string must not break the task
            message = str(record.msg)
        capture.add(record.levelname, record.name, message)


class _Tee:
    """Wraps ``sys.stdout`` or ``sys.stderr``: captures what is printed, then passes it on."""

    def __init__(self, stream: TextIO, level: str) -> None:
        self._stream = stream
        self._level = level

    def write(self, text: str) -> int:
        if getattr(_guard, "forwarding", False):
            return self._stream.write(text)  # a log handler writing to this stream
        capture = _target()
        if capture is not None and text:
            lines = capture.write(self._level, str(text))
            if capture.label is not None:
                _announce(capture.label, self._level, lines)
                return len(text)
        _guard.forwarding = True
        try:
            return self._stream.write(text)
        finally:
            _guard.forwarding = False

    def writelines(self, lines: Any) -> None:
        for line in lines:
            self.write(line)

    def flush(self) -> None:
        self._stream.flush()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


#: The logger of printed lines in a worker's log.
printed = logging.getLogger("orchestrator.task")


def _announce(label: str, level: str, lines: list[str]) -> None:
    """Log printed lines, one record each, naming the task run (not captured again)."""
    if not lines:
        return
    _guard.forwarding = True
    try:
        for line in lines:
            printed.log(logging.INFO if level == STDOUT else logging.WARNING, "%s: %s", label, line)
    finally:
        _guard.forwarding = False


def _install() -> None:
    global _handler, _streams
    _handler = _Handler()
    logging.getLogger().addHandler(_handler)
    _streams = (sys.stdout, sys.stderr)
    if sys.stdout is not None:
        sys.stdout = _Tee(sys.stdout, STDOUT)
    if sys.stderr is not None:
        sys.stderr = _Tee(sys.stderr, STDERR)


def _uninstall() -> None:
    global _handler, _streams
    if _handler is not None:
        logging.getLogger().removeHandler(_handler)
        _handler = None
    if _streams is not None:
        out, err = _streams
        if isinstance(sys.stdout, _Tee):
            sys.stdout = out
        if isinstance(sys.stderr, _Tee):
            sys.stderr = err
        _streams = None


@contextlib.contextmanager
def capture(limit: int = MAX_LINES, label: str | None = None) -> Iterator[Capture]:
    """Capture this thread's logging records and printed output during a block.

    Args:
        limit: how many lines to keep (the last ones).
        label: log each printed line once, naming this (see :class:`Capture`).

    Yields:
        The capture; its :meth:`Capture.lines` are complete once the block ends.
    """
    cap = Capture(limit, label)
    ident = threading.get_ident()
    with _lock:
        if ident in _active:
            raise RuntimeError("a log capture is already active in this thread")
        if not _active:
            _install()
        _active[ident] = cap
    try:
        yield cap
    finally:
        with _lock:
            _active.pop(ident, None)
            if not _active:
                _uninstall()
        for level, rest in cap.flush():
            if label is not None:
                _announce(label, level, [rest])


@contextlib.contextmanager
def task_run_logs(
    store: Store,
    flow_run_id: str,
    task_run_id: str,
    attempt: int,
    limit: int = MAX_LINES,
    label: str | None = None,
) -> Iterator[Capture]:
    """Capture a task run attempt's lines and store them in one batch at the end
    (``label``: see :class:`Capture`).

    Storing is best effort: a database error is logged, never raised, so logs
    cannot change a task run's outcome.
    """
    captured: Capture | None = None
    try:
        with capture(limit, label) as cap:
            captured = cap
            yield cap
    finally:
        lines = captured.lines() if captured is not None else []
        if lines:
            try:
                store.logs.add(flow_run_id, task_run_id, attempt, lines, keep=limit)
            except Exception as exc:
                log.warning(
                    "could not store %d log lines of task run %s: %s",
                    len(lines),
                    task_run_id,
                    exc,
                )


def traced(code: Callable[[], T]) -> T:
    """Run a task's code; when it raises an error (not a SKIP or FAIL signal), add
    the traceback to the capture of this thread, then let the error go on.

    Pass it as ``run_code(..., call=traced)``: the engine turns the error into a
    one-line message, and the captured lines keep where it came from.
    """
    try:
        return code()
    except Signal:
        raise
    except Exception as exc:
        capture = _target()
        if capture is not None:
            tb = exc.__traceback__.tb_next if exc.__traceback__ is not None else None
            text = "".join(traceback.format_exception(type(exc), exc, tb)).rstrip("\n")
            capture.add("ERROR", "orchestrator.task", text)
        raise


__all__ = ["MAX_LINES", "Capture", "LogLine", "capture", "task_run_logs", "traced"]
