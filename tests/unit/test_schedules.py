"""Schedules: when flows fire, in wall-clock time, across daylight saving changes.

Pure tests: no network, no clock except the seed's ``pendulum.now`` form. Fire times
are checked as ISO strings with their UTC offsets, so each assertion names both the
local wall time and the real instant.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone
from itertools import pairwise
from zoneinfo import ZoneInfo

import pendulum
import pytest
from croniter import croniter
from hypothesis import given, settings
from hypothesis import strategies as st

from orchestrator.errors import ScheduleError
from orchestrator.schedules import (
    CronSchedule,
    IntervalSchedule,
    Schedule,
    schedule_from_dict,
)

NEW_YORK = "US/Eastern"


def ny(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> pendulum.DateTime:
    """An unambiguous New York wall time."""
    return pendulum.datetime(year, month, day, hour, minute, tz=NEW_YORK)


def utc(
    year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0
) -> pendulum.DateTime:
    return pendulum.datetime(year, month, day, hour, minute, second, tz="UTC")


def iso(times: list[pendulum.DateTime]) -> list[str]:
    return [t.isoformat() for t in times]


def zulu(times: list[pendulum.DateTime]) -> list[str]:
    return [t.in_timezone("UTC").strftime("%Y-%m-%dT%H:%MZ") for t in times]


def weekday_schedule(**kwargs: object) -> CronSchedule:
    """The seed's Flow-of-Flows schedule, with a fixed start date."""
    return CronSchedule("30 9 * * 1-5", start_date=ny(2026, 1, 1), **kwargs)  # type: ignore[arg-type]


# --- the seed's weekday schedule in New York ----------------------------------------


def test_weekday_schedule_keeps_0930_new_york_across_spring_forward() -> None:
    # Given the seed's weekday 09:30 schedule in US/Eastern
    schedule = weekday_schedule()
    # When asking for six fires from Thursday 2026-03-05, before clocks spring forward
    fires = schedule.next(6, after=ny(2026, 3, 5))
    # Then it fires Mon-Fri at 09:30 local; the weekend of 2026-03-08 is skipped and
    # the UTC offset moves from -05:00 to -04:00
    assert iso(fires) == [
        "2026-03-05T09:30:00-05:00",
        "2026-03-06T09:30:00-05:00",
        "2026-03-09T09:30:00-04:00",
        "2026-03-10T09:30:00-04:00",
        "2026-03-11T09:30:00-04:00",
        "2026-03-12T09:30:00-04:00",
    ]
    assert zulu(fires)[1:3] == ["2026-03-06T14:30Z", "2026-03-09T13:30Z"]
    assert all(f.timezone_name == NEW_YORK for f in fires)


def test_weekday_schedule_keeps_0930_new_york_across_fall_back() -> None:
    # Given the seed's weekday schedule
    schedule = weekday_schedule()
    # When asking for fires around 2026-11-01, when clocks fall back
    fires = schedule.next(5, after=ny(2026, 10, 29))
    # Then 09:30 stays 09:30 local; UTC goes from 13:30 to 14:30
    assert iso(fires) == [
        "2026-10-29T09:30:00-04:00",
        "2026-10-30T09:30:00-04:00",
        "2026-11-02T09:30:00-05:00",
        "2026-11-03T09:30:00-05:00",
        "2026-11-04T09:30:00-05:00",
    ]
    assert zulu(fires) == [
        "2026-10-29T13:30Z",
        "2026-10-30T13:30Z",
        "2026-11-02T14:30Z",
        "2026-11-03T14:30Z",
        "2026-11-04T14:30Z",
    ]


def test_weekday_schedule_fires_only_on_weekdays_all_year() -> None:
    # Given the seed's weekday schedule
    schedule = weekday_schedule()
    # When listing every fire of 2026
    fires = schedule.between(ny(2026, 1, 1), ny(2027, 1, 1))
    # Then each is a weekday at 09:30 New York time, and none is missing
    assert len(fires) == 261
    assert all(f.isoweekday() <= 5 for f in fires)  # Monday is 1, Friday 5
    assert {(f.hour, f.minute) for f in fires} == {(9, 30)}
    assert {f.utcoffset() for f in fires} == {timedelta(hours=-5), timedelta(hours=-4)}


