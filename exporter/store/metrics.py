"""Everything /metrics reports, read in one short transaction from small state tables.

No query here scans a log or message table: counters are kept in `metric_counters` as data
arrives, so a scrape costs the same at a thousand or a billion stored lines.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

import psycopg
from psycopg.rows import class_row, dict_row

from exporter.store import counters
from exporter.store.status import API_GROUPS, ApiGroupState


@dataclass(frozen=True)
class SourceState:
    """One log source's ingestion totals and its last fetch."""

    source: str
    lines_total: int
    gaps_total: int
    unparsed_total: int
    newest_line_at: datetime | None
    last_success_at: datetime | None
    last_error: str | None


@dataclass(frozen=True)
class JobState:
    """One background job's runs and its last outcome."""

    name: str
    status: str
    last_success_at: datetime | None
    last_duration_seconds: float | None
    runs: int
    failures: int


@dataclass(frozen=True)
class DnsCheckState:
    """One domain's last DNS check verdicts (success, warning, error or None) and SPF lookups."""

    domain: str
    spf: str | None
    dkim: str | None
    dmarc: str | None
    spf_lookups: int | None


@dataclass(frozen=True)
class MailboxQuota:
    """A mailbox with a quota, and how much of it is used (bytes)."""

    username: str
    quota: int
    quota_used: int


@dataclass(frozen=True)
class MetricsState:
    now: datetime
    counters: list[tuple[str, dict[str, str], float]]
    ingest: list[SourceState]
    jobs: list[JobState]
    snapshots: dict[str, tuple[Any, datetime]]
    api: list[ApiGroupState]
    quarantined: int
    dmarc_last: list[tuple[str, datetime]]
    dns_checks: list[DnsCheckState]
    quotas: list[MailboxQuota]


Row = TypeVar("Row")


def _rows(conn: psycopg.Connection, row: type[Row], query: str) -> list[Row]:
    """A few rows of a small state table, typed."""
    with conn.cursor(row_factory=class_row(row)) as cur:
        return cur.execute(query).fetchall()


def read(conn: psycopg.Connection) -> MetricsState:
    with conn.transaction(), conn.cursor(row_factory=dict_row) as cur:
        cur.execute("SET TRANSACTION READ ONLY")
        now = cur.execute("SELECT now() AS now").fetchone()["now"]
        ingest = _rows(
            conn,
            SourceState,
            "SELECT source, lines_total, gaps_total, unparsed_total, newest_line_at, last_success_at, last_error "
            "FROM ingest_state",
        )
        jobs = _rows(
            conn,
            JobState,
            "SELECT name, status, last_success_at, last_duration_seconds, runs, failures FROM job_status",
        )
        snapshots = {r["kind"]: (r["data"], r["fetched_at"]) for r in cur.execute("SELECT * FROM mailcow_snapshots")}
        api = _rows(conn, ApiGroupState, API_GROUPS)
        quarantined = cur.execute("SELECT count(*) AS n FROM quarantine_items").fetchone()["n"]
        dmarc_last = [
            (r["domain"], r["last"])
            for r in cur.execute("SELECT domain, max(end_at) AS last FROM dmarc_reports GROUP BY 1 ORDER BY 1")
        ]
        dns_checks = _rows(
            conn,
            DnsCheckState,
            """SELECT domain, spf ->> 'status' AS spf, dkim ->> 'status' AS dkim, dmarc ->> 'status' AS dmarc,
                      (spf ->> 'dns_lookups')::int AS spf_lookups FROM domain_dns_checks ORDER BY domain""",
        )
        quotas = _rows(
            conn,
            MailboxQuota,
            "SELECT username, quota, quota_used FROM mailcow_mailboxes WHERE quota > 0 ORDER BY username",
        )
        return MetricsState(
            now, counters.read_all(conn), ingest, jobs, snapshots, api, quarantined, dmarc_last, dns_checks, quotas
        )
