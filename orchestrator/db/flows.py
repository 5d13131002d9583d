"""Projects and flow versions: registration (a new version only when the structure
changed, the older ones archived), the newest version of a flow by name, and lookups
by id. Imports SQLAlchemy, the standard library, the sibling modules database, models
and statements, and the core's errors and clock."""

from __future__ import annotations

import builtins
import uuid
from collections.abc import Iterable
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

import orchestrator.db.statements as sql
from orchestrator.clock import utcnow
from orchestrator.db.database import Database
from orchestrator.db.models import FlowVersion, Project
from orchestrator.errors import BackendUnavailable, FlowNotFound


class Flows:
    """The registered flows of one database.

    Args:
        db: the database.
    """

    def __init__(self, db: Database) -> None:
        self._db = db

    def register(
        self,
        project_name: str,
        name: str,
        structure_hash: str,
        structure: dict[str, Any],
        import_ref: str,
        parameters: builtins.list[dict[str, Any]],
        schedule: dict[str, Any] | None,
        labels: builtins.list[str],
    ) -> FlowVersion:
        """Store a flow; a new version only when the structure differs from the newest.

        Args:
            project_name: its project (created when new).
            name: the flow's name.
            structure_hash: the hash of its structure (what makes a new version).
            structure: the structure, as JSON.
            import_ref: where workers import its code from (updated in place).
            parameters: the declarations of its Parameters.
            schedule: its schedule, as JSON (updated in place), or None.
            labels: the labels of its runs.

        Returns:
            The version stored (the newest one when the structure is unchanged).
        """
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
                with self._db.writing() as s:
                    return _register(s, project_name, name, fields)
            except IntegrityError:
                continue  # another process registered at the same moment; look again
        raise BackendUnavailable(f"could not register flow {name!r}: too much contention")

    def newest(self, project_name: str, name: str) -> FlowVersion:
        """The newest non-archived version of a flow.

        Raises:
            FlowNotFound: no such project or flow, naming what exists.
        """
        row = self._db.one(sql.NEWEST_FLOW, {"project": project_name, "name": name})
        if row is not None:
            return FlowVersion(**row._mapping)
        raise self._not_found(project_name, name)

    def _not_found(self, project_name: str, name: str) -> FlowNotFound:
        """The error for an unknown flow: it says what there is."""
        with self._db.reading() as s:
            project = s.scalar(select(Project).where(Project.name == project_name))
            if project is None:
                projects = sorted(s.scalars(select(Project.name)).all())
                return FlowNotFound(
                    f"no project {project_name!r} (flow {name!r}); projects: "
                    f"{', '.join(projects) or 'none registered'}"
                )
            q = select(FlowVersion.name).where(
                FlowVersion.project_id == project.id, FlowVersion.archived.is_(False)
            )
            names = sorted(set(s.scalars(q).all()))
        return FlowNotFound(
            f"no flow {name!r} in project {project_name!r}; its flows: {', '.join(names) or 'none'}"
        )

    def get(self, flow_id: str) -> FlowVersion:
        """A flow version by id.

        Raises:
            FlowNotFound: no such version.
        """
        with self._db.reading() as s:
            found = s.get(FlowVersion, flow_id)
            if found is None:
                raise FlowNotFound(f"no flow version {flow_id!r}")
            return found

    def project_name(self, project_id: int) -> str:
        """A project's name by id ("?" when there is none)."""
        with self._db.reading() as s:
            project = s.get(Project, project_id)
            return project.name if project else "?"

    def by_ids(self, ids: Iterable[str]) -> dict[str, FlowVersion]:
        """Flow versions by id (ids that do not exist are left out)."""
        wanted = set(ids)
        if not wanted:
            return {}
        with self._db.reading() as s:
            q = select(FlowVersion).where(FlowVersion.id.in_(wanted))
            return {f.id: f for f in s.scalars(q)}

    def list(self, include_archived: bool = False) -> builtins.list[tuple[str, FlowVersion]]:
        """Every flow version with its project name.

        Args:
            include_archived: also list the archived versions.

        Returns:
            (project name, version) pairs by project and flow name, newest version first.
        """
        with self._db.reading() as s:
            q = select(Project.name, FlowVersion).join(
                FlowVersion, FlowVersion.project_id == Project.id
            )
            if not include_archived:
                q = q.where(FlowVersion.archived.is_(False))
            q = q.order_by(Project.name, FlowVersion.name, FlowVersion.version.desc())
            return [(p, f) for p, f in s.execute(q).all()]


def _register(s: Session, project_name: str, name: str, fields: dict[str, Any]) -> FlowVersion:
    """Register a flow in session ``s`` (see :meth:`Flows.register`)."""
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
