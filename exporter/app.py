"""The composition root of the web process: the shared HTTP app with both adapters' blueprints and
the worker's job list (the one thing of the worker the web shows)."""

from __future__ import annotations

from flask import Flask

import datasource
from exporter import web
from exporter.config import Config
from exporter.http.app import build_app
from exporter.http.context import JobInfo
from exporter.store.database import Pool
from exporter.worker.registry import JOBS


def create_app(config: Config, pool: Pool | None = None) -> Flask:
    """The web app; `pool` defaults to a new pool on `config.database_url`."""
    blueprints = (*web.BLUEPRINTS, *datasource.BLUEPRINTS)
    return build_app(config, pool, blueprints, web.PREFLIGHT_ENDPOINTS, _jobs(config))


def _jobs(config: Config) -> tuple[JobInfo, ...]:
    """The registry's jobs as this configuration runs them, for /api/settings/info."""
    return tuple(
        JobInfo(
            name=job.name,
            category=str(job.category),
            description=job.description,
            schedule=job.schedule(config),
            enabled=job.enabled(config),
            scheduled=job.method is not None,
        )
        for job in JOBS.values()
    )
