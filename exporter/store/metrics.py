"""Everything /metrics reports, read in one short transaction from small state tables.

No query here scans a log or message table: counters are kept in `metric_counters` as data
arrives, so a scrape costs the same at a thousand or a billion stored lines.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg
from psycopg.rows import dict_row

from exporter.store import counters


@dataclass
class MetricsState:
    now: datetime
    counters: list[tuple[str, dict[str, str], float]]
    ingest: list[dict[str, Any]]
    jobs: list[dict[str, Any]]
    snapshots: dict[str, tuple[Any, datetime]]
    api: list[dict[str, Any]]
    quarantined: int
    dmarc_last: list[tuple[str, datetime]]
    dns_checks: list[dict[str, Any]]
    quotas: list[dict[str, Any]]


def read(conn: psycopg.Connection) -> MetricsState:
    with conn.transaction(), conn.cursor(row_factory=dict_row) as cur:
        cur.execute("SET TRANSACTION READ ONLY")
        now = cur.execute("SELECT now() AS now").fetchone()["now"]
        ingest = cur.execute(
            "SELECT source, lines_total, gaps_total, unparsed_total, newest_line_at, last_success_at, last_error "
            "FROM ingest_state"
        ).fetchall()
        jobs = cur.execute(
            "SELECT name, status, last_success_at, last_duration_seconds, runs, failures FROM job_status"
        ).fetchall()
        snapshots = {r["kind"]: (r["data"], r["fetched_at"]) for r in cur.execute("SELECT * FROM mailcow_snapshots")}
        api = cur.execute("SELECT * FROM mailcow_api_health ORDER BY endpoint_group").fetchall()
        quarantined = cur.execute("SELECT count(*) AS n FROM quarantine_items").fetchone()["n"]
        dmarc_last = [
            (r["domain"], r["last"])
            for r in cur.execute("SELECT domain, max(end_at) AS last FROM dmarc_reports GROUP BY 1 ORDER BY 1")
        ]
        dns_checks = cur.execute(
            """SELECT domain, spf ->> 'status' AS spf, dkim ->> 'status' AS dkim, dmarc ->> 'status' AS dmarc,
                      (spf ->> 'dns_lookups')::int AS spf_lookups FROM domain_dns_checks ORDER BY domain"""
        ).fetchall()
        quotas = cur.execute(
            "SELECT username, quota, quota_used FROM mailcow_mailboxes WHERE quota > 0 ORDER BY username"
        ).fetchall()
        return MetricsState(
            now, counters.read_all(conn), ingest, jobs, snapshots, api, quarantined, dmarc_last, dns_checks, quotas
        )
