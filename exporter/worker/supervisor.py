"""`run`: the web server and the worker as child processes, and a worker that dies is restarted.

The web server is gunicorn, which keeps its own workers alive; its exit ends `run` with its exit
code, so a bad bind fails loudly and a container's restart policy applies. The worker is restarted
after every exit, the delay doubling from RESTART_DELAY to MAX_RESTART_DELAY and back to the start
once a worker has run for MAX_RESTART_DELAY; each exit and restart is logged. A worker that hangs
(it touches the file named by HEARTBEAT_ENV at every round of its loop) is killed once the file is
older than `stale_after`, then restarted the same way: a hung leader would otherwise keep the ingest
lock, and no other replica could take over. SIGTERM or SIGINT stop both children, then `run`.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path

log = logging.getLogger(__name__)

RESTART_DELAY = 1.0
MAX_RESTART_DELAY = 60.0
HEARTBEAT_ENV = "MAILCOW_GRAFANA_HEARTBEAT"  # the file a supervised worker touches at every round


def beat() -> None:
    """Tell the supervisor (if any) that this process is not hung."""
    path = os.environ.get(HEARTBEAT_ENV)
    if path:
        with contextlib.suppress(OSError):
            Path(path).touch()


def stop_process(process: subprocess.Popen) -> None:
    """SIGTERM, then SIGKILL if it has not exited within 15 s."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def describe_exit(code: int) -> str:
    return f"signal {signal.Signals(-code).name}" if code < 0 else f"exit code {code}"


class Restarting:
    """A child process kept running: started again after each exit, with exponential backoff."""

    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        clock: Callable[[], float] = time.monotonic,
        stale_after: float | None = None,
    ) -> None:
        self.name = name
        self.argv = list(argv)
        self.clock = clock
        self.stale_after = stale_after  # seconds without a heartbeat that make a running process hung
        self.heartbeat: Path | None = None
        if stale_after is not None:
            handle, path = tempfile.mkstemp(prefix=f"mailcow-grafana-{name}-", suffix=".heartbeat")
            os.close(handle)
            self.heartbeat = Path(path)
        self.delay = RESTART_DELAY  # before the next restart
        self.restart_at: float | None = None  # while no process runs
        self.process: subprocess.Popen | None = None
        self._start()

    def _start(self) -> subprocess.Popen:
        env = None
        if self.heartbeat is not None:
            self.heartbeat.touch()  # a fresh process has a full `stale_after` to start its loop
            env = {**os.environ, HEARTBEAT_ENV: str(self.heartbeat)}
        self.process = subprocess.Popen(self.argv, env=env)
        self.started = self.clock()
        self.restart_at = None
        return self.process

    def _hung(self) -> bool:
        if self.heartbeat is None or self.stale_after is None:
            return False
        try:
            silent = time.time() - self.heartbeat.stat().st_mtime
        except OSError:
            return False
        if silent <= self.stale_after:
            return False
        assert self.process is not None
        log.error("%s (pid %d) has not reported for %.0f s: killing it", self.name, self.process.pid, silent)
        self.process.kill()
        self.process.wait()
        return True

    def check(self) -> None:
        """Notice an exit (and schedule the restart) or start the process again when it is time."""
        now = self.clock()
        if self.process is None:
            if self.restart_at is not None and now >= self.restart_at:
                log.warning("%s restarted (pid %d)", self.name, self._start().pid)
            return
        code = self.process.poll()
        if code is None and not self._hung():
            return
        code = self.process.poll()
        assert code is not None
        ran = now - self.started
        if ran >= MAX_RESTART_DELAY:  # it had been running fine: this is a new failure, not a crash loop
            self.delay = RESTART_DELAY
        log.error(
            "%s (pid %d) exited with %s after %.0f s; restarting in %.0f s",
            self.name,
            self.process.pid,
            describe_exit(code),
            ran,
            self.delay,
        )
        self.process = None
        self.restart_at = now + self.delay
        self.delay = min(self.delay * 2, MAX_RESTART_DELAY)

    def stop(self) -> None:
        if self.process is not None:
            stop_process(self.process)
        if self.heartbeat is not None:
            self.heartbeat.unlink(missing_ok=True)


def supervise(
    web: Sequence[str], worker: Sequence[str], stop: threading.Event, stale_after: float, poll: float = 0.5
) -> int:
    """Run both commands until `stop` is set (return 0) or the web server exits (return its code); a worker
    silent for `stale_after` seconds is killed and restarted."""
    server = subprocess.Popen(list(web))
    jobs = Restarting("worker", worker, stale_after=stale_after)
    try:
        while not stop.wait(poll):
            code = server.poll()
            if code is not None:
                log.error("the web server (pid %d) exited with %s: stopping", server.pid, describe_exit(code))
                return code if code >= 0 else 128 - code  # a shell's convention for "killed by a signal"
            jobs.check()
        return 0
    finally:
        jobs.stop()
        stop_process(server)
