"""A backfill's range and slots, pure: dates read in the schedule's zone with the end
day included, times with and without offsets, the seed's weekday schedule across the
spring-forward, and ranges refused with a clear error."""

from __future__ import annotations

from datetime import date, datetime, timedelta

import pendulum
import pytest

from orchestrator.errors import ScheduleError
from orchestrator.schedules import CronSchedule, IntervalSchedule
from orchestrator.schedules.backfill import backfill_range, backfill_slots

NY = "US/Eastern"


def seed() -> CronSchedule:
    """The seed page's schedule, as registered today (its start date is now)."""
    return CronSchedule("30 9 * * 1-5", start_date=pendulum.now(tz=NY))


def test_the_seed_weekday_schedule_over_two_weeks_of_march_2026() -> None:
    slots = backfill_slots(seed(), "2026-03-02", "2026-03-13")
    # ten weekdays at 09:30 New York time
    assert len(slots) == 10
    assert [(t.hour, t.minute) for t in slots] == [(9, 30)] * 10
    assert {t.isoweekday() for t in slots} == {1, 2, 3, 4, 5}
    # 14:30 UTC before the spring-forward of Sunday 2026-03-08, 13:30 UTC after
    in_utc = [t.in_timezone("UTC") for t in slots]
    assert [t.strftime("%m-%d %H:%M") for t in in_utc[:5]] == [
        f"03-0{d} 14:30" for d in (2, 3, 4, 5, 6)
    ]
    assert [t.strftime("%m-%d %H:%M") for t in in_utc[5:]] == [
        f"03-{d:02d} 13:30" for d in (9, 10, 11, 12, 13)
    ]


def test_the_schedules_own_dates_do_not_clip_a_backfill() -> None:
    # the seed's start date is today: a backfill of March 2026 still finds its slots
    s = CronSchedule(
        "0 12 * * *",
        start_date=pendulum.datetime(2030, 1, 1, tz=NY),
        end_date=pendulum.datetime(2030, 2, 1, tz=NY),
    )
    assert len(backfill_slots(s, date(2026, 3, 1), date(2026, 3, 3))) == 3
    assert (
        s.between(pendulum.datetime(2026, 3, 1, tz=NY), pendulum.datetime(2026, 3, 4, tz=NY)) == []
    )


def test_dates_are_read_in_the_schedules_zone_and_the_end_day_is_included() -> None:
    s = CronSchedule("0 0,23 * * *", start_date=pendulum.datetime(2026, 1, 1, tz=NY))
    first, last = backfill_range(s, "2026-03-02", "2026-03-02")
    assert first == pendulum.datetime(2026, 3, 2, tz=NY)
    assert last == pendulum.datetime(2026, 3, 3, tz=NY) - timedelta(microseconds=1)
    # both midnight (the first instant) and 23:00 New York belong to the day
    hours = [t.hour for t in backfill_slots(s, "2026-03-02", "2026-03-02")]
    assert hours == [0, 23]


def test_times_without_an_offset_are_wall_times_in_the_zone_and_with_one_instants() -> None:
    s = seed()
    assert len(backfill_slots(s, "2026-03-02T09:30", "2026-03-03T09:29")) == 1
    assert len(backfill_slots(s, "2026-03-02T09:31", "2026-03-03T09:30")) == 1
    aware = datetime.fromisoformat("2026-03-02T14:30:00+00:00")
    assert backfill_slots(s, aware, aware) == [pendulum.datetime(2026, 3, 2, 9, 30, tz=NY)]


def test_interval_schedules_backfill_on_their_anchor_before_it() -> None:
    s = IntervalSchedule(timedelta(hours=6), start_date=pendulum.datetime(2030, 1, 1, 3, tz="UTC"))
    slots = backfill_slots(s, "2026-03-02", "2026-03-02")
    assert [t.hour for t in slots] == [3, 9, 15, 21]


@pytest.mark.parametrize(
    ("start", "end", "match"),
    [
        ("2026-03-13", "2026-03-02", "is before start"),
        ("2026-13-01", "2026-03-02", "is not a date"),
        ("yesterday", "2026-03-02", "is not a date"),
        (20260302, "2026-03-02", "must be a date"),
    ],
)
def test_bad_ranges_are_one_clear_error(start: object, end: object, match: str) -> None:
    with pytest.raises(ScheduleError, match=match):
        backfill_slots(seed(), start, end)  # type: ignore[arg-type]


def test_a_range_with_too_many_slots_is_refused() -> None:
    with pytest.raises(ScheduleError, match="more than 100 slots: backfill a shorter range"):
        backfill_slots(CronSchedule("* * * * *"), "2026-03-02", "2026-03-02", limit=100)