def test_seed_form_with_pendulum_now_works() -> None:
    # Given the seed's exact form, start_date=pendulum.now(tz="US/Eastern")
    before = pendulum.now(tz="UTC")
    schedule = CronSchedule("30 9 * * 1-5", start_date=pendulum.now(tz="US/Eastern"))
    # When asking for the next fires with the default `after` (now)
    fires = schedule.next(5)
    # Then the schedule is in New York time and fires on coming weekdays at 09:30 there
    assert schedule.timezone == NEW_YORK
    assert len(fires) == 5
    assert all(f > before for f in fires)
    assert all(f.timezone_name == NEW_YORK for f in fires)
    assert all(f.isoweekday() <= 5 and (f.hour, f.minute) == (9, 30) for f in fires)
    # and nothing fires before the start date, even when asked about the past
    assert schedule.next(1, after=utc(2020, 1, 1))[0] > before


# --- hourly across both changes --------------------------------------------------


def test_hourly_skips_only_the_nonexistent_hour_on_spring_forward() -> None:
    # Given an hourly schedule in New York
    schedule = CronSchedule("0 * * * *", start_date=ny(2026, 1, 1))
    # When listing 2026-03-08 from midnight
    fires = schedule.next(5, after=ny(2026, 3, 7, 23, 30))
    # Then 02:00 (which does not exist) is skipped; every real hour fires once
    assert iso(fires) == [
        "2026-03-08T00:00:00-05:00",
        "2026-03-08T01:00:00-05:00",
        "2026-03-08T03:00:00-04:00",
        "2026-03-08T04:00:00-04:00",
        "2026-03-08T05:00:00-04:00",
    ]
    assert zulu(fires) == [
        "2026-03-08T05:00Z",
        "2026-03-08T06:00Z",
        "2026-03-08T07:00Z",
        "2026-03-08T08:00Z",
        "2026-03-08T09:00Z",
    ]


def test_hourly_fires_both_real_one_oclocks_on_fall_back() -> None:
    # Given an hourly schedule in New York
    schedule = CronSchedule("0 * * * *", start_date=ny(2026, 1, 1))
    # When listing 2026-11-01 from midnight
    fires = schedule.next(5, after=ny(2026, 10, 31, 23, 30))
    # Then 01:00 fires twice, once per real hour (EDT, then EST), with no duplicates
    assert iso(fires) == [
        "2026-11-01T00:00:00-04:00",
        "2026-11-01T01:00:00-04:00",
        "2026-11-01T01:00:00-05:00",
        "2026-11-01T02:00:00-05:00",
        "2026-11-01T03:00:00-05:00",
    ]
    assert zulu(fires) == [
        "2026-11-01T04:00Z",
        "2026-11-01T05:00Z",
        "2026-11-01T06:00Z",
        "2026-11-01T07:00Z",
        "2026-11-01T08:00Z",
    ]


@pytest.mark.parametrize(
    ("day", "expected_fires"),
    [((2026, 3, 7), 47), ((2026, 10, 31), 49)],
    ids=["spring-forward", "fall-back"],
)
def test_hourly_fires_once_per_real_hour_across_a_change(
    day: tuple[int, int, int], expected_fires: int
) -> None:
    # Given an hourly schedule in New York
    schedule = CronSchedule("0 * * * *", start_date=ny(2026, 1, 1))
    # When listing the two local days around a change (47 or 49 real hours)
    start = ny(*day)
    fires = schedule.between(start, start.add(days=2))
    # Then consecutive fires are exactly one real hour apart
    assert len(fires) == expected_fires
    gaps = {b.timestamp() - a.timestamp() for a, b in pairwise(fires)}
    assert gaps == {3600.0}


