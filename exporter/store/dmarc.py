"""DMARC, failure and TLS reports: storing them (one transaction each, records by COPY) and the
read models behind /api/dmarc and the DMARC dashboard. Pass rates are percentages of messages."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from psycopg import sql
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb
from psycopg_pool import ConnectionPool

from exporter.store import counters

_RECORD_COLUMNS = (
    "report_pk",
    "source_ip",
    "count",
    "disposition",
    "dkim",
    "spf",
    "dmarc_pass",
    "header_from",
    "envelope_from",
    "envelope_to",
    "reasons",
    "auth_dkim",
    "auth_spf",
    "country_code",
    "country_name",
    "city",
    "asn",
    "asn_org",
    "reverse_dns",
)
# failures only: the message failed DMARC (neither SPF nor DKIM passed) or the policy was applied
FAILURES_ONLY = "(NOT c.dmarc_pass OR c.disposition IN ('quarantine', 'reject'))"


def _result(record: dict[str, Any]) -> str:
    if record["dmarc_pass"]:
        return "pass"
    return record["disposition"] if record["disposition"] in ("quarantine", "reject") else "fail"


def save(pool: ConnectionPool, report: dict[str, Any], raw: bytes | None = None) -> tuple[str, int]:
    """Store one parsed report: ("created" | "duplicate", its id)."""
    kind = report["kind"]
    with pool.connection() as conn:
        if kind == "aggregate":
            return _save_aggregate(conn, report)
        if kind == "tls":
            return _save_tls(conn, report)
        return _save_failure(conn, report, raw or b"")


def _save_aggregate(conn: Any, report: dict[str, Any]) -> tuple[str, int]:
    policy = report["policy"]
    row = conn.execute(
        """INSERT INTO dmarc_reports (org_name, org_email, extra_contact_info, report_id, domain, begin_at, end_at,
                                      schema, generator, policy, errors, source)
           VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)
           ON CONFLICT (org_name, report_id, domain, begin_at, end_at) DO NOTHING RETURNING id""",
        (
            report["org_name"],
            report["org_email"],
            report["extra_contact_info"],
            report["report_id"],
            policy["domain"],
            report["begin"],
            report["end"],
            report["schema"],
            report["generator"],
            Jsonb(policy),
            Jsonb(report["errors"]),
            report.get("source"),
        ),
    ).fetchone()
    if row is None:
        existing = conn.execute(
            """SELECT id FROM dmarc_reports WHERE org_name = %s AND report_id = %s AND domain = %s
               AND begin_at = %s AND end_at = %s""",
            (report["org_name"], report["report_id"], policy["domain"], report["begin"], report["end"]),
        ).fetchone()
        return "duplicate", existing[0]
    pk = row[0]
    failing = sorted({r["source_ip"] for r in report["records"] if _result(r) != "pass"})
    if failing:  # sources failing DMARC for this domain that no earlier report named: a new sender to look at
        counters.add(
            conn,
            """SELECT 'dmarc_new_failing_sources', jsonb_build_object('domain', %(domain)s::text), count(*)
               FROM unnest(%(ips)s::inet[]) ip
               WHERE NOT EXISTS (SELECT 1 FROM dmarc_records c JOIN dmarc_reports r ON r.id = c.report_pk
                                 WHERE c.source_ip = ip AND r.domain = %(domain)s)
               HAVING count(*) > 0""",
            {"domain": policy["domain"], "ips": failing},
        )
    with conn.cursor().copy(
        sql.SQL("COPY dmarc_records ({}) FROM STDIN").format(sql.SQL(", ").join(map(sql.Identifier, _RECORD_COLUMNS)))
    ) as copy:
        for r in report["records"]:
            geo = r.get("geo") or {}
            copy.write_row(
                (
                    pk,
                    r["source_ip"],
                    r["count"],
                    r["disposition"],
                    r["dkim"],
                    r["spf"],
                    r["dmarc_pass"],
                    r["header_from"],
                    r["envelope_from"],
                    r["envelope_to"],
                    Jsonb(r["reasons"]),
                    Jsonb(r["auth_dkim"]),
                    Jsonb(r["auth_spf"]),
                    geo.get("country_code"),
                    geo.get("country_name"),
                    geo.get("city"),
                    geo.get("asn"),
                    geo.get("asn_org"),
                    r.get("reverse_dns"),
                )
            )
    totals: dict[str, int] = {}
    for r in report["records"]:
        totals[_result(r)] = totals.get(_result(r), 0) + r["count"]
    counters.add(
        conn,
        "SELECT 'dmarc_messages', jsonb_build_object('domain', %(domain)s::text, 'result', key), value::numeric "
        "FROM jsonb_each_text(%(totals)s::jsonb)",
        {"domain": policy["domain"], "totals": Jsonb(totals)},
    )
    return "created", pk


def _save_tls(conn: Any, report: dict[str, Any]) -> tuple[str, int]:
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


def _save_failure(conn: Any, report: dict[str, Any], raw: bytes) -> tuple[str, int]:
    digest = hashlib.sha256(raw).hexdigest()
    geo = report.get("geo") or {}
    sample = report["sample"]
    row = conn.execute(
        """INSERT INTO dmarc_failure_reports (digest, reported_domain, source_ip, arrival_at, format, feedback_type,
               original_mail_from, original_rcpt_to, auth_failure, delivery_result, authentication_results,
               reporter, subject, header_from, country_code, asn, source)
           VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)
           ON CONFLICT (digest) DO NOTHING RETURNING id""",
        (
            digest,
            report["reported_domain"],
            report["source_ip"],
            report["arrival_date"],
            report["format"],
            report["feedback_type"],
            report["original_mail_from"],
            report["original_rcpt_to"],
            report["auth_failure"],
            report["delivery_result"],
            report["authentication_results"],
            report["reporter"],
            sample.get("subject"),
            sample.get("from"),
            geo.get("country_code"),
            geo.get("asn"),
            report.get("source"),
        ),
    ).fetchone()
    if row is None:
        return "duplicate", conn.execute(
            "SELECT id FROM dmarc_failure_reports WHERE digest = %s", (digest,)
        ).fetchone()[0]
    return "created", row[0]


def count_invalid(pool: ConnectionPool, channel: str) -> None:
    """An upload, file or mail that held no readable report (for /metrics)."""
    with pool.connection() as conn:
        counters.add(conn, "SELECT 'dmarc_invalid_reports', jsonb_build_object('channel', %s::text), 1", (channel,))


# --- reads ----------------------------------------------------------------------------------------------


def _rows(pool: ConnectionPool, query: str, params: Any) -> list[dict[str, Any]]:
    with pool.connection() as conn, conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(query, params).fetchall()


_RATES = """sum(c.count)::bigint AS total_messages,
    round(100.0 * coalesce(sum(c.count) FILTER (WHERE c.dmarc_pass), 0) / nullif(sum(c.count), 0), 1)::float8
        AS dmarc_pass_pct,
    round(100.0 * coalesce(sum(c.count) FILTER (WHERE c.spf = 'pass'), 0) / nullif(sum(c.count), 0), 1)::float8
        AS spf_pass_pct,
    round(100.0 * coalesce(sum(c.count) FILTER (WHERE c.dkim = 'pass'), 0) / nullif(sum(c.count), 0), 1)::float8
        AS dkim_pass_pct"""


@dataclass(frozen=True)
class Window:
    """Which reports a read covers: those overlapping [since, until], of one domain or all."""

    since: datetime
    until: datetime | None = None
    domain: str | None = None
    failures_only: bool = False

    def where(self, alias: str = "r", domain_column: str = "r.domain", records: bool = True) -> tuple[str, list[Any]]:
        clauses, params = [f"{alias}.end_at >= %s"], [self.since]
        if self.until is not None:
            clauses.append(f"{alias}.begin_at <= %s")
            params.append(self.until)
        if self.domain:
            clauses.append(f"{domain_column} = %s")
            params.append(self.domain)
        if self.failures_only and records:
            clauses.append(FAILURES_ONLY)
        return " AND ".join(clauses), params


_JOINED = "FROM dmarc_reports r JOIN dmarc_records c ON c.report_pk = r.id"


def domains(pool: ConnectionPool, window: Window) -> list[dict[str, Any]]:
    where, params = window.where()
    return _rows(
        pool,
        f"""SELECT r.domain, {_RATES}, count(DISTINCT c.source_ip) AS unique_ips,
                   max(r.end_at) AS last_report, (array_agg(r.policy ORDER BY r.end_at DESC))[1] AS policy
            {_JOINED} WHERE {where} GROUP BY r.domain ORDER BY total_messages DESC, r.domain""",
        params,
    )


def totals(pool: ConnectionPool, window: Window) -> dict[str, Any]:
    where, params = window.where()
    return _rows(
        pool,
        f"""SELECT {_RATES}, count(DISTINCT c.source_ip) AS unique_ips, count(DISTINCT r.org_name) AS unique_reporters,
                   coalesce(sum(c.count) FILTER (WHERE {FAILURES_ONLY}), 0)::bigint AS failing_messages,
                   (array_agg(r.policy ORDER BY r.end_at DESC))[1] AS policy
            {_JOINED} WHERE {where}""",
        params,
    )[0]


def daily(pool: ConnectionPool, window: Window) -> list[dict]:
    """Per UTC day of the report's begin: counts, rates, reports, reporters."""
    where, params = window.where()
    return _rows(
        pool,
        f"""SELECT date_trunc('day', r.begin_at) AS day, {_RATES}, count(DISTINCT r.id) AS report_count,
                   count(DISTINCT c.source_ip) AS unique_ips, array_agg(DISTINCT r.org_name) AS reporters,
                   coalesce(sum(c.count) FILTER (WHERE {FAILURES_ONLY}), 0)::bigint AS failing_messages
            {_JOINED} WHERE {where} GROUP BY 1 ORDER BY 1""",
        params,
    )


