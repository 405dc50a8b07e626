"""`manage.py serve`'s supervision: the restart backoff, and a supervisor that never gives up
on a child (real child processes, tiny delays)."""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from apps.core.management.commands.serve import Backoff, Child, Command


# --- The backoff policy -------------------------------------------------------------------
def test_quick_deaths_double_the_delay_up_to_the_cap() -> None:
    # given
    backoff = Backoff(first=0.5, cap=10, healthy_after=30)

    # when a child dies again and again within a second of each start
    delays = [backoff.failed(ran_for=1.0) for _ in range(8)]

    # then
    assert delays == [0.5, 1, 2, 4, 8, 10, 10, 10]


def test_a_child_that_ran_well_starts_again_from_the_first_delay() -> None:
    # given a child that failed quickly three times
    backoff = Backoff(first=0.5, cap=10, healthy_after=30)
    for _ in range(3):
        backoff.failed(ran_for=0.2)

    # when it then dies after a long run
    delay = backoff.failed(ran_for=3600)

    # then
    assert delay == 0.5
    assert backoff.failures == 1


def test_running_long_enough_ends_a_run_of_failures_once() -> None:
    # given
    backoff = Backoff(first=0.5, cap=10, healthy_after=30)
    backoff.failed(ran_for=0.2)
    backoff.failed(ran_for=0.2)

    # when / then: not yet, then recovered (once), then nothing to report
    assert backoff.running(ran_for=29) is False
    assert backoff.running(ran_for=30) is True
    assert backoff.running(ran_for=31) is False
    assert backoff.failed(ran_for=31) == 0.5


def test_crash_looping_after_so_many_deaths_in_a_row() -> None:
    # given
    backoff = Backoff(crash_loop_after=3)

    # when / then
    backoff.failed(ran_for=0.1)
    backoff.failed(ran_for=0.1)
    assert not backoff.crash_looping
    backoff.failed(ran_for=0.1)
    assert backoff.crash_looping


# --- The supervisor -----------------------------------------------------------------------
def _supervise_for(
    seconds: float, children: list[Child], *, during: Callable[[], None] | None = None
) -> Command:
    """Run the supervisor in this thread (children get PDEATHSIG from it) for `seconds`."""
    command = Command()
    command.stopping = False

    def stop_later() -> None:
        if during is not None:
            during()
        time.sleep(seconds)
        command.stopping = True

    helper = threading.Thread(target=stop_later)
    helper.start()
    try:
        command._supervise(children)
    finally:
        helper.join()
        command._stop(children)
    return command


def _python(code: str) -> list[str]:
    return [sys.executable, "-c", code]


def test_a_child_that_keeps_dying_is_reported_loudly_and_still_restarted(
    caplog: pytest.LogCaptureFixture, tmp_path: Path
) -> None:
    # given a child that fails at once, with its reason in its own log, and a steady one
    log = tmp_path / "flaky.log"
    log.write_text("starting\nFATAL: cannot open the append-only file\n")
    flaky = Child(
        "flaky",
        _python("import sys; sys.exit(3)"),
        log_file=log,
        backoff=Backoff(first=0.01, cap=0.05, healthy_after=5, crash_loop_after=3),
    )
    steady = Child("steady", _python("import time; time.sleep(60)"))
    flaky.start()
    steady.start()
    steady_pid = steady.process.pid if steady.process else None

    # when supervised for a while
    with caplog.at_level(logging.WARNING):
        _supervise_for(2.0, [flaky, steady])

    # then the flaky one was restarted over and over (no last attempt), said loudly, with the
    # reason from its log; the steady one was left alone
    assert flaky.restarts >= 5
    errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert errors, "a crash loop must be reported as an error"
    assert "flaky exited with code 3" in errors[-1]
    assert "died" in errors[-1] and "in a row" in errors[-1]
    assert "cannot open the append-only file" in errors[-1]
    assert steady.restarts == 0 and steady.process and steady.process.pid == steady_pid


def test_a_killed_child_comes_back_after_its_delay_and_recovery_is_reported(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # given a running child
    child = Child(
        "sleeper",
        _python("import time; time.sleep(60)"),
        backoff=Backoff(first=0.2, cap=1, healthy_after=0.5),
    )
    child.start()
    first = child.process.pid if child.process else 0
    killed_at: list[float] = []

    def kill() -> None:
        time.sleep(0.3)
        killed_at.append(time.monotonic())
        os.kill(first, signal.SIGKILL)

    # when it is killed (-9)
    with caplog.at_level(logging.WARNING):
        _supervise_for(1.5, [child], during=kill)

    # then it was started again, once, after its delay, and its recovery was announced
    messages = [r.getMessage() for r in caplog.records]
    assert child.restarts == 1
    assert child.process is not None and child.process.pid != first
    assert child.started_at - killed_at[0] >= 0.2
    assert any("sleeper was killed by SIGKILL" in m and "in 0.2 s" in m for m in messages)
    assert any("sleeper has been up" in m and "recovered" in m for m in messages)


def test_nothing_is_restarted_once_serve_is_stopping() -> None:
    # given a child that exits at once
    child = Child("short", _python("pass"), backoff=Backoff(first=0.01))
    child.start()
    assert child.process is not None
    child.process.wait()
    command = Command()
    command.stopping = True

    # when
    command._supervise([child])

    # then
    assert child.restarts == 0


def test_stopping_leaves_nothing_a_child_forked_behind(tmp_path: Path) -> None:
    # given a child that forked a worker which outlives it (as Kamailio's workers outlive a
    # main process killed while it starts)
    pid_file = tmp_path / "worker.pid"
    child = Child("forker", ["sh", "-c", f"sleep 300 & echo $! > {pid_file}; wait"])
    child.start()
    deadline = time.monotonic() + 5
    while not (pid_file.exists() and pid_file.read_text().strip()):
        assert time.monotonic() < deadline, "the worker did not start"
        time.sleep(0.02)
    worker = int(pid_file.read_text())

    # when serve stops its children
    Command()._stop([child])

    # then the worker is gone too
    deadline = time.monotonic() + 5
    while _alive(worker):
        assert time.monotonic() < deadline, "the forked worker was left running"
        time.sleep(0.02)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie waiting for its parent (init here) to reap it is gone as far as anyone cares.
    return Path(f"/proc/{pid}/stat").read_text().split(") ")[1][0] != "Z"