def test_periodic_expression_skips_gap_and_repeats_fall_back_hour() -> None:
    # Given a half-hourly schedule in New York
    schedule = CronSchedule("*/30 * * * *", start_date=ny(2026, 1, 1))
    # When listing the fall-back night 00:30 EDT -> 02:00 EST
    fires = schedule.between(utc(2026, 11, 1, 4, 0), utc(2026, 11, 1, 7, 0))
    # Then it follows real time: the repeated hour fires in both passes, in order
    assert iso(fires) == [
        "2026-11-01T00:30:00-04:00",
        "2026-11-01T01:00:00-04:00",
        "2026-11-01T01:30:00-04:00",
        "2026-11-01T01:00:00-05:00",
        "2026-11-01T01:30:00-05:00",
        "2026-11-01T02:00:00-05:00",
    ]
    # and on the spring-forward night the 02:xx slots never happen
    fires = schedule.between(ny(2026, 3, 8, 1, 0), ny(2026, 3, 8, 3, 30))
    assert iso(fires) == [
        "2026-03-08T01:30:00-05:00",
        "2026-03-08T03:00:00-04:00",
        "2026-03-08T03:30:00-04:00",
    ]


# --- nonexistent and repeated wall times -----------------------------------------


def test_nonexistent_wall_time_fires_once_when_clocks_spring_forward() -> None:
    # Given a daily 02:30 schedule in New York
    schedule = CronSchedule("30 2 * * *", start_date=ny(2026, 1, 1))
    # When 02:30 does not exist (2026-03-08, 02:00 EST -> 03:00 EDT)
    fires = schedule.next(3, after=ny(2026, 3, 7))
    # Then that day fires once, at 03:00 EDT, the moment the clocks change
    assert iso(fires) == [
        "2026-03-07T02:30:00-05:00",
        "2026-03-08T03:00:00-04:00",
        "2026-03-09T02:30:00-04:00",
    ]
    assert zulu(fires) == ["2026-03-07T07:30Z", "2026-03-08T07:00Z", "2026-03-09T06:30Z"]


def test_several_nonexistent_slots_collapse_into_one_fire() -> None:
    # Given a fixed-time schedule at 02:00, 02:30 and 03:00 every day
    schedule = CronSchedule("0,30 2 * * *", start_date=ny(2026, 1, 1))
    both = CronSchedule("0 2,3 * * *", start_date=ny(2026, 1, 1))
    # When clocks skip 02:00-03:00
    fires = schedule.between(ny(2026, 3, 8), ny(2026, 3, 9))
    # Then the gap's slots fire once, at 03:00 EDT, and 03:00 itself is not doubled
    assert iso(fires) == ["2026-03-08T03:00:00-04:00"]
    assert iso(both.between(ny(2026, 3, 8), ny(2026, 3, 9))) == ["2026-03-08T03:00:00-04:00"]


def test_repeated_wall_time_fires_once_when_clocks_fall_back() -> None:
    # Given a daily 01:30 schedule in New York
    schedule = CronSchedule("30 1 * * *", start_date=ny(2026, 1, 1))
    # When 01:30 happens twice (2026-11-01, 02:00 EDT -> 01:00 EST)
    fires = schedule.next(3, after=ny(2026, 10, 31))
    # Then it fires once, at the first 01:30 (EDT)
    assert iso(fires) == [
        "2026-10-31T01:30:00-04:00",
        "2026-11-01T01:30:00-04:00",
        "2026-11-02T01:30:00-05:00",
    ]
    # and asking from between the two 01:30s does not give the second one
    between_passes = utc(2026, 11, 1, 6, 0)  # 01:00 EST, the second pass
    assert iso(schedule.next(1, after=between_passes)) == ["2026-11-02T01:30:00-05:00"]


# --- other zones -----------------------------------------------------------------


def test_europe_london_follows_bst_changes() -> None:
    # Given a daily 09:00 schedule in London
    schedule = CronSchedule(
        "0 9 * * *", start_date=pendulum.datetime(2026, 1, 1, tz="Europe/London")
    )
    # When clocks go forward on 2026-03-29 and back on 2026-10-25
    spring = schedule.next(2, after=utc(2026, 3, 28))
    autumn = schedule.next(2, after=utc(2026, 10, 24))
    # Then 09:00 stays 09:00 local: 09:00Z in GMT, 08:00Z in BST
    assert iso(spring) == ["2026-03-28T09:00:00+00:00", "2026-03-29T09:00:00+01:00"]
    assert zulu(spring) == ["2026-03-28T09:00Z", "2026-03-29T08:00Z"]
    assert iso(autumn) == ["2026-10-24T09:00:00+01:00", "2026-10-25T09:00:00+00:00"]
    assert zulu(autumn) == ["2026-10-24T08:00Z", "2026-10-25T09:00Z"]
    assert schedule.timezone == "Europe/London"