def daily_by_domain(pool: ConnectionPool, window: Window) -> list[dict]:
    """DMARC pass rate per UTC day and policy domain."""
    where, params = window.where()
    return _rows(
        pool,
        f"""SELECT date_trunc('day', r.begin_at) AS day, r.domain, {_RATES}
            {_JOINED} WHERE {where} GROUP BY 1, 2 ORDER BY 1, 2""",
        params,
    )


def sources(pool: ConnectionPool, window: Window, limit: int) -> list[dict]:
    """Per sending IP: volume, pass rates, reporters, geo/ASN/rDNS, first and last seen."""
    where, params = window.where()
    return _rows(
        pool,
        f"""SELECT host(c.source_ip) AS source_ip, {_RATES}, count(DISTINCT r.org_name) AS reporters,
                   max(c.country_code) AS country_code, max(c.country_name) AS country_name, max(c.city) AS city,
                   max(c.asn) AS asn, max(c.asn_org) AS asn_org, max(c.reverse_dns) AS reverse_dns,
                   min(r.begin_at) AS first_seen, max(r.end_at) AS last_seen,
                   array_agg(DISTINCT c.header_from) FILTER (WHERE c.header_from IS NOT NULL) AS header_from
            {_JOINED} WHERE {where} GROUP BY c.source_ip ORDER BY total_messages DESC, c.source_ip LIMIT %s""",
        [*params, limit],
    )


