"""`run`'s supervisor: a worker that keeps dying is restarted ever more slowly, one that ran well at once."""

from __future__ import annotations

import logging
import shutil
import signal
import sys
import time

from exporter.worker.supervisor import MAX_RESTART_DELAY, Restarting
from tests.conftest import ManualClock


def _exit_and_restart(child: Restarting, clock: ManualClock, ran: float = 0.0) -> float:
    """Let the running process end after `ran` seconds; return the delay before its restart."""
    clock.now += ran
    assert child.process is not None
    child.process.wait(10)
    child.check()  # notices the exit
    assert child.process is None and child.restart_at is not None
    delay = child.restart_at - clock.now
    clock.now += delay - 0.1
    child.check()  # not yet
    assert child.process is None
    clock.now += 0.1
    child.check()  # now
    assert child.process is not None
    return delay


def test_a_crashing_worker_is_restarted_with_exponential_backoff(caplog):
    caplog.set_level(logging.INFO, logger="exporter.worker.supervisor")
    clock = ManualClock(1000.0)
    child = Restarting("worker", [shutil.which("false") or "false"], clock=clock)
    try:
        delays = [_exit_and_restart(child, clock) for _ in range(8)]
        assert delays == [1, 2, 4, 8, 16, 32, 60, 60]
        # a worker that ran longer than the longest delay failed anew: back to a quick restart
        assert _exit_and_restart(child, clock, ran=MAX_RESTART_DELAY) == 1
    finally:
        child.stop()
    exits = [r.getMessage() for r in caplog.records if "exited with" in r.getMessage()]
    assert len(exits) == 9 and exits[0].endswith("exited with exit code 1 after 0 s; restarting in 1 s")
    assert sum("worker restarted (pid" in r.getMessage() for r in caplog.records) == 9


BEATING = "from exporter.worker.supervisor import beat\nimport time\nwhile True:\n    beat()\n    time.sleep(0.2)\n"


def test_a_hung_worker_is_killed_and_restarted_and_a_working_one_is_left_alone(caplog):
    """A hung leader keeps the ingest lock: only a kill lets it (or another replica) ingest again."""
    caplog.set_level(logging.INFO, logger="exporter.worker.supervisor")
    hung = Restarting("worker", [sys.executable, "-c", "import time; time.sleep(120)"], stale_after=1.0)
    working = Restarting("worker", [sys.executable, "-c", BEATING], stale_after=1.0)
    try:
        first = hung.process
        deadline = time.monotonic() + 20
        while hung.process is first and time.monotonic() < deadline:
            time.sleep(0.2)
            hung.check()
            working.check()
        assert hung.process is None and first is not None and first.returncode == -signal.SIGKILL
        assert working.process is not None and working.process.poll() is None  # beat all along
        time.sleep(hung.restart_at - hung.clock() + 0.1)
        hung.check()
        assert hung.process is not None and hung.process is not first  # restarted, with a fresh heartbeat
    finally:
        hung.stop()
        working.stop()
    assert hung.heartbeat is not None and not hung.heartbeat.exists()  # the supervisor's file is removed
    assert any("has not reported for" in r.getMessage() and "killing it" in r.getMessage() for r in caplog.records)
