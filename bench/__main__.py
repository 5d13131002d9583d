"""``python -m bench [--quick] [--json PATH] [--database sqlite|postgres] [--cases 1,2,...]
[--peers prefect] [--tracing]``

Starts its own workers (ours: ``celery -A workers``; plain: ``celery -A
bench.plain_worker``; prefork, 2 processes each) on the configured Redis and a
fresh database, runs each case on ours and on plain Celery alternately, prints
medians, p95 and the ratio ours/plain, and stops everything it started. With
``--peers prefect``, case 1 is also set against Prefect 3 running the same shape
(:mod:`bench.peers`). With ``--tracing`` our workers export OpenTelemetry spans to an
OTLP/HTTP sink in this process, and case 6 (``--cases 6 --tracing``) runs case 1's
flow on it and on an untraced worker of ours alternately."""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import os
import platform
import signal
import sys
import time
import traceback
from pathlib import Path
from typing import Any

from rich.console import Console

from bench.cases import CASES, CaseTimeout, Deadline, Options, Partial, fanout_sizes
from bench.fleet import CONCURRENCY, BenchError, Environment, Fleet
from bench.peers import PEERS, peer_rows
from bench.report import Row, markdown, print_table, write_json
from orchestrator.config import hide_password
from orchestrator.errors import OrchestratorError


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m bench",
        description="Our flows side by side with plain Celery on the same Redis and workers.",
    )
    p.add_argument("--quick", action="store_true", help="smaller sizes and fewer repetitions")
    p.add_argument("--json", type=Path, metavar="PATH", help="write every figure to this file")
    p.add_argument(
        "--database",
        choices=["sqlite", "postgres"],
        default="sqlite",
        help="SQLite in a temp dir (default), or a fresh schema in PostgreSQL "
        "(ORCHESTRATOR_DATABASE_URL or postgresql+psycopg://root@127.0.0.1:5432/test)",
    )
    p.add_argument("--cases", default="1,2,3,4,5", help="which cases, e.g. 1,3 (default: all)")
    p.add_argument(
        "--case-timeout",
        type=float,
        default=600.0,
        metavar="SECONDS",
        help="time budget of each case (default 600)",
    )
    p.add_argument("--markdown", action="store_true", help="also print the table as Markdown")
    p.add_argument(
        "--peers",
        choices=PEERS,
        help="also run the seed shape in this orchestrator (its own virtual environment "
        "under bench/peers/) and compare case 1 with it",
    )
    p.add_argument(
        "--tracing",
        action="store_true",
        help="also start a worker of ours that exports OpenTelemetry spans (OTLP/HTTP to a "
        "sink in this process) for case 6: case 1's flow with tracing on vs off",
    )
    args = p.parse_args(argv)
    try:
        args.case_list = sorted({int(c) for c in args.cases.split(",") if c.strip()})
    except ValueError:
        p.error(f"--cases takes numbers like 1,3, not {args.cases!r}")
    if args.peers and 1 not in args.case_list:
        args.case_list = [1, *args.case_list]
    unknown = [c for c in args.case_list if c not in CASES]
    if unknown or not args.case_list:
        p.error(f"--cases: choose among {', '.join(map(str, CASES))}")
    if 6 in args.case_list and not args.tracing:
        p.error("case 6 compares tracing on and off: add --tracing")
    return args


def register_flows(fleet: Fleet, cases: list[int], quick: bool) -> None:
    """Register the flows the chosen cases run (workers import them as bench.flows:NAME)."""
    from bench import flows
    from bench.flows import PROJECT

    names = ["noop_flow", "flow_a", "flow_b", "flow_c", "flow_d", "parent_flow"]
    if 2 in cases:
        names += [f"fanout_children_{n}" for n in fanout_sizes(quick)]
    if 4 in cases:
        names += ["tasks_fanout_1000", "tasks_chain_1000"]
    for name in names:
        fleet.client.register(getattr(flows, name), PROJECT, import_ref=f"bench.flows:{name}")


def _sink(tracing: bool) -> Any:
    """The OTLP sink our workers export to with ``--tracing`` (else None)."""
    if not tracing:
        return None
    from bench.otlp_sink import Sink

    return Sink()


def _close_sink(sink: Any, console: Console) -> None:
    if sink is not None:
        console.log(f"tracing on: the sink received {sink.spans:,} spans")
        sink.close()


def _sigterm(_signo: int, _frame: Any) -> None:
    raise KeyboardInterrupt


def run_case(
    fleet: Fleet, number: int, args: argparse.Namespace, console: Console, problems: list[str]
) -> list[Row]:
    """Run one case; a case that fails or times out adds to ``problems`` and restarts
    the workers, and gives the rows it has."""
    title, run = CASES[number]
    console.log(f"case {number}: {title}", markup=False)
    deadline = Deadline.after(args.case_timeout)
    try:
        return run(fleet, Options(args.quick, console), deadline)
    except Partial as exc:
        case_rows = exc.rows
        what = "timed out" if exc.problem == "timed out" else exc.problem
        if what == "timed out":
            what = f"timed out after {args.case_timeout:g}s"
        problems.append(f"case {number}: {what}")
    except CaseTimeout:
        case_rows = [Row(str(number), title, "-", status="timed out")]
        problems.append(f"case {number} timed out after {args.case_timeout:g}s")
    except (BenchError, OrchestratorError) as exc:
        case_rows = [Row(str(number), title, "-", status=f"error: {exc}".splitlines()[0])]
        problems.append(f"case {number}: {exc}")
    fleet.restart()
    return case_rows


