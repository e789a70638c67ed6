"""DMARC aggregate and failure reports: storing them (one transaction each, records by COPY) and the
read models behind /api/dmarc and the DMARC dashboard. Pass rates are percentages of messages."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from psycopg import sql
from psycopg.types.json import Jsonb
from psycopg_pool import ConnectionPool

from exporter.store import counters, reads

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
    """Store one parsed aggregate or failure report: ("created" | "duplicate", its id)."""
    with pool.connection() as conn:
        if report["kind"] == "aggregate":
            return _save_aggregate(conn, report)
        return _save_failure(conn, report, raw or b"")


def _save_aggregate(conn: Any, report: dict[str, Any]) -> tuple[str, int]:
    """The report, its records and its counters (messages by result, new failing sources) in the
    caller's transaction; a report stored before is a duplicate and counts nothing."""
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
    _copy_records(conn, pk, report["records"])
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


def _copy_records(conn: Any, pk: int, records: list[dict[str, Any]]) -> None:
    """A report's records by one COPY (a report may hold 100,000 of them)."""
    with conn.cursor().copy(
        sql.SQL("COPY dmarc_records ({}) FROM STDIN").format(sql.SQL(", ").join(map(sql.Identifier, _RECORD_COLUMNS)))
    ) as copy:
        for r in records:
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
    return reads.rows(
        pool,
        f"""SELECT r.domain, {_RATES}, count(DISTINCT c.source_ip) AS unique_ips,
                   max(r.end_at) AS last_report, (array_agg(r.policy ORDER BY r.end_at DESC))[1] AS policy
            {_JOINED} WHERE {where} GROUP BY r.domain ORDER BY total_messages DESC, r.domain""",
        params,
    )


def totals(pool: ConnectionPool, window: Window) -> dict[str, Any]:
    where, params = window.where()
    return reads.rows(
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
    return reads.rows(
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
    return reads.rows(
        pool,
        f"""SELECT date_trunc('day', r.begin_at) AS day, r.domain, {_RATES}
            {_JOINED} WHERE {where} GROUP BY 1, 2 ORDER BY 1, 2""",
        params,
    )


def sources(pool: ConnectionPool, window: Window, limit: int) -> list[dict]:
    """Per sending IP: volume, pass rates, reporters, geo/ASN/rDNS, first and last seen."""
    where, params = window.where()
    return reads.rows(
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
    return reads.rows(
        pool,
        f"""SELECT coalesce(c.country_code, '??') AS country_code, max(c.country_name) AS country_name, {_RATES},
                   coalesce(sum(c.count) FILTER (WHERE {FAILURES_ONLY}), 0)::bigint AS failing_messages
            {_JOINED} WHERE {where} GROUP BY 1 ORDER BY total_messages DESC, 1""",
        params,
    )


def reporters(pool: ConnectionPool, window: Window) -> list[dict]:
    where, params = window.where()
    return reads.rows(
        pool,
        f"""SELECT r.org_name AS reporter, count(DISTINCT r.id) AS reports, {_RATES}, max(r.end_at) AS last_report
            {_JOINED} WHERE {where} GROUP BY r.org_name ORDER BY total_messages DESC, r.org_name""",
        params,
    )


def failing_records(pool: ConnectionPool, window: Window, limit: int) -> list[dict]:
    """Records that failed DMARC or had the policy applied, newest first (the failures drill-down)."""
    where, params = window.where()
    return reads.rows(
        pool,
        f"""SELECT r.begin_at, r.domain, r.org_name AS reporter, host(c.source_ip) AS source_ip, c.count,
                   c.disposition, c.spf, c.dkim, c.header_from, c.envelope_from, c.country_code, c.asn, c.asn_org,
                   c.reverse_dns
            {_JOINED} WHERE {where} AND {FAILURES_ONLY} ORDER BY r.begin_at DESC, c.count DESC LIMIT %s""",
        [*params, limit],
    )


def reports_on(pool: ConnectionPool, domain: str, day: datetime) -> list[dict]:
    """The reports that began on one UTC day, with their records."""
    return reads.rows(
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
    return reads.rows(
        pool,
        f"""SELECT id, reported_domain, host(source_ip) AS source_ip, arrival_at, format, feedback_type,
                   original_mail_from, original_rcpt_to, auth_failure, delivery_result, authentication_results,
                   reporter, subject, header_from, country_code, asn
            FROM dmarc_failure_reports WHERE {" AND ".join(where)}
            ORDER BY arrival_at DESC NULLS LAST, id DESC LIMIT %s""",
        [*params, limit],
    )


def dmarc_domains(pool: ConnectionPool) -> list[str]:
    """Every domain with reports (the dashboard's domain variable)."""
    return [r["domain"] for r in reads.rows(pool, "SELECT DISTINCT domain FROM dmarc_reports ORDER BY 1", ())]
