"""`/api/settings/info` and `/api/settings/health`: configuration, ingestion, correlation, jobs."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

from flask import Blueprint, Response, jsonify

from exporter.http.context import JobInfo, config, jobs, pool
from exporter.readmodels import health as service_health
from exporter.readmodels import service
from exporter.store import ingest as ingest_store
from exporter.store import jobs as job_store
from exporter.store.correlation import status as correlation_store
from exporter.store.jobs import JobStatus

bp = Blueprint("settings", __name__, url_prefix="/api/settings")


@bp.get("/info")
def info() -> Response:
    cfg = config()
    correlation = correlation_store.correlation_status(pool())
    statuses = {row.name: row for row in job_store.job_statuses(pool())}
    registry = [
        (job.name, job.schedule, job.description, job.category, _job_status(job, statuses.get(job.name)))
        for job in jobs()
    ]
    listed = service.background_jobs(registry, statuses, service.pending_items(correlation))
    return jsonify(
        service.settings_info(
            cfg,
            ingest_store.ingest_statuses(pool()),
            ingest_store.gaps(pool(), 20),
            correlation,
            listed,
            correlation_store.recent_incomplete(pool()),
        )
    )


def _job_status(job: JobInfo, row: JobStatus | None) -> str:
    if not job.enabled:
        return "disabled"
    if row:
        return row.status
    return "scheduled" if job.scheduled else "idle"


@bp.get("/health")
def health() -> Response:
    """The verdict of /api/health (same status and reasons) plus the last five minutes' activity."""
    t0 = time.perf_counter()
    verdict = service_health.assess(pool(), config())
    elapsed_ms = round((time.perf_counter() - t0) * 1000, 2)
    since = datetime.now(UTC) - timedelta(minutes=5)
    activity = correlation_store.recent_activity_counts(pool(), since) if verdict.connected else None
    response = jsonify(service_health.settings_health(verdict, elapsed_ms, activity))
    response.status_code = verdict.http_status
    return response
