"""Capturing a task run's printed and logged lines (orchestrator.logcapture), in
process: what is captured, by which capture, and what is left as it was."""

from __future__ import annotations

import logging
import sys
import threading
from collections.abc import Iterator

import pytest

from orchestrator import logcapture
from orchestrator.signals import SKIP

log = logging.getLogger("tests.unit.logcapture")


@pytest.fixture(autouse=True)
def warnings_reach_root() -> Iterator[None]:
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.WARNING)
    yield
    root.setLevel(level)


def test_prints_and_records_are_captured_in_order_and_still_printed(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with logcapture.capture() as cap:
        print("one")
        log.warning("two %s", "args")
        print("three", file=sys.stderr)
        sys.stdout.write("par")
        sys.stdout.write("tial\nlast without newline")
    lines = cap.lines()
    assert [(ln.level, ln.logger, ln.message) for ln in lines] == [
        ("STDOUT", None, "one"),
        ("WARNING", "tests.unit.logcapture", "two args"),
        ("STDERR", None, "three"),
        ("STDOUT", None, "partial"),
        ("STDOUT", None, "last without newline"),
    ]
    out, err = capsys.readouterr()
    assert "one\n" in out and "partial\n" in out and "three\n" in err


def test_streams_and_handlers_are_restored() -> None:
    before = (sys.stdout, sys.stderr, list(logging.getLogger().handlers))
    with logcapture.capture():
        assert sys.stdout is not before[0]
    assert (sys.stdout, sys.stderr, list(logging.getLogger().handlers)) == before


def test_only_the_last_lines_are_kept_with_a_note() -> None:
    with logcapture.capture(limit=5) as cap:
        for i in range(12):
            print(f"line {i}")
    lines = cap.lines()
    assert [ln.message for ln in lines[1:]] == [f"line {i}" for i in range(7, 12)]
    assert lines[0].message.startswith("7 earlier lines were dropped")


def test_long_lines_are_cut() -> None:
    with logcapture.capture() as cap:
        print("x" * (logcapture.MAX_LINE_CHARS + 50))
    [line] = cap.lines()
    assert line.message.endswith("(50 more characters cut)")


def test_a_thread_the_task_started_is_captured_but_not_the_workers_machinery() -> None:
    # Given the only capture of the process, in this thread
    with logcapture.capture() as cap:
        # When a thread the task started logs, and worker machinery logs elsewhere
        def helper() -> None:
            log.warning("from the task's helper thread")
            logging.getLogger("celery.worker.strategy").warning("Task x received")

        t = threading.Thread(target=helper)
        t.start()
        t.join()
    # Then only the task's line is captured
    assert [ln.message for ln in cap.lines()] == ["from the task's helper thread"]


def test_traced_records_the_traceback_but_not_signals() -> None:
    def boom() -> None:
        raise ValueError("bad value")

    def skip() -> None:
        raise SKIP("nothing to do")

    with logcapture.capture() as cap:
        with pytest.raises(ValueError):
            logcapture.traced(boom)
        with pytest.raises(SKIP):
            logcapture.traced(skip)
        assert logcapture.traced(lambda: 3) == 3
    [line] = cap.lines()
    assert line.level == "ERROR" and line.logger == "orchestrator.task"
    assert line.message.startswith("Traceback (most recent call last)")
    assert "in boom" in line.message and line.message.endswith("ValueError: bad value")
    assert "traced" not in line.message  # our own frame is left out


def test_a_second_capture_in_one_thread_is_refused() -> None:
    with logcapture.capture(), pytest.raises(RuntimeError), logcapture.capture():
        pass
