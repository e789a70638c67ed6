"""The raw log viewer's REST answers (seed 000): the services, one service's lines, the worker's health.

Lines are found by exporter/store/raw_search.py and counted by exporter/store/raw_counts.py; this
module turns request arguments into a `LineQuery` and rows into seed 000's shapes. A service is named
by mailcow's list name (`rspamd-history`); `rspamd`, seed 000's name for it, is accepted as well.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any, Protocol

from psycopg_pool import ConnectionPool

from exporter.config import Config
from exporter.config_values import RAW_LOG_SERVICES
from exporter.readmodels import smart_filters
from exporter.readmodels.format import iso, number, page_body
from exporter.services.ingest import ALL_SOURCES
from exporter.store import ingest as ingest_store
from exporter.store import jobs as job_store
from exporter.store import raw_counts, raw_logs, raw_search
from exporter.store.raw_search import LabelMatch, LineQuery, RawRow, TextMatch

ALIASES = {"rspamd": "rspamd-history"}
# The ingestion's source (ingest_state.source) of each list: its own name but for rspamd's history.
SOURCE_OF = {spec.service: name for name, spec in ALL_SOURCES.items()}
RETENTION_JOB = "raw_logs_retention"
FETCH_JOB = "fetch_logs"

# service -> (display name, what its lines tell), in RAW_LOG_SERVICES order.
INFO: dict[str, tuple[str, str]] = {
    "postfix": ("Postfix", "SMTP: connections, postscreen, rejects, queueing and delivery of every message"),
    "dovecot": ("Dovecot", "IMAP/POP3 logins, authentication failures, LMTP and Sieve deliveries into mailboxes"),
    "sogo": ("SOGo", "Webmail and groupware: logins and requests"),
    "netfilter": ("Netfilter", "Failed attempts counted per address, bans and unbans"),
    "ratelimited": ("Ratelimited", "Messages held back by a rate limit: who, what, which limit"),
    "rspamd-history": ("Rspamd", "Spam scan results: action, score, sender, recipients, subject"),
    "watchdog": ("Watchdog", "Health of mailcow's containers and the watchdog's alerts"),
    "acme": ("ACME", "Let's Encrypt certificate checks and renewals"),
    "api": ("API", "Requests to mailcow's API: method, path, client"),
    "autodiscover": ("Autodiscover", "Mail client autoconfiguration requests and their errors"),
}


class Job(Protocol):
    """A background job as the web process knows it (exporter.http.context.JobInfo)."""

    name: str
    schedule: str
    enabled: bool


def canonical(name: str) -> str | None:
    """The mailcow list name for a path's service name, None when no such list is kept."""
    name = ALIASES.get(name.lower(), name.lower())
    return name if name in RAW_LOG_SERVICES else None


def enabled(config: Config, service: str) -> bool:
    return config.raw_logs_enabled and service in config.raw_logs_services


def line_query(service: str, args: Mapping[str, Any], smart: smart_filters.SmartFilter | None) -> LineQuery:
    """The request's filters as a query over one service; `search` is a case-insensitive substring."""
    labels: list[LabelMatch] = []
    named = [args[k] for k in ("level", "priority") if args.get(k)]
    if named:  # both given: the levels both name (none in common matches nothing)
        levels = [x for x in named[0] if all(x in n for n in named)]
        labels.append(LabelMatch("level", "=~", "|".join(levels)))
    if args.get("program"):
        labels.append(LabelMatch("program", "=", args["program"]))
    text = [TextMatch("|=", args["search"], case_sensitive=False)] if args.get("search") else []
    if smart is not None:
        labels.extend(smart.labels())
        text.extend(smart.text())
    return LineQuery(
        services=(service,),
        labels=tuple(labels),
        text=tuple(text),
        start=args.get("start_date"),
        end=args.get("end_date"),
        newest_first=args.get("sort_order", "desc") == "desc",
    )


def line(row: RawRow) -> dict[str, Any]:
    """One stored line: the columns a viewer shows and the item exactly as mailcow sent it (`raw`)."""
    priority = row.item.get("priority") if isinstance(row.item, dict) else None
    return {
        "id": row.id,
        "time": iso(row.at),
        "service": row.service,
        "level": row.level,
        "priority": priority if isinstance(priority, str) else row.level,
        "program": row.program,
        "message": row.message,
        "raw": row.item,
    }


