"""The composition root of the web process: the shared HTTP app with both adapters' blueprints."""

from __future__ import annotations

from flask import Flask

import datasource
from exporter import web
from exporter.config import Config
from exporter.http.app import build_app
from exporter.store.database import Pool


def create_app(config: Config, pool: Pool | None = None) -> Flask:
    """The web app; `pool` defaults to a new pool on `config.database_url`."""
    return build_app(config, pool, (*web.BLUEPRINTS, *datasource.BLUEPRINTS), web.PREFLIGHT_ENDPOINTS)
