"""Prometheus metrics built from PostgreSQL state by a custom collector on a dedicated registry.

Every web process and replica reads the same tables, so they all report the same numbers, and
counters survive restarts and retention. Names follow Prometheus' conventions: `mailcow_…` for
the mail server, `mailcow_grafana_…` for this service's own health; base units (seconds, bytes,
ratios 0-1); `_total` counters; no per-mailbox or per-sender labels.

With several replicas scraped, each reports every figure under its own `instance` label, so the
dashboards and alert rules take the max across replicas before adding series up; only
PROCESS_FAMILIES describe the answering process itself.
"""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from collections.abc import Iterator

from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    InfoMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector, CollectorRegistry
from prometheus_client.utils import floatToGoString
from psycopg_pool import ConnectionPool

from exporter import __version__
from exporter.readmodels.mailcow_metrics import mailcow_families
from exporter.store import metrics as store
from exporter.store.counters import DELAY_BUCKETS

log = logging.getLogger(__name__)

# stored counter name -> (metric name without _total, help, label names)
COUNTERS = {
    "messages": (
        "mailcow_messages",
        "Messages that reached a final status, by direction and status (counted once, when they complete).",
        ("direction", "status", "domain"),
    ),
    "recipients": (
        "mailcow_recipients",
        "Recipients of messages that reached a final status, by direction and the recipient's status; one whose"
        " status the mailbox changed later (a Sieve discard or reject) is counted again under its new status.",
        ("direction", "status", "domain"),
    ),
    "deliveries": (
        "mailcow_postfix_delivery_attempts",
        "Postfix smtp/lmtp delivery attempts (status= lines), by direction and outcome.",
        ("direction", "status"),
    ),
    "deferrals": (
        "mailcow_postfix_deferrals",
        "Deferred delivery attempts, by remote provider class (google, microsoft, ..., local, other).",
        ("remote",),
    ),
    "bounces": (
        "mailcow_postfix_bounces",
        "Bounced recipients, by remote provider class (google, microsoft, ..., local, other).",
        ("remote",),
    ),
    "rejects": (
        "mailcow_postfix_rejects",
        "Mail refused by Postfix or its milters, by reason class.",
        ("reason",),
    ),
    "sasl_auth_failures": ("mailcow_postfix_sasl_auth_failures", "Failed SMTP AUTH attempts logged by Postfix.", ()),
    "rspamd_actions": (
        "mailcow_rspamd_actions",
        "Rspamd scan results by action; outbound = sent by an authenticated user.",
        ("action", "direction"),
    ),
    "netfilter_warnings": (
        "mailcow_netfilter_warnings",
        "Failed logins netfilter matched, by its rule id (1 UI, 3 SASL, 6-7 Dovecot, 8-9 SOGo, ...).",
        ("rule",),
    ),
    "netfilter_bans": ("mailcow_netfilter_bans", "Networks netfilter banned.", ()),
    "netfilter_unbans": ("mailcow_netfilter_unbans", "Networks netfilter unbanned.", ()),
    "dmarc_messages": (
        "mailcow_dmarc_messages",
        "Messages DMARC aggregate reports counted, by policy domain and result (pass, fail, quarantine, reject).",
        ("domain", "result"),
    ),
    "dmarc_invalid_reports": (
        "mailcow_dmarc_invalid_reports",
        "Uploads, files and mails that held no readable DMARC or TLS report, by channel.",
        ("channel",),
    ),
    "dmarc_new_failing_sources": (
        "mailcow_dmarc_new_failing_sources",
        "Sending IPs failing DMARC for a domain that no earlier report of that domain named.",
        ("domain",),
    ),
    "tls_sessions": (
        "mailcow_tls_sessions",
        "SMTP TLS sessions TLS-RPT reports counted, by policy domain and result (success, failure).",
        ("policy_domain", "result"),
    ),
    "actions": (
        "mailcow_grafana_actions",
        "Queue and quarantine action attempts by outcome (success, partial, failed, refused).",
        ("target", "action", "outcome"),
    ),
}
# Families about the answering process, not the mail server: they may differ between replicas.
PROCESS_FAMILIES = (
    "mailcow_grafana_database_up",
    "mailcow_grafana_build_info",
    "mailcow_grafana_scrape_duration_seconds",
)
ALWAYS_PRESENT = ("sasl_auth_failures", "netfilter_bans", "netfilter_unbans", "dmarc_invalid_reports")