def test_europe_london_gap_and_repeat_at_one_oclock() -> None:
    # Given a daily 01:30 schedule in London
    schedule = CronSchedule(
        "30 1 * * *", start_date=pendulum.datetime(2026, 1, 1, tz="Europe/London")
    )
    # When 01:30 does not exist (2026-03-29) and when it happens twice (2026-10-25)
    spring = schedule.between(utc(2026, 3, 28, 12), utc(2026, 3, 29, 12))
    autumn = schedule.between(utc(2026, 10, 24, 12), utc(2026, 10, 25, 12))
    # Then it fires once each day: at 02:00 BST when the clocks change, at the first 01:30
    assert iso(spring) == ["2026-03-29T02:00:00+01:00"]
    assert zulu(spring) == ["2026-03-29T01:00Z"]
    assert iso(autumn) == ["2026-10-25T01:30:00+01:00"]
    assert zulu(autumn) == ["2026-10-25T00:30Z"]


def test_asia_kolkata_has_no_dst() -> None:
    # Given the weekday schedule in Kolkata (+05:30 all year)
    start = pendulum.datetime(2026, 1, 1, tz="Asia/Kolkata")
    schedule = CronSchedule("30 9 * * 1-5", start_date=start)
    # When listing fires across New York's and London's changes
    fires = schedule.between(start, pendulum.datetime(2027, 1, 1, tz="Asia/Kolkata"))
    # Then every fire is 09:30 +05:30, i.e. 04:00Z
    assert len(fires) == 261
    assert {f.isoformat()[10:] for f in fires} == {"T09:30:00+05:30"}
    assert {zulu([f])[0][10:] for f in fires} == {"T04:00Z"}
    assert schedule.timezone == "Asia/Kolkata"


def test_without_start_date_cron_runs_in_utc() -> None:
    # Given a cron schedule without a start date
    schedule = CronSchedule("30 9 * * *")
    # When asking for fires around New York's spring-forward
    fires = schedule.next(2, after=ny(2026, 3, 7))
    # Then it is in UTC, so there is no DST at all
    assert schedule.timezone == "UTC"
    assert iso(fires) == ["2026-03-07T09:30:00+00:00", "2026-03-08T09:30:00+00:00"]


def test_plain_datetime_with_zoneinfo_is_accepted() -> None:
    # Given a stdlib aware datetime as start date and `after`
    start = datetime(2026, 1, 1, tzinfo=ZoneInfo("America/New_York"))
    schedule = CronSchedule("30 9 * * 1-5", start_date=start)
    # When asking for the next fire
    fires = schedule.next(1, after=datetime(2026, 3, 9, tzinfo=UTC))
    # Then the zone name is kept and results are pendulum DateTimes
    assert schedule.timezone == "America/New_York"
    assert isinstance(fires[0], pendulum.DateTime)
    assert iso(fires) == ["2026-03-09T09:30:00-04:00"]


def test_fixed_offset_start_date_is_accepted() -> None:
    # Given a start date with a fixed UTC offset
    start = datetime(2026, 1, 1, tzinfo=timezone(timedelta(hours=-3)))
    schedule = CronSchedule("0 12 * * *", start_date=start)
    # When asking for the next fire
    fires = schedule.next(1, after=start)
    # Then the offset is the zone
    assert schedule.timezone == "-03:00"
    assert iso(fires) == ["2026-01-01T12:00:00-03:00"]


# --- start and end dates ---------------------------------------------------------


def test_start_and_end_dates_are_honoured() -> None:
    # Given a weekday schedule from Monday 2026-03-02 09:00 to Wednesday 23:59
    schedule = CronSchedule(
        "30 9 * * 1-5", start_date=ny(2026, 3, 2, 9, 0), end_date=ny(2026, 3, 4, 23, 59)
    )
    # When asking for ten fires from long before the start
    fires = schedule.next(10, after=ny(2026, 1, 1))
    # Then only the three inside the window come back
    assert iso(fires) == [
        "2026-03-02T09:30:00-05:00",
        "2026-03-03T09:30:00-05:00",
        "2026-03-04T09:30:00-05:00",
    ]
    # and after the end there is nothing
    assert schedule.next(5, after=ny(2026, 3, 5)) == []


