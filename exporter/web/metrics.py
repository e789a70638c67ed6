"""GET /metrics: Prometheus text format, or OpenMetrics when the scraper asks for it."""

from __future__ import annotations

from flask import Blueprint, Response, current_app, request
from prometheus_client.exposition import choose_encoder

from exporter.http import context
from exporter.readmodels import metrics

bp = Blueprint("metrics", __name__)


@bp.get("/metrics")
def scrape() -> Response:
    registry = current_app.extensions.get("mg_metrics_registry")
    if registry is None:  # one registry per app: it only holds the collector, which reads the pool
        registry = current_app.extensions["mg_metrics_registry"] = metrics.registry(
            context.pool(), context.config().metrics_mailbox_quota
        )
    encoder, content_type = choose_encoder(request.headers.get("Accept", ""))
    response = Response(encoder(registry), content_type=content_type)
    response.headers["Cache-Control"] = "no-store"
    return response
