"""Background jobs (APScheduler) whose every run is recorded in the database.

Status lives in PostgreSQL, not in memory, so the web process (and every replica) can
report it and a restart does not forget failures.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from apscheduler.schedulers.background import BackgroundScheduler
from psycopg_pool import ConnectionPool

from exporter import ingestion, store
from exporter.config import Config
from exporter.mailcow_client import MailcowClient

log = logging.getLogger(__name__)


def tracked(pool: ConnectionPool, name: str, func: Callable[[], object]) -> Callable[[], None]:
    """Wrap a job so each run records start, outcome, duration and error text."""

    def run() -> None:
        started = datetime.now(UTC)
        t0 = time.perf_counter()
        store.job_started(pool, name, started)
        error: str | None = None
        try:
            func()
        except Exception as exc:  # a job failure is recorded, never kills the scheduler
            error = f"{type(exc).__name__}: {exc}"
            log.error("job %s failed: %s", name, error)
        store.job_finished(pool, name, datetime.now(UTC), time.perf_counter() - t0, error)

    return run


def build_scheduler(config: Config, pool: ConnectionPool, client: MailcowClient) -> BackgroundScheduler:
    scheduler = BackgroundScheduler(timezone="UTC", job_defaults={"coalesce": True, "max_instances": 1})
    now = datetime.now(UTC)
    scheduler.add_job(
        tracked(pool, "fetch_logs", lambda: ingestion.fetch_all(client, pool, config)),
        "interval",
        seconds=config.fetch_interval,
        id="fetch_logs",
        next_run_time=now,
    )
    scheduler.add_job(
        tracked(
            pool,
            "cleanup_logs",
            lambda: store.delete_lines_before(pool, datetime.now(UTC) - timedelta(days=config.retention_days)),
        ),
        "cron",
        hour=2,
        minute=0,
        id="cleanup_logs",
    )
    return scheduler


def run_worker(config: Config, pool: ConnectionPool, stop: threading.Event) -> None:
    """Run the jobs until `stop` is set."""
    client = MailcowClient(
        config.mailcow_url,
        config.mailcow_api_key,
        config.mailcow_api_key_rw,
        verify_tls=config.mailcow_verify_tls,
        timeout=config.mailcow_timeout,
    )
    scheduler = build_scheduler(config, pool, client)
    scheduler.start()
    log.info("worker started: fetching from %s every %ss", config.mailcow_url, config.fetch_interval)
    try:
        stop.wait()
    finally:
        scheduler.shutdown(wait=True)
        client.close()