def test_start_and_end_dates_on_a_slot_are_inclusive() -> None:
    # Given start and end dates that are fire times themselves
    schedule = CronSchedule(
        "30 9 * * 1-5", start_date=ny(2026, 3, 2, 9, 30), end_date=ny(2026, 3, 3, 9, 30)
    )
    # When asking from before the start
    fires = schedule.next(5, after=ny(2026, 3, 1))
    # Then both ends fire
    assert iso(fires) == ["2026-03-02T09:30:00-05:00", "2026-03-03T09:30:00-05:00"]


def test_end_date_in_another_zone_is_the_same_instant() -> None:
    # Given an end date given in UTC for a New York schedule
    schedule = CronSchedule(
        "30 9 * * 1-5", start_date=ny(2026, 3, 2), end_date=utc(2026, 3, 3, 14, 30)
    )
    # Then the end is kept as the same instant, shown in New York time
    assert schedule.end_date is not None
    assert schedule.end_date.isoformat() == "2026-03-03T09:30:00-05:00"
    assert len(schedule.next(5, after=ny(2026, 3, 1))) == 2


# --- bad input -------------------------------------------------------------------


@pytest.mark.parametrize(
    "cron",
    [
        "61 * * * *",
        "not a cron",
        "* * *",
        "0 0 30 2 *",
        "",
        "0 0 * * * *",
        "H * * * *",
        "* 25 * * *",
    ],
)
def test_invalid_cron_string_is_a_one_line_schedule_error(cron: str) -> None:
    # When building a schedule from a bad cron string
    with pytest.raises(ScheduleError) as raised:
        CronSchedule(cron)
    # Then the error names the string, on one line
    message = str(raised.value)
    assert repr(cron) in message
    assert "\n" not in message


def test_non_string_cron_is_a_schedule_error() -> None:
    with pytest.raises(ScheduleError, match="cron must be a string"):
        CronSchedule(None)  # type: ignore[arg-type]


@pytest.mark.parametrize("field", ["start_date", "end_date"])
def test_naive_dates_are_refused(field: str) -> None:
    # When a date has no time zone
    with pytest.raises(ScheduleError, match=f"^{field} must be timezone-aware") as raised:
        CronSchedule("30 9 * * *", **{field: datetime(2026, 1, 1)})  # type: ignore[arg-type]
    # Then the error says so on one line
    assert "\n" not in str(raised.value)
    with pytest.raises(ScheduleError, match=f"^{field} must be timezone-aware"):
        IntervalSchedule(timedelta(hours=1), **{field: datetime(2026, 1, 1)})  # type: ignore[arg-type]


def test_naive_after_and_bounds_are_refused() -> None:
    schedule = weekday_schedule()
    with pytest.raises(ScheduleError, match=r"^after must be timezone-aware"):
        schedule.next(1, after=datetime(2026, 1, 1))
    with pytest.raises(ScheduleError, match=r"^start must be timezone-aware"):
        schedule.between(datetime(2026, 1, 1), ny(2026, 2, 1))


def test_end_before_start_is_refused() -> None:
    with pytest.raises(ScheduleError, match=r"end_date .* is before start_date"):
        CronSchedule("30 9 * * *", start_date=ny(2026, 3, 2), end_date=ny(2026, 3, 1))
    with pytest.raises(ScheduleError, match=r"end_date .* is before start_date"):
        IntervalSchedule(timedelta(hours=1), start_date=ny(2026, 3, 2), end_date=ny(2026, 3, 1))


@pytest.mark.parametrize("interval", [timedelta(0), timedelta(seconds=-1), 60])
def test_non_positive_or_non_timedelta_interval_is_refused(interval: object) -> None:
    with pytest.raises(ScheduleError, match=r"^interval must be"):
        IntervalSchedule(interval)  # type: ignore[arg-type]


