"""`/api/settings/info` and `/api/settings/health`: configuration, ingestion, correlation, jobs."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

from flask import Blueprint, Response, jsonify

from exporter.config import Config
from exporter.http.context import config, pool
from exporter.readmodels import health as service_health
from exporter.readmodels import service
from exporter.store import ingest as ingest_store
from exporter.store import jobs as job_store
from exporter.store import queries
from exporter.worker.jobs import JOBS, Job

bp = Blueprint("settings", __name__, url_prefix="/api/settings")


@bp.get("/info")
def info() -> Response:
    cfg = config()
    correlation = queries.correlation_status(pool())
    statuses = {row["name"]: row for row in job_store.job_statuses(pool())}
    registry = [
        (name, job.schedule(cfg), job.description, _job_status(job, statuses.get(name), cfg))
        for name, job in JOBS.items()
    ]
    jobs = service.background_jobs(registry, statuses, service.pending_items(correlation))
    return jsonify(
        service.settings_info(
            cfg,
            ingest_store.ingest_statuses(pool()),
            ingest_store.gaps(pool(), 20),
            correlation,
            jobs,
            queries.recent_incomplete(pool()),
        )
    )


def _job_status(job: Job, row: dict | None, cfg: Config) -> str:
    if not job.enabled(cfg):
        return "disabled"
    if row:
        return row["status"]
    return "idle" if job.run is None else "scheduled"


@bp.get("/health")
def health() -> Response:
    """The verdict of /api/health (same status and reasons) plus the last five minutes' activity."""
    t0 = time.perf_counter()
    verdict = service_health.assess(pool(), config())
    elapsed_ms = round((time.perf_counter() - t0) * 1000, 2)
    since = datetime.now(UTC) - timedelta(minutes=5)
    activity = queries.recent_activity_counts(pool(), since) if verdict.connected else None
    response = jsonify(service_health.settings_health(verdict, elapsed_ms, activity))
    response.status_code = verdict.http_status
    return response
