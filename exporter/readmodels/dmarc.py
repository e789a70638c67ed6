"""DMARC aggregate and failure reports: the REST shapes of `/api/dmarc` (seed 002: dates as epoch
seconds, pass rates in percent), the upload answers, and the Grafana queries."""

from __future__ import annotations

from typing import Any

from psycopg_pool import ConnectionPool

from exporter.readmodels.args import Args
from exporter.readmodels.format import epoch, iso, ms
from exporter.services.dmarc import ImportResult
from exporter.services.geoip import flag
from exporter.store import dmarc as dmarc_store

RATES = ("total_messages", "dmarc_pass_pct", "spf_pass_pct", "dkim_pass_pct")


def _pass_rates(row: dict[str, Any]) -> dict[str, Any]:
    return {k: row[k] for k in RATES}


def _rates(row: dict[str, Any]) -> dict[str, Any]:
    """The pass rates, with 0 messages where no report counted any."""
    return _pass_rates(row) | {"total_messages": row["total_messages"] or 0}


def _policy(policy: dict[str, Any] | None) -> dict[str, Any]:
    policy = policy or {}
    return {k: policy.get(k) for k in ("p", "sp", "adkim", "aspf", "pct", "fo", "np", "testing")}


# --- REST: /api/dmarc ------------------------------------------------------------------------------------


def domains(rows: list[dict[str, Any]], overall: dict[str, Any]) -> dict[str, Any]:
    return {
        "total_domains": len(rows),
        "total_messages": overall["total_messages"] or 0,
        "total_unique_ips": overall["unique_ips"],
        "overall_dmarc_pass_pct": overall["dmarc_pass_pct"],
        "domains": [
            {
                "domain": r["domain"],
                "total_messages": r["total_messages"],
                "unique_ips": r["unique_ips"],
                "dmarc_pass_pct": r["dmarc_pass_pct"],
                "spf_pass_pct": r["spf_pass_pct"],
                "dkim_pass_pct": r["dkim_pass_pct"],
                "policy_p": (r["policy"] or {}).get("p"),
                "policy_sp": (r["policy"] or {}).get("sp"),
                "last_report_date": epoch(r["last_report"]),
            }
            for r in rows
        ],
    }


def overview(domain: str, summary: dict[str, Any], days: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "domain": domain,
        **_rates(summary),
        "unique_ips": summary["unique_ips"],
        "unique_reporters": summary["unique_reporters"],
        "policy": _policy(summary["policy"]),
        "daily_stats": [{"date": epoch(d["day"]), **_rates(d)} for d in days],
    }


def reports(domain: str, days: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "domain": domain,
        "reports": [
            {
                "date": epoch(d["day"]),
                "report_count": d["report_count"],
                "unique_ips": d["unique_ips"],
                **_rates(d),
                "reporters": sorted(d["reporters"]),
            }
            for d in days
        ],
    }


def report_details(domain: str, report_date: str, rows: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "domain": domain,
        "date": report_date,
        "reports": [
            {
                "id": r["id"],
                "reporter": r["org_name"],
                "reporter_email": r["org_email"],
                "report_id": r["report_id"],
                "begin_date": epoch(r["begin_at"]),
                "end_date": epoch(r["end_at"]),
                "schema": r["schema"],
                "policy": _policy(r["policy"]),
                "errors": r["errors"],
                "records": [rec | {"country_emoji": flag(rec.get("country_code"))} for rec in r["records"]],
            }
            for r in rows
        ],
    }


def source_row(r: dict[str, Any]) -> dict[str, Any]:
    return {
        "source_ip": r["source_ip"],
        **_rates(r),
        "reporters": r["reporters"],
        "country_code": r["country_code"],
        "country_name": r["country_name"],
        "country_emoji": flag(r["country_code"]),
        "city": r["city"],
        "asn": r["asn"],
        "asn_org": r["asn_org"],
        "reverse_dns": r["reverse_dns"],
        "header_from": r["header_from"] or [],
        "first_seen": epoch(r["first_seen"]),
        "last_seen": epoch(r["last_seen"]),
    }


def sources(domain: str, rows: list[dict[str, Any]]) -> dict[str, Any]:
    return {"domain": domain, "sources": [source_row(r) for r in rows]}


def failure_reports(domain: str, rows: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "domain": domain,
        "total": len(rows),
        "data": [{k: (iso(v) if k == "arrival_at" else v) for k, v in r.items()} for r in rows],
    }


