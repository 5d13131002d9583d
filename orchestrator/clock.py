"""Time as the project records it: aware UTC datetimes.

Pure: imports nothing of the project's but the standard library. SQLite hands
naive datetimes back; :func:`aware` and :func:`as_utc` turn them into UTC ones."""

from __future__ import annotations

from datetime import UTC, datetime


def utcnow() -> datetime:
    """The current time in UTC, aware."""
    return datetime.now(UTC)


def aware(value: datetime | None) -> datetime | None:
    """``value`` as an aware UTC datetime (SQLite hands back naive ones); None stays None."""
    if value is None:
        return None
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def as_utc(value: datetime) -> datetime:
    """An aware datetime in UTC (naive ones, as SQLite returns them, are taken as UTC)."""
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)
