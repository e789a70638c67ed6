"""This service's own state: log ingestion per source, gaps, correlation, background jobs and
mailcow's API reachability, as `/api/info` and `/api/settings/info` show them (seed 002) and as the
Grafana service tables and annotations do."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

from psycopg_pool import ConnectionPool

from exporter import __version__
from exporter.config import Config
from exporter.config_values import mask_url
from exporter.readmodels.args import Args
from exporter.readmodels.format import bracketed, iso, ms, number
from exporter.store import grafana as store
from exporter.store import ingest as ingest_store
from exporter.store import jobs as job_store
from exporter.store import status as status_store
from exporter.store.correlation.status import CorrelationStatus, IncompleteMessage
from exporter.store.ingest import Gap, IngestStatus
from exporter.store.jobs import JobStatus


def info(config: Config, sources: list[IngestStatus], jobs: list[JobStatus]) -> dict[str, Any]:
    """`/api/info`: application information plus what ingestion and the background jobs are doing."""
    return {
        "name": config.app_title,
        "version": __version__,
        "mailcow_url": mask_url(config.mailcow_url),
        "local_domains": config.local_domains,
        "fetch_interval": config.fetch_interval,
        "retention_days": config.retention_days,
        "timezone": config.timezone,
        "app_title": config.app_title,
        "app_logo_url": "",
        "blacklist_count": 0,
        "auth_enabled": config.auth_enabled,
        "read_write": config.read_write,
        "import_status": {row.source: _pick(_import_status(row), _INFO_IMPORT) for row in sources},
        "background_jobs": {
            row.name: {"status": row.status, **_last_run(row), "error": row.last_error} for row in jobs
        },
    }


_INFO_IMPORT = ("last_import", "last_fetch_run", "total_entries", "newest_entry", "oldest_entry", "last_error")


def _pick(values: dict[str, Any], keys: tuple[str, ...]) -> dict[str, Any]:
    return {k: values[k] for k in keys}


def _last_run(row: JobStatus | None) -> dict[str, Any]:
    """A job's last run (all null for a job that never ran)."""
    return {
        "last_run": iso(row.last_run_at) if row else None,
        "last_success": iso(row.last_success_at) if row else None,
        "duration_seconds": row.last_duration_seconds if row else None,
    }


def _import_status(row: IngestStatus) -> dict[str, Any]:
    """One source's ingestion as `/api/settings/info` shows it (`/api/info` shows a part)."""
    return {
        "last_import": iso(row.last_success_at),
        "last_fetch_run": iso(row.last_fetch_at),
        "total_entries": row.lines_total,
        "oldest_entry": iso(row.oldest_line_at),
        "newest_entry": iso(row.newest_line_at),
        "fetch_interval_seconds": row.interval_seconds,
        "lines_per_second": row.lines_per_second,
        "gaps": row.gaps_total,
        "unparsed_total": row.unparsed_total,
        "last_unparsed": row.last_unparsed,
        "last_error": row.last_error,
    }


def _correlation(row: CorrelationStatus) -> dict[str, Any]:
    total = row.total
    return {
        "last_update": iso(row.last_update),
        "total": total,
        "complete": row.complete,
        "incomplete": row.incomplete,
        "expired": row.expired,
        "pending_lines": row.pending_lines,
        "completion_rate": round(row.complete * 100 / total, 2) if total else 100.0,
    }


