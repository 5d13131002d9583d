"""Figures: medians, p95, ratios to plain Celery, goals, the table and the JSON."""

from __future__ import annotations

import json
import math
import statistics
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table


def percentile(values: list[float], q: float) -> float:
    """The ``q`` quantile (0..1) with linear interpolation; NaN for no values."""
    if not values:
        return math.nan
    xs = sorted(values)
    pos = (len(xs) - 1) * q
    lo, hi = math.floor(pos), math.ceil(pos)
    return xs[lo] + (xs[hi] - xs[lo]) * (pos - lo)


@dataclass
class Row:
    """One line of the table: the same work measured on ours and on plain Celery.

    Attributes:
        case: the case number as the issue counts them.
        label: what was measured.
        unit: the unit of ``ours`` and ``plain`` (lower is better for every unit).
        ours: our samples.
        plain: plain Celery's samples.
        goal: the goal in words.
        max_ratio: the goal on the ratio of medians ours/plain, if that is the goal.
        max_value: the goal on our median itself (growth ratios), if that is the goal.
        status: "ok", "timed out ..." or "error: ...".
        note: anything else worth a column (throughput, per-process memory).
        extra: more figures for the JSON.
    """

    case: str
    label: str
    unit: str
    ours: list[float] = field(default_factory=list)
    plain: list[float] = field(default_factory=list)
    goal: str = ""
    max_ratio: float | None = None
    max_value: float | None = None
    status: str = "ok"
    note: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def ours_median(self) -> float:
        return statistics.median(self.ours) if self.ours else math.nan

    @property
    def plain_median(self) -> float:
        return statistics.median(self.plain) if self.plain else math.nan

    @property
    def ratio(self) -> float:
        if not self.ours or not self.plain or self.plain_median == 0:
            return math.nan
        return self.ours_median / self.plain_median

    @property
    def met(self) -> bool | None:
        """Whether the goal is met (None: no goal, or no figures to judge)."""
        if self.max_ratio is not None:
            return None if math.isnan(self.ratio) else self.ratio <= self.max_ratio
        if self.max_value is not None:
            return None if not self.ours else self.ours_median <= self.max_value
        return None

    def as_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d.update(
            ours_median=_num(self.ours_median),
            ours_p95=_num(percentile(self.ours, 0.95)),
            plain_median=_num(self.plain_median),
            plain_p95=_num(percentile(self.plain, 0.95)),
            ratio=_num(self.ratio),
            goal_met=self.met,
        )
        return d


def _num(x: float) -> float | None:
    return None if math.isnan(x) else round(x, 6)


def _fmt(x: float) -> str:
    if math.isnan(x):
        return "-"
    if abs(x) >= 100:
        return f"{x:,.0f}"
    if abs(x) >= 10:
        return f"{x:.1f}"
    return f"{x:.2f}"


def table(rows: list[Row], title: str, peer: str = "plain") -> Table:
    """The rows as a rich table; ``peer`` names what ours is compared with."""
    t = Table(title=title, show_lines=False)
    for col, justify in [
        ("case", "left"),
        ("measure", "left"),
        ("unit", "left"),
        ("n", "right"),
        ("ours median", "right"),
        ("ours p95", "right"),
        (f"{peer} median", "right"),
        (f"{peer} p95", "right"),
        (f"ours/{peer}", "right"),
        ("goal", "left"),
        ("met", "left"),
        ("note", "left"),
    ]:
        t.add_column(col, justify=justify)  # type: ignore[arg-type]
    for r in rows:
        met = {True: "[green]yes[/]", False: "[red]no[/]", None: "-"}[r.met]
        if r.status != "ok":
            met = f"[yellow]{r.status}[/]"
        t.add_row(
            r.case,
            r.label,
            r.unit,
            str(max(len(r.ours), len(r.plain))),
            _fmt(r.ours_median),
            _fmt(percentile(r.ours, 0.95)),
            _fmt(r.plain_median),
            _fmt(percentile(r.plain, 0.95)),
            _fmt(r.ratio) if r.max_value is None else "-",
            r.goal,
            met,
            r.note,
        )
    return t


def markdown(rows: list[Row], peer: str = "plain") -> str:
    """The same table as Markdown, for bench/README.md."""
    head = (
        f"| case | measure | unit | n | ours median | ours p95 | {peer} median | {peer} p95 "
        f"| ours/{peer} | goal | met | note |"
    )
    out = [head, "|" + "---|" * 12]
    for r in rows:
        met = {True: "yes", False: "**no**", None: "-"}[r.met]
        if r.status != "ok":
            met = r.status
        out.append(
            "| "
            + " | ".join(
                [
                    r.case,
                    r.label,
                    r.unit,
                    str(max(len(r.ours), len(r.plain))),
                    _fmt(r.ours_median),
                    _fmt(percentile(r.ours, 0.95)),
                    _fmt(r.plain_median),
                    _fmt(percentile(r.plain, 0.95)),
                    _fmt(r.ratio) if r.max_value is None else "-",
                    r.goal,
                    met,
                    r.note,
                ]
            )
            + " |"
        )
    return "\n".join(out)


def write_json(path: Path, meta: dict[str, Any], rows: list[Row]) -> None:
    path.write_text(json.dumps({**meta, "rows": [r.as_dict() for r in rows]}, indent=2))


def print_table(
    rows: list[Row], title: str, console: Console | None = None, peer: str = "plain"
) -> None:
    """Print :func:`table`."""
    (console or Console()).print(table(rows, title, peer))
