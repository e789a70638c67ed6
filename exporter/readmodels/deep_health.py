"""`/api/health?deep=1`: the plain verdict plus one timed check per dependency, for signed-in callers.

Each check says what failed without secrets: the database's round trip, whether ingestion and correlation
keep up (the figures `assess` already read), whether mailcow answers one cheap read (its error class, never
the URL or a key), and the free space where the embedded database lives. A failed check makes a healthy
verdict `degraded`; only a database that does not answer makes it `unhealthy` (HTTP 503), as without `deep`.
Every check is bounded: the pool's 3 s for the database, the live client's short timeout for mailcow.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from psycopg_pool import ConnectionPool

from exporter import store
from exporter.config import Config
from exporter.mailcow.errors import MailcowError
from exporter.mailcow.live import LiveMailcow
from exporter.readmodels.health import Health

MIN_FREE_BYTES = 1 << 30  # below 1 GiB free the embedded database is about to stop accepting writes
MIN_FREE_SHARE = 0.05  # or below 5 % of the disk


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str
    duration_ms: float

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "status": "ok" if self.ok else "failed",
            "detail": self.detail,
            "duration_ms": self.duration_ms,
        }


def _timed(name: str, run: Callable[[], tuple[bool, str]]) -> Check:
    start = time.perf_counter()
    ok, detail = run()
    return Check(name, ok, detail, round((time.perf_counter() - start) * 1000, 1))


def checks(pool: ConnectionPool, config: Config, verdict: Health, live: LiveMailcow) -> list[Check]:
    """The four checks, in the order a reader looks for the cause: database, workers, mailcow, disk."""
    return [
        _timed("database", lambda: (True, "answers") if store.ping(pool) else (False, "does not answer")),
        _timed("worker_lag", lambda: _worker_lag(verdict)),
        _timed("mailcow", lambda: _mailcow(config, live)),
        _timed("disk", lambda: _disk(config)),
    ]


def _worker_lag(verdict: Health) -> tuple[bool, str]:
    """Each source's and correlation's last success age against the staleness limit `assess` applies."""
    if verdict.ingestion is None:
        return False, "unknown: the database does not answer"
    limit = verdict.ingestion["stale_after_seconds"]
    ages = {name: row["last_success_age_seconds"] for name, row in verdict.ingestion["sources"].items()}
    ages["correlation"] = verdict.ingestion["correlation"]["last_success_age_seconds"]
    late = [name for name, age in ages.items() if age is None or age > limit]
    shown = ", ".join(f"{name} {'never' if age is None else f'{age:.0f} s'}" for name, age in ages.items())
    verdict_text = f"behind: {', '.join(late)}" if late else "keeping up"
    return not late, f"{verdict_text} (last success: {shown}; stale after {limit:g} s)"


def _mailcow(config: Config, live: LiveMailcow) -> tuple[bool, str]:
    if not config.mailcow_url:
        return False, "MAILCOW_URL is not set"
    try:
        version = live.probe()
    except MailcowError as exc:
        return False, f"not reachable ({type(exc).__name__})"
    return True, f"answers (version {version})" if version else "answers"


def _disk(config: Config) -> tuple[bool, str]:
    """Free space of the embedded database's directory (or its nearest existing parent before first start)."""
    if config.database_url:
        return True, "not measured: DATABASE_URL names a database this process does not store"
    path = Path(config.embedded_db_dir)
    while not path.exists() and path != path.parent:
        path = path.parent
    usage = shutil.disk_usage(path)
    share = usage.free / usage.total if usage.total else 0.0
    detail = f"{usage.free / (1 << 30):.1f} GiB free of {usage.total / (1 << 30):.1f} GiB ({share:.0%})"
    low = usage.free < MIN_FREE_BYTES or share < MIN_FREE_SHARE
    return not low, f"low: {detail}" if low else detail


def deepened(verdict: Health, found: list[Check]) -> Health:
    """The verdict with the failed checks' reasons: healthy becomes degraded, unhealthy stays unhealthy.
    Stale workers and a database that was already down are among the verdict's reasons: not repeated."""
    known = {"worker_lag"} if verdict.connected else {"worker_lag", "database"}
    reasons = [f"{check.name}: {check.detail}" for check in found if not check.ok and check.name not in known]
    if not reasons:
        return verdict
    status = verdict.status if verdict.status == "unhealthy" else "degraded"
    return Health(status, verdict.reasons + reasons, verdict.ingestion)
