"""`/api/health` and `/api/info` with the shapes of seed 002."""

from __future__ import annotations

from flask import Blueprint, Response, current_app, jsonify

from exporter.config import Config
from exporter.http.auth import signed_in
from exporter.http.context import live
from exporter.http.params import HealthParams, parse
from exporter.readmodels import deep_health, service
from exporter.readmodels import health as service_health
from exporter.store import ingest as ingest_store
from exporter.store import jobs as job_store

bp = Blueprint("api", __name__, url_prefix="/api")


def _config() -> Config:
    return current_app.config["MG_CONFIG"]


@bp.get("/health")
def health() -> Response:
    """Public probe: HTTP 200 while the database answers, else 503 (what Docker and load balancers
    read); `status` healthy | degraded | unhealthy. Only signed-in callers (or anyone, with auth off) also
    get `reasons`, the ingestion figures and the settings: they name hosts, sources and mailcow's URL.
    `deep=1` adds, for them only, timed checks of the database, the workers, mailcow and the disk."""
    deep = parse(HealthParams())["deep"]
    config, pool = _config(), current_app.config["MG_POOL"]
    verdict = service_health.assess(pool, config)
    if not signed_in(config):
        body = service_health.public_health(verdict)
    elif deep:
        checks = deep_health.checks(pool, config, verdict, live())
        verdict = deep_health.deepened(verdict, checks)
        body = service_health.health(verdict, config) | {"checks": [check.as_dict() for check in checks]}
    else:
        body = service_health.health(verdict, config)
    response = jsonify(body)
    response.status_code = verdict.http_status
    return response


@bp.get("/info")
def info() -> Response:
    """Application information plus what ingestion and the background jobs are doing."""
    config = _config()
    pool = current_app.config["MG_POOL"]
    return jsonify(service.info(config, ingest_store.ingest_statuses(pool), job_store.job_statuses(pool)))
