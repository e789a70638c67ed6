"""What the commands that start the service share: configuration and logging, the database, the
fail-closed exposure check, gunicorn for `serve`, and the supervised pair of processes for `run`/`demo`.

An entry point beside `exporter.cli` (one layer below it): `cli` parses and dispatches, this starts.
"""

from __future__ import annotations

import contextlib
import dataclasses
import ipaddress
import logging
import os
import signal
import sys
import threading
from collections.abc import Callable

from exporter.config import AUTH_OFF_WARNING, Config, ConfigError, load_config
from exporter.config_values import host_name, is_loopback
from exporter.log_format import formatter
from exporter.store.database import migrate, start_embedded
from exporter.worker.supervisor import supervise

log = logging.getLogger("mailcow_grafana")
# a worker's loop turns at least every FETCH_INTERVAL; a fetch round waits on mailcow's timeouts and
# retries, so only this long a silence means it hangs
WORKER_STALE_AFTER = 600.0
# gthread threads per worker: each open live tail (Loki's websocket) holds one while it waits, idle (a
# timed wait: no CPU), so there is room for dozens of tails beside the ordinary requests
WEB_THREADS = 64


class Fatal(Exception):
    """A condition that ends the command with one line on stderr and exit code 2."""


def setup_logging(level: str, log_format: str = "plain") -> None:
    """Records of every logger to stderr, in LOG_FORMAT (gunicorn's own loggers: see `gunicorn`)."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(formatter(log_format))
    logging.basicConfig(level=level, handlers=[handler])
    logging.getLogger("httpx").setLevel(logging.WARNING)
    logging.getLogger("apscheduler").setLevel(logging.WARNING)


def configure(require_mailcow: bool = True) -> Config:
    """The configuration from the environment, with logging set up at its level."""
    config = load_config(require_mailcow=require_mailcow)
    setup_logging(config.log_level, config.log_format)
    return config


def database_url(config: Config) -> str:
    """DATABASE_URL, or the embedded server's URL (started now); exported for child processes."""
    url = config.database_url
    if not url:
        log.info("DATABASE_URL not set: starting the embedded PostgreSQL in %s", config.embedded_db_dir)
        url = start_embedded(config.embedded_db_dir)
    os.environ["DATABASE_URL"] = url
    migrate(url)
    return url


def show_bind(bind: tuple[str, int]) -> str:
    """HOST:PORT as gunicorn and --bind read it (an IPv6 address in brackets)."""
    host, port = bind
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _exposure(config: Config, bind: tuple[str, int]) -> str | None:
    """Why this service would be reachable from other machines, or None when only this one reaches it."""
    if not is_loopback(bind[0]):
        return f"--bind {show_bind(bind)} is reachable from other machines"
    published = sorted(name for name in config.served_hosts if not is_loopback(name))
    if published:  # a reverse proxy forwards those names to the loopback address
        return f"PUBLIC_URL or TRUSTED_HOSTS publish this service as {', '.join(published)}"
    return None


def web_config(config: Config, bind: tuple[str, int]) -> Config:
    """Fail closed before serving: no open service that other machines reach, directly or through a reverse
    proxy, unless AUTH_ENABLED=false says so (then warn at every start). A specific bind address is a host
    name we serve."""
    if not config.auth_enabled and not config.auth_opt_out and (reason := _exposure(config, bind)):
        raise ConfigError(
            f"AUTH_PASSWORD: not set, and {reason}; set AUTH_PASSWORD, "
            "or AUTH_ENABLED=false to serve without authentication on purpose"
        )
    if config.auth_opt_out:
        log.warning(AUTH_OFF_WARNING)
    host = bind[0]
    with contextlib.suppress(ValueError):
        if ipaddress.ip_address(host).is_unspecified:
            host = ""  # 0.0.0.0 / :: is no name a client uses
    if host:
        config = dataclasses.replace(config, trusted_hosts=[*config.trusted_hosts, host_name(host)])
    log.info("answering to the host names %s (add others with TRUSTED_HOSTS)", ", ".join(sorted(config.served_hosts)))
    return config


def gunicorn(config: Config, url: str, bind: tuple[str, int], workers: int) -> None:
    """Serve the web app under gunicorn until it stops."""
    from gunicorn.app.base import BaseApplication
    from gunicorn.glogging import Logger

    from exporter.app import create_app
    from exporter.http.gunicorn_worker import Worker

    options = {
        "bind": show_bind(bind),
        "workers": workers,
        "worker_class": Worker,  # gthread, with gunicorn's own errors in the JSON envelope
        "threads": WEB_THREADS,
        "timeout": 60,
        "graceful_timeout": 10,
        "loglevel": config.log_level.lower(),
    }
    if config.log_format == "json":

        class JsonLogger(Logger):
            """gunicorn's error and access logs in the JSON format too."""

            def setup(self, cfg: object) -> None:
                super().setup(cfg)
                for handler in [*self.error_log.handlers, *self.access_log.handlers]:
                    handler.setFormatter(formatter("json"))

        options["logger_class"] = JsonLogger
    app_config = dataclasses.replace(config, database_url=url)

    class Server(BaseApplication):
        def load_config(self) -> None:
            for key, value in options.items():
                self.cfg.set(key, value)

        def load(self) -> Callable:
            return create_app(app_config)

    Server().run()


def serve_and_work(config: Config, bind: tuple[str, int], workers: int) -> int:
    """`serve` and `worker` as child processes, the worker restarted when it dies or hangs (no round of its
    loop for WORKER_STALE_AFTER seconds, or four fetch intervals if longer), until SIGTERM/SIGINT."""
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    command = [sys.executable, "-m", "exporter.cli"]
    stale_after = max(WORKER_STALE_AFTER, 4 * config.fetch_interval)
    web = [*command, "serve", "--bind", show_bind(bind), "--workers", str(workers)]
    return supervise(web, [*command, "worker"], stop, stale_after)
