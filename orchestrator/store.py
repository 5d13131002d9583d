"""The SQL adapter: every read and compare-and-set write of flows, flow runs and
task runs, through SQLAlchemy 2. The database is the source of truth for runs.

The hot path (claims, state changes, reads by id) runs the prebuilt Core
statements of :mod:`orchestrator.statements` on plain connections, several times
cheaper than ORM sessions for one-row reads and writes; the rest uses sessions."""

from __future__ import annotations

import contextlib
import fcntl
import uuid
import weakref
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from sqlalchemy import (
    Connection,
    CursorResult,
    Engine,
    Row,
    Table,
    create_engine,
    delete,
    event,
    insert,
    or_,
    select,
    update,
)
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.exc import InterfaceError as SAInterfaceError
from sqlalchemy.orm import Session, defer, sessionmaker

from orchestrator import statements as sql
from orchestrator.config import hide_password
from orchestrator.connections import guard_checkouts
from orchestrator.errors import (
    BackendUnavailable,
    ConfigurationError,
    FlowNotFound,
    FlowRunNotFound,
    ScheduleError,
)
from orchestrator.models import (
    FlowRun,
    FlowVersion,
    Project,
    ScheduleMark,
    StateEvent,
    TaskRun,
    TaskRunLog,
)
from orchestrator.statements import FLOW_RUNS, TASK_RUNS
from orchestrator.states import State, states_before

if TYPE_CHECKING:
    from orchestrator.logcapture import LogLine

MIGRATIONS = Path(__file__).parent / "migrations"
RUN_NAMESPACE = uuid.UUID("6f1c2a8e-5b8e-4c1e-9f0a-3d2b7c4e5a10")


def _rowcount(result: Any) -> int:
    """How many rows an UPDATE touched."""
    return int(cast(CursorResult[Any], result).rowcount)


def utcnow() -> datetime:
    """The current time in UTC, aware."""
    return datetime.now(UTC)


def aware(value: datetime | None) -> datetime | None:
    """``value`` as an aware UTC datetime (SQLite hands back naive ones)."""
    if value is None:
        return None
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def _as_utc(value: datetime) -> datetime:
    """An aware datetime in UTC (naive ones, as SQLite returns them, are UTC)."""
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


def task_run_id(flow_run_id: str, slug: str, map_index: int = -1) -> str:
    """The deterministic id of a task run."""
    return str(uuid.uuid5(RUN_NAMESPACE, f"{flow_run_id}/{slug}/{map_index}"))


def run_id_for_key(key: str) -> str:
    """The deterministic flow run id for an idempotency key."""
    return str(uuid.uuid5(RUN_NAMESPACE, key))


@dataclass(frozen=True)
class Claim:
    """The answer to a node's claim on its task run.

    Attributes:
        claimed: True when this caller now holds the run's lease and may run the code.
        task_run: the task run as recorded after the claim.
        flow_run: its flow run, read in the same transaction.
    """

    claimed: bool
    task_run: TaskRun
    flow_run: FlowRun


@dataclass(frozen=True)
class Link:
    """A task run that starts waiting for a child flow run (written in the child's
    start transaction): it stays Running, leased by ``owner``, with ``message``."""

    task_run_id: str
    flow_run_id: str
    owner: str
    message: str | None


@dataclass(frozen=True)
class Mirror:
    """A waiting task run taking its child run's final state (written in the
    child's end transaction)."""

    task_run_id: str
    flow_run_id: str
    state: State
    message: str | None
    result: Any


class _Tx:
    """One write transaction on a Core connection. State events are kept and
    inserted in one statement when the transaction ends (one round trip for all)."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self.events: list[dict[str, Any]] = []
        self.now = utcnow()

    def execute(self, statement: Any, params: Any = None) -> Any:
        """Run a statement in this transaction."""
        return self.conn.execute(statement, params)

    def event(
        self,
        flow_run_id: str,
        state: State,
        message: str | None = None,
        task_run_id: str | None = None,
    ) -> None:
        """Record a state change in the history (written at the end of the transaction)."""
        self.events.append(
            {
                "flow_run_id": flow_run_id,
                "task_run_id": task_run_id,
                "state": state.value,
                "message": message,
                "timestamp": self.now,
            }
        )

    def insert_new(self, table: Table, rows: list[dict[str, Any]]) -> None:
        """Insert rows, leaving out those whose unique keys exist already."""
        if rows:
            self.conn.execute(sql.insert_new(self.conn.dialect.name, table, False), rows)

    def insert_one_new(self, table: Table, row: dict[str, Any]) -> bool:
        """Insert a row unless its unique keys exist already; whether it went in."""
        # psycopg reports no row count here: ask for the key back instead
        stmt = sql.insert_new(self.conn.dialect.name, table, True)
        return self.conn.execute(stmt, row).first() is not None


def _flow_run(row: Row[Any] | FlowRun) -> FlowRun:
    """A flow run read with a Core statement, as a (detached) ORM object."""
    return row if isinstance(row, FlowRun) else FlowRun(**row._mapping)


def _row(run: FlowRun) -> dict[str, Any]:
    """A flow run's columns, to insert."""
    return {c.key: getattr(run, c.key) for c in FLOW_RUNS.columns}


def _started(run: FlowRun, now: datetime) -> FlowRun:
    """A copy of a new flow run, Running since ``now``."""
    fields = _row(run)
    fields.update(state=State.RUNNING.value, start_time=now, updated=now)
    return FlowRun(**fields)


