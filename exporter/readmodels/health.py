"""Whether the service does its job, for `/api/health` and `/api/settings/health`.

Probes read the HTTP status: 200 while the database answers (the process is alive and can serve),
503 when it does not. `status` tells more: `degraded`, with `reasons`, when ingestion is not keeping
up although the web side works: no worker holds the ingest lock, a source has not been fetched
successfully for STALE_AFTER_INTERVALS fetch intervals, correlation has not succeeded for as long,
or most items of a source's last fetch could not be parsed. The reasons name no error text: the
endpoint is public; `/api/settings/info` has the details. `health` and `settings_health` are the
answers of those two endpoints (seed 002).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import psycopg
from psycopg_pool import ConnectionPool

from exporter import __version__, store
from exporter.config import AUTH_OFF_WARNING, Config
from exporter.config_values import mask_url
from exporter.readmodels.format import iso
from exporter.services.ingest import SOURCES
from exporter.store import health as health_store
from exporter.store.correlation.status import RecentActivity

STALE_AFTER_INTERVALS = 3  # ingestion is stale when its last success is older than this many FETCH_INTERVALs
CORRELATION_JOB = "complete_correlations"


@dataclass
class Health:
    status: str  # healthy | degraded | unhealthy
    reasons: list[str]
    ingestion: dict[str, Any] | None  # the figures the verdict is based on (None: database down)

    @property
    def connected(self) -> bool:
        return self.status != "unhealthy"

    @property
    def http_status(self) -> int:
        return 200 if self.connected else 503


def assess(pool: ConnectionPool, config: Config) -> Health:
    down = Health("unhealthy", ["the database does not answer"], None)
    if not store.ping(pool):
        return down
    try:
        facts = health_store.ingest_facts(pool, SOURCES, [CORRELATION_JOB])
    except psycopg.Error:  # it went away between the two reads
        return down
    limit = STALE_AFTER_INTERVALS * config.fetch_interval
    reasons = [] if facts.leader else ["no worker holds the ingest lock: is the worker running?"]
    for source in SOURCES:
        row = facts.sources[source]
        reasons += _staleness(source, "fetch", row.last_success_age_seconds, limit)
        fetched, unparsed = row.last_fetched or 0, row.last_unparsed or 0
        if unparsed * 2 > fetched > 0:
            reasons.append(f"{source}: {unparsed} of the {fetched} items of the last fetch could not be parsed")
    correlation_age = facts.job_ages[CORRELATION_JOB]
    reasons += _staleness("correlation", "run", correlation_age, limit)
    ingestion = {
        "leader": facts.leader,
        "stale_after_seconds": limit,
        "sources": {source: _rounded(facts.sources[source]) for source in SOURCES},
        "correlation": {"last_success_age_seconds": _round(correlation_age)},
    }
    return Health("degraded" if reasons else "healthy", reasons, ingestion)


def _staleness(what: str, action: str, age: float | None, limit: float) -> list[str]:
    if age is None:
        return [f"{what}: no successful {action} yet"]
    if age > limit:
        return [f"{what}: no successful {action} for {age:.0f} s (stale after {limit:g} s)"]
    return []


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 1)


def _rounded(row: health_store.SourceFacts) -> dict[str, Any]:
    return {
        "last_success_age_seconds": _round(row.last_success_age_seconds),
        "newest_line_age_seconds": _round(row.newest_line_age_seconds),
        "last_fetched": row.last_fetched,
        "last_unparsed": row.last_unparsed,
        "unparsed_total": row.unparsed_total,
    }


def health(verdict: Health, config: Config) -> dict[str, Any]:
    """`/api/health`: the verdict, the ingestion figures, and the settings a probe may want to see."""
    return {
        "status": verdict.status,
        "database": "connected" if verdict.connected else "disconnected",
        "reasons": verdict.reasons,
        "ingestion": verdict.ingestion,
        "version": __version__,
        "config": {
            "fetch_interval": config.fetch_interval,
            "retention_days": config.retention_days,
            "mailcow_url": mask_url(config.mailcow_url),
            "blacklist_enabled": False,
            "auth_enabled": config.auth_enabled,
        },
        "warnings": [AUTH_OFF_WARNING] if config.auth_opt_out else [],
    }


def public_health(verdict: Health) -> dict[str, Any]:
    """`/api/health` for anonymous callers while auth is on: what a load balancer needs, nothing that
    describes the configuration (no reasons, URLs, domains, version or settings)."""
    return {"status": verdict.status, "database": "connected" if verdict.connected else "disconnected"}


def settings_health(verdict: Health, elapsed_ms: float, activity: RecentActivity | None) -> dict[str, Any]:
    """`/api/settings/health`: the verdict, how long judging took, the last five minutes' activity."""
    return {
        "status": verdict.status,
        "reasons": verdict.reasons,
        "timestamp": iso(datetime.now(UTC)),
        "database": {
            "status": "connected" if verdict.connected else "disconnected",
            "response_time_ms": elapsed_ms,
        },
        "recent_activity": {"last_5_minutes": _activity(activity) if activity is not None else None},
    }


def _activity(counts: RecentActivity) -> dict[str, int]:
    return {
        "postfix_imported": counts.postfix_imported,
        "rspamd_imported": counts.rspamd_imported,
        "correlations_created": counts.correlations_created,
    }
