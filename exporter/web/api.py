"""`/api/health` and `/api/info` with the shapes of seed 002."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from flask import Blueprint, Response, current_app, jsonify

from exporter import __version__
from exporter.config import AUTH_OFF_WARNING, Config, mask_url
from exporter.readmodels import health as service_health
from exporter.store import ingest as ingest_store
from exporter.store import jobs as job_store

bp = Blueprint("api", __name__, url_prefix="/api")


def _config() -> Config:
    return current_app.config["MG_CONFIG"]


def _iso(value: datetime | None) -> str | None:
    return value.isoformat().replace("+00:00", "Z") if value else None


@bp.get("/health")
def health() -> Response:
    """Public probe: HTTP 200 while the database answers, else 503 (what Docker and load balancers
    read); `status` healthy | degraded | unhealthy, with `reasons` and the ingestion figures."""
    config = _config()
    verdict = service_health.assess(current_app.config["MG_POOL"], config)
    body = {
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
    response = jsonify(body)
    response.status_code = verdict.http_status
    return response


@bp.get("/info")
def info() -> Response:
    """Application information plus what ingestion and the background jobs are doing."""
    config = _config()
    pool = current_app.config["MG_POOL"]
    body: dict[str, Any] = {
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
        "import_status": {
            row["source"]: {
                "last_import": _iso(row["last_success_at"]),
                "last_fetch_run": _iso(row["last_fetch_at"]),
                "total_entries": row["lines_total"],
                "newest_entry": _iso(row["newest_line_at"]),
                "oldest_entry": _iso(row["oldest_line_at"]),
                "last_error": row["last_error"],
            }
            for row in ingest_store.ingest_statuses(pool)
        },
        "background_jobs": {
            row["name"]: {
                "status": row["status"],
                "last_run": _iso(row["last_run_at"]),
                "last_success": _iso(row["last_success_at"]),
                "duration_seconds": row["last_duration_seconds"],
                "error": row["last_error"],
            }
            for row in job_store.job_statuses(pool)
        },
    }
    return jsonify(body)
