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
from exporter.parsers import dovecot
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
from exporter.store import mailcow as mailcow_store
from exporter.store import messages as message_store

Kind = Literal["timeseries", "table", "logs", "annotations", "variable"]
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


ColumnKind = Literal["string", "number", "time", "boolean"]
_KINDS: dict[str, ColumnKind] = {"": "number", "s": "string", "t": "time", "b": "boolean"}


@dataclass(frozen=True)
class Column:
    """One key of a query's rows and how Grafana reads it (time: epoch milliseconds)."""

    name: str
    kind: ColumnKind


def cols(spec: str) -> tuple[Column, ...]:
    """ "time:t, sender:s, count" -> Columns; `:s` string, `:t` time, `:b` boolean, no suffix a number."""
    out = []
    for item in spec.split(","):
        name, _, kind = item.strip().partition(":")
        out.append(Column(name, _KINDS[kind]))
    return tuple(out)


@dataclass(frozen=True)
class Query:
    """A named query and the columns of its rows, declared once: the JSON datasource types its frames
    from them and the dashboards' Infinity targets list them (tests check every row has exactly these).
    Columns are in the order the dashboards show them, which may differ from the rows' key order."""

    name: str
    kind: Kind
    description: str
    run: Callable[..., list[dict]]
    columns: tuple[Column, ...]
    dynamic: ColumnKind | None = None  # plus columns of this kind named by the data (one per domain)
    needs_local: bool = False  # run(pool, args, local_domains)
    live: bool = False  # run(live mailcow, args): answered from mailcow, not the database

    @property
    def time_keys(self) -> frozenset[str]:
        """Keys that hold epoch-millisecond times."""
        return frozenset(c.name for c in self.columns if c.kind == "time")


_TOP = cols("name:s, count, delivered, failed, spam")
_REASONS = cols("reason:s, count")