def run_all(
    fleet: Fleet,
    env: Environment,
    args: argparse.Namespace,
    console: Console,
    into: tuple[list[Row], list[str]],
) -> None:
    """Run the chosen cases, then the peers; add their rows and problems to ``into``."""
    rows, problems = into
    for number in args.case_list:
        t0 = time.monotonic()
        case_rows = run_case(fleet, number, args, console, problems)
        rows.extend(case_rows)
        print_table(case_rows, f"case {number} ({time.monotonic() - t0:.0f} s)", console)
    if args.peers:
        seed = next(r for r in rows if r.case == "1")
        peers = peer_rows(seed, args.quick, env.workdir, console)
        print_table(peers, f"case 1 against {args.peers}", console, peer=args.peers)
        problems += [f"{r.label}: {r.status}" for r in peers if r.status != "ok"]
        rows.extend(peers)


def save_json(
    args: argparse.Namespace,
    started: dt.datetime,
    load_at_start: list[float],
    outcome: tuple[list[Row], list[str], bool],
    console: Console,
) -> None:
    """Write every figure, with the run's and the machine's description, to ``args.json``
    (``outcome``: the rows, the problems, and whether the run was interrupted)."""
    rows, problems, interrupted = outcome
    meta = {
        "started": started.isoformat(),
        "database": args.database,
        "quick": args.quick,
        "cases": args.case_list,
        "case_timeout": args.case_timeout,
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "worker": {"pool": "prefork", "concurrency": CONCURRENCY},
        "load_average_at_start": load_at_start,
        "load_average_at_end": list(os.getloadavg()),
        "tracing": args.tracing,
        "problems": problems,
        "interrupted": interrupted,
    }
    with _versions() as v:
        meta["versions"] = v
    write_json(args.json, meta, rows)
    console.log(f"figures written to {args.json}")


def print_summary(
    rows: list[Row], args: argparse.Namespace, started: dt.datetime, console: Console
) -> None:
    """The table of every case (and its Markdown, with ``--markdown``)."""
    title = (
        f"orchestrator vs plain Celery, {args.database}, "
        f"{'quick' if args.quick else 'full'} run, {started:%Y-%m-%d}, "
        f"{os.cpu_count()} CPUs"
    )
    print_table(rows, title, console)
    if args.markdown:
        console.print(markdown(rows), markup=False, highlight=False)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    console = Console(width=None if sys.stdout.isatty() else 200)
    signal.signal(signal.SIGTERM, _sigterm)
    signal.signal(signal.SIGINT, signal.default_int_handler)  # also when started in the background
    rows: list[Row] = []
    problems: list[str] = []
    started = dt.datetime.now(dt.UTC)
    env: Environment | None = None
    fleet: Fleet | None = None
    sink = _sink(args.tracing)
    interrupted = False
    load_at_start = list(os.getloadavg())
    if load_at_start[0] > 0.5:
        console.print(
            f"[yellow]note:[/] load average {load_at_start[0]:.2f} at start: other processes "
            "share the CPUs; ours and plain alternate, so the ratios stay comparable"
        )
    try:
        with console.status("setting up Redis, the database and the workers"):
            env = Environment.create(args.database)
            fleet = Fleet(env, sink.endpoint if sink else None)
            fleet.start()
            register_flows(fleet, args.case_list, args.quick)
        console.log(
            f"Redis {hide_password(env.redis_url)}, database {args.database}, "
            f"workers: ours and plain, prefork x{CONCURRENCY} each; logs in {env.workdir}"
        )
        run_all(fleet, env, args, console, (rows, problems))
    except KeyboardInterrupt:
        interrupted = True
        console.print("[yellow]interrupted: stopping the workers[/]")
    except (BenchError, OrchestratorError) as exc:
        problems.append(str(exc))
        console.print(f"[red]error:[/] {exc}")
    except Exception as exc:
        problems.append(f"{type(exc).__name__}: {exc}")
        console.print(f"[red]unexpected error:[/] {type(exc).__name__}: {exc}")
        traceback.print_exc()
    finally:
        with console.status("stopping the workers and cleaning up"):
            if fleet is not None:
                fleet.stop()
            if env is not None:
                env.close()
    _close_sink(sink, console)
    if rows:
        print_summary(rows, args, started, console)
    if args.json:
        save_json(args, started, load_at_start, (rows, problems, interrupted), console)
    for p in problems:
        console.print(f"[red]problem:[/] {p}")
    if interrupted:
        return 130
    return 1 if problems else 0


class _versions:
    def __enter__(self) -> dict[str, str]:
        from importlib.metadata import PackageNotFoundError, version

        out = {}
        for pkg in ("celery", "kombu", "redis", "SQLAlchemy", "psycopg"):
            with contextlib.suppress(PackageNotFoundError):
                out[pkg] = version(pkg)
        return out

    def __exit__(self, *_: object) -> None:
        return None


if __name__ == "__main__":
    sys.exit(main())