def page(pool: ConnectionPool, query: LineQuery, page_no: int, limit: int, count_cap: int) -> dict[str, Any]:
    """Seed 002's page envelope; `total_exact` is False when a text filter's count stopped at `count_cap`."""
    with pool.connection() as conn:
        rows = raw_search.find(conn, replace(query, limit=limit, offset=(page_no - 1) * limit))
        total, exact = raw_counts.count(conn, query, count_cap)
    total = max(total, (page_no - 1) * limit + len(rows))
    body = page_body(total, page_no, limit, [line(r) for r in rows])
    body["total_exact"] = exact
    return body


def services(config: Config, pool: ConnectionPool) -> dict[str, Any]:
    """Every kept list: whether it is collected, its stored lines and its last fetch."""
    counts = {c.service: c.lines for c in raw_logs.service_counts(pool)}
    states = {s.source: s for s in ingest_store.ingest_statuses(pool)}
    with pool.connection() as conn:
        spans = raw_counts.bounds(conn, list(RAW_LOG_SERVICES))
    out = []
    for name in RAW_LOG_SERVICES:
        state, (oldest, newest) = states.get(SOURCE_OF.get(name, name)), spans.get(name, (None, None))
        display, description = INFO[name]
        out.append(
            {
                "name": name,
                "display_name": display,
                "description": description,
                "enabled": enabled(config, name),
                "entries": counts.get(name, 0),
                "oldest": iso(oldest),
                "newest": iso(newest),
                "smart_filters": len(smart_filters.of(name)),
                "last_fetch": iso(state.last_fetch_at) if state else None,
                "last_error": state.last_error if state else None,
                "fetch_interval_seconds": number(state.interval_seconds) if state else None,
            }
        )
    return {"collection_enabled": config.raw_logs_enabled, "total": len(out), "services": out}


def _job(name: str, jobs: Sequence[Job], runs: Mapping[str, job_store.JobStatus]) -> dict[str, Any]:
    info = next((j for j in jobs if j.name == name), None)
    run = runs.get(name)
    return {
        "name": name,
        "enabled": info.enabled if info else None,
        "schedule": info.schedule if info else None,
        "status": run.status if run else "never run",
        "last_run": iso(run.last_run_at) if run else None,
        "last_success": iso(run.last_success_at) if run else None,
        "last_duration_seconds": number(run.last_duration_seconds) if run else None,
        "last_error": run.last_error if run else None,
        "runs": run.runs if run else 0,
        "failures": run.failures if run else 0,
    }


def worker_status(config: Config, pool: ConnectionPool, jobs: Sequence[Job]) -> dict[str, Any]:
    """Per list: collected or not, last fetch and success, the error or skip reason, interval, rate,
    gaps and lines stored; the fetch and retention jobs' last runs; the settings in force."""
    counts = {c.service: c.lines for c in raw_logs.service_counts(pool)}
    states = {s.source: s for s in ingest_store.ingest_statuses(pool)}
    runs = {r.name: r for r in job_store.job_statuses(pool)}
    with pool.connection() as conn:
        spans = raw_counts.bounds(conn, list(RAW_LOG_SERVICES))
    out = []
    for name in RAW_LOG_SERVICES:
        source = SOURCE_OF.get(name, name)
        state = states.get(source)
        error = state.last_error if state else None
        out.append(
            {
                "service": name,
                "source": source,
                "enabled": enabled(config, name),
                "last_fetch": iso(state.last_fetch_at) if state else None,
                "last_success": iso(state.last_success_at) if state else None,
                "healthy": bool(state and state.last_success_at and not error),
                "skipped": bool(error and error.startswith("skipped:")),
                "last_error": error,
                "interval_seconds": number(state.interval_seconds) if state else None,
                "lines_per_second": number(state.lines_per_second) if state else None,
                "gaps_total": state.gaps_total if state else 0,
                "lines_stored": counts.get(name, 0),
                "newest_line": iso(spans[name][1]) if name in spans else None,
            }
        )
    return {
        "collection_enabled": config.raw_logs_enabled,
        "settings": {
            "services": list(config.raw_logs_services),
            "fetch_interval_seconds": config.raw_logs_fetch_interval,
            "fetch_count": config.raw_logs_fetch_count,
            "retention_days": config.raw_logs_retention_days,
        },
        "services": out,
        "jobs": {name: _job(name, jobs, runs) for name in (FETCH_JOB, RETENTION_JOB)},
    }
