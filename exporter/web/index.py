"""GET /: a landing page that points Prometheus and people at the right endpoints."""

from __future__ import annotations

from html import escape

from flask import Blueprint, Response

from exporter import __version__
from exporter.http import context

bp = Blueprint("index", __name__)

_LINKS = (
    ("/metrics", "Prometheus metrics"),
    ("/api/info", "service and ingestion status (JSON)"),
    ("/api/health", "health check (JSON)"),
    ("/api/messages", "messages (JSON)"),
)


@bp.get("/")
def landing() -> Response:
    title = escape(context.config().app_title)
    items = "".join(f'<li><a href="{href}">{href}</a> — {text}</li>' for href, text in _LINKS)
    body = (
        f"<!doctype html><html><head><meta charset='utf-8'><title>{title}</title></head>"
        f"<body><h1>{title}</h1><p>mailcow-grafana {escape(__version__)}</p><ul>{items}</ul></body></html>"
    )
    return Response(body, content_type="text/html; charset=utf-8")
