"""Named Grafana queries: each turns request arguments into flat rows with stable snake_case keys.

Both Grafana paths use this one catalog: Infinity reads `GET /grafana/infinity/<name>` as a JSON
array, the JSON datasource gets the same rows as frames from `POST /grafana/json/query`. Times are
epoch milliseconds; time series are zero-filled at a step derived from the range, so a panel shows
quiet periods as 0 instead of interpolating across them.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from psycopg_pool import ConnectionPool

from exporter.mailcow.live import LiveMailcow
from exporter.readmodels import mailcow_state as live_views
from exporter.services.geoip import flag
from exporter.store import dmarc as dmarc_store
from exporter.store import domains as domain_store
from exporter.store import grafana as store
from exporter.store import ingest as ingest_store
from exporter.store import jobs as job_store
from exporter.store import logs as log_store
from exporter.store import mailbox_stats as mailbox_store
from exporter.store import mailcow as mailcow_store
from exporter.store import messages as message_store
from exporter.store import status as status_store
from exporter.store import tls as tls_store

Kind = Literal["timeseries", "table", "logs", "annotations", "variable"]
MAX_POINTS = 1500
MIN_STEP = 60


@dataclass
class Args:
    """What a panel asks for: range, step, filters, and query-specific options."""

    start: datetime
    end: datetime
    step: int = MIN_STEP
    limit: int = 100
    direction: str | None = None
    domain: str | None = None
    search: str | None = None
    options: dict[str, str] = field(default_factory=dict)
    local: tuple[str, ...] = ()
    service_url: str = ""  # this service as the browser reaches it: confirmation pages, panel actions
    datasource_url: str = ""  # this service as Grafana's server reaches it: Infinity actions

    @property
    def scope(self) -> store.Scope:
        return store.Scope(self.start, self.end, self.direction, self.domain, self.search, self.local)


def step_for(start: datetime, end: datetime, interval_ms: int | None, max_points: int | None = None) -> int:
    """Seconds per bucket: Grafana's interval, but never under a minute or over MAX_POINTS buckets."""
    span = max(1.0, (end - start).total_seconds())
    points = min(max_points or MAX_POINTS, MAX_POINTS)
    step = max(MIN_STEP, math.ceil(span / points), math.ceil((interval_ms or 0) / 1000))
    for nice in (60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400):
        if step <= nice:
            return nice
    return math.ceil(step / 86400) * 86400


def ms(value: datetime | None) -> int | None:
    return int(value.timestamp() * 1000) if value else None


