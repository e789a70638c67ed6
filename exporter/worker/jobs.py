"""The worker: the ingest loop and the scheduled jobs, each run recorded in the database.

Status lives in PostgreSQL so every web process reports the same thing. With several worker
replicas, a session-level PostgreSQL advisory lock elects one leader that ingests and runs the
jobs; when it dies its connection closes, the lock is released, and another worker takes over
within one interval.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import partial

import psycopg
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger
from psycopg_pool import ConnectionPool

from exporter.config import Config
from exporter.mailcow.client import MailcowClient
from exporter.mailcow.errors import MailcowError
from exporter.services import correlation, dmarc_imap
from exporter.services.domains import checks as dns_checks
from exporter.services.geoip import GeoIP
from exporter.services.ingest import Ingestor
from exporter.store import domains as domain_store
from exporter.store import ingest as ingest_store
from exporter.store import jobs as job_store
from exporter.store import mailcow as mailcow_store
from exporter.store import status as status_store
from exporter.store.database import connect
from exporter.store.jobs import LEADER_LOCK_KEY
from exporter.worker.supervisor import beat

log = logging.getLogger(__name__)


def tracked(pool: ConnectionPool, name: str, func: Callable[[], object]) -> Callable[[], object]:
    """Wrap a job so each run records start, outcome, duration and error text; never raises.

    Recording is best effort: while the database is down the run fails and is logged, and the next
    run after it is back records again (a job that raised here would end the worker's loop).
    """

    def run() -> object:
        started = datetime.now(UTC)
        t0 = time.perf_counter()
        _record(name, job_store.job_started, pool, name, started)
        error: str | None = None
        result: object = None
        try:
            result = func()
        except Exception as exc:  # a job failure is recorded, never kills the worker
            error = f"{type(exc).__name__}: {exc}"
            log.error("job %s failed: %s", name, error)
        _record(name, job_store.job_finished, pool, name, datetime.now(UTC), time.perf_counter() - t0, error)
        return result

    return run


def _record(name: str, write: Callable[..., None], *args: object) -> None:
    try:
        write(*args)
    except psycopg.Error as exc:
        log.warning("job %s: cannot record its status: %s", name, exc)


class Worker:
    """Everything the `worker` process does, for one mailcow."""

    def __init__(self, config: Config, pool: ConnectionPool, client: MailcowClient) -> None:
        self.config = config
        self.pool = pool
        self.client = client
        self.ingestor = Ingestor(
            client,
            pool,
            {
                "postfix": config.fetch_count_postfix,
                "rspamd": config.fetch_count_rspamd,
                "netfilter": config.fetch_count_netfilter,
            },
            max_interval=config.fetch_interval,
        )
        self.is_leader = threading.Event()
        self.geoip = GeoIP(config.geoip_city_db, config.geoip_asn_db)

    def local_domains(self) -> list[str]:
        return mailcow_store.local_domains(self.pool, self.config.local_domains)

    # --- the jobs ---------------------------------------------------------------------

    def ingest_once(self, correlator: correlation.Background) -> None:
        """Fetch every source, then have the correlation thread link what arrived (so mail shows up
        within one interval) while the next fetch already runs."""
        try:
            tracked(self.pool, "fetch_logs", self._fetch)()
        finally:
            correlator.poke()

    def _fetch(self) -> None:
        results = self.ingestor.fetch_all()
        log.info("fetched %s", ", ".join(f"{r.source} +{r.inserted}" for r in results.values()))

    def correlate(self) -> dict[str, int]:
        return correlation.correlate(self.pool, self.local_domains(), self.config.metrics_domain_labels)

    def _from_mailcow(self, group: str, call: Callable[[], object]) -> object:
        """Call mailcow and record whether this endpoint group answered (mailcow_api_up)."""
        try:
            result = call()
        except MailcowError as exc:
            status_store.record_api(self.pool, group, datetime.now(UTC), str(exc))
            raise
        status_store.record_api(self.pool, group, datetime.now(UTC), None)
        return result

    def sync_domains(self) -> int:
        listed = self._from_mailcow("domains", self.client.domains)
        domains = [(str(d.get("domain_name", "")), bool(d.get("active", 1))) for d in listed]
        return mailcow_store.replace_domains(self.pool, [(d, a) for d, a in domains if d])

    def sync_accounts(self) -> tuple[int, int]:
        """mailcow's mailboxes and aliases, for the mailbox statistics."""
        mailboxes = self._from_mailcow("domains", self.client.mailboxes)
        aliases = self._from_mailcow("domains", self.client.aliases)
        return domain_store.replace_accounts(self.pool, mailboxes, aliases)

    def dns_check(self) -> dict:
        """SPF, DKIM and DMARC of every active mailcow domain (a full check)."""
        domains = [d for d, active in mailcow_store.domain_states(self.pool) if active]
        outcome = dns_checks.run(self.config, self.pool, self.client, domains, full=True)
        if outcome["errors"]:
            log.warning("DNS check: %s", "; ".join(outcome["errors"]))
        return {"checked": len(outcome["results"]), "errors": len(outcome["errors"])}

    def sync_quarantine(self) -> int:
        listed = self._from_mailcow("quarantine", self.client.quarantine)
        items = [(int(q["id"]), str(q["qid"])) for q in listed if "id" in q and "qid" in q]
        status_store.save_snapshot(self.pool, "quarantine", listed, datetime.now(UTC))  # for Grafana's table
        return mailcow_store.replace_quarantine(self.pool, items)

    def sync_status(self) -> int:
        """Snapshot mailcow's status endpoints; each group is up only if all its calls answered."""
        calls: dict[str, tuple[str, Callable[[], object]]] = {
            "queue": ("queue", self.client.mail_queue),
            "containers": ("status", self.client.containers),
            "vmail": ("status", self.client.vmail),
            "version": ("status", lambda: {"version": self.client.version()}),
            "fail2ban": ("fail2ban", self.client.fail2ban),
        }
        errors: dict[str, str] = {}
        for kind, (group, call) in calls.items():
            try:
                data = call()
            except MailcowError as exc:
                errors.setdefault(group, f"{kind}: {exc}")
                continue
            status_store.save_snapshot(self.pool, kind, data, datetime.now(UTC))
        for group in dict.fromkeys(group for group, _ in calls.values()):
            status_store.record_api(self.pool, group, datetime.now(UTC), errors.get(group))
        if errors:
            raise RuntimeError("; ".join(errors.values()))
        return len(calls)

    def update_final_status(self) -> int:
        return correlation.refresh_incomplete(self.pool, self.local_domains(), self.config.metrics_domain_labels)

    def expire(self) -> int:
        return correlation.expire(
            self.pool,
            timedelta(hours=self.config.expire_after_hours),
            self.local_domains(),
            self.config.metrics_domain_labels,
        )

    def update_geoip(self) -> bool:
        """Reopen the GeoIP databases when their files changed (e.g. after geoipupdate)."""
        return self.geoip.reload_if_changed()

    def import_dmarc_mail(self) -> dict:
        """One IMAP auto-import run; a failed run is recorded in the sync history and fails the job."""
        row = dmarc_imap.sync(self.config, self.pool, self.geoip, "auto")
        if row["status"] == "error":
            raise RuntimeError(f"DMARC IMAP import failed: {row['error_message']}")
        return row

    def cleanup(self) -> dict[str, int]:
        return ingest_store.delete_before(self.pool, datetime.now(UTC) - timedelta(days=self.config.retention_days))

    # --- running ----------------------------------------------------------------------

    def scheduler(self) -> BackgroundScheduler:
        """The scheduled jobs of JOBS that this configuration enables; each runs only while this worker
        is the leader."""
        scheduler = BackgroundScheduler(timezone="UTC", job_defaults={"coalesce": True, "max_instances": 1})
        now = datetime.now(UTC)
        for job in JOBS.values():
            if job.run is None or not job.enabled(self.config):
                continue
            first = {} if job.first_after is None else {"next_run_time": now + timedelta(seconds=job.first_after)}
            scheduler.add_job(self._leader_only(job), job.trigger(self.config), id=job.name, name=job.name, **first)
        return scheduler

    def _leader_only(self, job: Job) -> Callable[[], None]:
        run = tracked(self.pool, job.name, partial(job.run, self))

        def when_leading() -> None:
            if self.is_leader.is_set():
                run()

        return when_leading

    def run(self, stop: threading.Event) -> None:
        """Until `stop`: hold leadership, ingest, sleep the adaptive interval; else wait and retry."""
        scheduler = self.scheduler()
        scheduler.start()
        correlate = tracked(self.pool, "complete_correlations", self.correlate)
        correlator = correlation.Background(lambda: correlate() if self.is_leader.is_set() else None).start()
        try:
            while not stop.is_set():
                beat()
                with _LeaderLock(self.config.database_url or "") as lock:
                    if not lock.held:
                        self.is_leader.clear()
                        stop.wait(min(self.config.fetch_interval, 10))
                        continue
                    log.info("this worker is now the ingest leader")
                    self.is_leader.set()
                    self.sync_domains_safely()
                    while not stop.is_set() and lock.alive():
                        beat()
                        started = time.monotonic()
                        self.ingest_once(correlator)
                        # the interval runs from the start of a round: on a busy server the round itself
                        # takes a while, and mailcow's capped lists keep filling during it
                        stop.wait(max(0.0, self.ingestor.next_delay() - (time.monotonic() - started)))
                    self.is_leader.clear()
        finally:
            correlator.stop()
            scheduler.shutdown(wait=True)

    def sync_domains_safely(self) -> None:
        tracked(self.pool, "sync_domains", self.sync_domains)()


@dataclass(frozen=True)
class Job:
    """A background job, declared once: the worker schedules it, /api/settings/info lists it."""

    name: str
    description: str
    run: Callable[[Worker], object] | None = None  # None: the ingest loop runs it, not the scheduler
    every: float | Callable[[Config], float] | None = None  # seconds between runs
    daily_at: int | None = None  # or once a day at this hour (UTC)
    first_after: float | None = None  # first run this many seconds after start (default: one interval in)
    setting: str | None = None  # the variable that sets `every`
    enabled: Callable[[Config], bool] = lambda _config: True
    loop_schedule: str = ""  # when the ingest loop runs it

    def seconds(self, config: Config) -> float:
        return float(self.every(config) if callable(self.every) else self.every or 0)

    def trigger(self, config: Config) -> CronTrigger | IntervalTrigger:
        if self.daily_at is not None:
            return CronTrigger(hour=self.daily_at, minute=0, timezone=UTC)
        return IntervalTrigger(seconds=self.seconds(config), timezone=UTC)

    def schedule(self, config: Config) -> str:
        """When it runs, in words."""
        if self.run is None:
            return self.loop_schedule
        if self.daily_at is not None:
            return f"daily at {self.daily_at:02d}:00 UTC"
        text = f"every {_duration(self.seconds(config))}"
        return f"{text} ({self.setting})" if self.setting else text


def _duration(seconds: float) -> str:
    for unit, size in (("hour", 3600), ("minute", 60)):
        if seconds >= size and seconds % size == 0:
            count = int(seconds // size)
            return unit if count == 1 else f"{count} {unit}s"
    return f"{seconds:g} seconds"


JOBS: dict[str, Job] = {
    job.name: job
    for job in (
        Job(
            "fetch_logs",
            "Imports Postfix, Rspamd and Netfilter logs from mailcow",
            loop_schedule="adaptive, at most FETCH_INTERVAL",
        ),
        Job(
            "complete_correlations",
            "Links new log lines into messages and recipients",
            loop_schedule="after every fetch, beside the next one",
        ),
        Job(
            "update_final_status",
            "Re-derives the status of unfinished messages",
            Worker.update_final_status,
            every=120,
        ),
        Job(
            "expire_correlations",
            "Expires messages without any line for EXPIRE_AFTER_HOURS",
            Worker.expire,
            every=60,
        ),
        Job("cleanup_logs", "Removes lines and messages older than RETENTION_DAYS", Worker.cleanup, daily_at=2),
        Job(
            "sync_domains",
            "Reads mailcow's domain list (decides message direction)",
            Worker.sync_domains,
            every=600,
            first_after=0,
        ),
        Job(
            "sync_accounts",
            "Reads mailcow's mailboxes and aliases (for the mailbox statistics)",
            Worker.sync_accounts,
            every=600,
            first_after=3,
        ),
        Job(
            "dns_check",
            "Checks SPF, DKIM and DMARC of every active mailcow domain",
            Worker.dns_check,
            every=lambda config: config.dns_check_interval_hours * 3600,
            first_after=30,
            setting="DNS_CHECK_INTERVAL_HOURS",
        ),
        Job(
            "sync_quarantine",
            "Reads mailcow's quarantine (marks quarantined messages)",
            Worker.sync_quarantine,
            every=60,
            first_after=5,
        ),
        Job(
            "sync_status",
            "Reads mailcow's mail queue, containers, vmail usage, version and bans (for /metrics)",
            Worker.sync_status,
            every=lambda config: config.status_sync_interval,
            first_after=2,
            setting="STATUS_SYNC_INTERVAL",
        ),
        Job(
            "update_geoip",
            "Reopens the GeoIP databases when their files changed",
            Worker.update_geoip,
            every=3600,
        ),
        Job(
            "dmarc_imap_import",
            "Imports DMARC and TLS reports from the IMAP mailbox",
            Worker.import_dmarc_mail,
            every=lambda config: config.dmarc_imap_interval,
            first_after=10,
            setting="DMARC_IMAP_INTERVAL",
            enabled=lambda config: config.dmarc_imap_enabled and bool(config.dmarc_imap_host),
        ),
    )
}


class _LeaderLock:
    """A session advisory lock on its own connection: released when this process dies."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.conn: psycopg.Connection | None = None
        self.held = False

    def __enter__(self) -> _LeaderLock:
        try:
            self.conn = connect(self.url, autocommit=True)
            self.held = bool(self.conn.execute("SELECT pg_try_advisory_lock(%s)", (LEADER_LOCK_KEY,)).fetchone()[0])
            if self.held:  # lets an operator (and the tests) see which process leads
                self.conn.execute(f"SET application_name = 'mailcow-grafana leader pid {os.getpid()}'")
        except psycopg.Error as exc:
            log.warning("cannot reach the database for the leader lock: %s", exc)
            self.held = False
        return self

    def alive(self) -> bool:
        try:
            assert self.conn is not None
            self.conn.execute("SELECT 1")
            return True
        except (psycopg.Error, AssertionError):
            return False

    def __exit__(self, *exc: object) -> None:
        if self.conn is not None:
            self.conn.close()


def run_worker(config: Config, pool: ConnectionPool, stop: threading.Event) -> None:
    client = MailcowClient(
        config.mailcow_url,
        config.mailcow_api_key,
        config.mailcow_api_key_rw,
        verify_tls=config.mailcow_verify_tls,
        timeout=config.mailcow_timeout,
    )
    try:
        Worker(config, pool, client).run(stop)
    finally:
        client.close()
