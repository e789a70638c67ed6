"""The worker: the ingest loop and the functions of the scheduled jobs, each run recorded in the database.

Status lives in PostgreSQL so every web process reports the same thing. With several worker
replicas, only the holder of the leader lock (`exporter.worker.lock`) ingests and runs the jobs that
`exporter.worker.registry` declares and `exporter.worker.scheduler` schedules.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import psycopg
from psycopg_pool import ConnectionPool

from exporter.config import Config
from exporter.mailcow.client import MailcowClient
from exporter.mailcow.errors import MailcowError
from exporter.services import correlation, dmarc_imap, raw_logs
from exporter.services.domains import checks as dns_checks
from exporter.services.geoip import GeoIP
from exporter.services.ingestor import Ingestor
from exporter.services.raw_logs import raw_settings
from exporter.store import domains as domain_store
from exporter.store import ingest as ingest_store
from exporter.store import jobs as job_store
from exporter.store import mailcow as mailcow_store
from exporter.store import status as status_store
from exporter.store.dmarc_imap import SyncRun
from exporter.worker.lock import LeaderLock
from exporter.worker.registry import Job
from exporter.worker.scheduler import Scheduler, build_scheduler
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
            raw=raw_settings(config),
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
        results = self.ingestor.fetch_all(due_only=True)
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

    def import_dmarc_mail(self) -> SyncRun:
        """One IMAP auto-import run; a failed run is recorded in the sync history and fails the job."""
        row = dmarc_imap.sync(self.config, self.pool, self.geoip, "auto")
        if row.status == "error":
            raise RuntimeError(f"DMARC IMAP import failed: {row.error_message}")
        return row

    def raw_logs_maintenance(self) -> list[str]:
        """Drop the raw log days past RAW_LOGS_RETENTION_DAYS; create the coming days' partitions."""
        return raw_logs.maintain(self.pool, self.config.raw_logs_retention_days)

    def cleanup(self) -> dict[str, int]:
        return ingest_store.delete_before(self.pool, datetime.now(UTC) - timedelta(days=self.config.retention_days))

    # --- running ----------------------------------------------------------------------

    def scheduler(self) -> Scheduler:
        """The scheduled jobs this configuration enables; each runs only while this worker is the leader."""
        return build_scheduler(self.config, self._leader_only)

    def _leader_only(self, job: Job) -> Callable[[], None]:
        assert job.method is not None  # the scheduler runs only jobs with a method
        run = tracked(self.pool, job.name, getattr(self, job.method))

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
                with LeaderLock(self.config.database_url or "") as lock:
                    if not lock.held:
                        self.is_leader.clear()
                        stop.wait(min(self.config.fetch_interval, 10))
                        continue
                    log.info("this worker is now the ingest leader")
                    self.is_leader.set()
                    self.sync_domains_safely()
                    while not stop.is_set() and lock.alive():
                        beat()
                        self.ingest_once(correlator)
                        # the interval runs from the start of a round: on a busy server the round itself
                        # takes a while, and mailcow's capped lists keep filling during it
                        stop.wait(self.ingestor.due_in())
                    self.is_leader.clear()
        finally:
            correlator.stop()
            scheduler.shutdown(wait=True)

    def sync_domains_safely(self) -> None:
        tracked(self.pool, "sync_domains", self.sync_domains)()


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
