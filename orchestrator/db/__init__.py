"""The database package: SQLAlchemy models, Alembic migrations and one repository per
table group, composed by :class:`Store`; all SQL of the project lives here. Imports
SQLAlchemy (Alembic only inside the migration functions), the standard library and the
pure core, never Celery, kombu or redis; this ``__init__`` only hands its children's
names on, and the children import each other by module."""

from orchestrator.db.browse import LogRow, RunRow
from orchestrator.db.events import EventRow
from orchestrator.db.flow_runs import FlowRunSummary
from orchestrator.db.runs import Link, Mirror
from orchestrator.db.store import Store
from orchestrator.db.task_runs import Claim

__all__ = [
    "Claim",
    "EventRow",
    "FlowRunSummary",
    "Link",
    "LogRow",
    "Mirror",
    "RunRow",
    "Store",
]
