"""Per-app objects handlers need: configuration, pool, local domains."""

from __future__ import annotations

from flask import current_app, request
from psycopg_pool import ConnectionPool

from exporter.config import Config
from exporter.mailcow.live import LiveMailcow
from exporter.store import mailcow as mailcow_store


def config() -> Config:
    return current_app.config["MG_CONFIG"]


def pool() -> ConnectionPool:
    return current_app.config["MG_POOL"]


def local_domains() -> list[str]:
    return mailcow_store.local_domains(pool(), config().local_domains)


def page_body(total: int, page: int, limit: int, data: list) -> dict:
    """The paginated envelope of seed 002: total, page, limit, pages, data."""
    return {"total": total, "page": page, "limit": limit, "pages": (total + limit - 1) // limit, "data": data}


def live() -> LiveMailcow:
    return current_app.config["MG_LIVE"]


def service_urls() -> tuple[str, str]:
    """This service as browsers reach it (PUBLIC_URL, else this request's root) and as this request did."""
    here = request.url_root.rstrip("/")
    return config().public_url or here, here
