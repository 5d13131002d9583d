"""Properties of a year of slots in several zones (New York, London, Sydney, Kolkata,
UTC), checked by hypothesis against an oracle built on the standard library's
``zoneinfo`` (not on pendulum or croniter, which the schedules use):

* each slot once, strictly increasing in UTC;
* a fixed-time cron keeps its wall-clock time every day it matches;
* a slot in a spring-forward gap fires at the moment the clocks change, a slot in a
  fall-back fold at its first occurrence, the same way every year and every zone;
* beat, ticking at any times through the year, fires exactly those slots, once each;
* a periodic cron follows real time: every real hour once, none in a gap twice."""

from __future__ import annotations

import itertools
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pendulum
from hypothesis import given, settings
from hypothesis import strategies as st

from orchestrator.schedules import CronSchedule, IntervalSchedule
from orchestrator.schedules.slots import plan_slots

ZONES = ["America/New_York", "Europe/London", "Australia/Sydney", "Asia/Kolkata", "UTC"]
ONE_MINUTE = timedelta(minutes=1)

zones = st.sampled_from(ZONES)
years = st.integers(min_value=2024, max_value=2030)
# the hours around the transitions of these zones (02:00 New York and Sydney, 01:00
# London) come up often; any other hour too
hours = st.one_of(st.sampled_from([0, 1, 2, 3]), st.integers(min_value=0, max_value=23))
minutes = st.one_of(st.sampled_from([0, 30]), st.integers(min_value=0, max_value=59))
weekdays = st.one_of(
    st.just(None), st.sets(st.integers(min_value=0, max_value=6), min_size=1, max_size=6)
)


def expected_instant(day: date, hour: int, minute: int, zone: ZoneInfo) -> datetime:
    """When the wall time ``day hour:minute`` fires, by the rules, from zoneinfo alone."""
    wall = datetime(day.year, day.month, day.day, hour, minute)
    first = wall.replace(tzinfo=zone, fold=0).astimezone(UTC)
    second = wall.replace(tzinfo=zone, fold=1).astimezone(UTC)
    if first.astimezone(zone).replace(tzinfo=None) == wall:
        return min(first, second)  # ordinary, or a fold: its first occurrence
    # a gap: the first instant with the offset after it (the moment clocks change)
    after = wall.replace(tzinfo=zone, fold=1).utcoffset()
    instant = min(first, second)
    while instant.astimezone(zone).utcoffset() != after:
        instant += ONE_MINUTE
    return instant


def year_bounds(year: int, zone: str) -> tuple[pendulum.DateTime, pendulum.DateTime]:
    start = pendulum.datetime(year, 1, 1, tz=zone)
    return start, pendulum.datetime(year + 1, 1, 1, tz=zone)


def cron_of(hour: int, minute: int, days: set[int] | None) -> str:
    dow = "*" if days is None else ",".join(str(d) for d in sorted(days))
    return f"{minute} {hour} * * {dow}"


@settings(max_examples=60, deadline=None)
@given(zone=zones, year=years, hour=hours, minute=minutes, days=weekdays)
def test_a_year_of_fixed_time_slots_keeps_the_wall_clock(
    zone: str, year: int, hour: int, minute: int, days: set[int] | None
) -> None:
    start, end = year_bounds(year, zone)
    s = CronSchedule(cron_of(hour, minute, days), start_date=start)
    slots = s.between(start - timedelta(microseconds=1), end - timedelta(microseconds=1))
    instants = [t.in_timezone("UTC") for t in slots]
    # strictly increasing in UTC: no slot twice
    assert all(a < b for a, b in itertools.pairwise(instants))
    # exactly one slot per matching local day, where the rules put it
    tz = ZoneInfo(zone)
    matching = [
        start.date() + timedelta(days=i)
        for i in range((end.date() - start.date()).days)
        if days is None or (start.date() + timedelta(days=i)).isoweekday() % 7 in days
    ]
    expected = [expected_instant(d, hour, minute, tz) for d in matching]
    assert [datetime.fromtimestamp(t.timestamp(), UTC) for t in instants] == expected
    # the wall clock is kept, but for a slot in a gap (which fires when clocks change)
    for slot, day in zip(slots, matching, strict=True):
        wall = datetime(day.year, day.month, day.day, hour, minute)
        exists = wall.replace(tzinfo=tz).astimezone(UTC).astimezone(tz).replace(tzinfo=None) == wall
        if exists:
            assert (slot.date(), slot.hour, slot.minute) == (day, hour, minute)


@settings(max_examples=15, deadline=None)
@given(
    zone=zones,
    year=years,
    hour=hours,
    minute=minutes,
    # minutes between ticks: from 3 hours (a year of ticks stays quick) to 23 hours
    gaps=st.lists(st.integers(min_value=3 * 60, max_value=23 * 60), min_size=1, max_size=40),
)
def test_beat_ticking_at_any_times_fires_each_slot_once(
    zone: str, year: int, hour: int, minute: int, gaps: list[int]
) -> None:
    # Given a daily schedule with catch-up (every missed slot runs), and beat ticking
    # at irregular moments through a year (gaps below a day, its look-back)
    start, end = year_bounds(year, zone)
    s = CronSchedule(cron_of(hour, minute, None), start_date=start, catchup=True)
    handled = start - timedelta(microseconds=1)
    now = pendulum.instance(handled)
    fired: list[pendulum.DateTime] = []
    step = 0
    while now < end:
        now = min(now.add(minutes=gaps[step % len(gaps)]), end)
        step += 1
        plan = plan_slots(s, handled, now)
        fired.extend(plan.run)
        handled = plan.handled_until
    # Then it fired exactly the year's slots, each once, in order
    assert fired == s.between(start - timedelta(microseconds=1), end)


@settings(max_examples=8, deadline=None)
@given(zone=zones, year=years)
def test_an_hourly_cron_fires_every_real_hour_once(zone: str, year: int) -> None:
    start, end = year_bounds(year, zone)
    s = CronSchedule("0 * * * *", start_date=start)
    slots = s.between(start - timedelta(microseconds=1), end - timedelta(microseconds=1))
    instants = [t.timestamp() for t in slots]
    # one real hour apart all year (a gap's hour never happens, a fold's fires twice)
    assert all(b - a == 3600 for a, b in itertools.pairwise(instants))
    assert len(slots) == round((end.timestamp() - start.timestamp()) / 3600)
    assert {t.minute for t in slots} == {0}


@settings(max_examples=20, deadline=None)
@given(zone=zones, year=years, hour=hours)
def test_a_daily_interval_is_24_real_hours_whatever_the_clocks_do(
    zone: str, year: int, hour: int
) -> None:
    start, end = year_bounds(year, zone)
    s = IntervalSchedule(timedelta(days=1), start_date=start.add(hours=hour))
    slots = s.between(start, end)
    assert all(b.timestamp() - a.timestamp() == 86400 for a, b in itertools.pairwise(slots))
    assert 364 <= len(slots) <= 366
