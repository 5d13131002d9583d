"""Schedules: when a registered flow fires, as pure functions of time (no I/O).
:class:`CronSchedule` follows the wall clock of its zone across daylight saving
changes, :class:`IntervalSchedule` real elapsed time, both on :class:`Schedule`
(start and end dates, parameter defaults, catch-up, overlap policy), and
:func:`schedule_from_dict` reads back :meth:`Schedule.to_dict`;
:mod:`orchestrator.schedules.slots` plans which slots beat fires on a tick,
:mod:`orchestrator.schedules.overlap` decides what a slot does while an earlier run
has not finished, :mod:`orchestrator.schedules.backfill` reads a backfill's range.
This module only re-exports the public names of its modules (``base``, ``cron``,
``interval``, ``loading``, ``overlap``), which import pendulum, croniter,
:mod:`orchestrator.errors` and :mod:`orchestrator.states` and each other by module
path."""

from orchestrator.schedules.base import Schedule
from orchestrator.schedules.cron import CronSchedule
from orchestrator.schedules.interval import IntervalSchedule
from orchestrator.schedules.loading import schedule_from_dict
from orchestrator.schedules.overlap import Overlap

__all__ = ["CronSchedule", "IntervalSchedule", "Overlap", "Schedule", "schedule_from_dict"]