# fmt: off
QUERIES = {
    q.name: q
    for q in (
        Query("message_flow", "timeseries", "Messages per bucket by final status, plus spam and total", message_flow,
              cols("time:t, delivered, deferred, bounced, rejected, expired, discarded, queued, spam, total")),
        Query("direction_flow", "timeseries", "Messages per bucket by direction", direction_flow,
              cols("time:t, inbound, outbound, internal")),
        Query("delivery_delay", "timeseries", "Delivery delay p50/p90/p99 in seconds", delivery_delay,
              cols("time:t, p50, p90, p99")),
        Query("summary", "table", "Totals by direction and status for the range", summary,
              cols("inbound, outbound, internal, total, delivered, deferred, bounced, rejected, expired, discarded,"
                   " queued, spam, delivery_success_ratio, spam_ratio")),
        Query("messages", "table",
              "Messages, newest first (filters: sender, recipient, status, ip, user, delivery, mailbox)", messages,
              cols("time:t, sender:s, recipient:s, recipient_count, subject:s, status:s, direction:s, delivery:s,"
                   " mailbox:s, spam_score, rspamd_action:s, client_ip:s, user:s, queue_id:s, correlation_key:s,"
                   " details_url:s")),
        Query("message_recipients", "table",
              "One message's recipients with their status and what the mailbox did (option key)",
              message_recipients,
              cols("last_update:t, recipient:s, orig_to:s, status:s, delivery:s, mailbox:s, delivery_detail:s,"
                   " dsn:s, relay:s, delay, attempts, reply:s")),
        Query("message_symbols", "table", "One message's rspamd symbols (option key)", message_symbols,
              cols("symbol:s, score, description:s, options:s")),
        Query("message_lines", "logs", "One message's Postfix lines (option key)", message_lines,
              cols("timestamp:t, body:s, level:s, program:s, kind:s, recipient:s, status:s")),
        Query("top_senders", "table", "Most frequent senders", _top("senders"), _TOP),
        Query("top_recipients", "table", "Most frequent recipients", _top("recipients"), _TOP),
        Query("top_sender_domains", "table", "Most frequent sender domains", _top("sender_domains"), _TOP),
        Query("top_recipient_domains", "table", "Most frequent recipient domains", _top("recipient_domains"), _TOP),
        Query("top_users", "table", "Most active authenticated users", _top("users"), _TOP),
        Query("top_reject_reasons", "table", "Rejected mail by reason class", _top("reject_reasons"), _TOP),
        Query("top_defer_reasons", "table", "Most frequent replies of deferred attempts", _reasons("deferred"),
              _REASONS),
        Query("top_bounce_reasons", "table", "Most frequent replies of bounced attempts", _reasons("bounced"),
              _REASONS),
        Query("rspamd_actions", "timeseries", "Rspamd results per bucket by action, and average score", rspamd_actions,
              cols("time:t, no_action, greylist, add_header, rewrite_subject, soft_reject, reject, avg_score")),
        Query("rspamd_scores", "table", "Rspamd score distribution (whole points)", rspamd_scores,
              cols("score:s, count, spam")),  # a score point is a category: the bar chart's x axis
        Query("top_symbols", "table", "Rspamd symbols that scored most often", top_symbols,
              cols("symbol:s, count, avg_score")),
        Query("netfilter_events", "timeseries", "Netfilter warnings, bans and unbans per bucket", netfilter_events,
              cols("time:t, warnings, bans, unbans")),
        Query("top_blocked_ips", "table", "IPs with the most netfilter warnings and bans", top_blocked_ips,
              cols("ip:s, warnings, bans, last_seen:t")),
        Query("auth_failures", "table", "Failed logins by user, IP and service", auth_failures,
              cols("username:s, ip:s, service:s, count, last_seen:t")),
        Query("postfix_logs", "logs", "Postfix log lines", postfix_logs,
              cols("timestamp:t, body:s, level:s, program:s, queue_id:s, kind:s, status:s, correlation_key:s")),
        Query("rspamd_logs", "logs", "Rspamd results as log lines", rspamd_logs,
              cols("timestamp:t, body:s, level:s, action:s, score, direction:s, message_id:s, correlation_key:s"),
              needs_local=True),
        Query("netfilter_logs", "logs", "Netfilter log lines", netfilter_logs,
              cols("timestamp:t, body:s, level:s, kind:s, ip:s, username:s")),
        Query("annotations", "annotations", "Bans, ingestion gaps, container starts", annotations,
              cols("time:t, time_end:t, title:s, text:s, tags:s")),
        Query("dmarc_summary", "table", "DMARC totals for the range (messages, pass rates, failing)", dmarc_summary,
              cols("total_messages, dmarc_pass_pct, spf_pass_pct, dkim_pass_pct, failing_messages, unique_ips,"
                   " unique_reporters")),
        Query("dmarc_daily", "timeseries", "DMARC reported messages and pass rates per day", dmarc_daily,
              cols("time:t, total_messages, dmarc_pass_pct, spf_pass_pct, dkim_pass_pct, failing_messages")),
        Query("dmarc_pass_by_domain", "timeseries", "DMARC pass % per day, one column per domain", dmarc_pass_by_domain,
              cols("time:t"), dynamic="number"),
        Query("dmarc_domains", "table", "Policy domains with pass rates and published policy", dmarc_domains,
              cols("domain:s, total_messages, dmarc_pass_pct, spf_pass_pct, dkim_pass_pct, unique_ips, policy_p:s,"
                   " policy_sp:s, policy_pct, adkim:s, aspf:s, last_report:t")),
        Query("dmarc_sources", "table", "Sending IPs with pass rates, geo, ASN, rDNS (option failures_only)",
              dmarc_sources,
              cols("source_ip:s, total_messages, dmarc_pass_pct, spf_pass_pct, dkim_pass_pct, country:s,"
                   " country_code:s, city:s, asn:s, asn_org:s, reverse_dns:s, reporters, first_seen:t, last_seen:t")),
        Query("dmarc_countries", "table", "Reported messages by source country", dmarc_countries,
              cols("country_code:s, country_name:s, total_messages, dmarc_pass_pct, spf_pass_pct, dkim_pass_pct,"
                   " failing_messages")),
        Query("dmarc_reporters", "table", "Organisations sending DMARC reports", dmarc_reporters,
              cols("reporter:s, reports, total_messages, dmarc_pass_pct, spf_pass_pct, dkim_pass_pct, last_report:t")),
        Query("dmarc_failures", "table", "Records that failed DMARC or had the policy applied", dmarc_failures,
              cols("begin:t, domain:s, reporter:s, source_ip:s, count, disposition:s, spf:s, dkim:s, header_from:s,"
                   " envelope_from:s, country_code:s, asn:s, asn_org:s, reverse_dns:s, begin_at:s")),
        # begin_at: the row's datetime as well as `begin` (JSON renders it as an HTTP date)
        Query("tls_daily", "timeseries", "TLS-RPT successful and failed sessions per day", tls_daily,
              cols("time:t, successful_sessions, failed_sessions")),
        Query("tls_failure_types", "table", "TLS-RPT failed sessions by result type", tls_failure_types,
              cols("result_type:s, sessions, mx_hosts")),
        Query("tls_reports", "table", "TLS-RPT reports", tls_reports,
              cols("begin:t, organization_name:s, report_id:s, policy_domains:s, successful_sessions,"
                   " failed_sessions")),
        Query("dns_checks", "table", "Last SPF/DKIM/DMARC check per domain", dns_checks,
              cols("domain:s, spf_status:s, spf_message:s, spf_lookups, dkim_status:s, dkim_message:s, dmarc_status:s,"
                   " dmarc_policy:s, dmarc_message:s, warnings:s, checked:t, full_check:b")),
        Query("mailbox_summary", "table", "Mailboxes, mail sent/received/failed in the range", mailbox_summary,
              cols("total_mailboxes, active_mailboxes, total_sent, total_received, sent_failed, failure_rate")),
        Query("mailbox_activity", "table", "Mailboxes by activity (option sort_by) with quota", mailbox_activity,
              cols("mailbox:s, name:s, sent, received, failed, failure_rate, combined_sent, combined_received,"
                   " aliases, quota_used, quota_used_pct, messages")),
        # fetched_at: epoch ms typed as a number, as the JSON datasource has always sent it
        Query("queue", "table", "mailcow's Postfix queue now, oldest first", queue,
              cols("arrival:t, queue_name:s, queue_id:s, age_seconds, size_bytes, sender:s, recipients:s, reasons:s,"
                   " held:b, fetched_at, actions:s, server_actions:s"), live=True),
        Query("quarantine", "table", "mailcow's quarantine now, newest first", quarantine,
              cols("created:t, id, qid:s, score, action:s, recipient:s, sender:s, subject:s, age_seconds, virus:b,"
                   " fetched_at, actions:s, server_actions:s"), live=True),
        Query("jobs", "table", "Background jobs of this service", jobs,
              cols("name:s, status:s, last_run_at:t, last_success_at:t, last_duration_seconds, runs, failures,"
                   " last_error:s")),
        Query("ingest", "table", "Log ingestion per source", ingest,
              cols("source:s, lines_total, lag_seconds, gaps_total, newest_line:t, interval_seconds, lines_per_second,"
                   " last_success:t, last_error:s")),
        Query("gaps", "table", "Recorded ingestion gaps", gaps,
              cols("source:s, gap_start:t, gap_end:t, detected_at:t")),
        Query("api_health", "table", "mailcow API reachability per endpoint group", api_health,
              cols("endpoint:s, up, checked:t, last_success:t, last_error:s")),
    )
}
# fmt: on


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
        yield from mailcow_store.local_domains(pool, local)
    elif name == "mailboxes":
        yield from message_store.mailboxes(pool, args.start, args.end)
    elif name == "directions":
        yield from store.DIRECTIONS
    elif name == "statuses":
        yield from (*store.STATUSES, "spam")
    elif name == "delivery_outcomes":
        yield from dovecot.OUTCOMES
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
    "delivery_outcomes",
    "services",
    "dmarc_domains",
    "service_url",
    "datasource_url",
)
