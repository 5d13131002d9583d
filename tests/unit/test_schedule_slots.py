"""Which slots beat fires on a tick: the missed-slot policy, catch-up, the look-back
window, start and end dates, and the key that makes one run per slot."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pendulum
import pytest

from orchestrator.errors import ScheduleError
from orchestrator.schedules import CronSchedule, IntervalSchedule
from orchestrator.schedules.slots import plan_slots, schedule_hash, slot_key, starting_point

NY = "US/Eastern"


def utc(*args: int) -> pendulum.DateTime:
    return pendulum.datetime(*args, tz="UTC")


def ny(*args: int) -> pendulum.DateTime:
    return pendulum.datetime(*args, tz=NY)


def hours(times: tuple[pendulum.DateTime, ...]) -> list[int]:
    return [t.in_timezone("UTC").hour for t in times]


def seed_schedule() -> CronSchedule:
    return CronSchedule("30 9 * * 1-5", start_date=ny(2026, 1, 1))


# --- the normal tick ------------------------------------------------------------------


def test_one_due_slot_runs_on_time() -> None:
    # Given an hourly schedule handled up to a second before the hour
    s = CronSchedule("0 * * * *")
    # When beat ticks just after the hour
    plan = plan_slots(s, utc(2026, 1, 5, 9, 59, 59), utc(2026, 1, 5, 10, 0, 1))
    # Then that one slot runs, nothing is skipped, and the bookmark moves to now
    assert plan.run == (utc(2026, 1, 5, 10),)
    assert plan.missed == () and plan.dropped == 0 and plan.missed_count == 0
    assert plan.handled_until == utc(2026, 1, 5, 10, 0, 1)


def test_a_slot_exactly_at_now_is_due() -> None:
    plan = plan_slots(CronSchedule("0 * * * *"), utc(2026, 1, 5, 9, 59), utc(2026, 1, 5, 10))
    assert plan.run == (utc(2026, 1, 5, 10),)


def test_no_slot_between_ticks_plans_nothing() -> None:
    plan = plan_slots(CronSchedule("0 * * * *"), utc(2026, 1, 5, 10, 1), utc(2026, 1, 5, 10, 2))
    assert plan.run == () and plan.missed == ()
    assert plan.handled_until == utc(2026, 1, 5, 10, 2)


def test_a_slot_already_handled_is_not_planned_again() -> None:
    # Given the 10:00 slot was handled by a tick at 10:00:01
    s = CronSchedule("0 * * * *")
    first = plan_slots(s, utc(2026, 1, 5, 9, 59, 59), utc(2026, 1, 5, 10, 0, 1))
    # When the next tick comes (a restarted beat reading the same bookmark)
    second = plan_slots(s, first.handled_until, utc(2026, 1, 5, 10, 0, 2))
    # Then nothing is planned
    assert second.run == () and second.missed == ()


def test_the_bookmark_never_moves_back() -> None:
    # Given a bookmark ahead of the clock (another beat's clock ran ahead)
    plan = plan_slots(CronSchedule("* * * * *"), utc(2026, 1, 5, 10, 30), utc(2026, 1, 5, 10))
    assert plan.run == () and plan.handled_until == utc(2026, 1, 5, 10, 30)


# --- missed slots ---------------------------------------------------------------------


def test_after_downtime_only_the_latest_missed_slot_runs_and_the_rest_are_skipped() -> None:
    # Given an hourly schedule last handled at 00:30, and beat down until 03:10
    plan = plan_slots(CronSchedule("0 * * * *"), utc(2026, 1, 5, 0, 30), utc(2026, 1, 5, 3, 10))
    # Then the 03:00 slot runs (late, with its nominal time), 01:00 and 02:00 are skipped
    assert plan.run == (utc(2026, 1, 5, 3),)
    assert plan.missed == (utc(2026, 1, 5, 1), utc(2026, 1, 5, 2))
    assert plan.dropped == 0 and plan.missed_count == 2
    assert plan.handled_until == utc(2026, 1, 5, 3, 10)


def test_catchup_runs_every_missed_slot_oldest_first() -> None:
    s = CronSchedule("0 * * * *", catchup=True)
    plan = plan_slots(s, utc(2026, 1, 5, 0, 30), utc(2026, 1, 5, 3, 10))
    assert plan.run == (utc(2026, 1, 5, 1), utc(2026, 1, 5, 2), utc(2026, 1, 5, 3))
    assert plan.missed == () and plan.handled_until == utc(2026, 1, 5, 3, 10)


def test_catchup_works_through_a_long_backlog_in_batches() -> None:
    # Given a minutely catch-up schedule that missed 10 slots, and 4 runs per tick
    s = CronSchedule("* * * * *", catchup=True)
    seen, now = utc(2026, 1, 5, 10, 0, 30), utc(2026, 1, 5, 10, 10, 30)
    ran: list[pendulum.DateTime] = []
    # When beat ticks at the same instant until nothing is left
    for _ in range(5):
        plan = plan_slots(s, seen, now, max_runs=4)
        ran += plan.run
        seen = plan.handled_until
    # Then every missed slot ran once, in order, and the bookmark reached now
    assert ran == [utc(2026, 1, 5, 10, m) for m in range(1, 11)]
    assert seen == now


def test_the_default_window_is_a_day() -> None:
    # Given the seed's schedule last handled on Friday 2026-03-06, beat down until Tuesday
    plan = plan_slots(seed_schedule(), ny(2026, 3, 6, 12), ny(2026, 3, 10, 12))
    # Then Monday's slot, more than a day old, is neither run nor recorded
    assert plan.run == (ny(2026, 3, 10, 9, 30),) and plan.missed == () and plan.dropped == 0


def test_missed_slots_older_than_the_window_are_ignored() -> None:
    # Given a daily schedule last handled three days ago
    s = CronSchedule("0 12 * * *", catchup=True)
    plan = plan_slots(s, utc(2026, 1, 1, 13), utc(2026, 1, 4, 13), window=timedelta(hours=36))
    # Then only the slots within the window run
    assert plan.run == (utc(2026, 1, 3, 12), utc(2026, 1, 4, 12))


def test_without_a_bookmark_the_whole_window_is_looked_at() -> None:
    plan = plan_slots(
        CronSchedule("0 * * * *"), None, utc(2026, 1, 5, 3, 10), window=timedelta(hours=3)
    )
    assert plan.run == (utc(2026, 1, 5, 3),)
    assert plan.missed == (utc(2026, 1, 5, 1), utc(2026, 1, 5, 2))


def test_skipped_records_are_bounded_and_the_rest_counted() -> None:
    # Given a schedule every second, missed for an hour
    s = IntervalSchedule(timedelta(seconds=1))
    plan = plan_slots(s, utc(2026, 1, 5, 10), utc(2026, 1, 5, 11), max_skipped=5)
    # Then the latest runs, the 5 before it are recorded, the older ones only counted
    assert plan.run == (utc(2026, 1, 5, 11),)
    assert plan.missed == tuple(utc(2026, 1, 5, 10, 59, 55 + i) for i in range(5))
    assert plan.dropped == 3600 - 1 - 5 and plan.missed_count == 3599


def test_nothing_is_recorded_with_max_skipped_zero() -> None:
    plan = plan_slots(
        CronSchedule("0 * * * *"), utc(2026, 1, 5, 0, 30), utc(2026, 1, 5, 3, 10), max_skipped=0
    )
    assert plan.run == (utc(2026, 1, 5, 3),) and plan.missed == () and plan.dropped == 2


# --- the seed's weekday schedule ----------------------------------------------------------


def test_a_weekend_of_downtime_misses_nothing_on_a_weekday_schedule() -> None:
    # Given the seed's schedule handled on Friday 10:00 and beat down until Monday 10:00
    plan = plan_slots(
        seed_schedule(), ny(2026, 1, 9, 10), ny(2026, 1, 12, 10), window=timedelta(days=7)
    )
    # Then Monday 09:30 runs and nothing is skipped: Saturday and Sunday have no slot
    assert plan.run == (ny(2026, 1, 12, 9, 30),) and plan.missed == ()


def test_missed_weekday_slots_across_the_spring_forward_keep_0930_new_york() -> None:
    # Given beat down from Friday 2026-03-06 noon (EST) to Tuesday 2026-03-10 noon (EDT),
    # with a look-back window of a week
    week = timedelta(days=7)
    plan = plan_slots(seed_schedule(), ny(2026, 3, 6, 12), ny(2026, 3, 10, 12), window=week)
    # Then Tuesday 09:30 EDT runs and Monday 09:30 EDT is skipped, both 13:30 UTC
    assert plan.run == (ny(2026, 3, 10, 9, 30),)
    assert plan.missed == (ny(2026, 3, 9, 9, 30),)
    assert hours(plan.run + plan.missed) == [13, 13]


def test_missed_weekday_slots_across_the_fall_back_keep_0930_new_york() -> None:
    s = CronSchedule("30 9 * * 1-5", start_date=ny(2026, 1, 1), catchup=True)
    plan = plan_slots(s, ny(2026, 10, 30, 10), ny(2026, 11, 3, 10), window=timedelta(days=7))
    assert plan.run == (ny(2026, 11, 2, 9, 30), ny(2026, 11, 3, 9, 30))
    assert hours(plan.run) == [14, 14]


def test_both_passes_of_a_repeated_hour_are_distinct_slots() -> None:
    # Given an hourly schedule in New York, missed across the 2026-11-01 fall-back
    s = CronSchedule("0 * * * *", start_date=ny(2026, 1, 1), catchup=True)
    plan = plan_slots(s, utc(2026, 11, 1, 4, 30), utc(2026, 11, 1, 6, 30))
    # Then 01:00 EDT and 01:00 EST both run, under two different keys
    assert [t.isoformat() for t in plan.run] == [
        "2026-11-01T01:00:00-04:00", "2026-11-01T01:00:00-05:00",
    ]  # fmt: skip
    assert len({slot_key("p", "f", t) for t in plan.run}) == 2


# --- start and end dates --------------------------------------------------------------------


def test_no_slot_before_the_start_date() -> None:
    s = CronSchedule("0 * * * *", start_date=utc(2026, 1, 5, 2, 30), catchup=True)
    plan = plan_slots(s, utc(2026, 1, 5, 0, 30), utc(2026, 1, 5, 4, 10))
    assert plan.run == (utc(2026, 1, 5, 3), utc(2026, 1, 5, 4))


def test_the_end_date_is_honoured() -> None:
    # Given an hourly schedule that ends at 02:00, and beat down from 00:30 to 05:10
    s = CronSchedule("0 * * * *", end_date=utc(2026, 1, 5, 2))
    plan = plan_slots(s, utc(2026, 1, 5, 0, 30), utc(2026, 1, 5, 5, 10))
    # Then the last slot before the end runs, and nothing after it
    assert plan.run == (utc(2026, 1, 5, 2),) and plan.missed == (utc(2026, 1, 5, 1),)
    # And once the end has passed nothing is ever planned again
    later = plan_slots(s, plan.handled_until, utc(2026, 1, 9))
    assert later.run == () and later.missed == ()


def test_an_interval_schedule_ending_mid_downtime_with_catchup() -> None:
    s = IntervalSchedule(
        timedelta(minutes=20), start_date=utc(2026, 1, 5), end_date=utc(2026, 1, 5, 1), catchup=True
    )
    plan = plan_slots(s, utc(2026, 1, 5, 0, 10), utc(2026, 1, 5, 2))
    assert plan.run == (utc(2026, 1, 5, 0, 20), utc(2026, 1, 5, 0, 40), utc(2026, 1, 5, 1))


# --- where the bookmark starts ---------------------------------------------------------------


def _start(**kw: object) -> tuple[datetime, bool]:
    base: dict[str, object] = {
        "mark": None,
        "mark_hash": None,
        "current_hash": "h1",
        "registered": utc(2026, 1, 5, 8),
        "seen_before": None,
        "now": utc(2026, 1, 5, 12),
    }
    base.update(kw)
    return starting_point(**base)  # type: ignore[arg-type]


def test_an_unchanged_schedule_goes_on_from_its_bookmark() -> None:
    assert _start(mark=utc(2026, 1, 5, 11), mark_hash="h1") == (utc(2026, 1, 5, 11), False)


def test_a_flow_beat_never_fired_starts_at_its_registration() -> None:
    # Given a flow registered at 08:00 while beat was down, and beat starting at 12:00
    start, write = _start()
    # Then its slots count from its registration (so a 09:30 slot runs, late)
    assert (start, write) == (utc(2026, 1, 5, 8), True)
    # but never more than one window back
    assert _start(registered=utc(2025, 6, 1))[0] == utc(2026, 1, 4, 12)


def test_a_schedule_added_while_beat_runs_starts_when_beat_last_looked() -> None:
    # Given a flow registered long ago, given a schedule in place while beat ran
    start, _ = _start(registered=utc(2025, 6, 1), seen_before=utc(2026, 1, 5, 11, 59, 55))
    # Then nothing before beat's previous read counts as missed
    assert start == utc(2026, 1, 5, 11, 59, 55)


def test_a_changed_schedule_starts_when_beat_sees_the_change() -> None:
    mark = utc(2026, 1, 5, 9, 0, 1)
    # seen by a running beat: from its previous read
    assert _start(mark=mark, mark_hash="h0", seen_before=utc(2026, 1, 5, 11, 59, 55)) == (
        utc(2026, 1, 5, 11, 59, 55),
        True,
    )
    # seen by a beat that just started: from now, no backfill of the new schedule
    assert _start(mark=mark, mark_hash="h0") == (utc(2026, 1, 5, 12), True)


def test_the_schedule_hash_changes_with_any_field() -> None:
    s = CronSchedule("30 9 * * 1-5", start_date=ny(2026, 1, 1))
    assert schedule_hash(s) == schedule_hash(
        CronSchedule("30 9 * * 1-5", start_date=ny(2026, 1, 1))
    )
    assert schedule_hash(s) != schedule_hash(
        CronSchedule("30 9 * * 1-5", start_date=ny(2026, 1, 2))
    )
    assert schedule_hash(s) != schedule_hash(
        CronSchedule("30 9 * * 1-5", start_date=ny(2026, 1, 1), catchup=True)
    )


# --- keys and bad input ------------------------------------------------------------------------


def test_the_slot_key_is_flow_and_nominal_time_in_utc() -> None:
    key = slot_key("examples", "parent-flow", ny(2026, 3, 9, 9, 30))
    assert key == "schedule:examples/parent-flow:2026-03-09T13:30:00+00:00"
    # the same instant in another zone, or as a plain datetime, gives the same key
    assert slot_key("examples", "parent-flow", datetime(2026, 3, 9, 13, 30, tzinfo=UTC)) == key
    assert slot_key("examples", "parent-flow", ny(2026, 3, 9, 9, 31)) != key
    assert slot_key("other", "parent-flow", ny(2026, 3, 9, 9, 30)) != key


def test_naive_times_are_refused() -> None:
    s = CronSchedule("0 * * * *")
    with pytest.raises(ScheduleError, match="timezone-aware"):
        plan_slots(s, None, datetime(2026, 1, 5))
    with pytest.raises(ScheduleError, match="timezone-aware"):
        plan_slots(s, datetime(2026, 1, 5), utc(2026, 1, 5))
    with pytest.raises(ScheduleError, match="window"):
        plan_slots(s, None, utc(2026, 1, 5), window=timedelta(0))