def _fill(rows: list[dict[str, Any]], args: Args, columns: tuple[str, ...], zero: float | None = 0) -> list[dict]:
    """One row per bucket from the range's first to last bucket; missing buckets get `zero`."""
    by_time = {row["time"]: row for row in rows}
    step = timedelta(seconds=args.step)
    epoch = datetime(1970, 1, 1, tzinfo=UTC)
    bucket = epoch + step * ((args.start - epoch) // step)
    out = []
    while bucket <= args.end:
        row = by_time.get(bucket, {})
        out.append({"time": ms(bucket), **{c: _number(row.get(c, zero)) for c in columns}})
        bucket += step
    return out


def _number(value: Any) -> float | int | None:
    if value is None or isinstance(value, int):
        return value
    return round(float(value), 3)


def _rows(rows: list[dict[str, Any]], time_keys: tuple[str, ...] = ()) -> list[dict[str, Any]]:
    return [
        {k: (ms(v) if k in time_keys else _number(v) if isinstance(v, float) else v) for k, v in r.items()}
        for r in rows
    ]


# --- mail flow -------------------------------------------------------------------------------


def message_flow(pool: ConnectionPool, args: Args) -> list[dict]:
    return _fill(store.status_series(pool, args.scope, args.step), args, (*store.STATUSES, "spam", "total"))


def direction_flow(pool: ConnectionPool, args: Args) -> list[dict]:
    return _fill(store.direction_series(pool, args.scope, args.step), args, store.DIRECTIONS)


def delivery_delay(pool: ConnectionPool, args: Args) -> list[dict]:
    """p50/p90/p99 from the hourly histogram when buckets are whole hours and only direction filters;
    exact from the recipients otherwise (short ranges, domain or search filters)."""
    if args.step % 3600 or args.domain or args.search:
        return _fill(store.delay_series(pool, args.scope, args.step), args, ("p50", "p90", "p99"), zero=None)
    histograms: dict[datetime, list[tuple[float, int]]] = {}
    for row in store.delay_histogram(pool, args.scope, args.step):
        histograms.setdefault(row["time"], []).append((row["le"], row["count"]))
    rows = [
        {"time": t, **{f"p{int(q * 100)}": quantile(q, buckets) for q in (0.5, 0.9, 0.99)}}
        for t, buckets in histograms.items()
    ]
    return _fill(rows, args, ("p50", "p90", "p99"), zero=None)


def quantile(q: float, buckets: list[tuple[float, int]]) -> float | None:
    """The q-quantile of a histogram (upper bound, count) by linear interpolation within the bucket,
    as Prometheus' histogram_quantile does; the open last bucket answers its lower bound."""
    total = sum(count for _, count in buckets)
    if not total:
        return None
    rank, seen, lower = q * total, 0, 0.0
    for upper, count in sorted(buckets):
        if seen + count >= rank:
            if math.isinf(upper):
                return lower
            return lower + (upper - lower) * ((rank - seen) / count if count else 0)
        seen += count
        lower = upper
    return lower


def summary(pool: ConnectionPool, args: Args) -> list[dict]:
    row = store.summary(pool, args.scope)
    finished = sum(row[s] for s in ("delivered", "bounced", "expired", "rejected"))
    return [
        {
            **row,
            "delivery_success_ratio": round(row["delivered"] / finished, 4) if finished else None,
            "spam_ratio": round(row["spam"] / row["total"], 4) if row["total"] else None,
        }
    ]


def messages(pool: ConnectionPool, args: Args) -> list[dict]:
    filters = {
        "start_date": args.start,
        "end_date": args.end,
        "direction": args.direction,
        "domain": args.domain,
        "search": args.search,
        **{k: v for k, v in args.options.items() if k in ("sender", "recipient", "status", "ip", "user") and v},
    }
    return [
        {
            "time": ms(m["first_seen"]),
            "sender": m["sender"],
            "recipient": m["first_recipient"],
            "recipient_count": m["recipient_count"],
            "subject": m["subject"],
            "status": m["final_status"],
            "direction": m["direction"],
            "spam_score": _number(m["spam_score"]),
            "rspamd_action": m["rspamd_action"],
            "client_ip": m["client_ip"],
            "user": m["sasl_username"],
            "queue_id": m["queue_id"],
            "correlation_key": m["correlation_key"],
            "details_url": f"/api/message/{m['correlation_key']}/details",
        }
        for m in message_store.export_messages(pool, filters, args.limit)
    ]


def _top(what: str) -> Callable[[ConnectionPool, Args], list[dict]]:
    def run(pool: ConnectionPool, args: Args) -> list[dict]:
        return store.top_messages(pool, args.scope, what, args.limit)

    return run


def _reasons(status: str) -> Callable[[ConnectionPool, Args], list[dict]]:
    def run(pool: ConnectionPool, args: Args) -> list[dict]:
        return store.top_delivery_reasons(pool, args.start, args.end, status, args.limit)

    return run


# --- one message (the details dashboard; option `key` = correlation key) -------------------------


def _message(pool: ConnectionPool, args: Args) -> dict[str, Any] | None:
    key = args.options.get("key")
    return message_store.message_by_key(pool, key) if key else None


def message_recipients(pool: ConnectionPool, args: Args) -> list[dict]:
    found = _message(pool, args)
    return [
        {
            "last_update": ms(r["last_at"]),
            "recipient": r["recipient"],
            "orig_to": r["orig_to"],
            "status": r["status"],
            "dsn": r["dsn"],
            "relay": r["relay"],
            "delay": _number(r["delay"]),
            "attempts": r["attempts"],
            "reply": r["reply"],
        }
        for r in (found["recipient_rows"] if found else [])
    ]


def message_symbols(pool: ConnectionPool, args: Args) -> list[dict]:
    found = _message(pool, args)
    row = found["rspamd_row"] if found else None
    symbols = row["symbols"] if row and isinstance(row["symbols"], dict) else {}
    out = [
        {
            "symbol": name,
            "score": _number(value.get("score") if isinstance(value, dict) else None),
            "description": value.get("description") if isinstance(value, dict) else None,
            "options": ", ".join(map(str, value.get("options") or [])) if isinstance(value, dict) else None,
        }
        for name, value in symbols.items()
    ]
    return sorted(out, key=lambda r: -(r["score"] or 0))


def message_lines(pool: ConnectionPool, args: Args) -> list[dict]:
    found = _message(pool, args)
    return [
        _postfix_log_row(r, ("program", "kind", "recipient", "status"))
        for r in (found["postfix_rows"] if found else [])
    ]


# --- spam and security -------------------------------------------------------------------------


def rspamd_actions(pool: ConnectionPool, args: Args) -> list[dict]:
    columns = tuple(a.replace(" ", "_") for a in log_store.RSPAMD_ACTIONS)
    rows = _fill(log_store.rspamd_series(pool, args.start, args.end, args.step), args, (*columns, "avg_score"))
    return rows


def rspamd_scores(pool: ConnectionPool, args: Args) -> list[dict]:
    return log_store.score_histogram(pool, args.start, args.end)


def top_symbols(pool: ConnectionPool, args: Args) -> list[dict]:
    return _rows(log_store.top_symbols(pool, args.start, args.end, args.limit))


def netfilter_events(pool: ConnectionPool, args: Args) -> list[dict]:
    return _fill(
        log_store.netfilter_series(pool, args.start, args.end, args.step), args, ("warnings", "bans", "unbans")
    )


def top_blocked_ips(pool: ConnectionPool, args: Args) -> list[dict]:
    return _rows(log_store.top_blocked_ips(pool, args.start, args.end, args.limit), ("last_seen",))


def auth_failures(pool: ConnectionPool, args: Args) -> list[dict]:
    return _rows(log_store.auth_failures(pool, args.start, args.end, args.limit), ("last_seen",))


# --- logs (timestamp, body, level first: Infinity's logs format) --------------------------------

_LEVELS = {"warning": "warning", "warn": "warning", "err": "error", "error": "error", "crit": "critical"}


def _level(priority: str | None, default: str = "info") -> str:
    return _LEVELS.get((priority or "").lower(), default)


def _log_filters(args: Args) -> dict[str, Any]:
    return {"start_date": args.start, "end_date": args.end, "search": args.search}


def _postfix_log_row(row: dict[str, Any], labels: tuple[str, ...]) -> dict[str, Any]:
    """A Postfix line as a log row; rejects show as warnings whatever their syslog priority."""
    rejected = row["kind"] in ("noqueue_reject", "milter_reject", "rcpt_reject")
    return {
        "timestamp": ms(row["logged_at"]),
        "body": row["message"],
        "level": "warning" if rejected else _level(row["priority"]),
        **{label: row[label] for label in labels},
    }


def postfix_logs(pool: ConnectionPool, args: Args) -> list[dict]:
    return [
        _postfix_log_row(r, ("program", "queue_id", "kind", "status", "correlation_key"))
        for r in log_store.export_postfix(pool, _log_filters(args), args.limit)
    ]


def rspamd_logs(pool: ConnectionPool, args: Args, local: list[str]) -> list[dict]:
    return [
        {
            "timestamp": ms(r["logged_at"]),
            "body": f"{r['action']} score={r['score']:.2f} from=<{r['sender_smtp'] or ''}> "
            f"to=<{','.join(r['rcpt_smtp'] or [])}> ip={r['ip'] or ''} subject={r['subject'] or ''}",
            "level": "error" if r["action"] == "reject" else "warning" if r["is_spam"] else "info",
            "action": r["action"],
            "score": _number(r["score"]),
            "direction": r["direction"],
            "message_id": r["message_id"],
            "correlation_key": r["correlation_key"],
        }
        for r in log_store.export_rspamd(pool, _log_filters(args), local, args.limit)
    ]


def netfilter_logs(pool: ConnectionPool, args: Args) -> list[dict]:
    return [
        {
            "timestamp": ms(r["logged_at"]),
            "body": r["message"],
            "level": "warning" if r["kind"] in ("warning", "ban") else _level(r["priority"]),
            "kind": r["kind"],
            "ip": r["ip"],
            "username": r["username"],
        }
        for r in log_store.export_netfilter(pool, _log_filters(args), args.limit)
    ]


# --- annotations, queue and quarantine, service health ---------------------------------------


def annotations(pool: ConnectionPool, args: Args) -> list[dict]:
    return [
        {
            "time": ms(r["time"]),
            "time_end": ms(r["time_end"]),
            "title": r["title"],
            "text": r["text"],
            "tags": r["tags"],
        }
        for r in store.annotations(pool, args.start, args.end)
    ]


# empty columns that host Grafana's action buttons (browser `fetch` and server-side `infinity` actions)
_ACTION_CELLS = {"actions": "", "server_actions": ""}


def queue(live: LiveMailcow, args: Args) -> list[dict]:
    """mailcow's Postfix queue now (cached a few seconds), oldest first, defer reasons split out."""
    items, fetched = live.queue()
    rows = [{**row, **_ACTION_CELLS} for row in live_views.queue_rows(items, fetched)]
    if args.search:
        term = args.search.lower()
        rows = [r for r in rows if term in f"{r['queue_id']} {r['sender']} {r['recipients']}".lower()]
    return rows[: args.limit]


def quarantine(live: LiveMailcow, args: Args) -> list[dict]:
    """mailcow's quarantine now (cached a few seconds), newest first."""
    items, fetched = live.quarantine()
    rows = [{**row, **_ACTION_CELLS} for row in live_views.quarantine_rows(items, fetched)]
    if args.search:
        term = args.search.lower()
        rows = [r for r in rows if term in f"{r['sender']} {r['recipient']} {r['subject']}".lower()]
    return rows[: args.limit]


# --- DMARC and TLS-RPT -------------------------------------------------------------------------------


def _dmarc_window(args: Args) -> dmarc_store.Window:
    """Reports overlapping the range; `domain` picks one policy domain, option failures_only=true the failures."""
    failures = args.options.get("failures_only", "").lower() in ("1", "true", "yes")
    return dmarc_store.Window(args.start, args.end, args.domain.lower() if args.domain else None, failures)


_DMARC_RATES = ("total_messages", "dmarc_pass_pct", "spf_pass_pct", "dkim_pass_pct")


def dmarc_summary(pool: ConnectionPool, args: Args) -> list[dict]:
    row = dmarc_store.totals(pool, _dmarc_window(args))
    keys = (*_DMARC_RATES, "failing_messages", "unique_ips", "unique_reporters")
    return [{k: row[k] for k in keys} | {"total_messages": row["total_messages"] or 0}]


def dmarc_daily(pool: ConnectionPool, args: Args) -> list[dict]:
    """Reported messages and pass rates per UTC day (of the reports' begin)."""
    return [
        {"time": ms(d["day"]), **{k: d[k] for k in _DMARC_RATES}, "failing_messages": d["failing_messages"]}
        for d in dmarc_store.daily(pool, _dmarc_window(args))
    ]


def dmarc_pass_by_domain(pool: ConnectionPool, args: Args) -> list[dict]:
    """Wide rows for one series per domain: {"time", "<domain>": DMARC pass %, ...}; a domain without
    reports that day has no value there."""
    rows: dict[int, dict[str, Any]] = {}
    for r in dmarc_store.daily_by_domain(pool, _dmarc_window(args)):
        rows.setdefault(ms(r["day"]), {"time": ms(r["day"])})[r["domain"]] = r["dmarc_pass_pct"]
    return [rows[t] for t in sorted(rows)]


def dmarc_domains(pool: ConnectionPool, args: Args) -> list[dict]:
    return [
        {
            "domain": r["domain"],
            **{k: r[k] for k in _DMARC_RATES},
            "unique_ips": r["unique_ips"],
            "policy_p": (r["policy"] or {}).get("p"),
            "policy_sp": (r["policy"] or {}).get("sp"),
            "policy_pct": (r["policy"] or {}).get("pct"),
            "adkim": (r["policy"] or {}).get("adkim"),
            "aspf": (r["policy"] or {}).get("aspf"),
            "last_report": ms(r["last_report"]),
        }
        for r in dmarc_store.domains(pool, _dmarc_window(args))
    ]


def dmarc_sources(pool: ConnectionPool, args: Args) -> list[dict]:
    """Sending IPs with pass rates, reporters, country, ASN and reverse DNS."""
    return [
        {
            "source_ip": r["source_ip"],
            **{k: r[k] for k in _DMARC_RATES},
            "reporters": r["reporters"],
            "country": f"{flag(r['country_code'])} {r['country_code'] or '??'}",
            "country_code": r["country_code"],
            "city": r["city"],
            "asn": r["asn"],
            "asn_org": r["asn_org"],
            "reverse_dns": r["reverse_dns"],
            "first_seen": ms(r["first_seen"]),
            "last_seen": ms(r["last_seen"]),
        }
        for r in dmarc_store.sources(pool, _dmarc_window(args), args.limit)
    ]


def dmarc_countries(pool: ConnectionPool, args: Args) -> list[dict]:
    return [
        {
            "country_code": r["country_code"],
            "country_name": r["country_name"],
            **{k: r[k] for k in _DMARC_RATES},
            "failing_messages": r["failing_messages"],
        }
        for r in dmarc_store.countries(pool, _dmarc_window(args))
    ]


def dmarc_reporters(pool: ConnectionPool, args: Args) -> list[dict]:
    return [
        {
            "reporter": r["reporter"],
            "reports": r["reports"],
            **{k: r[k] for k in _DMARC_RATES},
            "last_report": ms(r["last_report"]),
        }
        for r in dmarc_store.reporters(pool, _dmarc_window(args))
    ]


def dmarc_failures(pool: ConnectionPool, args: Args) -> list[dict]:
    """Records that failed DMARC or had the policy applied: who sent what, as whom, judged how."""
    return [
        {**r, "begin": ms(r.pop("begin_at"))}
        for r in dmarc_store.failing_records(pool, _dmarc_window(args), args.limit)
    ]


def tls_daily(pool: ConnectionPool, args: Args) -> list[dict]:
    return [
        {"time": ms(d["day"]), "successful_sessions": d["successful_sessions"], "failed_sessions": d["failed_sessions"]}
        for d in tls_store.tls_daily(pool, _dmarc_window(args))
    ]


def tls_failure_types(pool: ConnectionPool, args: Args) -> list[dict]:
    return tls_store.tls_failure_types(pool, _dmarc_window(args))


def tls_reports(pool: ConnectionPool, args: Args) -> list[dict]:
    return [
        {
            "begin": ms(r["begin_at"]),
            "organization_name": r["organization_name"],
            "report_id": r["report_id"],
            "policy_domains": r["policy_domains"],
            "successful_sessions": r["total_success"],
            "failed_sessions": r["total_fail"],
        }
        for r in tls_store.tls_reports(pool, _dmarc_window(args), args.limit)
    ]


# --- domains and mailboxes -----------------------------------------------------------------------------


def dns_checks(pool: ConnectionPool, args: Args) -> list[dict]:
    """The last SPF / DKIM / DMARC check of every domain, status and message side by side."""
    rows = []
    for domain, r in sorted(domain_store.checks(pool).items()):
        if args.domain and domain != args.domain.lower():
            continue
        rows.append(
            {
                "domain": domain,
                "spf_status": r["spf"].get("status"),
                "spf_message": r["spf"].get("message"),
                "spf_lookups": r["spf"].get("dns_lookups"),
                "dkim_status": r["dkim"].get("status"),
                "dkim_message": r["dkim"].get("message"),
                "dmarc_status": r["dmarc"].get("status"),
                "dmarc_policy": r["dmarc"].get("policy"),
                "dmarc_message": r["dmarc"].get("message"),
                "warnings": "; ".join(
                    [*r["spf"].get("warnings", []), *r["dkim"].get("warnings", []), *r["dmarc"].get("warnings", [])]
                ),
                "checked": ms(r["checked_at"]),
                "full_check": r["is_full_check"],
            }
        )
    return rows


def mailbox_summary(pool: ConnectionPool, args: Args) -> list[dict]:
    row = mailbox_store.summary(pool, args.start, args.end)
    sent = row["total_sent"]
    return [{**row, "failure_rate": round(100.0 * row["sent_failed"] / sent, 1) if sent else 0.0}]


def mailbox_activity(pool: ConnectionPool, args: Args) -> list[dict]:
    """Mailboxes with mail sent and received in the range (theirs and their aliases'), quota;
    option sort_by: sent_total (default), received_total, failure_rate, quota_used, username."""
    sort = args.options.get("sort_by", "sent_total")
    if sort not in mailbox_store.SORTS:
        sort = "sent_total"
    filters = mailbox_store.Filters(
        start=args.start,
        end=args.end,
        domain=args.domain.lower() if args.domain else None,
        active_only=False,
        sort_by=sort,
        sort_order="asc" if sort == "username" else "desc",
        page_size=args.limit,
    )
    _, rows = mailbox_store.page(pool, filters)
    return [
        {
            "mailbox": r["username"],
            "name": r["name"],
            "sent": r["sent_total"] or 0,
            "received": r["received_total"] or 0,
            "failed": r["sent_failed"] or 0,
            "failure_rate": round(100.0 * (r["sent_failed"] or 0) / r["sent_total"], 1) if r["sent_total"] else 0.0,
            "combined_sent": r["combined_sent"],
            "combined_received": r["combined_received"],
            "aliases": len(r["aliases"]),
            "quota_used": r["quota_used"],
            "quota_used_pct": round(100.0 * r["quota_used"] / r["quota"], 1) if r["quota"] else None,
            "messages": r["messages"],
        }
        for r in rows
    ]


def jobs(pool: ConnectionPool, args: Args) -> list[dict]:
    return _rows(job_store.job_statuses(pool), ("last_run_at", "last_success_at"))


def ingest(pool: ConnectionPool, args: Args) -> list[dict]:
    now = datetime.now(UTC)
    return [
        {
            "source": r["source"],
            "lines_total": r["lines_total"],
            "gaps_total": r["gaps_total"],
            "newest_line": ms(r["newest_line_at"]),
            "lag_seconds": int((now - r["newest_line_at"]).total_seconds()) if r["newest_line_at"] else None,
            "last_success": ms(r["last_success_at"]),
            "interval_seconds": _number(r["interval_seconds"]),
            "lines_per_second": _number(r["lines_per_second"]),
            "last_error": r["last_error"],
        }
        for r in ingest_store.ingest_statuses(pool)
    ]


def gaps(pool: ConnectionPool, args: Args) -> list[dict]:
    return _rows(ingest_store.gaps(pool, args.limit), ("gap_start", "gap_end", "detected_at"))


def api_health(pool: ConnectionPool, args: Args) -> list[dict]:
    return [
        {
            "endpoint": r["endpoint_group"],
            "up": 1 if r["up"] else 0,
            "checked": ms(r["checked_at"]),
            "last_success": ms(r["last_success_at"]),
            "last_error": r["last_error"],
        }
        for r in status_store.api_health(pool)
    ]


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
        Query("messages", "table", "Messages, newest first (filters: sender, recipient, status, ip, user)", messages,
              cols("time:t, sender:s, recipient:s, recipient_count, subject:s, status:s, direction:s, spam_score,"
                   " rspamd_action:s, client_ip:s, user:s, queue_id:s, correlation_key:s, details_url:s")),
        Query("message_recipients", "table", "One message's recipients with their status (option key)",
              message_recipients,
              cols("last_update:t, recipient:s, orig_to:s, status:s, dsn:s, relay:s, delay, attempts, reply:s")),
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
        Query("queue", "table", "mailcow's Postfix queue now, oldest first", queue,
              cols("arrival:t, queue_name:s, queue_id:s, age_seconds, size_bytes, sender:s, recipients:s, reasons:s,"
                   " held:b, fetched_at:t, actions:s, server_actions:s"), live=True),
        Query("quarantine", "table", "mailcow's quarantine now, newest first", quarantine,
              cols("created:t, id, qid:s, score, action:s, recipient:s, sender:s, subject:s, age_seconds, virus:b,"
                   " fetched_at:t, actions:s, server_actions:s"), live=True),
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
