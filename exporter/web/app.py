"""The Flask application factory."""

from __future__ import annotations

import logging
import time

from flask import Flask, Response, g, request

from datasource import infinity, jsonds
from exporter.config import Config
from exporter.database import Pool, create_pool
from exporter.geoip import GeoIP
from exporter.live import LiveMailcow
from exporter.mailcow_client import MailcowClient
from exporter.web import (
    action_pages,
    actions,
    api,
    dmarc,
    domains,
    export,
    index,
    inputs,
    logs,
    mailbox_stats,
    mailcow_state,
    messages,
    metrics,
    origin,
    settings,
    stats,
)
from exporter.web.auth import install_auth
from exporter.web.errors import register_error_handlers

log = logging.getLogger("mailcow_grafana.http")
LIVE_TIMEOUT = 8.0  # seconds: longer than mailcow needs for a queue listing, shorter than Grafana's patience


def create_app(config: Config, pool: Pool | None = None) -> Flask:
    """Build the web app; `pool` defaults to a new pool on `config.database_url`."""
    if pool is None:
        if not config.database_url:
            raise ValueError("create_app needs a database URL (the CLI starts the embedded server first)")
        pool = create_pool(config.database_url, config.db_pool_size, config.query_timeout)
    app = Flask("mailcow_grafana")
    app.config.update(
        MG_CONFIG=config,
        MG_POOL=pool,
        MG_LIVE=_live(config),
        MG_GEOIP=GeoIP(config.geoip_city_db, config.geoip_asn_db),
        MAX_CONTENT_LENGTH=config.dmarc_upload_max_bytes + 1024 * 1024,  # report uploads; JSON bodies are small
        JSON_SORT_KEYS=False,
    )
    app.json.sort_keys = False
    origin.install_host_check(app)  # first: a foreign Host meets nothing else
    install_auth(app, config, actions.PREFLIGHT_ENDPOINTS)
    origin.install_cross_site_defence(app)  # after auth: anonymous requests leave no audit entries
    register_error_handlers(app)
    inputs.install(app)
    for blueprint in (
        index.bp,
        api.bp,
        messages.bp,
        logs.bp,
        stats.bp,
        export.bp,
        settings.bp,
        metrics.bp,
        mailcow_state.bp,
        actions.bp,
        dmarc.bp,
        domains.bp,
        mailbox_stats.bp,
        action_pages.bp,
        infinity.bp,
        jsonds.bp,
    ):
        app.register_blueprint(blueprint)
    _install_request_log(app)
    return app


def _live(config: Config) -> LiveMailcow:
    """mailcow for requests: one attempt, a short timeout (a request must not hang on mailcow)."""
    client = MailcowClient(
        config.mailcow_url or "http://mailcow.invalid",
        config.mailcow_api_key,
        config.mailcow_api_key_rw,
        verify_tls=config.mailcow_verify_tls,
        timeout=min(config.mailcow_timeout, LIVE_TIMEOUT),
        retries=1,
    )
    return LiveMailcow(client, config.live_cache_seconds)


def _install_request_log(app: Flask) -> None:
    @app.before_request
    def _start() -> None:
        g.started = time.perf_counter()

    @app.after_request
    def _log(response: Response) -> Response:
        elapsed = (time.perf_counter() - g.get("started", time.perf_counter())) * 1000
        log.info("%s %s %d %.1fms", request.method, request.path, response.status_code, elapsed)
        return response
