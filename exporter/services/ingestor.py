"""The fetch loop over mailcow's log lists: which list is due, how often each is read, what a failure costs.

Each list gets its own interval, adapted to how fast it fills (exporter/services/ingest.py reads and
stores one list). Requests stay sequential: mailcow's load matters more than our latency. A raw-only
list mailcow answers with an error (or a dict, as older mailcows do for a list they lack) is skipped
with the reason recorded and retried after a growing pause, never in a tight loop; a failure of one of
the three lists mail flow is built from fails the round, as before.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

from psycopg_pool import ConnectionPool

from exporter.mailcow.client import MailcowClient
from exporter.mailcow.errors import MailcowError
from exporter.services.ingest import (
    ALL_SOURCES,
    DELIVERIES,
    MIN_INTERVAL,
    RAW_ONLY,
    SOURCES,
    FetchResult,
    fetch_source,
)
from exporter.services.raw_logs import RawLogs
from exporter.store import ingest as store
from exporter.store import status as status_store

log = logging.getLogger(__name__)

MAX_BACKOFF = 600.0  # a list that keeps failing is tried at least every ten minutes
MIN_WAIT = 0.5


@dataclass
class SourceState:
    """What the fetch loop learns about one source between runs (not needed for correctness)."""

    first_count: int
    max_interval: float
    last_fetch: float | None = None
    rate: float = 0.0
    cap: int = 0
    interval: float = 60.0
    failures: int = 0


class Ingestor:
    """Fetches every source, adapting the interval to how fast mailcow's lists fill up."""

    def __init__(
        self,
        client: MailcowClient,
        pool: ConnectionPool,
        counts: Mapping[str, int],
        max_interval: float,
        clock: Callable[[], float] = time.monotonic,
        raw: RawLogs | None = None,
    ) -> None:
        self.client = client
        self.pool = pool
        self.clock = clock
        self.raw = raw
        raw_only = [name for name in RAW_ONLY if (raw is not None and name in raw.services) or name == DELIVERIES]
        raw_interval = raw.interval if raw is not None else max_interval
        raw_count = raw.count if raw is not None else 1000
        self.counts = {**dict(counts), **dict.fromkeys(raw_only, raw_count)}
        self.state = {
            name: SourceState(
                first_count=self.counts[name],
                max_interval=max_interval if name in SOURCES else raw_interval,
                cap=ALL_SOURCES[name].cap,
                interval=max_interval if name in SOURCES else raw_interval,
            )
            for name in [*SOURCES, *raw_only]
        }

    def fetch_all(self, due_only: bool = False) -> dict[str, FetchResult]:
        """One round over the sources (only those due, with `due_only`); raises after trying every
        source if one of mail flow's lists failed."""
        results: dict[str, FetchResult] = {}
        errors: list[str] = []
        api_error: str | None = None
        for name, state in self.state.items():
            now = self.clock()
            if due_only and not self._due(state, now):
                continue
            try:
                result = fetch_source(self.client, self.pool, name, state.first_count, self.raw)
            except Exception as exc:
                self._failed(name, state, now, exc)
                if name in SOURCES:
                    errors.append(f"{name}: {exc}")
                    if isinstance(exc, MailcowError):
                        api_error = api_error or f"{name}: {exc}"
                continue
            results[name] = result
            self._adapt(name, state, result, now)
        status_store.record_api(self.pool, "logs", datetime.now(UTC), api_error)
        if errors:
            raise RuntimeError("; ".join(errors))
        return results

    @staticmethod
    def _due(state: SourceState, now: float) -> bool:
        return state.last_fetch is None or now - state.last_fetch >= state.interval - 0.05

    def _failed(self, name: str, state: SourceState, now: float, exc: Exception) -> None:
        """Record why, and wait longer after each failure in a row (up to MAX_BACKOFF)."""
        state.failures += 1
        state.last_fetch = now
        state.interval = min(MAX_BACKOFF, state.max_interval * 2 ** (state.failures - 1))
        reason = str(exc) if name in SOURCES else f"skipped: {exc} (next try in {state.interval:.0f} s)"
        store.record_fetch_error(self.pool, name, datetime.now(UTC), reason)
        if name not in SOURCES:
            log.warning("%s: %s", name, reason)

    def _adapt(self, name: str, state: SourceState, result: FetchResult, now: float) -> None:
        """Fetch often enough that the list never rotates between two fetches (with 3x margin)."""
        state.failures = 0
        if result.list_length and result.list_length > state.cap:
            state.cap = result.list_length
        rates = [result.span_rate or 0.0]
        if state.last_fetch is not None and now > state.last_fetch:
            rates.append(result.inserted / (now - state.last_fetch))
        state.rate = max(rates)  # the snapshot's own density tells the rate even on the first fetch
        state.last_fetch = now
        if result.gap:
            state.interval = MIN_INTERVAL
        elif state.rate > 0:
            state.interval = max(MIN_INTERVAL, min(state.max_interval, state.cap / state.rate / 3))
        else:
            state.interval = state.max_interval
        # ask for about twice what should have arrived: small polls when quiet, one request when busy
        expected = int(state.rate * state.interval * 2) + 100
        state.first_count = min(max(expected, 100), max(self.counts[name], min(expected, state.cap)))
        store.set_interval(self.pool, name, state.interval, state.rate)

    def next_delay(self) -> float:
        """The shortest interval of any source."""
        return min(s.interval for s in self.state.values())

    def due_in(self) -> float:
        """Seconds until the next source is due (at least MIN_WAIT: the loop never spins)."""
        now = self.clock()
        waits = [0.0 if s.last_fetch is None else s.last_fetch + s.interval - now for s in self.state.values()]
        return max(MIN_WAIT, min(waits))
