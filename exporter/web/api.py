"""`/api/health` and `/api/info` with the shapes of seed 002."""

from __future__ import annotations

from flask import Blueprint, Response, current_app, jsonify

from exporter.config import Config
from exporter.http.auth import signed_in
from exporter.readmodels import health as service_health
from exporter.readmodels import service
from exporter.store import ingest as ingest_store
from exporter.store import jobs as job_store

bp = Blueprint("api", __name__, url_prefix="/api")


def _config() -> Config:
    return current_app.config["MG_CONFIG"]


@bp.get("/health")
def health() -> Response:
    """Public probe: HTTP 200 while the database answers, else 503 (what Docker and load balancers
    read); `status` healthy | degraded | unhealthy. Only signed-in callers (or anyone, with auth off) also
    get `reasons`, the ingestion figures and the settings: they name hosts, sources and mailcow's URL."""
    config = _config()
    verdict = service_health.assess(current_app.config["MG_POOL"], config)
    body = service_health.health(verdict, config) if signed_in(config) else service_health.public_health(verdict)
    response = jsonify(body)
    response.status_code = verdict.http_status
    return response


@bp.get("/info")
def info() -> Response:
    """Application information plus what ingestion and the background jobs are doing."""
    config = _config()
    pool = current_app.config["MG_POOL"]
    return jsonify(service.info(config, ingest_store.ingest_statuses(pool), job_store.job_statuses(pool)))
