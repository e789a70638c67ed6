"""`/api/settings/info` and `/api/settings/health`: configuration, ingestion, correlation, jobs."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

from flask import Blueprint, Response, jsonify

from exporter.http.context import JobInfo, config, jobs, pool
from exporter.readmodels import health as service_health
from exporter.readmodels import mail as readmodels
from exporter.store import ingest as ingest_store
from exporter.store import jobs as job_store
from exporter.store.correlation import status as correlation_store

bp = Blueprint("settings", __name__, url_prefix="/api/settings")


@bp.get("/info")
def info() -> Response:
    cfg = config()
    masked = cfg.masked()
    masked.pop("database_url", None)
    correlation = correlation_store.correlation_status(pool())
    statuses = {row["name"]: row for row in job_store.job_statuses(pool())}
    pending = {"complete_correlations": correlation["pending_lines"], "update_final_status": correlation["incomplete"]}
    listed = {}
    for job in jobs():
        name = job.name
        row = statuses.get(name)
        listed[name] = {
            "interval": job.schedule,
            "description": job.description,
            "category": job.category,
            "status": _job_status(job, row),
            "last_run": readmodels.iso(row["last_run_at"]) if row else None,
            "last_success": readmodels.iso(row["last_success_at"]) if row else None,
            "duration_seconds": row["last_duration_seconds"] if row else None,
            "runs": row["runs"] if row else 0,
            "failures": row["failures"] if row else 0,
            "error": row["last_error"] if row else None,
            **({"pending_items": pending[name]} if name in pending else {}),
        }
    total = correlation["total"]
    return jsonify(
        {
            "configuration": {**masked, "auth_username": cfg.auth_username if cfg.auth_enabled else None},
            "import_status": {
                row["source"]: {
                    "last_import": readmodels.iso(row["last_success_at"]),
                    "last_fetch_run": readmodels.iso(row["last_fetch_at"]),
                    "total_entries": row["lines_total"],
                    "oldest_entry": readmodels.iso(row["oldest_line_at"]),
                    "newest_entry": readmodels.iso(row["newest_line_at"]),
                    "fetch_interval_seconds": row["interval_seconds"],
                    "lines_per_second": row["lines_per_second"],
                    "gaps": row["gaps_total"],
                    "unparsed_total": row["unparsed_total"],
                    "last_unparsed": row["last_unparsed"],
                    "last_error": row["last_error"],
                }
                for row in ingest_store.ingest_statuses(pool())
            },
            "gaps": [
                {
                    "source": g["source"],
                    "from": readmodels.iso(g["gap_start"]),
                    "to": readmodels.iso(g["gap_end"]),
                    "detected_at": readmodels.iso(g["detected_at"]),
                }
                for g in ingest_store.gaps(pool(), 20)
            ],
            "correlation_status": {
                "last_update": readmodels.iso(correlation["last_update"]),
                "total": total,
                "complete": correlation["complete"],
                "incomplete": correlation["incomplete"],
                "expired": correlation["expired"],
                "pending_lines": correlation["pending_lines"],
                "completion_rate": round(correlation["complete"] * 100 / total, 2) if total else 100.0,
            },
            "background_jobs": listed,
            "recent_incomplete_correlations": [
                {
                    "message_id": f"<{r['message_id']}>" if r["message_id"] else None,
                    "queue_id": r["queue_id"],
                    "sender": r["sender"],
                    "recipient": r["first_recipient"],
                    "created_at": readmodels.iso(r["first_seen"]),
                    "status": r["final_status"],
                    "correlation_key": r["correlation_key"],
                    "age_minutes": int((datetime.now(UTC) - r["first_seen"]).total_seconds() // 60),
                }
                for r in correlation_store.recent_incomplete(pool())
            ],
        }
    )


def _job_status(job: JobInfo, row: dict | None) -> str:
    if not job.enabled:
        return "disabled"
    if row:
        return row["status"]
    return "scheduled" if job.scheduled else "idle"


@bp.get("/health")
def health() -> Response:
    """The verdict of /api/health (same status and reasons) plus the last five minutes' activity."""
    t0 = time.perf_counter()
    verdict = service_health.assess(pool(), config())
    elapsed_ms = round((time.perf_counter() - t0) * 1000, 2)
    since = datetime.now(UTC) - timedelta(minutes=5)
    activity = correlation_store.recent_activity_counts(pool(), since) if verdict.connected else None
    response = jsonify(
        {
            "status": verdict.status,
            "reasons": verdict.reasons,
            "timestamp": readmodels.iso(datetime.now(UTC)),
            "database": {
                "status": "connected" if verdict.connected else "disconnected",
                "response_time_ms": elapsed_ms,
            },
            "recent_activity": {"last_5_minutes": activity},
        }
    )
    response.status_code = verdict.http_status
    return response