def test_bad_n_and_defaults_are_refused() -> None:
    with pytest.raises(ScheduleError, match="n must be a non-negative integer"):
        weekday_schedule().next(-1, after=ny(2026, 1, 1))
    with pytest.raises(ScheduleError, match="JSON-serialisable"):
        CronSchedule("30 9 * * *", parameter_defaults={"when": object()})
    assert weekday_schedule().next(0, after=ny(2026, 1, 1)) == []


# --- serialisation ---------------------------------------------------------------


def test_cron_schedule_round_trips_through_json() -> None:
    # Given a cron schedule with every option set
    schedule = CronSchedule(
        "30 9 * * 1-5",
        start_date=ny(2026, 1, 5, 8, 0),
        end_date=ny(2026, 12, 31),
        parameter_defaults={"region": "us", "limit": 10},
        catchup=True,
    )
    # When stored as JSON and loaded back
    data = json.loads(json.dumps(schedule.to_dict()))
    loaded = schedule_from_dict(data)
    # Then it is the same schedule, in the same named zone, firing at the same times
    assert data == {
        "type": "cron",
        "cron": "30 9 * * 1-5",
        "timezone": "US/Eastern",
        "start_date": "2026-01-05T08:00:00-05:00",
        "end_date": "2026-12-31T00:00:00-05:00",
        "parameter_defaults": {"region": "us", "limit": 10},
        "catchup": True,
    }
    assert isinstance(loaded, CronSchedule)
    assert loaded == schedule
    assert loaded.timezone == "US/Eastern"
    assert loaded.parameter_defaults == {"region": "us", "limit": 10}
    assert loaded.catchup is True
    after = ny(2026, 3, 5)
    assert iso(loaded.next(4, after=after)) == iso(schedule.next(4, after=after))


@pytest.mark.parametrize(
    "schedule",
    [
        CronSchedule("0 * * * *"),
        CronSchedule("@daily", start_date=pendulum.datetime(2026, 1, 1, tz="Asia/Kolkata")),
        CronSchedule(
            "0 12 * * *",
            start_date=datetime(2026, 1, 1, tzinfo=timezone(timedelta(hours=5, minutes=45))),
        ),
        IntervalSchedule(timedelta(minutes=90)),
        IntervalSchedule(
            timedelta(seconds=1.5),
            start_date=pendulum.datetime(2026, 1, 1, tz="Europe/London"),
            end_date=pendulum.datetime(2026, 2, 1, tz="UTC"),
            parameter_defaults={"x": [1, 2]},
        ),
    ],
    ids=repr,
)
def test_every_kind_round_trips(schedule: Schedule) -> None:
    loaded = schedule_from_dict(json.loads(json.dumps(schedule.to_dict())))
    assert loaded == schedule
    assert type(loaded) is type(schedule)
    assert loaded.timezone == schedule.timezone
    assert loaded.to_dict() == schedule.to_dict()


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (
            {
                "type": "cron",
                "cron": "0 * * * *",
                "timezone": "Mars/Olympus_Mons",
                "start_date": "2026-01-01T00:00:00+00:00",
            },
            "unknown time zone 'Mars/Olympus_Mons'",
        ),
        ({"type": "weekly"}, "unknown schedule type 'weekly'"),
        ({"type": "cron"}, "needs a 'cron' field"),
        ({"type": "cron", "cron": "61 * * * *"}, "invalid cron string '61 \\* \\* \\* \\*'"),
        ({"type": "interval", "interval_seconds": "soon"}, "interval_seconds"),
        ({"type": "interval", "interval_seconds": 0}, "interval must be positive"),
        ({"type": "cron", "cron": "0 * * * *", "start_date": "yesterday"}, "not an ISO 8601"),
        (
            {"type": "cron", "cron": "0 * * * *", "start_date": "2026-01-01T00:00:00"},
            "start_date must be timezone-aware",
        ),
        ({"type": "cron", "cron": "0 * * * *", "timezone": "US/Eastern"}, "needs a start_date"),
        ("cron", "must be a dict"),
    ],
)
def test_bad_dicts_are_schedule_errors(data: object, message: str) -> None:
    with pytest.raises(ScheduleError, match=message):
        schedule_from_dict(data)  # type: ignore[arg-type]