def countries(pool: ConnectionPool, window: Window) -> list[dict]:
    where, params = window.where()
    return _rows(
        pool,
        f"""SELECT coalesce(c.country_code, '??') AS country_code, max(c.country_name) AS country_name, {_RATES},
                   coalesce(sum(c.count) FILTER (WHERE {FAILURES_ONLY}), 0)::bigint AS failing_messages
            {_JOINED} WHERE {where} GROUP BY 1 ORDER BY total_messages DESC, 1""",
        params,
    )


def reporters(pool: ConnectionPool, window: Window) -> list[dict]:
    where, params = window.where()
    return _rows(
        pool,
        f"""SELECT r.org_name AS reporter, count(DISTINCT r.id) AS reports, {_RATES}, max(r.end_at) AS last_report
            {_JOINED} WHERE {where} GROUP BY r.org_name ORDER BY total_messages DESC, r.org_name""",
        params,
    )


def failing_records(pool: ConnectionPool, window: Window, limit: int) -> list[dict]:
    """Records that failed DMARC or had the policy applied, newest first (the failures drill-down)."""
    where, params = window.where()
    return _rows(
        pool,
        f"""SELECT r.begin_at, r.domain, r.org_name AS reporter, host(c.source_ip) AS source_ip, c.count,
                   c.disposition, c.spf, c.dkim, c.header_from, c.envelope_from, c.country_code, c.asn, c.asn_org,
                   c.reverse_dns
            {_JOINED} WHERE {where} AND {FAILURES_ONLY} ORDER BY r.begin_at DESC, c.count DESC LIMIT %s""",
        [*params, limit],
    )


def reports_on(pool: ConnectionPool, domain: str, day: datetime) -> list[dict]:
    """The reports that began on one UTC day, with their records."""
    return _rows(
        pool,
        """SELECT r.id, r.org_name, r.org_email, r.report_id, r.begin_at, r.end_at, r.policy, r.errors, r.schema,
                  coalesce(jsonb_agg(jsonb_build_object(
                      'source_ip', host(c.source_ip), 'count', c.count, 'disposition', c.disposition, 'dkim', c.dkim,
                      'spf', c.spf, 'dmarc_pass', c.dmarc_pass, 'header_from', c.header_from,
                      'envelope_from', c.envelope_from, 'reasons', c.reasons, 'auth_dkim', c.auth_dkim,
                      'auth_spf', c.auth_spf, 'country_code', c.country_code, 'asn', c.asn, 'asn_org', c.asn_org)
                      ORDER BY c.count DESC), '[]') AS records
           FROM dmarc_reports r LEFT JOIN dmarc_records c ON c.report_pk = r.id
           WHERE r.domain = %s AND r.begin_at >= %s AND r.begin_at < %s + interval '1 day'
           GROUP BY r.id ORDER BY r.begin_at, r.org_name""",
        (domain, day, day),
    )


