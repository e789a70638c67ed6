"""`run`: the web server and the worker as child processes, and a worker that dies is restarted.

The web server is gunicorn, which keeps its own workers alive; its exit ends `run` with its exit
code, so a bad bind fails loudly and a container's restart policy applies. The worker is restarted
after every exit, the delay doubling from RESTART_DELAY to MAX_RESTART_DELAY and back to the start
once a worker has run for MAX_RESTART_DELAY; each exit and restart is logged. SIGTERM or SIGINT
stop both children, then `run`.
"""

from __future__ import annotations

import logging
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Sequence

log = logging.getLogger(__name__)

RESTART_DELAY = 1.0
MAX_RESTART_DELAY = 60.0


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

    def __init__(self, name: str, argv: Sequence[str], clock: Callable[[], float] = time.monotonic) -> None:
        self.name = name
        self.argv = list(argv)
        self.clock = clock
        self.delay = RESTART_DELAY  # before the next restart
        self.restart_at: float | None = None  # while no process runs
        self.process: subprocess.Popen | None = None
        self._start()

    def _start(self) -> subprocess.Popen:
        self.process = subprocess.Popen(self.argv)
        self.started = self.clock()
        self.restart_at = None
        return self.process

    def check(self) -> None:
        """Notice an exit (and schedule the restart) or start the process again when it is time."""
        now = self.clock()
        if self.process is None:
            if self.restart_at is not None and now >= self.restart_at:
                log.warning("%s restarted (pid %d)", self.name, self._start().pid)
            return
        code = self.process.poll()
        if code is None:
            return
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


def supervise(web: Sequence[str], worker: Sequence[str], stop: threading.Event, poll: float = 0.5) -> int:
    """Run both commands until `stop` is set (return 0) or the web server exits (return its code)."""
    server = subprocess.Popen(list(web))
    jobs = Restarting("worker", worker)
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