def new_flow_run(
    flow: FlowVersion,
    parameters: dict[str, Any],
    state: State,
    idempotency_key: str | None = None,
    name: str | None = None,
    labels: Sequence[str] = (),
    scheduled_start_time: datetime | None = None,
    parent_flow_run_id: str | None = None,
    parent_task_run_id: str | None = None,
) -> FlowRun:
    """A flow run of ``flow``, built and not stored: its id is the idempotency
    key's when there is one (so every attempt that builds it names the same run)."""
    now = utcnow()
    return FlowRun(
        id=run_id_for_key(idempotency_key) if idempotency_key else str(uuid.uuid4()),
        flow_id=flow.id,
        name=name,
        state=state.value,
        message=None,
        parameters=parameters,
        labels=sorted(set(labels) | set(flow.labels or [])),
        idempotency_key=idempotency_key,
        parent_flow_run_id=parent_flow_run_id,
        parent_task_run_id=parent_task_run_id,
        # stored in UTC: SQLite keeps no offset and would read a local time back as UTC
        scheduled_start_time=_as_utc(scheduled_start_time) if scheduled_start_time else None,
        start_time=None,
        end_time=None,
        created=now,
        updated=now,
    )


def _task_run(row: Row[Any]) -> TaskRun:
    """A task run read with a Core statement, as a (detached) ORM object."""
    return TaskRun(**row._mapping)


