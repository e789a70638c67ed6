"""Per-app objects handlers need: configuration, pool, local domains, live mailcow, the worker's job list."""

from __future__ import annotations

from dataclasses import dataclass

from flask import current_app, request
from psycopg_pool import ConnectionPool

from exporter.config import Config
from exporter.mailcow.live import LiveMailcow
from exporter.store import mailcow as mailcow_store


@dataclass(frozen=True)
class JobInfo:
    """A background job as the web process lists it: `exporter.app` fills these in from the worker's
    registry, so the web never imports the worker (nor APScheduler with it)."""

    name: str
    category: str
    description: str
    schedule: str  # when it runs with this configuration, in words
    enabled: bool  # this configuration runs it
    scheduled: bool  # the scheduler runs it (else the ingest loop)


def config() -> Config:
    return current_app.config["MG_CONFIG"]


def pool() -> ConnectionPool:
    return current_app.config["MG_POOL"]


def local_domains() -> list[str]:
    return mailcow_store.local_domains(pool(), config().local_domains)


def jobs() -> tuple[JobInfo, ...]:
    return current_app.config["MG_JOBS"]


def live() -> LiveMailcow:
    return current_app.config["MG_LIVE"]


def service_urls() -> tuple[str, str]:
    """This service as browsers reach it (PUBLIC_URL, else this request's root) and as this request did."""
    here = request.url_root.rstrip("/")
    return config().public_url or here, here
