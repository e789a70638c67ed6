"""The background jobs, declared once: the scheduler runs them, /api/settings/info and the README list them.

Plain data only (seconds, a daily hour, the names of settings and of the Worker method that runs a job):
`exporter.worker.scheduler` turns it into APScheduler triggers, and the web process reads it without
loading the worker or APScheduler.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from exporter.config import Config


class Category(StrEnum):
    """What a job is about, so a reader of the job list finds the ones of one feature together."""

    INGEST = "ingest"
    MAILCOW_SYNC = "mailcow sync"
    MAINTENANCE = "maintenance"
    DNS = "DNS"
    DMARC = "DMARC"


@dataclass(frozen=True)
class Setting:
    """An interval taken from the configuration: the variable `name`, counted in units of `unit` seconds."""

    name: str
    unit: float = 1.0

    def seconds(self, config: Config) -> float:
        return float(getattr(config, self.name.lower())) * self.unit


@dataclass(frozen=True)
class Job:
    """A background job: what it does, when it runs, and which Worker method runs it."""

    name: str
    category: Category
    description: str
    method: str | None = None  # the Worker method the scheduler calls; None: the ingest loop runs it
    every: float | Setting | None = None  # seconds between runs, or the setting that says so
    daily_at: int | None = None  # or once a day at this hour (UTC)
    first_after: float | None = None  # first run this many seconds after start (default: one interval in)
    requires: tuple[str, ...] = ()  # settings that must all be set for it to run
    loop_schedule: str = ""  # when the ingest loop runs it

    def seconds(self, config: Config) -> float:
        return self.every.seconds(config) if isinstance(self.every, Setting) else float(self.every or 0)

    def enabled(self, config: Config) -> bool:
        return all(getattr(config, name.lower()) for name in self.requires)

    def schedule(self, config: Config) -> str:
        """When it runs with this configuration, in words (as /api/settings/info shows it)."""
        if setting := self._setting():
            return f"every {_duration(setting.seconds(config))} ({setting.name})"
        return self._fixed_schedule()

    def when(self) -> str:
        """When it runs, whatever the configuration (as the README shows it)."""
        setting = self._setting()
        text = f"every `{setting.name}`" if setting else self._fixed_schedule()
        if self.requires:
            verb = "is" if len(self.requires) == 1 else "are"
            text += f", when {' and '.join(f'`{name}`' for name in self.requires)} {verb} set"
        return text

    def _setting(self) -> Setting | None:
        """The setting that decides how often the scheduler runs it, if one does."""
        scheduled = self.method is not None and self.daily_at is None
        return self.every if scheduled and isinstance(self.every, Setting) else None

    def _fixed_schedule(self) -> str:
        if self.method is None:
            return self.loop_schedule
        if self.daily_at is not None:
            return f"daily at {self.daily_at:02d}:00 UTC"
        return f"every {_duration(float(self.every or 0))}"


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
            Category.INGEST,
            "Imports mailcow's log lists: Postfix, Rspamd and Netfilter, and the raw lines of RAW_LOGS_SERVICES",
            loop_schedule="adaptive per list, at most FETCH_INTERVAL (RAW_LOGS_FETCH_INTERVAL for the others)",
        ),
        Job(
            "complete_correlations",
            Category.INGEST,
            "Links new log lines into messages and recipients",
            loop_schedule="after every fetch, beside the next one",
        ),
        Job(
            "update_final_status",
            Category.INGEST,
            "Re-derives the status of unfinished messages",
            "update_final_status",
            every=120,
        ),
        Job(
            "expire_correlations",
            Category.INGEST,
            "Expires messages without any line for EXPIRE_AFTER_HOURS",
            "expire",
            every=60,
        ),
        Job(
            "cleanup_logs",
            Category.MAINTENANCE,
            "Removes lines and messages older than RETENTION_DAYS",
            "cleanup",
            daily_at=2,
        ),
        Job(
            "raw_logs_retention",
            Category.MAINTENANCE,
            "Drops raw log days older than RAW_LOGS_RETENTION_DAYS, creates the coming days' partitions",
            "raw_logs_maintenance",
            every=3600,
            first_after=1,
            requires=("RAW_LOGS_ENABLED",),
        ),
        Job(
            "sync_domains",
            Category.MAILCOW_SYNC,
            "Reads mailcow's domain list (decides message direction)",
            "sync_domains",
            every=600,
            first_after=0,
        ),
        Job(
            "sync_accounts",
            Category.MAILCOW_SYNC,
            "Reads mailcow's mailboxes and aliases (for the mailbox statistics)",
            "sync_accounts",
            every=600,
            first_after=3,
        ),
        Job(
            "dns_check",
            Category.DNS,
            "Checks SPF, DKIM and DMARC of every active mailcow domain",
            "dns_check",
            every=Setting("DNS_CHECK_INTERVAL_HOURS", 3600),
            first_after=30,
        ),
        Job(
            "sync_quarantine",
            Category.MAILCOW_SYNC,
            "Reads mailcow's quarantine (marks quarantined messages)",
            "sync_quarantine",
            every=60,
            first_after=5,
        ),
        Job(
            "sync_status",
            Category.MAILCOW_SYNC,
            "Reads mailcow's mail queue, containers, vmail usage, version and bans (for /metrics)",
            "sync_status",
            every=Setting("STATUS_SYNC_INTERVAL"),
            first_after=2,
        ),
        Job(
            "update_geoip",
            Category.MAINTENANCE,
            "Reopens the GeoIP databases when their files changed",
            "update_geoip",
            every=3600,
        ),
        Job(
            "dmarc_imap_import",
            Category.DMARC,
            "Imports DMARC and TLS reports from the IMAP mailbox",
            "import_dmarc_mail",
            every=Setting("DMARC_IMAP_INTERVAL"),
            first_after=10,
            requires=("DMARC_IMAP_ENABLED", "DMARC_IMAP_HOST"),
        ),
    )
}


def markdown_table() -> str:
    """The README's job table; a test keeps the README equal to it, so a new job gets documented."""
    rows = ["| job | category | when | what |", "| --- | --- | --- | --- |"]
    rows += [f"| `{job.name}` | {job.category} | {job.when()} | {job.description} |" for job in JOBS.values()]
    return "\n".join(rows) + "\n"