class Store:
    """Runs and flows in one SQL database.

    Args:
        url: an SQLAlchemy URL (``sqlite:///path`` or ``postgresql+psycopg://...``).
        auto_migrate: apply pending migrations on first use (the embedded default).
    """

    def __init__(self, url: str, auto_migrate: bool = False) -> None:
        self.url = url
        self.is_sqlite = url.startswith("sqlite")
        kwargs: dict[str, Any] = {}
        if self.is_sqlite:
            path = url.split("///", 1)[-1]
            if path and path != ":memory:":
                Path(path).parent.mkdir(parents=True, exist_ok=True)
            kwargs["connect_args"] = {"timeout": 60, "check_same_thread": False}
        else:
            kwargs["connect_args"] = {"connect_timeout": 10} if "psycopg" in url else {}
            kwargs["pool_size"] = 5
        try:
            self.engine: Engine = create_engine(url, **kwargs)
        except Exception as exc:  # bad URL, missing driver
            raise ConfigurationError(
                f"database URL {hide_password(url)} is not usable: {exc}".splitlines()[0]
            ) from None
        if self.is_sqlite:
            _sqlite_pragmas(self.engine)
        else:  # a file has no server to go away; a server connection is checked
            guard_checkouts(self.engine)
        # a store dropped without close() (an evicted cached connection) still closes
        # its pooled connections, rather than leave them to the garbage collector
        weakref.finalize(self, self.engine.dispose)
        self._writer = self.engine.execution_options(immediate=True)
        # one-statement reads need no transaction of their own
        self._reader = self.engine.execution_options(isolation_level="AUTOCOMMIT")
        self._read = sessionmaker(self.engine, expire_on_commit=False)
        self._write = sessionmaker(self._writer, expire_on_commit=False)
        if auto_migrate:
            self.upgrade()

    def close(self) -> None:
        """Close every pooled connection."""
        self.engine.dispose()

    # --- sessions ---------------------------------------------------------------

    @contextlib.contextmanager
    def reading(self) -> Iterator[Session]:
        """A read-only session."""
        with self._translate(), self._read() as session:
            yield session

    @contextlib.contextmanager
    def writing(self) -> Iterator[Session]:
        """A session in one write transaction, committed at the end of the block."""
        with self._translate(), self._write.begin() as session:
            yield session

    @contextlib.contextmanager
    def _tx(self) -> Iterator[_Tx]:
        """A Core connection in one write transaction, committed at the end of the block."""
        with self._translate(), self._writer.begin() as conn:
            tx = _Tx(conn)
            yield tx
            if len(tx.events) == 1:  # one row: no executemany (a pipeline on psycopg)
                conn.execute(sql.INSERT_EVENTS, tx.events[0])
            elif tx.events:
                conn.execute(sql.INSERT_EVENTS, tx.events)

    def _one(self, statement: Any, params: dict[str, Any] | None = None) -> Row[Any] | None:
        """The first row of a one-statement read (no transaction of its own)."""
        with self._translate(), self._reader.connect() as conn:
            return conn.execute(statement, params).first()

    def _all(self, statement: Any, params: dict[str, Any] | None = None) -> list[Row[Any]]:
        """Every row of a one-statement read (no transaction of its own)."""
        with self._translate(), self._reader.connect() as conn:
            return list(conn.execute(statement, params).all())

    @contextlib.contextmanager
    def _translate(self) -> Iterator[None]:
        try:
            yield
        except (OperationalError, SAInterfaceError) as exc:
            detail = str(exc.orig).strip().splitlines()[0] if exc.orig else str(exc)
            raise BackendUnavailable(
                f"database {hide_password(self.url)} is unreachable: {detail}"
            ) from exc

    # --- migrations ---------------------------------------------------------------

    def _alembic_config(self) -> Any:
        from alembic.config import Config

        cfg = Config()
        cfg.set_main_option("script_location", str(MIGRATIONS))
        cfg.set_main_option("sqlalchemy.url", self.url.replace("%", "%%"))
        return cfg

    def upgrade(self) -> str:
        """Apply every pending migration; returns the head revision."""
        from alembic import command

        cfg = self._alembic_config()
        lock = self._migration_lock()
        with lock, self._translate(), self.engine.begin() as conn:
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, "head")
        return self.current_revision() or ""

    @contextlib.contextmanager
    def _migration_lock(self) -> Iterator[None]:
        if not self.is_sqlite:
            yield
            return
        path = Path(self.url.split("///", 1)[-1] + ".migrate.lock")
        with open(path, "a+") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)

    def current_revision(self) -> str | None:
        """The revision the database is at, or None before any migration."""
        from alembic.runtime.migration import MigrationContext

        with self._translate(), self.engine.connect() as conn:
            return MigrationContext.configure(conn).get_current_revision()

    def head_revision(self) -> str:
        """The newest migration this code knows."""
        from alembic.script import ScriptDirectory

        return str(ScriptDirectory.from_config(self._alembic_config()).get_current_head())

    def check_migrated(self) -> None:
        """Raise a clear error when the schema is behind this code."""
        current = self.current_revision()
        if current != self.head_revision():
            raise ConfigurationError(
                f"database {hide_password(self.url)} is at migration {current or 'none'}, "
                f"not {self.head_revision()}: run `orchestrator db upgrade`"
            )

    # --- flows --------------------------------------------------------------------

    def register_flow(
        self,
        project_name: str,
        name: str,
        structure_hash: str,
        structure: dict[str, Any],
        import_ref: str,
        parameters: list[dict[str, Any]],
        schedule: dict[str, Any] | None,
        labels: list[str],
    ) -> FlowVersion:
        """Store a flow; a new version only when the structure differs from the newest."""
        fields: dict[str, Any] = {
            "structure_hash": structure_hash,
            "structure": structure,
            "import_ref": import_ref,
            "parameters": parameters,
            "schedule": schedule,
            "labels": labels,
        }
        for _ in range(3):
            try:
                with self.writing() as s:
                    return self._register(s, project_name, name, fields)
            except IntegrityError:
                continue  # another process registered at the same moment; look again
        raise BackendUnavailable(f"could not register flow {name!r}: too much contention")

    def _register(
        self, s: Session, project_name: str, name: str, fields: dict[str, Any]
    ) -> FlowVersion:
        project = s.scalar(select(Project).where(Project.name == project_name))
        if project is None:
            project = Project(name=project_name, created=utcnow())
            s.add(project)
            s.flush()
        newest = s.scalar(
            select(FlowVersion)
            .where(FlowVersion.project_id == project.id, FlowVersion.name == name)
            .order_by(FlowVersion.version.desc())
            .limit(1)
        )
        if (
            newest is not None
            and newest.structure_hash == fields["structure_hash"]
            and not newest.archived
        ):
            newest.import_ref = fields["import_ref"]
            if newest.schedule != fields["schedule"]:
                newest.schedule = fields["schedule"]
            return newest
        s.execute(
            update(FlowVersion)
            .where(FlowVersion.project_id == project.id, FlowVersion.name == name)
            .values(archived=True)
        )
        version = FlowVersion(
            id=str(uuid.uuid4()),
            project_id=project.id,
            name=name,
            version=(newest.version + 1) if newest else 1,
            archived=False,
            schedule_paused=False,
            created=utcnow(),
            **fields,
        )
        s.add(version)
        return version

    def newest_flow(self, project_name: str, name: str) -> FlowVersion:
        """The newest non-archived version of a flow, or FlowNotFound listing what exists."""
        row = self._one(sql.NEWEST_FLOW, {"project": project_name, "name": name})
        if row is not None:
            return FlowVersion(**row._mapping)
        with self.reading() as s:
            # not found: say what there is
            project = s.scalar(select(Project).where(Project.name == project_name))
            if project is None:
                projects = sorted(s.scalars(select(Project.name)).all())
                raise FlowNotFound(
                    f"no project {project_name!r} (flow {name!r}); projects: "
                    f"{', '.join(projects) or 'none registered'}"
                )
            names = sorted(
                set(
                    s.scalars(
                        select(FlowVersion.name).where(
                            FlowVersion.project_id == project.id,
                            FlowVersion.archived.is_(False),
                        )
                    ).all()
                )
            )
            raise FlowNotFound(
                f"no flow {name!r} in project {project_name!r}; its flows: "
                f"{', '.join(names) or 'none'}"
            )

    def flow_version(self, flow_id: str) -> FlowVersion:
        """A flow version by id."""
        with self.reading() as s:
            found = s.get(FlowVersion, flow_id)
            if found is None:
                raise FlowNotFound(f"no flow version {flow_id!r}")
            return found

    def project_name(self, project_id: int) -> str:
        """A project's name by id."""
        with self.reading() as s:
            project = s.get(Project, project_id)
            return project.name if project else "?"

    def list_flows(self, include_archived: bool = False) -> list[tuple[str, FlowVersion]]:
        """Every flow version with its project name, newest first within each flow."""
        with self.reading() as s:
            q = select(Project.name, FlowVersion).join(
                FlowVersion, FlowVersion.project_id == Project.id
            )
            if not include_archived:
                q = q.where(FlowVersion.archived.is_(False))
            q = q.order_by(Project.name, FlowVersion.name, FlowVersion.version.desc())
            return [(p, f) for p, f in s.execute(q).all()]

    # --- flow runs ----------------------------------------------------------------

    def create_flow_run(self, *args: Any, **kwargs: Any) -> tuple[FlowRun, bool]:
        """Insert a flow run, or find the one with the same idempotency key: takes
        the arguments of :func:`new_flow_run`.

        Returns:
            The run, and True when this call created it.
        """
        return self.insert_flow_run(new_flow_run(*args, **kwargs))

    def insert_flow_run(self, run: FlowRun) -> tuple[FlowRun, bool]:
        """Insert a flow run built by :func:`new_flow_run`, or find the one holding
        its idempotency key.

        Returns:
            The run as stored, and True when this call inserted it.
        """
        key = run.idempotency_key
        with self._tx() as tx:
            if key:
                # the unique key is the guarantee: a second insert of it adds nothing
                created = tx.insert_one_new(FLOW_RUNS, _row(run))
            else:
                tx.execute(sql.INSERT_FLOW_RUN, _row(run))
                created = True
            if created:
                tx.event(run.id, State(run.state))
        if not created:
            existing = self.flow_run_by_key(key or "")
            if existing is None:
                raise FlowRunNotFound(f"no flow run holds idempotency key {key!r}")
            return existing, False
        return run, True

    def flow_run_by_key(self, key: str) -> FlowRun | None:
        """The flow run holding an idempotency key."""
        row = self._one(sql.FLOW_RUN_BY_KEY, {"key": key})
        return None if row is None else _flow_run(row)

    def get_flow_run(self, flow_run_id: str) -> FlowRun:
        """A flow run by id, or FlowRunNotFound."""
        row = self._one(sql.FLOW_RUN, {"id": flow_run_id})
        if row is None:
            raise FlowRunNotFound(f"no flow run {flow_run_id!r}")
        return _flow_run(row)

    def set_flow_run_state(
        self,
        flow_run_id: str,
        new: State,
        message: str | None = None,
        expected: Iterable[State] | None = None,
    ) -> bool:
        """Compare-and-set a flow run's state; False when it was not in an expected state."""
        with self._tx() as tx:
            return _set_flow_run_state(tx, flow_run_id, new, message, expected) is not None

    def begin_flow_run(
        self,
        flow_run_id: str,
        tasks: Sequence[tuple[str, str]],
        done: dict[str, Any],
        expected: Iterable[State],
    ) -> bool:
        """Create a flow run's task runs and move it to Running, in one transaction.

        Args:
            flow_run_id: the run.
            tasks: (slug, name) of every task.
            done: slugs recorded as Success at once with their results (parameters).
            expected: the states the run may be in.

        Returns:
            False, with nothing written, when the run was in none of ``expected``.
        """
        with self._tx() as tx:
            if _set_flow_run_state(tx, flow_run_id, State.RUNNING, None, expected) is None:
                return False
            _insert_task_runs(tx, flow_run_id, tasks, -1, done)
            return True

    def list_flow_runs(
        self, limit: int = 20, state: State | None = None, top_level_only: bool = False
    ) -> list[tuple[FlowRun, str]]:
        """The newest flow runs with their flow names."""
        with self.reading() as s:
            q = select(FlowRun, FlowVersion.name).join(
                FlowVersion, FlowVersion.id == FlowRun.flow_id
            )
            if state is not None:
                q = q.where(FlowRun.state == state.value)
            if top_level_only:
                q = q.where(FlowRun.parent_flow_run_id.is_(None))
            q = q.order_by(FlowRun.created.desc()).limit(limit)
            return [(r, n) for r, n in s.execute(q).all()]

    def child_runs(self, flow_run_id: str) -> list[FlowRun]:
        """The flow runs started by tasks of this run."""
        with self.reading() as s:
            return list(
                s.scalars(
                    select(FlowRun)
                    .where(FlowRun.parent_flow_run_id == flow_run_id)
                    .order_by(FlowRun.created)
                ).all()
            )

    def flows_by_id(self, ids: Iterable[str]) -> dict[str, FlowVersion]:
        """Flow versions by id."""
        wanted = set(ids)
        if not wanted:
            return {}
        with self.reading() as s:
            return {
                f.id: f for f in s.scalars(select(FlowVersion).where(FlowVersion.id.in_(wanted)))
            }

    # --- task runs ----------------------------------------------------------------

    def create_task_runs(
        self,
        flow_run_id: str,
        tasks: Sequence[tuple[str, str]],
        map_index: int = -1,
        done: dict[str, Any] | None = None,
    ) -> None:
        """Insert Pending task runs (slug, name) unless they exist already.

        Slugs in ``done`` are inserted as Success with that result (parameters)."""
        with self._tx() as tx:
            _insert_task_runs(tx, flow_run_id, tasks, map_index, done or {})

    def task_runs(self, flow_run_id: str, slugs: Iterable[str] | None = None) -> list[TaskRun]:
        """The task runs of a flow run (optionally only some slugs)."""
        q = select(TASK_RUNS).where(TASK_RUNS.c.flow_run_id == flow_run_id)
        if slugs is not None:
            q = q.where(TASK_RUNS.c.slug.in_(list(slugs)))
        return [
            _task_run(r) for r in self._all(q.order_by(TASK_RUNS.c.start_time, TASK_RUNS.c.slug))
        ]

    def task_runs_by_id(self, ids: Sequence[str]) -> dict[str, TaskRun]:
        """Task runs by id (ids that do not exist are left out)."""
        if not ids:
            return {}
        rows = self._all(sql.TASK_RUNS_BY_ID, {"ids": list(ids)})
        return {r.id: _task_run(r) for r in rows}

    def task_run_states(self, ids: Sequence[str]) -> dict[str, State]:
        """The states of task runs by id (ids that do not exist are left out)."""
        if not ids:
            return {}
        return {r.id: State(r.state) for r in self._all(sql.TASK_RUN_STATES, {"ids": list(ids)})}

    def start_mapped_task_run(
        self, task_run_id_: str, flow_run_id: str, slug: str, name: str, width: int, owner: str
    ) -> None:
        """Insert a mapped task's children (Pending) and let go of the parent's lease:
        the parent stays Running until ``collect_map`` records it, and is not claimed again."""
        with self._tx() as tx:
            tx.insert_new(
                TASK_RUNS,
                [
                    {
                        "id": task_run_id(flow_run_id, slug, i),
                        "flow_run_id": flow_run_id,
                        "slug": slug,
                        "map_index": i,
                        "name": name,
                        "state": State.PENDING.value,
                        "attempts": 0,
                    }
                    for i in range(width)
                ],
            )
            c = TASK_RUNS.c
            tx.execute(
                update(TASK_RUNS)
                .where(c.id == task_run_id_, c.lease_owner == owner)
                .values(message=f"mapped over {width} elements", lease_owner=None,
                        lease_until=None)
            )  # fmt: skip
            tx.event(flow_run_id, State.RUNNING, f"mapped over {width}", task_run_id_)

    def get_task_run(self, task_run_id: str) -> TaskRun | None:
        """A task run by id."""
        row = self._one(sql.TASK_RUN, {"id": task_run_id})
        return None if row is None else _task_run(row)

    def claim_task_run(
        self,
        task_run_id: str,
        flow_run_id: str,
        owner: str,
        lease_seconds: float,
        worker: str | None,
    ) -> Claim:
        """Take a task run's lease to run its code.

        A run in Pending or Retrying, or Running with an expired lease (its worker
        died) or with none (a mapped task, fanned out before; claimed again when the
        sweeper resends a stuck run), is claimed: it becomes Running, its attempt
        count grows by one.
        Otherwise the recorded run is returned unclaimed.
        """
        with self._tx() as tx:
            return _claim(tx, task_run_id, flow_run_id, owner, lease_seconds, worker)

    def begin_and_claim(
        self,
        flow_run_id: str,
        tasks: Sequence[tuple[str, str]],
        done: dict[str, Any],
        expected: Iterable[State],
        slug: str,
        owner: str,
        lease_seconds: float,
        worker: str | None,
        link: Link | None = None,
        create: FlowRun | None = None,
    ) -> Claim | None:
        """:meth:`begin_flow_run` and :meth:`claim_task_run` of one task, in one
        transaction (a one-task flow run about to run in the same worker task).

        Args:
            link: the parent task run that waits for this run, recorded as waiting
                in the same transaction.
            create: the run, not stored yet (built by :func:`new_flow_run`): it is
                inserted Running in the same transaction.

        Returns:
            The claim; None, with nothing written, when the run was in none of
            ``expected`` (with ``create``: when its id or key is taken already).
        """
        with self._tx() as tx:
            flow_run: Row[Any] | FlowRun | None
            if create is not None:
                flow_run = _started(create, tx.now)
                if not tx.insert_one_new(FLOW_RUNS, _row(flow_run)):
                    return None
                tx.event(flow_run_id, State(create.state))
                tx.event(flow_run_id, State.RUNNING)
            else:
                flow_run = _set_flow_run_state(tx, flow_run_id, State.RUNNING, None, expected)
            if flow_run is None:
                return None
            if link is not None:
                _finish(
                    tx, link.task_run_id, link.flow_run_id, State.RUNNING, link.message,
                    owner=link.owner, child_flow_run_id=flow_run_id,
                )  # fmt: skip
            _insert_task_runs(tx, flow_run_id, tasks, -1, done)
            return _claim(
                tx, task_run_id(flow_run_id, slug), flow_run_id, owner, lease_seconds, worker,
                flow_run,
            )  # fmt: skip

    def renew_lease(self, task_run_id: str, owner: str, lease_seconds: float) -> bool:
        """Extend a held lease (the heartbeat)."""
        with self._tx() as tx:
            until = tx.now + timedelta(seconds=lease_seconds)
            params = {"target": task_run_id, "owner": owner, "until": until}
            return bool(_rowcount(tx.execute(sql.RENEW_LEASE, params)))

    def finish_task_run(
        self,
        task_run_id: str,
        flow_run_id: str,
        state: State,
        message: str | None = None,
        result: Any = None,
        owner: str | None = None,
        child_flow_run_id: str | None = None,
    ) -> bool:
        """Record a task run's new state; with ``owner``, only while that lease is held.

        Without an owner the run must not be final yet (used for skips, trigger
        failures and mirrored child states)."""
        with self._tx() as tx:
            return _finish(
                tx, task_run_id, flow_run_id, state, message, result, owner, child_flow_run_id
            )

    def finish_task_and_flow_run(
        self,
        task_run_id: str,
        flow_run_id: str,
        state: State,
        message: str | None,
        result: Any,
        owner: str,
        flow_state: State,
        flow_message: str | None,
        mirror: Mirror | None = None,
    ) -> tuple[bool, bool, bool]:
        """Record the task run that ends a flow (while ``owner`` holds its lease) and
        then the Running flow run's final state, in one transaction.

        Args:
            mirror: the parent task run waiting for this flow run, given its final
                state in the same transaction (when the flow run's state is recorded).

        Returns:
            Whether the task run was recorded, whether the flow run was, and whether
            the mirrored state was.
        """
        with self._tx() as tx:
            if not _finish(tx, task_run_id, flow_run_id, state, message, result, owner):
                return False, False, False
            flow = _set_flow_run_state(tx, flow_run_id, flow_state, flow_message, [State.RUNNING])
            mirrored = (
                flow is not None
                and mirror is not None
                and _finish(
                    tx, mirror.task_run_id, mirror.flow_run_id, mirror.state, mirror.message,
                    mirror.result,
                )
            )  # fmt: skip
            return True, flow is not None, mirrored

    def cancel_pending_task_runs(self, flow_run_id: str, message: str) -> int:
        """Mark every unfinished task run of a flow run Cancelled."""
        unfinished = [s.value for s in State if not s.is_final]
        with self.writing() as s:
            return int(
                _rowcount(
                    s.execute(
                        update(TaskRun)
                        .where(TaskRun.flow_run_id == flow_run_id, TaskRun.state.in_(unfinished))
                        .values(
                            state=State.CANCELLED.value,
                            message=message,
                            end_time=utcnow(),
                            lease_owner=None,
                            lease_until=None,
                        )
                    )
                )
            )

    def history(self, flow_run_id: str) -> list[StateEvent]:
        """The recorded state changes of a flow run and its task runs, oldest first."""
        with self.reading() as s:
            return list(
                s.scalars(
                    select(StateEvent)
                    .where(StateEvent.flow_run_id == flow_run_id)
                    .order_by(StateEvent.id)
                ).all()
            )

    # --- recovery (the sweeper) ---------------------------------------------------

    def stale_running_runs(self, now: datetime, cutoff: datetime, limit: int = 100) -> list[str]:
        """Running flow runs with no state change since ``cutoff``, no live task-run
        lease, and no Running child run they wait for.

        A waited-for child that is Running is watched by the sweep itself. One that
        has not started (Submitted, Queued) is started only by its parent's node, so
        a parent whose node was lost with it is stale (the node touches the parent
        while it waits for the child's concurrency slot)."""
        from sqlalchemy import exists
        from sqlalchemy.orm import aliased

        child = aliased(FlowRun)
        with self.reading() as s:
            q = (
                select(FlowRun.id)
                .where(FlowRun.state == State.RUNNING.value, FlowRun.updated < cutoff)
                .where(~exists().where(StateEvent.flow_run_id == FlowRun.id,
                                       StateEvent.timestamp > cutoff))
                .where(~exists().where(TaskRun.flow_run_id == FlowRun.id,
                                       TaskRun.lease_until > now))
                .where(
                    ~exists().where(
                        TaskRun.flow_run_id == FlowRun.id,
                        TaskRun.state == State.RUNNING.value,
                        TaskRun.child_flow_run_id == child.id,
                        child.state == State.RUNNING.value,
                    )
                )
                .limit(limit)
            )  # fmt: skip
            return list(s.scalars(q).all())

    def runs_to_redispatch(self, cutoff: datetime, limit: int = 100) -> list[str]:
        """Submitted runs older than ``cutoff`` (their start message may be lost),
        and Queued runs (a wake-up may be lost), oldest first."""
        with self.reading() as s:
            q = (
                select(FlowRun.id)
                .where(
                    or_(
                        (FlowRun.state == State.SUBMITTED.value) & (FlowRun.updated < cutoff),
                        FlowRun.state == State.QUEUED.value,
                    )
                )
                .order_by(FlowRun.created)
                .limit(limit)
            )
            return list(s.scalars(q).all())

    def touch_flow_run(self, flow_run_id: str) -> None:
        """Mark a flow run as just handled (its ``updated`` time)."""
        with self._tx() as tx:
            tx.execute(
                update(FLOW_RUNS).where(FLOW_RUNS.c.id == flow_run_id).values(updated=tx.now)
            )

    # --- schedules (beat) ------------------------------------------------------
    # Added for Celery beat (workers/scheduler.py) and `orchestrator schedules`.

    def scheduled_flows(self, include_paused: bool = False) -> list[tuple[str, FlowVersion]]:
        """The newest non-archived version of every flow that has a schedule.

        Args:
            include_paused: also list flows whose schedule is paused.

        Returns:
            (project name, flow version) pairs, ordered by project and flow name.
        """
        with self.reading() as s:
            q = (
                select(Project.name, FlowVersion)
                .join(FlowVersion, FlowVersion.project_id == Project.id)
                .where(FlowVersion.archived.is_(False), FlowVersion.schedule.is_not(None))
                .order_by(Project.name, FlowVersion.name)
                .options(defer(FlowVersion.structure))
            )
            if not include_paused:
                q = q.where(FlowVersion.schedule_paused.is_(False))
            # a JSON null is not SQL NULL on every backend: filter in Python too
            return [(p, f) for p, f in s.execute(q).all() if f.schedule]

    def schedule_marks(self) -> dict[tuple[int, str], tuple[datetime, str | None]]:
        """Every flow's bookmark: (project id, flow name) -> (handled until in UTC,
        hash of the schedule it is for)."""
        with self.reading() as s:
            rows = s.execute(
                select(
                    ScheduleMark.project_id,
                    ScheduleMark.flow_name,
                    ScheduleMark.handled_until,
                    ScheduleMark.schedule_hash,
                )
            ).all()
        return {(p, n): (_as_utc(h), sh) for p, n, h, sh in rows}

    def advance_schedule_mark(
        self,
        project_id: int,
        flow_name: str,
        handled_until: datetime,
        schedule_hash: str | None = None,
    ) -> tuple[datetime, str | None]:
        """Move a flow's bookmark forward to ``handled_until`` (never back).

        Args:
            project_id: the flow's project.
            flow_name: the flow's name.
            handled_until: every slot up to this instant is dealt with.
            schedule_hash: when given, the schedule the bookmark is now for.

        Returns:
            The bookmark as stored afterwards: (handled until, schedule hash).
        """
        value = _as_utc(handled_until)
        for _ in range(3):
            try:
                with self.writing() as s:
                    mark = s.get(ScheduleMark, (project_id, flow_name), with_for_update=True)
                    if mark is None:
                        mark = ScheduleMark(
                            project_id=project_id,
                            flow_name=flow_name,
                            handled_until=value,
                            schedule_hash=schedule_hash,
                            updated=utcnow(),
                        )
                        s.add(mark)
                    else:
                        if _as_utc(mark.handled_until) < value:
                            mark.handled_until = value
                        if schedule_hash is not None:
                            mark.schedule_hash = schedule_hash
                        mark.updated = utcnow()
                    return _as_utc(mark.handled_until), mark.schedule_hash
            except IntegrityError:
                continue  # another beat inserted it at the same moment; look again
        raise BackendUnavailable(f"could not record the schedule bookmark of {flow_name!r}")

    def set_schedule_paused(
        self, project_name: str, flow_name: str, paused: bool, now: datetime | None = None
    ) -> FlowVersion:
        """Pause or resume the schedule of a flow's newest version.

        Resuming moves the flow's bookmark to ``now`` (default: the current time), so
        the slots that passed while it was paused are neither run nor recorded as
        missed.

        Raises:
            FlowNotFound: no such project or flow.
            ScheduleError: the flow has no schedule.
        """
        flow = self.newest_flow(project_name, flow_name)
        if not flow.schedule:
            raise ScheduleError(f"flow {flow_name!r} in project {project_name!r} has no schedule")
        with self.writing() as s:
            s.execute(
                update(FlowVersion).where(FlowVersion.id == flow.id).values(schedule_paused=paused)
            )
        if not paused:
            self.advance_schedule_mark(flow.project_id, flow.name, now or utcnow())
        flow.schedule_paused = paused
        return flow

    def due_scheduled_runs(self, now: datetime, limit: int = 100) -> list[tuple[FlowRun, str]]:
        """Flow runs in Scheduled whose scheduled start time is at or before ``now``.

        Returns:
            (run, flow name) pairs, the earliest first.
        """
        with self.reading() as s:
            q = (
                select(FlowRun, FlowVersion.name)
                .join(FlowVersion, FlowVersion.id == FlowRun.flow_id)
                .where(
                    FlowRun.state == State.SCHEDULED.value,
                    FlowRun.scheduled_start_time <= _as_utc(now),
                )
                .order_by(FlowRun.scheduled_start_time)
                .limit(limit)
            )
            return [(r, n) for r, n in s.execute(q).all()]

    def create_final_flow_run(
        self,
        flow: FlowVersion,
        parameters: dict[str, Any],
        state: State,
        message: str,
        idempotency_key: str,
        name: str | None = None,
        scheduled_start_time: datetime | None = None,
    ) -> tuple[FlowRun, bool]:
        """Record a flow run that is final from the start (a skipped schedule slot).

        Returns:
            The run (the existing one when the key was used), and True when created.
        """
        if not state.is_final:
            raise ValueError(f"{state} is not a final state")
        run, created = self.create_flow_run(
            flow, parameters, state, idempotency_key=idempotency_key, name=name,
            scheduled_start_time=scheduled_start_time,
        )  # fmt: skip
        if created:
            with self.writing() as s:
                s.execute(
                    update(FlowRun)
                    .where(FlowRun.id == run.id, FlowRun.state == state.value)
                    .values(message=message, end_time=utcnow())
                )
            run.message = message
        return run, created

    # --- task run logs ------------------------------------------------------------
    # Added for the captured log lines of task runs (orchestrator/logcapture.py).

    def add_task_run_logs(
        self,
        flow_run_id: str,
        task_run_id: str,
        attempt: int,
        lines: Sequence[LogLine],
        keep: int = 1000,
    ) -> int:
        """Store the captured lines of one task run attempt, in one batch insert.

        After a retry, only the newest ``keep`` lines of the task run (across its
        attempts) are kept.

        Returns:
            How many lines were stored.
        """
        if not lines:
            return 0
        rows = [
            {
                "flow_run_id": flow_run_id,
                "task_run_id": task_run_id,
                "attempt": attempt,
                "line": i,
                "timestamp": ln.timestamp,
                "level": ln.level[:20],
                "logger": ln.logger[:200] if ln.logger else None,
                "message": ln.message,
            }
            for i, ln in enumerate(lines)
        ]
        mine = (TaskRunLog.flow_run_id == flow_run_id, TaskRunLog.task_run_id == task_run_id)
        with self.writing() as s:
            # render_nulls: one executemany (else the ORM splits the rows at each None logger)
            s.execute(insert(TaskRunLog).execution_options(render_nulls=True), rows)
            if attempt > 1:
                cut = s.execute(
                    select(TaskRunLog.attempt, TaskRunLog.line)
                    .where(*mine)
                    .order_by(TaskRunLog.attempt.desc(), TaskRunLog.line.desc())
                    .offset(keep)
                    .limit(1)
                ).first()
                if cut is not None:
                    older = or_(
                        TaskRunLog.attempt < cut.attempt,
                        (TaskRunLog.attempt == cut.attempt) & (TaskRunLog.line <= cut.line),
                    )
                    s.execute(delete(TaskRunLog).where(*mine, older))
        return len(rows)

    def task_run_logs(
        self,
        flow_run_id: str,
        task_run_ids: Iterable[str] | None = None,
        last: int | None = None,
    ) -> list[TaskRunLog]:
        """The stored log lines of a flow run's task runs.

        Args:
            flow_run_id: the flow run.
            task_run_ids: only these task runs (default: all of the flow run's).
            last: only the last this many lines of each task run.

        Returns:
            The lines grouped by task run, each task run's in order (attempt, line).
        """
        with self.reading() as s:
            q = select(TaskRunLog).where(TaskRunLog.flow_run_id == flow_run_id)
            if task_run_ids is not None:
                wanted = list(task_run_ids)
                if not wanted:
                    return []
                q = q.where(TaskRunLog.task_run_id.in_(wanted))
            q = q.order_by(TaskRunLog.task_run_id, TaskRunLog.attempt, TaskRunLog.line)
            rows = list(s.scalars(q).all())
        if last is None:
            return rows
        groups: dict[str, list[TaskRunLog]] = {}
        for row in rows:
            groups.setdefault(row.task_run_id, []).append(row)
        return [row for group in groups.values() for row in group[-last:]] if last > 0 else []


