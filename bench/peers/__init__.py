"""Other orchestrators measured in the same run as ours (``python -m bench --peers
prefect``): each peer lives in a virtual environment of its own, so nothing of it
reaches our install. Their rows compare our case 1 (the seed's Flow-of-Flows) with
the same shape run the peer's way."""

from __future__ import annotations

from pathlib import Path

from rich.console import Console

from bench.peers import prefect_peer as prefect
from bench.report import Row

#: The goals of issue 21 on the ratio ours/Prefect: 10x faster than Prefect's fastest
#: configuration, 100x faster than run_deployment as shipped.
GOALS = {("deployments", "on"): 0.01}
FASTEST_GOAL = 0.1

PEERS = ("prefect",)


def peer_rows(case1: Row, quick: bool, workdir: Path, console: Console) -> list[Row]:
    """Rows of our case-1 samples against each Prefect configuration (in ms)."""
    rows: list[Row] = []
    for config in prefect.configs(quick):
        console.log(f"peer: {config.label} x{config.repeats}", markup=False)
        row = Row("1p", config.label, "ms", ours=list(case1.ours))
        try:
            row.plain = [s * 1000 for s in prefect.measure(config, 1800, workdir)]
        except prefect.PeerError as exc:
            row.status = f"error: {exc}"
        goal = GOALS.get((config.mode, config.heartbeat))
        if goal is not None:
            row.goal, row.max_ratio = f"<= {goal:g}x (100x faster)", goal
        rows.append(row)
    measured = [r for r in rows if r.plain]
    if measured:
        fastest = min(measured, key=lambda r: r.plain_median)
        if fastest.max_ratio is None:
            fastest.goal, fastest.max_ratio = f"<= {FASTEST_GOAL:g}x (10x faster)", FASTEST_GOAL
        fastest.note = "Prefect's fastest here"
    return rows
