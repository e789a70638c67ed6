"""Turns stored log lines into messages: runs the store's set-based correlation in batches."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from datetime import timedelta

from psycopg_pool import ConnectionPool

from exporter.store.correlation import batch, recompute

log = logging.getLogger(__name__)


def correlate(pool: ConnectionPool, local_domains: Sequence[str], domain_labels: bool = False) -> dict[str, int]:
    """Correlate everything not yet correlated, one transaction per batch; return totals.

    `domain_labels` adds a per-domain label to the message counters (METRICS_DOMAIN_LABELS)."""
    totals = {"lines": 0, "messages": 0}
    while True:
        with pool.connection() as conn, conn.transaction():
            result = batch.run_batch(conn, local_domains, domain_labels)
        totals["lines"] += result.lines
        totals["messages"] += result.messages
        if not result.more:
            return totals


def expire(pool: ConnectionPool, horizon: timedelta, local_domains: Sequence[str], domain_labels: bool = False) -> int:
    with pool.connection() as conn, conn.transaction():
        return recompute.expire(conn, horizon, local_domains, domain_labels)


def refresh_incomplete(pool: ConnectionPool, local_domains: Sequence[str], domain_labels: bool = False) -> int:
    with pool.connection() as conn, conn.transaction():
        return recompute.refresh_incomplete(conn, local_domains, domain_labels)


class Background:
    """Runs `job` (a correlation pass) in its own thread each time it is poked.

    Fetching and parsing are Python work, correlation is PostgreSQL work: in two threads they use
    both cores, and a busy fetch loop never waits for correlation. Pokes that arrive during a run
    are served by one more run; `idle()` waits until everything poked so far has been handled.
    """

    def __init__(self, job: Callable[[], object]) -> None:
        self._job = job
        self._changed = threading.Condition()
        self._poked = self._done = 0
        self._stopping = False
        self.error: Exception | None = None  # the last run's exception, if any
        self._thread = threading.Thread(target=self._loop, name="correlation", daemon=True)

    def start(self) -> Background:
        self._thread.start()
        return self

    def poke(self) -> None:
        with self._changed:
            self._poked += 1
            self._changed.notify_all()

    def idle(self, timeout: float | None = None) -> bool:
        """Wait until every poke so far has been followed by a finished run; False on timeout."""
        with self._changed:
            target = self._poked
            return self._changed.wait_for(lambda: self._done >= target, timeout)

    def stop(self) -> None:
        with self._changed:
            self._stopping = True
            self._changed.notify_all()
        self._thread.join()

    def _loop(self) -> None:
        while True:
            with self._changed:
                self._changed.wait_for(lambda: self._stopping or self._poked > self._done)
                if self._stopping:
                    return
                target = self._poked
            try:
                self._job()
                self.error = None
            except Exception as exc:  # the worker's jobs record their own failures; keep serving pokes
                log.exception("correlation run failed")
                self.error = exc
            with self._changed:
                self._done = target
                self._changed.notify_all()