def _incomplete(row: IncompleteMessage) -> dict[str, Any]:
    return {
        "message_id": bracketed(row.message_id),
        "queue_id": row.queue_id,
        "sender": row.sender,
        "recipient": row.first_recipient,
        "created_at": iso(row.first_seen),
        "status": row.final_status,
        "correlation_key": row.correlation_key,
        "age_minutes": int((datetime.now(UTC) - row.first_seen).total_seconds() // 60),
    }


def pending_items(correlation: CorrelationStatus) -> dict[str, int]:
    """What the correlation jobs still have to do, by job name."""
    return {"complete_correlations": correlation.pending_lines, "update_final_status": correlation.incomplete}


def background_jobs(
    registry: Iterable[tuple[str, str, str, str, str]], statuses: Mapping[str, JobStatus], pending: Mapping[str, int]
) -> dict[str, Any]:
    """Every registered job (name, interval, description, category, status) with its last run, if any."""
    jobs = {}
    for name, interval, description, category, status in registry:
        row = statuses.get(name)
        jobs[name] = {
            "interval": interval,
            "description": description,
            "category": category,
            "status": status,
            **_last_run(row),
            "runs": row.runs if row else 0,
            "failures": row.failures if row else 0,
            "error": row.last_error if row else None,
            **({"pending_items": pending[name]} if name in pending else {}),
        }
    return jobs


def settings_info(
    config: Config,
    sources: list[IngestStatus],
    gaps: list[Gap],
    correlation: CorrelationStatus,
    jobs: dict[str, Any],
    incomplete: list[IncompleteMessage],
) -> dict[str, Any]:
    """`/api/settings/info`: the configuration (secrets masked), ingestion, correlation and jobs."""
    masked = config.masked()
    masked.pop("database_url", None)
    return {
        "configuration": {**masked, "auth_username": config.auth_username if config.auth_enabled else None},
        "import_status": {row.source: _import_status(row) for row in sources},
        "gaps": [
            {"source": g.source, "from": iso(g.gap_start), "to": iso(g.gap_end), "detected_at": iso(g.detected_at)}
            for g in gaps
        ],
        "correlation_status": _correlation(correlation),
        "background_jobs": jobs,
        "recent_incomplete_correlations": [_incomplete(r) for r in incomplete],
    }


# --- Grafana ------------------------------------------------------------------------------------------------


def annotations(pool: ConnectionPool, args: Args) -> list[dict]:
    return [
        {
            "time": ms(r["time"]),
            "time_end": ms(r["time_end"]),
            "title": r["title"],
            "text": r["text"],
            "tags": r["tags"],
        }
        for r in store.annotations(pool, args.start, args.end)
    ]


def jobs(pool: ConnectionPool, args: Args) -> list[dict]:
    return [
        {
            "name": r.name,
            "status": r.status,
            "last_run_at": ms(r.last_run_at),
            "last_success_at": ms(r.last_success_at),
            "last_duration_seconds": number(r.last_duration_seconds),
            "last_error": r.last_error,
            "runs": r.runs,
            "failures": r.failures,
        }
        for r in job_store.job_statuses(pool)
    ]


def ingest(pool: ConnectionPool, args: Args) -> list[dict]:
    now = datetime.now(UTC)
    return [
        {
            "source": r.source,
            "lines_total": r.lines_total,
            "gaps_total": r.gaps_total,
            "newest_line": ms(r.newest_line_at),
            "lag_seconds": int((now - r.newest_line_at).total_seconds()) if r.newest_line_at else None,
            "last_success": ms(r.last_success_at),
            "interval_seconds": number(r.interval_seconds),
            "lines_per_second": number(r.lines_per_second),
            "last_error": r.last_error,
        }
        for r in ingest_store.ingest_statuses(pool)
    ]


def gaps(pool: ConnectionPool, args: Args) -> list[dict]:
    return [
        {"source": g.source, "gap_start": ms(g.gap_start), "gap_end": ms(g.gap_end), "detected_at": ms(g.detected_at)}
        for g in ingest_store.gaps(pool, args.limit)
    ]


def api_health(pool: ConnectionPool, args: Args) -> list[dict]:
    return [
        {
            "endpoint": r.endpoint_group,
            "up": 1 if r.up else 0,
            "checked": ms(r.checked_at),
            "last_success": ms(r.last_success_at),
            "last_error": r.last_error,
        }
        for r in status_store.api_health(pool)
    ]
