"""Stopping a task's code at its timeout in ``flow.run()`` (:func:`limited`), as
Prefect 1 did: the code runs where it can be stopped.

In the main thread (where ``flow.run()`` usually runs) a real-time timer
(``SIGALRM``) raises :class:`Expired` into the code when its time is up,
interrupting a sleep or a blocking call. Limits nest (a task with a timeout running
a child flow in process whose tasks have their own), and a timer the process set
before (pytest-timeout's, say) keeps its handler and its deadline. Outside the main
thread the code runs in a helper thread and, at the timeout, :class:`Expired` is set
in that thread and in the helper threads its code started: each stops at its next
Python instruction (a call blocked in C finishes first, nothing after it runs).
Either way the caller gets :class:`~orchestrator.engine.TaskTimedOut` at the
timeout. On workers Celery's soft time limit does the same. Pure: imports only the
standard library and :mod:`orchestrator.engine` (the error)."""

from __future__ import annotations

import contextvars
import ctypes
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from types import FrameType
from typing import Any, TypeVar, cast

from orchestrator.engine import TaskTimedOut

T = TypeVar("T")


class Expired(BaseException):
    """Raised into a task's code when its time is up: a BaseException, so the code's
    own ``except Exception`` does not swallow it. Carries which limit expired."""

    def __init__(self, token: object = None) -> None:
        super().__init__("the task's time is up")
        self.token = token


def limited(seconds: float | None) -> Callable[[Callable[[], T]], T]:
    """A ``call`` for :func:`~orchestrator.engine.attempt` that stops the code after
    ``seconds`` (no limit for None) and raises TaskTimedOut."""

    def call(fn: Callable[[], T]) -> T:
        if seconds is None:
            return fn()
        if hasattr(signal, "setitimer") and threading.current_thread() is threading.main_thread():
            return _with_alarm(fn, seconds)
        return _in_thread(fn, seconds)

    return call


# --- in the main thread: the timer --------------------------------------------------------


@dataclass
class _Foreign:
    """The timer and handler that were there before our first limit."""

    handler: Any
    deadline: float | None  # when its timer goes off (None: no timer running)
    interval: float


_limits: list[tuple[float, object]] = []  # in force, outermost first: (deadline, token)
_foreign: _Foreign | None = None


def _with_alarm(fn: Callable[[], T], seconds: float) -> T:
    global _foreign
    token = object()
    if not _limits:
        left, interval = signal.getitimer(signal.ITIMER_REAL)
        deadline = time.monotonic() + left if left else None
        _foreign = _Foreign(signal.signal(signal.SIGALRM, _on_alarm), deadline, interval)
    _limits.append((time.monotonic() + seconds, token))
    _arm()
    try:
        try:
            return fn()
        finally:
            _release(token)
    except Expired as exc:
        if exc.token is token:
            raise TaskTimedOut() from None
        raise  # an outer limit expired: the code that set it stops too


def _release(token: object) -> None:
    """Drop one limit; re-arm the timer for the outer ones, or give back what was there."""
    _limits[:] = [(d, t) for d, t in _limits if t is not token]
    if _limits:
        _arm()
        return
    signal.setitimer(signal.ITIMER_REAL, 0)
    foreign = _foreign
    if foreign is None:
        return
    signal.signal(
        signal.SIGALRM, foreign.handler if foreign.handler is not None else signal.SIG_DFL
    )
    if foreign.deadline is not None:
        left = max(foreign.deadline - time.monotonic(), 1e-4)
        signal.setitimer(signal.ITIMER_REAL, left, foreign.interval)


def _arm() -> None:
    """Set the timer for the earliest deadline: ours, or the foreign timer's."""
    deadlines = [d for d, _ in _limits]
    if _foreign is not None and _foreign.deadline is not None:
        deadlines.append(_foreign.deadline)
    signal.setitimer(signal.ITIMER_REAL, max(min(deadlines) - time.monotonic(), 1e-4))


def _on_alarm(signum: int, frame: FrameType | None) -> None:
    """The timer went off: the foreign timer's handler if it was its time, then stop
    the code of the outermost of our limits that expired."""
    now = time.monotonic()
    foreign = _foreign
    if foreign is not None and foreign.deadline is not None and foreign.deadline <= now:
        foreign.deadline = now + foreign.interval if foreign.interval else None
        if callable(foreign.handler):
            foreign.handler(signum, frame)
    expired = [t for d, t in _limits if d <= now]
    if expired:
        raise Expired(expired[0])
    if _limits:
        _arm()


# --- elsewhere: a helper thread ------------------------------------------------------------

_started: dict[int, list[threading.Thread]] = {}  # helper threads, by the thread that started them
_started_lock = threading.Lock()


def _in_thread(fn: Callable[[], T], seconds: float) -> T:
    """Run ``fn`` in a helper thread (with this thread's context); at the timeout stop
    it, and the helpers its code started, and raise TaskTimedOut here at once."""
    box: dict[str, Any] = {}
    context = contextvars.copy_context()

    def target() -> None:
        try:
            box["value"] = context.run(fn)
        except BaseException as exc:  # handed to the caller (Expired: stopped, ignored)
            box["error"] = exc
        finally:
            with _started_lock:
                _started.pop(threading.get_ident(), None)

    thread = threading.Thread(target=target, daemon=True, name="orchestrator-timeout")
    parent = threading.get_ident()
    with _started_lock:
        _started.setdefault(parent, []).append(thread)
    thread.start()
    try:
        thread.join(seconds)
    finally:
        with _started_lock:
            _started[parent].remove(thread)
            if not _started[parent]:
                del _started[parent]
    if thread.is_alive():
        _stop(thread)
        raise TaskTimedOut()
    if "error" in box:
        raise box["error"]
    return cast(T, box.get("value"))


def _stop(thread: threading.Thread) -> None:
    """Set Expired in a helper thread and in every helper thread it started."""
    with _started_lock:
        todo, found = [thread], []
        while todo:
            t = todo.pop()
            found.append(t)
            todo.extend(_started.get(t.ident or 0, []))
    for t in found:
        if t.ident is not None and t.is_alive():
            ctypes.pythonapi.PyThreadState_SetAsyncExc(
                ctypes.c_ulong(t.ident), ctypes.py_object(Expired)
            )