class MailcowCollector(Collector):
    """Collects everything from one short read-only transaction per scrape."""

    def __init__(self, pool: ConnectionPool, mailbox_quota: bool = False) -> None:
        self.pool = pool
        self.mailbox_quota = mailbox_quota

    def collect(self) -> Iterator[Metric]:
        started = time.perf_counter()
        up = GaugeMetricFamily("mailcow_grafana_database_up", "Whether this service could read its PostgreSQL.")
        try:
            with self.pool.connection(timeout=5) as conn:
                state = store.read(conn)
        except Exception as exc:  # the scrape still answers, saying the database is down
            log.warning("metrics: cannot read the database: %s", exc)
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up
        info = InfoMetricFamily("mailcow_grafana_build", "This service's version.")
        info.add_metric([], {"version": __version__})
        yield info
        yield from _counters(state.counters)
        yield from _ingest(state)
        yield from _jobs(state)
        yield from mailcow_families(state)
        yield from _reports_and_api(state)
        if self.mailbox_quota:
            yield _quota(state)
        took = GaugeMetricFamily(
            "mailcow_grafana_scrape_duration_seconds", "Time this scrape spent reading the database."
        )
        took.add_metric([], time.perf_counter() - started)
        yield took


def _counters(rows: list[tuple[str, dict[str, str], float]]) -> Iterator[Metric]:
    by_name: dict[str, list[tuple[dict[str, str], float]]] = defaultdict(list)
    for name, labels, value in rows:
        by_name[name].append((labels, value))
    for key, (metric, help_text, label_names) in COUNTERS.items():
        samples = by_name.get(key, [])
        present = [n for n in label_names if any(n in labels for labels, _ in samples)]
        family = CounterMetricFamily(metric, help_text, labels=present)
        for labels, value in samples:
            family.add_metric([labels.get(n, "") for n in present], value)
        if not samples and key in ALWAYS_PRESENT:
            family.add_metric([], 0)
        yield family
    yield _delay_histogram(by_name)


DNS_STATUS = {"success": 0, "warning": 1, "error": 2, "unknown": -1}


def _dns(state: store.MetricsState) -> Iterator[Metric]:
    status = GaugeMetricFamily(
        "mailcow_dns_check_status",
        "Last DNS check of each mailcow domain: 0 success, 1 warning, 2 error, -1 unknown.",
        labels=["domain", "check"],
    )
    lookups = GaugeMetricFamily(
        "mailcow_spf_dns_lookups",
        "DNS-querying SPF terms of the domain, through includes (limit 10).",
        labels=["domain"],
    )
    for row in state.dns_checks:
        for check in ("spf", "dkim", "dmarc"):
            status.add_metric([row.domain, check], DNS_STATUS.get(getattr(row, check) or "unknown", -1))
        if row.spf_lookups is not None:
            lookups.add_metric([row.domain], row.spf_lookups)
    yield status
    yield lookups


def _quota(state: store.MetricsState) -> Metric:
    ratio = GaugeMetricFamily(
        "mailcow_mailbox_quota_used_ratio",
        "Share of its quota each mailbox uses (METRICS_MAILBOX_QUOTA).",
        labels=["mailbox"],
    )
    for row in state.quotas:
        ratio.add_metric([row.username], row.quota_used / row.quota)
    return ratio


def _delay_histogram(by_name: dict[str, list[tuple[dict[str, str], float]]]) -> Metric:
    family = HistogramMetricFamily(
        "mailcow_delivery_delay_seconds",
        "Postfix delay= of delivered recipients (receipt to delivery), by direction.",
        labels=["direction"],
    )
    sums = {labels["direction"]: value for labels, value in by_name.get("delivery_delay_seconds_sum", [])}
    counts = {labels["direction"]: value for labels, value in by_name.get("delivery_delay_seconds_count", [])}
    buckets: dict[str, dict[float, float]] = defaultdict(dict)
    for labels, value in by_name.get("delivery_delay_seconds_bucket", []):
        buckets[labels["direction"]][float(labels["le"])] = value
    for direction, count in sorted(counts.items()):
        seen = buckets[direction]
        family.add_metric(
            [direction],
            [(floatToGoString(le), seen.get(float(le), 0)) for le in DELAY_BUCKETS] + [("+Inf", count)],
            sums.get(direction, 0),
        )
    return family


