"""How the pages are drawn: the Jinja2 environment (autoescaping every value, so user
strings are shown as text), its filters (durations, times, state classes, short
values), the views of a run tree a template needs (mapped tasks folded, the timeline
rows), and :func:`render`, which sets the CSRF cookie the forms post back.

May import Jinja2, FastAPI's templating, the server's auth and deps, the client
layer's report types and the core."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import jinja2
from fastapi import Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates

from orchestrator.browsing import ROLLUP_ORDER, RunNode, TaskNode
from orchestrator.clock import utcnow
from orchestrator.server.auth import CSRF_COOKIE, csrf_token
from orchestrator.server.deps import services
from orchestrator.states import State

TEMPLATES = Path(__file__).resolve().parent.parent / "templates"
#: How many elements of a mapped task a tree shows (failed ones first); the rest are counted.
SHOWN_MAPPED = 20
#: How many rows the timeline of a run draws at most.
TIMELINE_ROWS = 300


def duration(seconds: float | None) -> str:
    """``0.4s``, ``12.3s``, ``2m05s``, ``1h03m``; ``-`` when unknown."""
    if seconds is None:
        return "-"
    seconds = max(0.0, seconds)
    if seconds < 60:
        return f"{seconds:.1f}s"
    whole = round(seconds)
    if whole < 3600:
        return f"{whole // 60}m{whole % 60:02d}s"
    return f"{whole // 3600}h{(whole % 3600) // 60:02d}m"


def iso(value: datetime | None) -> str:
    """An aware time in ISO 8601 (empty when unknown); the page's script shows it local."""
    return value.isoformat() if value is not None else ""


def utc_text(value: datetime | None) -> str:
    """A time as ``2026-12-03 14:03:07 UTC`` (``-`` when unknown)."""
    return value.strftime("%Y-%m-%d %H:%M:%S UTC") if value is not None else "-"


def state_class(state: State | str) -> str:
    """The CSS class of a state: ``state-success``, ``state-timedout``, ..."""
    return "state-" + State(state).value.lower()


def short(value: Any, width: int = 80) -> str:
    """A one-line JSON rendering of a value, cut to ``width`` characters."""
    if value is None:
        return ""
    text = value if isinstance(value, str) else json.dumps(value, default=repr)
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1] + "…"


def pretty(value: Any) -> str:
    """A value as indented JSON."""
    return json.dumps(value, indent=2, default=repr, ensure_ascii=False)


@dataclass
class Mapped:
    """A mapped task folded in a tree: counts by state and the elements shown."""

    slug: str
    counts: list[tuple[State, int]]
    shown: list[TaskNode]
    hidden: int


def grouped_tasks(node: RunNode) -> list[TaskNode | Mapped]:
    """A run's task runs in start order, each mapped task's elements folded into one
    :class:`Mapped` after its parent task run."""
    elements: dict[str, list[TaskNode]] = {}
    for t in node.tasks:
        if t.info.map_index >= 0:
            elements.setdefault(t.info.slug, []).append(t)
    out: list[TaskNode | Mapped] = []
    for t in node.tasks:
        if t.info.map_index >= 0:
            continue
        out.append(t)
        kids = elements.pop(t.info.slug, [])
        if kids:
            out.append(_mapped(t.info.slug, kids))
    out.extend(_mapped(slug, kids) for slug, kids in elements.items())
    return out


def _mapped(slug: str, kids: list[TaskNode]) -> Mapped:
    counts: dict[State, int] = {}
    for k in kids:
        counts[k.info.state] = counts.get(k.info.state, 0) + 1
    ordered = [(s, counts[s]) for s in ROLLUP_ORDER if s in counts]
    shown = sorted(kids, key=lambda k: (k.info.state is State.SUCCESS, k.info.map_index))
    return Mapped(slug, ordered, shown[:SHOWN_MAPPED], max(0, len(kids) - SHOWN_MAPPED))


@dataclass
class Bar:
    """One row of a run's timeline: a run or task run, and where its bar lies (0-1000)."""

    node_id: str
    label: str
    depth: int
    state: State
    is_run: bool
    x: float = 0.0
    width: float = 0.0
    started: bool = False


@dataclass
class Timeline:
    """The timeline of a run: its rows and the span they cover."""

    rows: list[Bar] = field(default_factory=list)
    start: datetime | None = None
    end: datetime | None = None
    truncated: int = 0


def timeline(root: RunNode, now: datetime | None = None) -> Timeline:
    """When each run and task run of a tree ran, relative to the whole run."""
    now = now or utcnow()
    spans: list[tuple[Bar, datetime | None, datetime | None]] = []

    def add(node: RunNode, depth: int) -> None:
        info = node.info
        spans.append(
            (Bar(info.id, info.flow_name, depth, info.state, True), info.start_time, info.end_time)
        )
        for t in node.tasks:
            name = t.info.slug if t.info.map_index < 0 else f"{t.info.slug}[{t.info.map_index}]"
            spans.append(
                (
                    Bar(t.info.id, name, depth + 1, t.info.state, False),
                    t.info.start_time,
                    t.info.end_time,
                )
            )
            if t.child is not None:
                add(t.child, depth + 2)
        for o in node.orphans:
            add(o, depth + 1)

    add(root, 0)
    starts = [s for _, s, _ in spans if s is not None]
    out = Timeline()
    if not starts:
        out.rows = [b for b, _, _ in spans[:TIMELINE_ROWS]]
        return out
    out.start = min(starts)
    out.end = max([e or now for _, s, e in spans if s is not None])
    total = max((out.end - out.start).total_seconds(), 1e-3)
    for bar, s, e in spans[:TIMELINE_ROWS]:
        if s is not None:
            bar.started = True
            bar.x = 1000 * (s - out.start).total_seconds() / total
            bar.width = max(2.0, 1000 * ((e or now) - s).total_seconds() / total)
        out.rows.append(bar)
    out.truncated = max(0, len(spans) - TIMELINE_ROWS)
    return out


def make_templates() -> Jinja2Templates:
    """The pages' templates, every value escaped."""
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(TEMPLATES)),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(
        duration=duration,
        iso=iso,
        utc=utc_text,
        state_class=state_class,
        short=short,
        pretty=pretty,
    )
    env.globals.update(
        STATES=[s.value for s in State],
        grouped_tasks=grouped_tasks,
        Mapped=Mapped,
        timeline=timeline,
    )
    env.tests["mapped"] = lambda value: isinstance(value, Mapped)
    return Jinja2Templates(env=env)


def render(request: Request, name: str, context: dict[str, Any], status: int = 200) -> HTMLResponse:
    """A page from its template, with what every page needs (the role, the CSRF token
    its forms post back, set as a cookie when the browser has none yet)."""
    svc = services(request)
    token, new = csrf_token(request)
    role = getattr(request.state, "role", None)
    full = {
        "request": request,
        "csrf": token,
        "role": role,
        "auth": svc.guard.enabled,
        "may_write": role == "admin",
        **context,
    }
    response = svc.templates.TemplateResponse(request, name, full, status_code=status)
    if new:
        response.set_cookie(
            CSRF_COOKIE,
            token,
            httponly=True,
            samesite="strict",
            secure=request.url.scheme == "https",
            path="/",
        )
    response.headers["Cache-Control"] = "no-store"
    return response
