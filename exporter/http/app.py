"""The Flask application both adapters share: hooks, error handlers, per-app objects.

`exporter.app.create_app` composes it with the REST and Grafana blueprints."""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence

from flask import Blueprint, Flask, Response, g, request

from exporter.config import Config
from exporter.http import inputs, origin, request_id
from exporter.http.auth import PUBLIC_ENDPOINTS, install_auth
from exporter.http.context import JobInfo
from exporter.http.errors import register_error_handlers
from exporter.http.limits import install_limits
from exporter.mailcow.live import LiveMailcow
from exporter.services.geoip import GeoIP
from exporter.store.database import Pool, create_pool

log = logging.getLogger("mailcow_grafana.http")


def build_app(
    config: Config,
    pool: Pool | None,
    blueprints: Sequence[Blueprint],
    preflight_endpoints: frozenset[str],
    jobs: Sequence[JobInfo],
) -> Flask:
    """The app with `blueprints`; `pool` defaults to a new pool on `config.database_url`; `jobs` are the
    worker's background jobs, for the handlers that list them."""
    if pool is None:
        if not config.database_url:
            raise ValueError("create_app needs a database URL (the CLI starts the embedded server first)")
        pool = create_pool(config.database_url, config.db_pool_size, config.query_timeout)
    app = Flask("mailcow_grafana")
    app.config.update(
        MG_CONFIG=config,
        MG_POOL=pool,
        MG_LIVE=LiveMailcow.for_requests(config),
        MG_GEOIP=GeoIP(config.geoip_city_db, config.geoip_asn_db),
        MG_JOBS=tuple(jobs),
        MAX_CONTENT_LENGTH=config.dmarc_upload_max_bytes + 1024 * 1024,  # report uploads; JSON bodies are small
    )
    app.json.sort_keys = False
    request_id.install(app)  # before all: every request's log records carry its id
    origin.install_host_check(app)  # first: a foreign Host meets nothing else
    install_limits(app, config, PUBLIC_ENDPOINTS)  # before auth: a blocked address meets no password check
    install_auth(app, config, preflight_endpoints)
    origin.install_cross_site_defence(app)  # after auth: anonymous requests leave no audit entries
    register_error_handlers(app)
    inputs.install(app)
    for blueprint in blueprints:
        app.register_blueprint(blueprint)
    _install_request_log(app)
    return app


def _install_request_log(app: Flask) -> None:
    @app.before_request
    def _start() -> None:
        g.started = time.perf_counter()

    @app.after_request
    def _log(response: Response) -> Response:
        elapsed = (time.perf_counter() - g.get("started", time.perf_counter())) * 1000
        log.info("%s %s %d %.1fms", request.method, request.path, response.status_code, elapsed)
        return response
