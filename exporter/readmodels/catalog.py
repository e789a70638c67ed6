"""Named Grafana queries: each turns request arguments into flat rows with stable snake_case keys.

Both Grafana paths use this one catalog: Infinity reads `GET /grafana/infinity/<name>` as a JSON
array, the JSON datasource gets the same rows as frames from `POST /grafana/json/query`. Times are
epoch milliseconds; time series are zero-filled at a step derived from the range, so a panel shows
quiet periods as 0 instead of interpolating across them. The queries themselves live in the read
model of their feature (messages, logs, security, dmarc, tls, domains, mailbox_stats, mailcow_state,
service); this module names them.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from psycopg_pool import ConnectionPool

from exporter.mailcow.live import LiveMailcow
from exporter.readmodels.args import MIN_STEP, Args
from exporter.readmodels.dmarc import (
    dmarc_countries,
    dmarc_daily,
    dmarc_domains,
    dmarc_failures,
    dmarc_pass_by_domain,
    dmarc_reporters,
    dmarc_sources,
    dmarc_summary,
)
from exporter.readmodels.domains import dns_checks
from exporter.readmodels.logs import netfilter_logs, postfix_logs, rspamd_logs
from exporter.readmodels.mailbox_stats import mailbox_activity, mailbox_summary
from exporter.readmodels.mailcow_state import quarantine, queue
from exporter.readmodels.messages import (
    delivery_delay,
    direction_flow,
    message_flow,
    message_lines,
    message_recipients,
    message_symbols,
    messages,
    summary,
)
from exporter.readmodels.messages import reasons as _reasons
from exporter.readmodels.messages import top as _top
from exporter.readmodels.security import (
    auth_failures,
    netfilter_events,
    rspamd_actions,
    rspamd_scores,
    top_blocked_ips,
    top_symbols,
)
from exporter.readmodels.service import annotations, api_health, gaps, ingest, jobs
from exporter.readmodels.tls import tls_daily, tls_failure_types, tls_reports
from exporter.store import dmarc as dmarc_store
from exporter.store import grafana as store

Kind = Literal["timeseries", "table", "logs", "annotations", "variable"]
# Row keys that hold epoch-millisecond times (typed as time by the JSON datasource and the dashboards).
TIME_KEYS = frozenset(
    {
        "time",
        "timestamp",
        "time_end",
        "created",
        "arrival",
        "last_seen",
        "newest_line",
        "last_success",
        "checked",
        "synced_at",
        "gap_start",
        "gap_end",
        "detected_at",
        "last_run_at",
        "last_success_at",
        "last_update",
        "first_seen",
        "last_report",
        "begin",
    }
)
MAX_POINTS = 1500


def step_for(start: datetime, end: datetime, interval_ms: int | None, max_points: int | None = None) -> int:
    """Seconds per bucket: Grafana's interval, but never under a minute or over MAX_POINTS buckets."""
    span = max(1.0, (end - start).total_seconds())
    points = min(max_points or MAX_POINTS, MAX_POINTS)
    step = max(MIN_STEP, math.ceil(span / points), math.ceil((interval_ms or 0) / 1000))
    for nice in (60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400):
        if step <= nice:
            return nice
    return math.ceil(step / 86400) * 86400


@dataclass(frozen=True)
class Query:
    name: str
    kind: Kind
    description: str
    run: Callable[..., list[dict]]
    needs_local: bool = False  # run(pool, args, local_domains)
    live: bool = False  # run(live mailcow, args): answered from mailcow, not the database


