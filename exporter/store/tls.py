"""TLS-RPT reports: storing them (one transaction each, sessions counted for /metrics) and the reads
behind /api/tls and the TLS panels of the DMARC dashboard."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from psycopg.types.json import Jsonb
from psycopg_pool import ConnectionPool

from exporter.store import counters, reads
from exporter.store.dmarc import Window


def save(pool: ConnectionPool, report: dict[str, Any]) -> tuple[str, int]:
    """Store one parsed TLS report: ("created" | "duplicate", its id)."""
    with pool.connection() as conn:
        return _save(conn, report)


def _save(conn: Any, report: dict[str, Any]) -> tuple[str, int]:
    row = conn.execute(
        """INSERT INTO tls_reports (organization_name, report_id, contact_info, begin_at, end_at, source)
           VALUES (%s, %s, %s, %s, %s, %s)
           ON CONFLICT (organization_name, report_id, begin_at, end_at) DO NOTHING RETURNING id""",
        (
            report["organization_name"],
            report["report_id"],
            report["contact_info"],
            report["begin"],
            report["end"],
            report.get("source"),
        ),
    ).fetchone()
    if row is None:
        existing = conn.execute(
            """SELECT id FROM tls_reports
               WHERE organization_name = %s AND report_id = %s AND begin_at = %s AND end_at = %s""",
            (report["organization_name"], report["report_id"], report["begin"], report["end"]),
        ).fetchone()
        return "duplicate", existing[0]
    pk = row[0]
    for p in report["policies"]:
        conn.execute(
            """INSERT INTO tls_policies (report_pk, policy_type, policy_domain, policy_strings, mx_hosts,
                                         successful_sessions, failed_sessions, failure_details)
               VALUES (%s, %s, %s, %s, %s, %s, %s, %s)""",
            (
                pk,
                p["policy_type"],
                p["policy_domain"],
                Jsonb(p["policy_strings"]),
                Jsonb(p["mx_hosts"]),
                p["successful_sessions"],
                p["failed_sessions"],
                Jsonb(p["failure_details"]),
            ),
        )
        counters.add(
            conn,
            """SELECT 'tls_sessions', jsonb_build_object('policy_domain', %(d)s::text, 'result', r), n
               FROM (VALUES ('success', %(ok)s::numeric), ('failure', %(failed)s::numeric)) v (r, n)""",
            {"d": p["policy_domain"], "ok": p["successful_sessions"], "failed": p["failed_sessions"]},
        )
    return "created", pk


MAX_ORGANIZATIONS = 100  # names listed per day (all are counted)


def _tls_where(window: Window) -> tuple[str, list[Any]]:
    return window.where("t", "p.policy_domain", records=False)


_TLS_JOINED = "FROM tls_reports t JOIN tls_policies p ON p.report_pk = t.id"
_TLS_SESSIONS = """sum(p.successful_sessions)::bigint AS total_success, sum(p.failed_sessions)::bigint AS total_fail"""


def tls_reports(pool: ConnectionPool, window: Window, limit: int, offset: int = 0) -> list[dict]:
    """A page of reports, newest first, each counting only its policies in the window's domain
    (all of them without one): summed in SQL, the stored policies never leave the database."""
    where, params = _tls_where(window)
    return reads.rows(
        pool,
        f"""SELECT t.id, t.report_id, t.organization_name, t.contact_info, t.begin_at, t.end_at, {_TLS_SESSIONS},
                   string_agg(DISTINCT p.policy_domain, ', ' ORDER BY p.policy_domain) AS policy_domains
            {_TLS_JOINED} WHERE {where} GROUP BY t.id ORDER BY t.begin_at DESC, t.id DESC LIMIT %s OFFSET %s""",
        [*params, limit, offset],
    )


def tls_day_reports(pool: ConnectionPool, domain: str, day: datetime, limit: int, details: int) -> list[dict]:
    """Up to `limit` reports that began on one UTC day with their policies for `domain`, each policy
    with its `details` largest failure details and how many it has in all."""
    return reads.rows(
        pool,
        f"""SELECT t.id, t.report_id, t.organization_name, t.contact_info, t.begin_at, t.end_at, {_TLS_SESSIONS},
                   jsonb_agg(jsonb_build_object(
                       'policy_type', p.policy_type, 'policy_domain', p.policy_domain, 'mx_hosts', p.mx_hosts,
                       'successful_sessions', p.successful_sessions, 'failed_sessions', p.failed_sessions,
                       'failure_details_total', jsonb_array_length(p.failure_details),
                       'failure_details', (SELECT coalesce(jsonb_agg(d ORDER BY n), '[]') FROM (
                           SELECT d, row_number() OVER (ORDER BY (d ->> 'failed_session_count')::numeric DESC) n
                           FROM jsonb_array_elements(p.failure_details) d) top WHERE n <= %(details)s)
                   ) ORDER BY p.id) AS policies
            {_TLS_JOINED} WHERE p.policy_domain = %(domain)s AND t.begin_at >= %(day)s
                AND t.begin_at < %(day)s + interval '1 day'
            GROUP BY t.id ORDER BY t.begin_at, t.id LIMIT %(limit)s""",
        {"domain": domain, "day": day, "limit": limit, "details": details},
    )


def tls_daily(pool: ConnectionPool, window: Window, day: datetime | None = None) -> list[dict]:
    """Per UTC day of the reports' begin (only `day` when given): sessions of the window's domain,
    reports and their organizations (the first `MAX_ORGANIZATIONS` names, all of them counted)."""
    where, params = _tls_where(window)
    if day is not None:
        where += " AND t.begin_at >= %s AND t.begin_at < %s + interval '1 day'"
        params += [day, day]
    return reads.rows(
        pool,
        f"""SELECT date_trunc('day', t.begin_at) AS day, sum(p.successful_sessions)::bigint AS successful_sessions,
                   sum(p.failed_sessions)::bigint AS failed_sessions, count(DISTINCT t.id) AS report_count,
                   count(DISTINCT t.organization_name) AS organization_count,
                   (array_agg(DISTINCT t.organization_name ORDER BY t.organization_name))[:{MAX_ORGANIZATIONS}]
                       AS organizations
            {_TLS_JOINED} WHERE {where} GROUP BY 1 ORDER BY 1""",
        params,
    )


def tls_failure_types(pool: ConnectionPool, window: Window) -> list[dict]:
    where, params = _tls_where(window)
    return reads.rows(
        pool,
        f"""SELECT d ->> 'result_type' AS result_type, sum((d ->> 'failed_session_count')::bigint)::bigint AS sessions,
                   count(DISTINCT d ->> 'receiving_mx_hostname') AS mx_hosts
            {_TLS_JOINED}, jsonb_array_elements(p.failure_details) d
            WHERE {where} GROUP BY 1 ORDER BY 2 DESC, 1""",
        params,
    )