# --- between ---------------------------------------------------------------------


def test_between_is_exclusive_at_start_and_inclusive_at_end() -> None:
    # Given the weekday schedule
    schedule = weekday_schedule()
    # When asking for the slots between two fire times across the spring-forward weekend
    fires = schedule.between(ny(2026, 3, 6, 9, 30), ny(2026, 3, 10, 9, 30))
    # Then the start slot is excluded, the end slot included
    assert iso(fires) == ["2026-03-09T09:30:00-04:00", "2026-03-10T09:30:00-04:00"]


def test_between_honours_dates_limit_and_empty_ranges() -> None:
    schedule = CronSchedule("0 * * * *", start_date=ny(2026, 3, 8, 3), end_date=ny(2026, 3, 8, 5))
    # the window is clipped to start and end dates
    assert iso(schedule.between(ny(2026, 3, 7), ny(2026, 3, 9))) == [
        "2026-03-08T03:00:00-04:00",
        "2026-03-08T04:00:00-04:00",
        "2026-03-08T05:00:00-04:00",
    ]
    # `limit` keeps the earliest
    assert iso(schedule.between(ny(2026, 3, 7), ny(2026, 3, 9), limit=1)) == [
        "2026-03-08T03:00:00-04:00"
    ]
    # an empty or reversed range is empty
    assert schedule.between(ny(2026, 3, 9), ny(2026, 3, 7)) == []
    assert schedule.between(ny(2026, 3, 8, 4), ny(2026, 3, 8, 4)) == []


def test_between_agrees_with_next_for_missed_slots() -> None:
    # Given beat was down from Friday evening to Tuesday noon over the fall-back weekend
    schedule = weekday_schedule()
    down, up = ny(2026, 10, 30, 18), ny(2026, 11, 3, 12)
    # When it looks for missed slots
    missed = schedule.between(down, up)
    # Then it finds Monday's and Tuesday's, the same as next() gives
    assert iso(missed) == ["2026-11-02T09:30:00-05:00", "2026-11-03T09:30:00-05:00"]
    assert iso(schedule.next(2, after=down)) == iso(missed)


# --- interval schedules ----------------------------------------------------------


def test_interval_fires_at_anchor_plus_multiples() -> None:
    # Given an hourly interval anchored at 2026-01-01 00:15 UTC
    schedule = IntervalSchedule(timedelta(hours=1), start_date=utc(2026, 1, 1, 0, 15))
    # When asking from before the start, and from exactly a fire time
    # Then the first fire is the start itself, and `after` is exclusive
    assert zulu(schedule.next(3, after=utc(2025, 6, 1))) == [
        "2026-01-01T00:15Z",
        "2026-01-01T01:15Z",
        "2026-01-01T02:15Z",
    ]
    assert zulu(schedule.next(2, after=utc(2026, 1, 1, 1, 15))) == [
        "2026-01-01T02:15Z",
        "2026-01-01T03:15Z",
    ]


def test_interval_without_start_is_anchored_at_the_epoch() -> None:
    # Given a 90-minute interval with no start date
    schedule = IntervalSchedule(timedelta(minutes=90))
    # When asking from just after midnight 2026-01-01 UTC (a multiple of 90 min since 1970)
    fires = schedule.next(2, after=utc(2026, 1, 1, 0, 0, 1))
    # Then fires are on the epoch grid, in UTC
    assert schedule.timezone == "UTC"
    assert iso(fires) == ["2026-01-01T01:30:00+00:00", "2026-01-01T03:00:00+00:00"]


def test_interval_is_real_time_across_dst() -> None:
    # Given a daily interval anchored at 09:00 New York before spring-forward
    schedule = IntervalSchedule(timedelta(days=1), start_date=ny(2026, 3, 7, 9, 0))
    # When the clocks spring forward
    fires = schedule.next(3, after=ny(2026, 3, 6))
    # Then each fire is 24 real hours apart, so the wall clock moves to 10:00
    assert iso(fires) == [
        "2026-03-07T09:00:00-05:00",
        "2026-03-08T10:00:00-04:00",
        "2026-03-09T10:00:00-04:00",
    ]
    assert zulu(fires) == ["2026-03-07T14:00Z", "2026-03-08T14:00Z", "2026-03-09T14:00Z"]


