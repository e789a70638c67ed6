"""TLS-RPT reports: the REST shapes of `/api/dmarc/domains/{domain}/tls-reports` (seed 002: sessions
and success rates per report, per day, per policy) and the Grafana queries."""

from __future__ import annotations

from typing import Any

from psycopg_pool import ConnectionPool

from exporter.readmodels.args import Args
from exporter.readmodels.dmarc import window
from exporter.readmodels.format import iso, ms
from exporter.store import tls as tls_store

DETAILS_SHOWN = 20  # failure details per policy in a details answer, the largest first


def _rate(ok: int, failed: int) -> float | None:
    return round(100.0 * ok / (ok + failed), 2) if ok + failed else None


def _sessions(ok: int, failed: int) -> dict[str, Any]:
    return {
        "successful_sessions": ok,
        "failed_sessions": failed,
        "total_sessions": ok + failed,
        "success_rate": _rate(ok, failed),
    }


def reports(domain: str, page: int, size: int, days: list[dict[str, Any]], rows: list[dict[str, Any]]) -> dict:
    """A page of the domain's reports, newest first; `total` counts them all."""
    return {
        "domain": domain,
        "total": sum(d["report_count"] for d in days),
        "page": page,
        "page_size": size,
        "data": [
            {
                "id": r["id"],
                "report_id": r["report_id"],
                "organization_name": r["organization_name"],
                "start_datetime": iso(r["begin_at"]),
                "end_datetime": iso(r["end_at"]),
                "total_success": r["total_success"],
                "total_fail": r["total_fail"],
                "success_rate": _rate(r["total_success"], r["total_fail"]),
            }
            for r in rows
        ],
    }


def daily(domain: str, page: int, size: int, days: list[dict[str, Any]]) -> dict[str, Any]:
    """Totals over every day, and one page of the days, newest first."""
    ok, failed = sum(d["successful_sessions"] for d in days), sum(d["failed_sessions"] for d in days)
    newest = days[::-1][(page - 1) * size : page * size]
    return {
        "domain": domain,
        "totals": {
            "total_days": len(days),
            "total_reports": sum(d["report_count"] for d in days),
            "total_successful_sessions": ok,
            "total_failed_sessions": failed,
            "overall_success_rate": _rate(ok, failed),
        },
        "page": page,
        "page_size": size,
        "data": [
            {
                "date": d["day"].strftime("%Y-%m-%d"),
                "report_count": d["report_count"],
                "organization_count": d["organization_count"],
                "organizations": d["organizations"],
                "total_success": d["successful_sessions"],
                "total_fail": d["failed_sessions"],
                "success_rate": _rate(d["successful_sessions"], d["failed_sessions"]),
            }
            for d in newest
        ],
    }


def _policy(p: dict[str, Any]) -> dict[str, Any]:
    return {
        "policy_type": p["policy_type"],
        "policy_domain": p["policy_domain"],
        "mx_host": ", ".join(p["mx_hosts"]) or None,
        **_sessions(p["successful_sessions"], p["failed_sessions"]),
        "failure_details": p["failure_details"] or None,
        "failure_details_total": p["failure_details_total"],
    }


def _provider(r: dict[str, Any]) -> dict[str, Any]:
    return {
        "report_id": r["report_id"],
        "organization_name": r["organization_name"],
        "contact_info": r["contact_info"],
        "start_datetime": iso(r["begin_at"]),
        "end_datetime": iso(r["end_at"]),
        **_sessions(r["total_success"], r["total_fail"]),
        "policies": [_policy(p) for p in r["policies"]],
    }


def details(domain: str, report_date: str, totals: list[dict[str, Any]], rows: list[dict[str, Any]]) -> dict:
    """The day's totals over all its reports, and the reports given (`providers`), each policy with its
    largest failure details (`failure_details_total` counts them all)."""
    day = totals[0] if totals else {}
    ok, failed = day.get("successful_sessions", 0), day.get("failed_sessions", 0)
    return {
        "domain": domain,
        "date": report_date,
        "stats": {
            "total_reports": day.get("report_count", 0),
            "total_providers": day.get("organization_count", 0),
            "total_success": ok,
            "total_fail": failed,
            "total_sessions": ok + failed,
            "success_rate": _rate(ok, failed),
        },
        "providers": [_provider(r) for r in rows],
    }


# --- Grafana ------------------------------------------------------------------------------------------------


def tls_daily(pool: ConnectionPool, args: Args) -> list[dict]:
    return [
        {"time": ms(d["day"]), "successful_sessions": d["successful_sessions"], "failed_sessions": d["failed_sessions"]}
        for d in tls_store.tls_daily(pool, window(args))
    ]


def tls_failure_types(pool: ConnectionPool, args: Args) -> list[dict]:
    return tls_store.tls_failure_types(pool, window(args))


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
        for r in tls_store.tls_reports(pool, window(args), args.limit)
    ]