def failure_reports(pool: ConnectionPool, window: Window, limit: int) -> list[dict]:
    where, params = ["coalesce(arrival_at, received_at) >= %s"], [window.since]
    if window.domain:
        where.append("reported_domain = %s")
        params.append(window.domain)
    return _rows(
        pool,
        f"""SELECT id, reported_domain, host(source_ip) AS source_ip, arrival_at, format, feedback_type,
                   original_mail_from, original_rcpt_to, auth_failure, delivery_result, authentication_results,
                   reporter, subject, header_from, country_code, asn
            FROM dmarc_failure_reports WHERE {" AND ".join(where)}
            ORDER BY arrival_at DESC NULLS LAST, id DESC LIMIT %s""",
        [*params, limit],
    )


# --- TLS -------------------------------------------------------------------------------------------------

MAX_ORGANIZATIONS = 100  # names listed per day (all are counted)


def _tls_where(window: Window) -> tuple[str, list[Any]]:
    return window.where("t", "p.policy_domain", records=False)


_TLS_JOINED = "FROM tls_reports t JOIN tls_policies p ON p.report_pk = t.id"
_TLS_SESSIONS = """sum(p.successful_sessions)::bigint AS total_success, sum(p.failed_sessions)::bigint AS total_fail"""


def tls_reports(pool: ConnectionPool, window: Window, limit: int, offset: int = 0) -> list[dict]:
    """A page of reports, newest first, each counting only its policies in the window's domain
    (all of them without one): summed in SQL, the stored policies never leave the database."""
    where, params = _tls_where(window)
    return _rows(
        pool,
        f"""SELECT t.id, t.report_id, t.organization_name, t.contact_info, t.begin_at, t.end_at, {_TLS_SESSIONS},
                   string_agg(DISTINCT p.policy_domain, ', ' ORDER BY p.policy_domain) AS policy_domains
            {_TLS_JOINED} WHERE {where} GROUP BY t.id ORDER BY t.begin_at DESC, t.id DESC LIMIT %s OFFSET %s""",
        [*params, limit, offset],
    )


def tls_day_reports(pool: ConnectionPool, domain: str, day: datetime, limit: int, details: int) -> list[dict]:
    """Up to `limit` reports that began on one UTC day with their policies for `domain`, each policy
    with its `details` largest failure details and how many it has in all."""
    return _rows(
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
    return _rows(
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
    return _rows(
        pool,
        f"""SELECT d ->> 'result_type' AS result_type, sum((d ->> 'failed_session_count')::bigint)::bigint AS sessions,
                   count(DISTINCT d ->> 'receiving_mx_hostname') AS mx_hosts
            {_TLS_JOINED}, jsonb_array_elements(p.failure_details) d
            WHERE {where} GROUP BY 1 ORDER BY 2 DESC, 1""",
        params,
    )


def dmarc_domains(pool: ConnectionPool) -> list[str]:
    """Every domain with reports (the dashboard's domain variable)."""
    return [r["domain"] for r in _rows(pool, "SELECT DISTINCT domain FROM dmarc_reports ORDER BY 1", ())]


# --- IMAP sync history ----------------------------------------------------------------------------------


def sync_started(pool: ConnectionPool, sync_type: str) -> int:
    with pool.connection() as conn:
        return conn.execute(
            "INSERT INTO dmarc_imap_syncs (sync_type, status) VALUES (%s, 'running') RETURNING id", (sync_type,)
        ).fetchone()[0]


def sync_finished(
    pool: ConnectionPool,
    sync_id: int,
    status: str,
    counts: dict[str, int],
    error: str | None,
    failed: list[dict] | None,
) -> dict[str, Any]:
    with pool.connection() as conn, conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(
            """UPDATE dmarc_imap_syncs SET status = %s, completed_at = now(), emails_found = %s,
                   emails_processed = %s, reports_created = %s, reports_duplicate = %s, reports_failed = %s,
                   error_message = %s, failed_emails = %s
               WHERE id = %s RETURNING *""",
            (
                status,
                counts.get("emails_found", 0),
                counts.get("emails_processed", 0),
                counts.get("reports_created", 0),
                counts.get("reports_duplicate", 0),
                counts.get("reports_failed", 0),
                error,
                Jsonb(failed) if failed else None,
                sync_id,
            ),
        ).fetchone()


def syncs(pool: ConnectionPool, limit: int) -> list[dict]:
    return _rows(pool, "SELECT * FROM dmarc_imap_syncs ORDER BY started_at DESC, id DESC LIMIT %s", (limit,))
