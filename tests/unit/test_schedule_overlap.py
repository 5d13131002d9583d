"""Overlap policies and catch-up windows, pure: the one table of decisions, a batch of
slots decided in order, when a buffered run may start, how ``catchup`` maps onto a
window, which missed slots run, and the policies' place in a schedule's dict form."""

from __future__ import annotations

from datetime import timedelta

import pendulum
import pytest

from orchestrator.errors import ScheduleError
from orchestrator.schedules import CronSchedule, IntervalSchedule, Overlap, schedule_from_dict
from orchestrator.schedules.catchup import ON_TIME, CatchUp
from orchestrator.schedules.overlap import (
    Action,
    Busy,
    arrange,
    decide,
    may_release,
    overlap_policy,
)
from orchestrator.schedules.slots import plan_slots, schedule_hash

START, BUFFER, SKIP, CANCEL = (
    Action.START,
    Action.BUFFER,
    Action.SKIP,
    Action.CANCEL_AND_START,
)
IDLE, RUNNING, HOLDING = Busy(), Busy(active=1), Busy(active=1, held=1)


def utc(*args: int) -> pendulum.DateTime:
    return pendulum.datetime(*args, tz="UTC")


def minutes(start: pendulum.DateTime, n: int) -> list[pendulum.DateTime]:
    return [start.add(minutes=i) for i in range(n)]


# --- the table ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("policy", "idle", "running", "holding"),
    [
        ("allow", START, START, START),
        ("skip", START, SKIP, SKIP),
        ("buffer_one", START, BUFFER, SKIP),
        ("buffer_all", START, BUFFER, BUFFER),
        ("cancel_other", START, CANCEL, CANCEL),
    ],
)
def test_each_policy_answers_each_situation(
    policy: str, idle: Action, running: Action, holding: Action
) -> None:
    assert [decide(policy, b) for b in (IDLE, RUNNING, HOLDING)] == [idle, running, holding]


def test_a_held_run_alone_counts_as_unfinished() -> None:
    # a buffered run waiting with nothing active (its release is due): later slots wait
    assert decide("buffer_one", Busy(held=1)) is SKIP
    assert decide("skip", Busy(held=1)) is SKIP


def test_unknown_policies_are_refused_naming_the_allowed_ones() -> None:
    allowed = "'allow', 'skip', 'buffer_one', 'buffer_all', 'cancel_other'"
    with pytest.raises(
        ScheduleError, match=f"unknown overlap policy 'queue': expected one of {allowed}"
    ):
        overlap_policy("queue")
    for kind in (
        lambda: CronSchedule("* * * * *", overlap="queue"),
        lambda: IntervalSchedule(timedelta(minutes=1), overlap="queue"),
        lambda: CronSchedule("* * * * *", overlap=None),  # type: ignore[arg-type]
    ):
        with pytest.raises(ScheduleError, match="expected one of 'allow', 'skip'"):
            kind()
    assert overlap_policy(" Buffer_All ") is Overlap.BUFFER_ALL


# --- a batch of slots -----------------------------------------------------------------


def test_buffer_one_keeps_one_waiting_and_skips_the_rest() -> None:
    decisions, after = arrange("buffer_one", IDLE, minutes(utc(2026, 1, 1), 4))
    assert [d.action for d in decisions] == [START, BUFFER, SKIP, SKIP]
    assert after == Busy(active=1, held=1)


def test_buffer_all_queues_every_slot_behind_a_running_one() -> None:
    decisions, after = arrange("buffer_all", RUNNING, minutes(utc(2026, 1, 1), 3))
    assert [d.action for d in decisions] == [BUFFER] * 3 and after == Busy(active=1, held=3)


def test_skip_starts_only_when_nothing_is_unfinished() -> None:
    assert [d.action for d in arrange("skip", IDLE, minutes(utc(2026, 1, 1), 3))[0]] == [
        START,
        SKIP,
        SKIP,
    ]
    assert [d.action for d in arrange("skip", RUNNING, minutes(utc(2026, 1, 1), 2))[0]] == [
        SKIP,
        SKIP,
    ]


def test_allow_starts_every_slot() -> None:
    decisions, after = arrange("allow", RUNNING, minutes(utc(2026, 1, 1), 3))
    assert [d.action for d in decisions] == [START] * 3 and after == Busy(active=4)


def test_cancel_other_in_a_batch_starts_only_the_last_slot() -> None:
    # Given three slots at once (catch-up) while a run is going
    slots = minutes(utc(2026, 1, 1), 3)
    decisions, after = arrange("cancel_other", RUNNING, slots)
    # Then the earlier two are superseded by the last, which cancels and starts
    assert [d.action for d in decisions] == [SKIP, SKIP, CANCEL]
    assert [d.superseded_by for d in decisions[:2]] == [slots[2], slots[2]]
    assert after == Busy(active=1)
    # and with nothing unfinished, the last one just starts
    assert [d.action for d in arrange("cancel_other", IDLE, slots)[0]][-1] is START


def test_a_buffered_run_starts_when_no_run_is_active() -> None:
    assert may_release(Busy(active=0, held=2))
    assert not may_release(Busy(active=1, held=2))
    assert not may_release(Busy())


