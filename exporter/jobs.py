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
from datetime import UTC, datetime, timedelta

import psycopg
from apscheduler.schedulers.background import BackgroundScheduler
from psycopg_pool import ConnectionPool

from exporter import correlation, dmarc_imap, dns_checks
from exporter.config import Config
from exporter.database import connect
from exporter.geoip import GeoIP
from exporter.ingestion import Ingestor
from exporter.mailcow_client import MailcowClient, MailcowError
from exporter.store import domains as domain_store
from exporter.store import ingest as ingest_store
from exporter.store import jobs as job_store
from exporter.store import mailcow as mailcow_store
from exporter.store import status as status_store

log = logging.getLogger(__name__)

LEADER_LOCK_KEY = 0x6D63_6C64  # "mcld"

# name -> (schedule text, description) as /api/settings/info reports them (seed 002 names).
JOBS = {
    "fetch_logs": ("adaptive, at most FETCH_INTERVAL", "Imports Postfix, Rspamd and Netfilter logs from mailcow"),
    "complete_correlations": (
        "after every fetch, beside the next one",
        "Links new log lines into messages and recipients",
    ),
    "update_final_status": ("120 seconds", "Re-derives the status of unfinished messages"),
    "expire_correlations": ("60 seconds", "Expires messages without any line for EXPIRE_AFTER_HOURS"),
    "cleanup_logs": ("daily at 02:00 UTC", "Removes lines and messages older than RETENTION_DAYS"),
    "sync_domains": ("10 minutes", "Reads mailcow's domain list (decides message direction)"),
    "sync_quarantine": ("60 seconds", "Reads mailcow's quarantine (marks quarantined messages)"),
    "sync_status": (
        "STATUS_SYNC_INTERVAL (30 seconds)",
        "Reads mailcow's mail queue, containers, vmail usage, version and bans (for /metrics)",
    ),
}


def tracked(pool: ConnectionPool, name: str, func: Callable[[], object]) -> Callable[[], object]:
    """Wrap a job so each run records start, outcome, duration and error text; never raises."""

    def run() -> object:
        started = datetime.now(UTC)
        t0 = time.perf_counter()
        job_store.job_started(pool, name, started)
        error: str | None = None
        result: object = None
        try:
            result = func()
        except Exception as exc:  # a job failure is recorded, never kills the worker
            error = f"{type(exc).__name__}: {exc}"
            log.error("job %s failed: %s", name, error)
        job_store.job_finished(pool, name, datetime.now(UTC), time.perf_counter() - t0, error)
        return result

    return run


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
        """Scheduled jobs; each runs only while this worker is the leader."""
        scheduler = BackgroundScheduler(timezone="UTC", job_defaults={"coalesce": True, "max_instances": 1})

        def leader_only(name: str, func: Callable[[], object]) -> Callable[[], None]:
            job = tracked(self.pool, name, func)

            def run() -> None:
                if self.is_leader.is_set():
                    job()

            return run

        now = datetime.now(UTC)
        scheduler.add_job(leader_only("update_final_status", self.update_final_status), "interval", seconds=120)
        scheduler.add_job(leader_only("expire_correlations", self.expire), "interval", seconds=60)
        scheduler.add_job(leader_only("cleanup_logs", self.cleanup), "cron", hour=2, minute=0)
        scheduler.add_job(leader_only("sync_domains", self.sync_domains), "interval", minutes=10, next_run_time=now)
        scheduler.add_job(
            leader_only("sync_accounts", self.sync_accounts),
            "interval",
            minutes=10,
            next_run_time=now + timedelta(seconds=3),
        )
        scheduler.add_job(
            leader_only("dns_check", self.dns_check),
            "interval",
            hours=self.config.dns_check_interval_hours,
            next_run_time=now + timedelta(seconds=30),
        )
        scheduler.add_job(
            leader_only("sync_quarantine", self.sync_quarantine),
            "interval",
            seconds=60,
            next_run_time=now + timedelta(seconds=5),
        )
        scheduler.add_job(
            leader_only("sync_status", self.sync_status),
            "interval",
            seconds=self.config.status_sync_interval,
            next_run_time=now + timedelta(seconds=2),
        )
        scheduler.add_job(leader_only("update_geoip", self.update_geoip), "interval", hours=1)
        if self.config.dmarc_imap_enabled and self.config.dmarc_imap_host:
            scheduler.add_job(
                leader_only("dmarc_imap_import", self.import_dmarc_mail),
                "interval",
                seconds=self.config.dmarc_imap_interval,
                next_run_time=now + timedelta(seconds=10),
            )
        return scheduler

    def run(self, stop: threading.Event) -> None:
        """Until `stop`: hold leadership, ingest, sleep the adaptive interval; else wait and retry."""
        scheduler = self.scheduler()
        scheduler.start()
        correlate = tracked(self.pool, "complete_correlations", self.correlate)
        correlator = correlation.Background(lambda: correlate() if self.is_leader.is_set() else None).start()
        try:
            while not stop.is_set():
                with _LeaderLock(self.config.database_url or "") as lock:
                    if not lock.held:
                        self.is_leader.clear()
                        stop.wait(min(self.config.fetch_interval, 10))
                        continue
                    log.info("this worker is now the ingest leader")
                    self.is_leader.set()
                    self.sync_domains_safely()
                    while not stop.is_set() and lock.alive():
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