QUERIES = {
    q.name: q
    for q in (
        Query("message_flow", "timeseries", "Messages per bucket by final status, plus spam and total", message_flow),
        Query("direction_flow", "timeseries", "Messages per bucket by direction", direction_flow),
        Query("delivery_delay", "timeseries", "Delivery delay p50/p90/p99 in seconds", delivery_delay),
        Query("summary", "table", "Totals by direction and status for the range", summary),
        Query("messages", "table", "Messages, newest first (filters: sender, recipient, status, ip, user)", messages),
        Query(
            "message_recipients", "table", "One message's recipients with their status (option key)", message_recipients
        ),
        Query("message_symbols", "table", "One message's rspamd symbols (option key)", message_symbols),
        Query("message_lines", "logs", "One message's Postfix lines (option key)", message_lines),
        Query("top_senders", "table", "Most frequent senders", _top("senders")),
        Query("top_recipients", "table", "Most frequent recipients", _top("recipients")),
        Query("top_sender_domains", "table", "Most frequent sender domains", _top("sender_domains")),
        Query("top_recipient_domains", "table", "Most frequent recipient domains", _top("recipient_domains")),
        Query("top_users", "table", "Most active authenticated users", _top("users")),
        Query("top_reject_reasons", "table", "Rejected mail by reason class", _top("reject_reasons")),
        Query("top_defer_reasons", "table", "Most frequent replies of deferred attempts", _reasons("deferred")),
        Query("top_bounce_reasons", "table", "Most frequent replies of bounced attempts", _reasons("bounced")),
        Query("rspamd_actions", "timeseries", "Rspamd results per bucket by action, and average score", rspamd_actions),
        Query("rspamd_scores", "table", "Rspamd score distribution (whole points)", rspamd_scores),
        Query("top_symbols", "table", "Rspamd symbols that scored most often", top_symbols),
        Query("netfilter_events", "timeseries", "Netfilter warnings, bans and unbans per bucket", netfilter_events),
        Query("top_blocked_ips", "table", "IPs with the most netfilter warnings and bans", top_blocked_ips),
        Query("auth_failures", "table", "Failed logins by user, IP and service", auth_failures),
        Query("postfix_logs", "logs", "Postfix log lines", postfix_logs),
        Query("rspamd_logs", "logs", "Rspamd results as log lines", rspamd_logs, needs_local=True),
        Query("netfilter_logs", "logs", "Netfilter log lines", netfilter_logs),
        Query("annotations", "annotations", "Bans, ingestion gaps, container starts", annotations),
        Query("dmarc_summary", "table", "DMARC totals for the range (messages, pass rates, failing)", dmarc_summary),
        Query("dmarc_daily", "timeseries", "DMARC reported messages and pass rates per day", dmarc_daily),
        Query(
            "dmarc_pass_by_domain", "timeseries", "DMARC pass % per day, one column per domain", dmarc_pass_by_domain
        ),
        Query("dmarc_domains", "table", "Policy domains with pass rates and published policy", dmarc_domains),
        Query(
            "dmarc_sources",
            "table",
            "Sending IPs with pass rates, geo, ASN, rDNS (option failures_only)",
            dmarc_sources,
        ),
        Query("dmarc_countries", "table", "Reported messages by source country", dmarc_countries),
        Query("dmarc_reporters", "table", "Organisations sending DMARC reports", dmarc_reporters),
        Query("dmarc_failures", "table", "Records that failed DMARC or had the policy applied", dmarc_failures),
        Query("tls_daily", "timeseries", "TLS-RPT successful and failed sessions per day", tls_daily),
        Query("tls_failure_types", "table", "TLS-RPT failed sessions by result type", tls_failure_types),
        Query("tls_reports", "table", "TLS-RPT reports", tls_reports),
        Query("dns_checks", "table", "Last SPF/DKIM/DMARC check per domain", dns_checks),
        Query("mailbox_summary", "table", "Mailboxes, mail sent/received/failed in the range", mailbox_summary),
        Query("mailbox_activity", "table", "Mailboxes by activity (option sort_by) with quota", mailbox_activity),
        Query("queue", "table", "mailcow's Postfix queue now, oldest first", queue, live=True),
        Query("quarantine", "table", "mailcow's quarantine now, newest first", quarantine, live=True),
        Query("jobs", "table", "Background jobs of this service", jobs),
        Query("ingest", "table", "Log ingestion per source", ingest),
        Query("gaps", "table", "Recorded ingestion gaps", gaps),
        Query("api_health", "table", "mailcow API reachability per endpoint group", api_health),
    )
}


def run(name: str, pool: ConnectionPool, args: Args, local: list[str], live: LiveMailcow | None = None) -> list[dict]:
    args.local = tuple(d.lower() for d in local)
    query = QUERIES[name]
    if query.live:
        if live is None:
            raise ValueError(f"{name} reads mailcow live; pass the live source")
        return query.run(live, args)
    return query.run(pool, args, local) if query.needs_local else query.run(pool, args)


# --- template variables ---------------------------------------------------------------------------

LOG_SOURCES = ("postfix", "rspamd", "netfilter")


def variable(name: str, pool: ConnectionPool, args: Args, local: list[str]) -> Iterator[str]:
    if name == "domains":
        yield from store.domains(pool, local)
    elif name == "mailboxes":
        yield from store.mailboxes(pool, args.start, args.end)
    elif name == "directions":
        yield from store.DIRECTIONS
    elif name == "statuses":
        yield from (*store.STATUSES, "spam")
    elif name == "services":
        yield from LOG_SOURCES
    elif name == "dmarc_domains":
        yield from dmarc_store.dmarc_domains(pool)
    elif name == "service_url":
        yield args.service_url
    elif name == "datasource_url":
        yield args.datasource_url
    else:
        raise KeyError(name)


VARIABLES = (
    "domains",
    "mailboxes",
    "directions",
    "statuses",
    "services",
    "dmarc_domains",
    "service_url",
    "datasource_url",
)