def _sqlite_pragmas(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None  # we issue BEGIN ourselves
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.execute("PRAGMA busy_timeout=60000")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        options = conn.get_execution_options()
        if options.get("isolation_level") == "AUTOCOMMIT":
            return  # a one-statement read: SQLite's own implicit transaction
        conn.exec_driver_sql("BEGIN IMMEDIATE" if options.get("immediate") else "BEGIN")


def _set_flow_run_state(
    tx: _Tx,
    flow_run_id: str,
    new: State,
    message: str | None,
    expected: Iterable[State] | None,
) -> Row[Any] | None:
    """Compare-and-set a flow run's state in ``tx``, recording the event.

    Returns:
        The flow run as it is now, or None when it was in none of ``expected``."""
    allowed = [x.value for x in (expected if expected is not None else states_before(new))]
    params = {"target": flow_run_id, "allowed": allowed, "new_message": message, "now": tx.now}
    row = tx.execute(sql.set_flow_run_state(new), params).first()
    if row is not None:
        tx.event(flow_run_id, new, message)
    return cast("Row[Any] | None", row)


def _insert_task_runs(
    tx: _Tx,
    flow_run_id: str,
    tasks: Sequence[tuple[str, str]],
    map_index: int,
    done: dict[str, Any],
) -> None:
    """Insert Pending task runs (Success for the slugs in ``done``) unless they exist."""
    now = tx.now
    rows = [
        {
            "id": task_run_id(flow_run_id, slug, map_index),
            "flow_run_id": flow_run_id,
            "slug": slug,
            "map_index": map_index,
            "name": name,
            "state": (State.SUCCESS if slug in done else State.PENDING).value,
            "result": done.get(slug),
            "attempts": 1 if slug in done else 0,
            "start_time": now if slug in done else None,
            "end_time": now if slug in done else None,
        }
        for slug, name in tasks
    ]
    tx.insert_new(TASK_RUNS, rows)


def _claim(
    tx: _Tx,
    task_run_id: str,
    flow_run_id: str,
    owner: str,
    lease_seconds: float,
    worker: str | None,
    flow_run: Row[Any] | FlowRun | None = None,
) -> Claim:
    """Claim a task run in ``tx`` (see :meth:`Store.claim_task_run`); ``flow_run``
    is its flow run when the caller just wrote it."""
    until = tx.now + timedelta(seconds=lease_seconds)
    params = {
        "target": task_run_id, "owner": owner, "until": until, "now": tx.now, "by_worker": worker
    }  # fmt: skip
    row = tx.execute(sql.CLAIM, params).first()
    claimed = row is not None
    if claimed:
        tx.event(flow_run_id, State.RUNNING, task_run_id=task_run_id)
    else:
        row = tx.execute(sql.TASK_RUN, {"id": task_run_id}).first()
    if flow_run is None:
        flow_run = tx.execute(sql.FLOW_RUN, {"id": flow_run_id}).first()
    if row is None or flow_run is None:
        raise FlowRunNotFound(f"no task run {task_run_id!r}")
    return Claim(claimed, _task_run(row), _flow_run(flow_run))


def _finish(
    tx: _Tx,
    task_run_id: str,
    flow_run_id: str,
    state: State,
    message: str | None = None,
    result: Any = None,
    owner: str | None = None,
    child_flow_run_id: str | None = None,
) -> bool:
    """Record a task run's new state in ``tx`` (see :meth:`Store.finish_task_run`)."""
    final = state.is_final
    params: dict[str, Any] = {
        "target": task_run_id, "new_state": state.value, "new_message": message
    }  # fmt: skip
    if final:
        params.update(new_result=result, now=tx.now)
    if owner is not None:
        params["owner"] = owner
    else:
        params["allowed"] = [x.value for x in states_before(state)]
    if child_flow_run_id is not None:
        params["child"] = child_flow_run_id
    stmt = sql.finish_task_run(final, owner is not None, child_flow_run_id is not None)
    done = _rowcount(tx.execute(stmt, params))
    if done:
        tx.event(flow_run_id, state, message, task_run_id)
    return bool(done)