def test_interval_end_date_truncates() -> None:
    schedule = IntervalSchedule(
        timedelta(minutes=30), start_date=utc(2026, 1, 1), end_date=utc(2026, 1, 1, 1, 0)
    )
    assert zulu(schedule.next(10, after=utc(2025, 12, 31))) == [
        "2026-01-01T00:00Z",
        "2026-01-01T00:30Z",
        "2026-01-01T01:00Z",
    ]
    assert zulu(schedule.between(utc(2026, 1, 1), utc(2026, 1, 2))) == [
        "2026-01-01T00:30Z",
        "2026-01-01T01:00Z",
    ]


# --- properties ------------------------------------------------------------------

CRONS = [
    "0 * * * *",
    "*/15 * * * *",
    "30 1 * * *",
    "30 2 * * *",
    "0,30 2 * * *",
    "0 1-3 * * *",
    "30 9 * * 1-5",
    "0 0 * * 0",
    "0 12 1 * *",
    "45 23 * * 6",
    "*/7 2 * * *",
    "@daily",
]
ZONES = ["US/Eastern", "Europe/London", "Asia/Kolkata", "UTC", "Australia/Lord_Howe"]


def _clock_changes_at(t: pendulum.DateTime) -> bool:
    return t.subtract(seconds=1).utcoffset() != t.utcoffset()


@settings(max_examples=300, deadline=None)
@given(
    cron=st.sampled_from(CRONS),
    zone=st.sampled_from(ZONES),
    after=st.datetimes(min_value=datetime(2026, 1, 1), max_value=datetime(2026, 12, 31)),
    n=st.integers(min_value=1, max_value=40),
)
def test_next_is_increasing_unique_after_and_in_the_zone(
    cron: str, zone: str, after: datetime, n: int
) -> None:
    # Given a cron schedule in some zone and a random `after` in 2026
    schedule = CronSchedule(cron, start_date=pendulum.datetime(2025, 1, 1, tz=zone))
    after_utc = pendulum.instance(after.replace(tzinfo=UTC))
    # When asking for the next n fires
    fires = schedule.next(n, after=after_utc)
    # Then there are n, strictly increasing in real time, all after `after`, in the zone
    stamps = [f.timestamp() for f in fires]
    assert len(fires) == n
    assert stamps == sorted(set(stamps))
    assert stamps[0] > after_utc.timestamp()
    assert all(f.timezone_name == zone for f in fires)
    # and each matches the expression on the local wall clock, except a fixed-time
    # slot that fell into a spring-forward gap, which fires as the clocks change
    for f in fires:
        wall = datetime(f.year, f.month, f.day, f.hour, f.minute)
        assert croniter.match(schedule.cron, wall) or (
            not schedule.periodic and _clock_changes_at(f)
        )
    # and resuming from any fire gives the rest (what beat relies on), as between() does
    middle = len(fires) // 2
    assert schedule.next(n - middle - 1, after=fires[middle]) == fires[middle + 1 :]
    assert [f.timestamp() for f in schedule.between(after_utc, fires[-1])] == stamps


@settings(max_examples=100, deadline=None)
@given(
    seconds=st.integers(min_value=1, max_value=10 * 86400),
    offset=st.integers(min_value=0, max_value=365 * 86400),
    zone=st.sampled_from(ZONES),
    n=st.integers(min_value=1, max_value=20),
)
def test_interval_next_is_on_the_grid(seconds: int, offset: int, zone: str, n: int) -> None:
    # Given an interval schedule anchored in some zone
    start = pendulum.datetime(2026, 1, 1, tz=zone)
    schedule = IntervalSchedule(timedelta(seconds=seconds), start_date=start)
    after = start.add(seconds=offset)
    # When asking for the next fires
    fires = schedule.next(n, after=after)
    # Then they are the grid points anchor + k*interval just after `after`
    k = offset // seconds + 1
    expected = [start.timestamp() + (k + i) * seconds for i in range(n)]
    assert [f.timestamp() for f in fires] == expected
    assert all(f.timezone_name == zone for f in fires)