_KINDS = {"aggregate": "report", "tls": "TLS report", "failure": "failure report"}


def upload_created(result: ImportResult) -> dict[str, Any]:
    """The answer to an upload that stored at least one report (HTTP 201)."""
    first = result.created[0]
    return {
        "status": "success",
        "message": f"Uploaded {_KINDS[first['kind']]} for {first['domain']} from {first['reporter']}",
        "report_id": first["id"],
        "records_count": first["records_count"],
        "reports": result.created,
        "duplicates": result.duplicates,
        "problems": result.problems,
    }


def upload_duplicate(result: ImportResult) -> dict[str, Any]:
    """The answer to an upload whose reports were all stored before."""
    first = result.duplicates[0]
    return {
        "status": "duplicate",
        "message": f"Report {first['report_id'] or first['id']} already exists",
        "report_id": first["id"],
        "duplicates": result.duplicates,
    }


# --- Grafana ------------------------------------------------------------------------------------------------


def window(args: Args) -> dmarc_store.Window:
    """Reports overlapping the range; `domain` picks one policy domain, option failures_only=true the failures."""
    failures = args.options.get("failures_only", "").lower() in ("1", "true", "yes")
    return dmarc_store.Window(args.start, args.end, args.domain.lower() if args.domain else None, failures)


def dmarc_summary(pool: ConnectionPool, args: Args) -> list[dict]:
    row = dmarc_store.totals(pool, window(args))
    return [_rates(row) | {k: row[k] for k in ("failing_messages", "unique_ips", "unique_reporters")}]


def dmarc_daily(pool: ConnectionPool, args: Args) -> list[dict]:
    """Reported messages and pass rates per UTC day (of the reports' begin)."""
    return [
        {"time": ms(d["day"]), **_pass_rates(d), "failing_messages": d["failing_messages"]}
        for d in dmarc_store.daily(pool, window(args))
    ]


def dmarc_pass_by_domain(pool: ConnectionPool, args: Args) -> list[dict]:
    """Wide rows for one series per domain: {"time", "<domain>": DMARC pass %, ...}; a domain without
    reports that day has no value there."""
    rows: dict[int, dict[str, Any]] = {}
    for r in dmarc_store.daily_by_domain(pool, window(args)):
        rows.setdefault(ms(r["day"]), {"time": ms(r["day"])})[r["domain"]] = r["dmarc_pass_pct"]
    return [rows[t] for t in sorted(rows)]


def dmarc_domains(pool: ConnectionPool, args: Args) -> list[dict]:
    return [
        {
            "domain": r["domain"],
            **_pass_rates(r),
            "unique_ips": r["unique_ips"],
            "policy_p": (r["policy"] or {}).get("p"),
            "policy_sp": (r["policy"] or {}).get("sp"),
            "policy_pct": (r["policy"] or {}).get("pct"),
            "adkim": (r["policy"] or {}).get("adkim"),
            "aspf": (r["policy"] or {}).get("aspf"),
            "last_report": ms(r["last_report"]),
        }
        for r in dmarc_store.domains(pool, window(args))
    ]


def dmarc_sources(pool: ConnectionPool, args: Args) -> list[dict]:
    """Sending IPs with pass rates, reporters, country, ASN and reverse DNS."""
    return [
        {
            "source_ip": r["source_ip"],
            **_pass_rates(r),
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
        for r in dmarc_store.sources(pool, window(args), args.limit)
    ]


def dmarc_countries(pool: ConnectionPool, args: Args) -> list[dict]:
    return [
        {
            "country_code": r["country_code"],
            "country_name": r["country_name"],
            **_pass_rates(r),
            "failing_messages": r["failing_messages"],
        }
        for r in dmarc_store.countries(pool, window(args))
    ]


def dmarc_reporters(pool: ConnectionPool, args: Args) -> list[dict]:
    return [
        {"reporter": r["reporter"], "reports": r["reports"], **_pass_rates(r), "last_report": ms(r["last_report"])}
        for r in dmarc_store.reporters(pool, window(args))
    ]


def dmarc_failures(pool: ConnectionPool, args: Args) -> list[dict]:
    """Records that failed DMARC or had the policy applied: who sent what, as whom, judged how."""
    return [{**r, "begin": ms(r.pop("begin_at"))} for r in dmarc_store.failing_records(pool, window(args), args.limit)]