# --- catch-up -------------------------------------------------------------------------


def test_catchup_maps_onto_a_window() -> None:
    assert CronSchedule("* * * * *").catch_up == CatchUp(timedelta(0), latest_only=True)
    assert CronSchedule("* * * * *", catchup=True).catch_up == CatchUp(window=None)
    window = timedelta(minutes=5)
    assert CronSchedule("* * * * *", catchup_window=window).catch_up == CatchUp(window)
    assert CronSchedule("* * * * *", catchup_window=window).catch_up.describe() == "within 5m"


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"catchup": True, "catchup_window": timedelta(hours=1)}, "not both"),
        ({"catchup_window": timedelta(seconds=-1)}, "must not be negative"),
        ({"catchup_window": 60}, "must be a datetime.timedelta"),
        ({"catchup": "yes"}, "catchup must be True or False"),
    ],
)
def test_bad_catchup_is_refused(kwargs: dict[str, object], match: str) -> None:
    with pytest.raises(ScheduleError, match=match):
        CronSchedule("* * * * *", **kwargs)  # type: ignore[arg-type]


def test_after_downtime_the_missed_slots_inside_the_window_run_and_the_rest_are_missed() -> None:
    # Given a minutely schedule with a 4 min window, handled up to 10:00:01
    s = CronSchedule("* * * * *", catchup_window=timedelta(minutes=4))
    # When beat comes back at 10:10:30, ten slots later
    plan = plan_slots(s, utc(2026, 1, 5, 10, 0, 1), utc(2026, 1, 5, 10, 10, 30))
    # Then the four youngest run, oldest first, and the six before are missed
    assert plan.run == tuple(minutes(utc(2026, 1, 5, 10, 7), 4))
    assert plan.missed == tuple(minutes(utc(2026, 1, 5, 10, 1), 6))
    assert plan.missed_count == 6 and plan.handled_until == utc(2026, 1, 5, 10, 10, 30)


def test_an_on_time_slot_is_never_missed_even_with_a_zero_window() -> None:
    s = CronSchedule("* * * * *", catchup_window=timedelta(0))
    on_time = plan_slots(s, utc(2026, 1, 5, 9, 59, 59), utc(2026, 1, 5, 10, 0) + ON_TIME)
    assert on_time.run == (utc(2026, 1, 5, 10),) and on_time.missed == ()
    late = plan_slots(s, utc(2026, 1, 5, 9, 59, 59), utc(2026, 1, 5, 10, 0, 11))
    assert late.run == () and late.missed == (utc(2026, 1, 5, 10),)


def test_a_window_longer_than_the_look_back_widens_it() -> None:
    # Given an hourly schedule with a two-day window, beat down for 30 hours
    s = CronSchedule("0 * * * *", catchup_window=timedelta(days=2))
    plan = plan_slots(s, utc(2026, 1, 5, 0, 30), utc(2026, 1, 6, 6, 30))
    # Then all 30 missed hours run, though beat looks back one day by default
    assert len(plan.run) == 30 and plan.run[0] == utc(2026, 1, 5, 1) and plan.missed == ()


def test_a_long_catch_up_goes_on_next_tick_where_it_stopped() -> None:
    s = CronSchedule("* * * * *", catchup_window=timedelta(hours=1))
    first = plan_slots(s, utc(2026, 1, 5, 10), utc(2026, 1, 5, 10, 30, 1), max_runs=20)
    assert first.run == tuple(minutes(utc(2026, 1, 5, 10, 1), 20))
    assert first.handled_until == utc(2026, 1, 5, 10, 20)
    rest = plan_slots(s, first.handled_until, utc(2026, 1, 5, 10, 30, 2), max_runs=20)
    assert rest.run == tuple(minutes(utc(2026, 1, 5, 10, 21), 10))


# --- the dict form --------------------------------------------------------------------


def test_overlap_and_window_survive_the_dict_form() -> None:
    s = IntervalSchedule(timedelta(seconds=2), overlap="skip", catchup_window=timedelta(seconds=90))
    data = s.to_dict()
    assert data["overlap"] == "skip" and data["catchup_window_seconds"] == 90
    back = schedule_from_dict(data)
    assert back == s and back.overlap is Overlap.SKIP
    assert back.catchup_window == timedelta(seconds=90)


def test_a_schedule_stored_before_policies_existed_reads_back_with_the_defaults() -> None:
    # the dict form of an earlier version: no overlap, no window
    old = {
        "type": "cron",
        "cron": "30 9 * * 1-5",
        "timezone": "UTC",
        "start_date": None,
        "end_date": None,
        "parameter_defaults": {},
        "catchup": False,
    }
    s = schedule_from_dict(old)
    assert s.overlap is Overlap.ALLOW and s.catch_up.latest_only
    # and keeps its fingerprint, so beat's bookmark of it stays valid
    assert s.to_dict() == old and schedule_hash(s) == schedule_hash(schedule_from_dict(old))
    with pytest.raises(ScheduleError, match="unknown overlap policy 'later'"):
        schedule_from_dict({**old, "overlap": "later"})