def _ingest(state: store.MetricsState) -> Iterator[Metric]:
    lines = CounterMetricFamily(
        "mailcow_grafana_lines_ingested", "Log lines stored, by mailcow log source.", labels=["source"]
    )
    gaps = CounterMetricFamily(
        "mailcow_grafana_ingest_gaps",
        "Times mailcow's capped log list rotated lines away before they were read.",
        labels=["source"],
    )
    unparsed = CounterMetricFamily(
        "mailcow_grafana_unparsed_lines",
        "Fetched items no parser could read (kept in unparsed_lines), by mailcow log source.",
        labels=["source"],
    )
    lag = GaugeMetricFamily(
        "mailcow_grafana_ingest_lag_seconds", "Now minus the time of the newest stored line.", labels=["source"]
    )
    last = GaugeMetricFamily(
        "mailcow_grafana_ingest_last_success_timestamp_seconds",
        "When a fetch of this source last succeeded (Unix time).",
        labels=["source"],
    )
    for row in state.ingest:
        source = [row.source]
        lines.add_metric(source, row.lines_total)
        gaps.add_metric(source, row.gaps_total)
        unparsed.add_metric(source, row.unparsed_total)
        if row.newest_line_at:
            lag.add_metric(source, max(0.0, (state.now - row.newest_line_at).total_seconds()))
        if row.last_success_at:
            last.add_metric(source, row.last_success_at.timestamp())
    yield from (lines, gaps, unparsed, lag, last)


def _jobs(state: store.MetricsState) -> Iterator[Metric]:
    # `job_name`, not `job`: Prometheus sets `job` on every scraped series itself.
    runs = CounterMetricFamily("mailcow_grafana_job_runs", "Background job runs.", labels=["job_name"])
    failures = CounterMetricFamily(
        "mailcow_grafana_job_failures", "Background job runs that failed.", labels=["job_name"]
    )
    duration = GaugeMetricFamily(
        "mailcow_grafana_job_last_duration_seconds", "How long the last run of the job took.", labels=["job_name"]
    )
    success = GaugeMetricFamily(
        "mailcow_grafana_job_last_success_timestamp_seconds",
        "When the job last succeeded (Unix time).",
        labels=["job_name"],
    )
    for row in state.jobs:
        job = [row.name]
        runs.add_metric(job, row.runs)
        failures.add_metric(job, row.failures)
        if row.last_duration_seconds is not None:
            duration.add_metric(job, row.last_duration_seconds)
        if row.last_success_at:
            success.add_metric(job, row.last_success_at.timestamp())
    yield from (runs, failures, duration, success)


def _reports_and_api(state: store.MetricsState) -> Iterator[Metric]:
    """The newest DMARC report per domain, the DNS checks, and which mailcow API groups answer."""
    last_report = GaugeMetricFamily(
        "mailcow_dmarc_last_report_timestamp_seconds",
        "End of the newest DMARC aggregate report per policy domain (Unix time).",
        labels=["domain"],
    )
    for domain, at in state.dmarc_last:
        last_report.add_metric([domain], at.timestamp())
    yield last_report
    yield from _dns(state)
    api_up = GaugeMetricFamily(
        "mailcow_api_up", "Whether the group of mailcow API endpoints answered when last used.", labels=["endpoint"]
    )
    api_ok = GaugeMetricFamily(
        "mailcow_api_last_success_timestamp_seconds",
        "When the group of mailcow API endpoints last answered (Unix time).",
        labels=["endpoint"],
    )
    for row in state.api:
        api_up.add_metric([row.endpoint_group], 1 if row.up else 0)
        if row.last_success_at:
            api_ok.add_metric([row.endpoint_group], row.last_success_at.timestamp())
    yield from (api_up, api_ok)


def registry(pool: ConnectionPool, mailbox_quota: bool = False) -> CollectorRegistry:
    """A dedicated registry (no process or Python metrics: they differ between replicas)."""
    reg = CollectorRegistry(auto_describe=False)
    reg.register(MailcowCollector(pool, mailbox_quota))
    return reg
