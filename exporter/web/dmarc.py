"""`/api/dmarc/...` with the shapes of seed 002: domains, overview, daily reports, sources,
upload, IMAP status/sync/history, TLS reports (list, daily, details), plus report details per day
and failure reports. `failures_only=true` keeps records that failed DMARC or had the policy applied."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from flask import Blueprint, Response, current_app, jsonify, request

from exporter.http import context
from exporter.http.errors import ApiError
from exporter.http.params import ReportDayParams, int_arg, load
from exporter.parsers.dmarc.errors import InvalidReport
from exporter.readmodels.mail import iso
from exporter.services import dmarc_imap
from exporter.services.dmarc import import_bytes, reverse_dns
from exporter.services.geoip import GeoIP, flag
from exporter.store import dmarc as store
from exporter.store import dmarc_imap as sync_store
from exporter.store import tls as tls_store
from exporter.store.dmarc import Window

bp = Blueprint("dmarc", __name__, url_prefix="/api/dmarc")
_DOMAIN = "<string:domain>"


def geoip() -> GeoIP:
    """This process's GeoIP databases, reopened first if their files changed (a stat per call)."""
    geo: GeoIP = current_app.config["MG_GEOIP"]
    geo.reload_if_changed()
    return geo


def _since() -> datetime:
    return datetime.now(UTC) - timedelta(days=int_arg("days", 30, 1, 3650))


def _window(domain: str | None = None) -> Window:
    return Window(_since(), domain=domain, failures_only=_failures_only())


def _failures_only() -> bool:
    return request.args.get("failures_only", "").lower() in ("1", "true", "yes")


def _epoch(value: datetime | None) -> int | None:
    return int(value.timestamp()) if value else None


def _domain(domain: str) -> str:
    return domain.strip().lower().rstrip(".")


def _policy(policy: dict[str, Any] | None) -> dict[str, Any]:
    policy = policy or {}
    return {k: policy.get(k) for k in ("p", "sp", "adkim", "aspf", "pct", "fo", "np", "testing")}


def _rates(row: dict[str, Any]) -> dict[str, Any]:
    return {k: row[k] for k in ("total_messages", "dmarc_pass_pct", "spf_pass_pct", "dkim_pass_pct")} | {
        "total_messages": row["total_messages"] or 0
    }


@bp.get("/domains")
def domains() -> Response:
    window = _window()
    rows = store.domains(context.pool(), window)
    overall = store.totals(context.pool(), window)
    return jsonify(
        {
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
                    "last_report_date": _epoch(r["last_report"]),
                }
                for r in rows
            ],
        }
    )


@bp.get(f"/domains/{_DOMAIN}/overview")
def overview(domain: str) -> Response:
    domain = _domain(domain)
    summary = store.totals(context.pool(), _window(domain))
    days = store.daily(context.pool(), _window(domain))
    return jsonify(
        {
            "domain": domain,
            **_rates(summary),
            "unique_ips": summary["unique_ips"],
            "unique_reporters": summary["unique_reporters"],
            "policy": _policy(summary["policy"]),
            "daily_stats": [{"date": _epoch(d["day"]), **_rates(d)} for d in days],
        }
    )


@bp.get(f"/domains/{_DOMAIN}/reports")
def reports(domain: str) -> Response:
    domain = _domain(domain)
    days = store.daily(context.pool(), _window(domain))
    return jsonify(
        {
            "domain": domain,
            "reports": [
                {
                    "date": _epoch(d["day"]),
                    "report_count": d["report_count"],
                    "unique_ips": d["unique_ips"],
                    **_rates(d),
                    "reporters": sorted(d["reporters"]),
                }
                for d in days
            ],
        }
    )


def _day(value: str) -> datetime:
    return load(ReportDayParams(), {"report_date": value})["report_date"]


@bp.get(f"/domains/{_DOMAIN}/reports/<report_date>/details")
def report_details(domain: str, report_date: str) -> Response:
    domain, day = _domain(domain), _day(report_date)
    rows = store.reports_on(context.pool(), domain, day)
    return jsonify(
        {
            "domain": domain,
            "date": report_date,
            "reports": [
                {
                    "id": r["id"],
                    "reporter": r["org_name"],
                    "reporter_email": r["org_email"],
                    "report_id": r["report_id"],
                    "begin_date": _epoch(r["begin_at"]),
                    "end_date": _epoch(r["end_at"]),
                    "schema": r["schema"],
                    "policy": _policy(r["policy"]),
                    "errors": r["errors"],
                    "records": [rec | {"country_emoji": flag(rec.get("country_code"))} for rec in r["records"]],
                }
                for r in rows
            ],
        }
    )


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
        "first_seen": _epoch(r["first_seen"]),
        "last_seen": _epoch(r["last_seen"]),
    }


@bp.get(f"/domains/{_DOMAIN}/sources")
def sources(domain: str) -> Response:
    domain = _domain(domain)
    limit = int_arg("limit", 500, 1, 5000)
    rows = store.sources(context.pool(), _window(domain), limit)
    return jsonify({"domain": domain, "sources": [source_row(r) for r in rows]})


@bp.get(f"/domains/{_DOMAIN}/failure-reports")
def failure_reports(domain: str) -> Response:
    rows = store.failure_reports(context.pool(), _window(_domain(domain)), int_arg("limit", 100, 1, 1000))
    return jsonify({"domain": _domain(domain), "total": len(rows), "data": [_dates(r, "arrival_at") for r in rows]})


def _dates(row: dict[str, Any], *keys: str) -> dict[str, Any]:
    return {k: (iso(v) if k in keys else v) for k, v in row.items()}


# --- upload and IMAP ---------------------------------------------------------------------------------------


@bp.post("/upload")
def upload() -> Response:
    """A report file (XML, gzip, zip, JSON TLS report, or a report e-mail) as multipart `file`, from a
    script: the app's cross-site guard refuses forms that web pages send."""
    config = context.config()
    if not config.dmarc_manual_upload_enabled:
        raise ApiError(403, "Forbidden", "manual uploads are disabled (DMARC_MANUAL_UPLOAD_ENABLED)", "UPLOAD_DISABLED")
    file = request.files.get("file")
    if file is None:
        raise ApiError(400, "Bad Request", 'send the report as multipart form field "file"', "FILE_REQUIRED")
    data = file.read(config.dmarc_upload_max_bytes + 1)
    if len(data) > config.dmarc_upload_max_bytes:
        raise ApiError(413, "Payload Too Large", f"at most {config.dmarc_upload_max_bytes:,} bytes", "FILE_TOO_LARGE")
    name = file.filename or "upload"
    try:
        result = import_bytes(
            context.pool(), data, name, geoip(), reverse_dns if config.dmarc_reverse_dns else None, "upload"
        )
    except InvalidReport as exc:
        raise ApiError(400, "Bad Request", f"Failed to parse DMARC report: {exc}", "INVALID_REPORT") from None
    if result.created:
        first = result.created[0]
        kind = {"aggregate": "report", "tls": "TLS report", "failure": "failure report"}[first["kind"]]
        response = jsonify(
            {
                "status": "success",
                "message": f"Uploaded {kind} for {first['domain']} from {first['reporter']}",
                "report_id": first["id"],
                "records_count": first["records_count"],
                "reports": result.created,
                "duplicates": result.duplicates,
                "problems": result.problems,
            }
        )
        response.status_code = 201
        return response
    first = result.duplicates[0]
    return jsonify(
        {
            "status": "duplicate",
            "message": f"Report {first['report_id'] or first['id']} already exists",
            "report_id": first["id"],
            "duplicates": result.duplicates,
        }
    )


_SYNC_COUNTS = (
    "emails_found",
    "emails_processed",
    "reports_created",
    "reports_duplicate",
    "reports_failed",
    "error_message",
    "failed_emails",
)


def _sync_row(row: dict[str, Any], history: bool = False) -> dict[str, Any]:
    """A sync run as seed 002 shows it: `sync_id` in status/sync answers, `id` + duration in history."""
    done = row["completed_at"]
    out: dict[str, Any] = {"id": row["id"]} if history else {"sync_id": row["id"]}
    out.update(
        sync_type=row["sync_type"], status=row["status"], started_at=iso(row["started_at"]), completed_at=iso(done)
    )
    if history:
        out["duration_seconds"] = int((done - row["started_at"]).total_seconds()) if done else None
    return out | {k: row[k] for k in _SYNC_COUNTS}


@bp.get("/imap/status")
def imap_status() -> Response:
    config = context.config()
    if not config.dmarc_imap_host:
        raise ApiError(
            404, "Not Found", "DMARC IMAP auto-import is not configured (DMARC_IMAP_HOST)", "IMAP_NOT_CONFIGURED"
        )
    last = sync_store.syncs(context.pool(), 1)
    return jsonify(
        {
            "enabled": config.dmarc_imap_enabled,
            "manual_upload_enabled": config.dmarc_manual_upload_enabled,
            "host": config.dmarc_imap_host,
            "port": config.dmarc_imap_port,
            "use_ssl": config.dmarc_imap_use_ssl,
            "user": config.dmarc_imap_user,
            "folder": config.dmarc_imap_folder,
            "archive_folder": config.dmarc_imap_archive_folder,
            "invalid_folder": config.dmarc_imap_invalid_folder,
            "interval_seconds": config.dmarc_imap_interval,
            "delete_after_processing": config.dmarc_imap_delete_after,
            "last_sync": _sync_row(last[0]) if last else None,
        }
    )


@bp.post("/imap/sync")
def imap_sync() -> Response:
    """Run one import now (synchronous), even when the scheduled import is off."""
    config = context.config()
    if not config.dmarc_imap_host:
        return jsonify({"status": "disabled", "message": "DMARC IMAP sync is not enabled"})
    row = dmarc_imap.sync(config, context.pool(), geoip(), "manual")
    return jsonify(_sync_row(row))


@bp.get("/imap/history")
def imap_history() -> Response:
    rows = sync_store.syncs(context.pool(), int_arg("limit", 20, 1, 100))
    return jsonify({"data": [_sync_row(r, history=True) for r in rows]})


# --- TLS ------------------------------------------------------------------------------------------------------


def _rate(ok: int, failed: int) -> float | None:
    return round(100.0 * ok / (ok + failed), 2) if ok + failed else None


def _tls_window(domain: str) -> Window:
    return Window(_since(), domain=domain)


def _page() -> tuple[int, int]:
    """`page` (from 1) and `page_size` of a list answer."""
    return int_arg("page", 1, 1, 10_000), int_arg("page_size", 100, 1, 1000)


@bp.get(f"/domains/{_DOMAIN}/tls-reports")
def tls_reports(domain: str) -> Response:
    """A page of the domain's reports, newest first; `total` counts them all."""
    domain = _domain(domain)
    page, size = _page()
    days = tls_store.tls_daily(context.pool(), _tls_window(domain))
    rows = tls_store.tls_reports(context.pool(), _tls_window(domain), size, (page - 1) * size)
    return jsonify(
        {
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
    )


@bp.get(f"/domains/{_DOMAIN}/tls-reports/daily")
def tls_daily(domain: str) -> Response:
    domain = _domain(domain)
    page, size = int_arg("page", 1, 1, 10_000), int_arg("page_size", 20, 1, 500)
    days = tls_store.tls_daily(context.pool(), _tls_window(domain))
    ok, failed = sum(d["successful_sessions"] for d in days), sum(d["failed_sessions"] for d in days)
    newest = days[::-1][(page - 1) * size : page * size]
    return jsonify(
        {
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
    )


TLS_DETAILS_SHOWN = 20  # failure details per policy in a details answer, the largest first


@bp.get(f"/domains/{_DOMAIN}/tls-reports/<report_date>/details")
def tls_details(domain: str, report_date: str) -> Response:
    """The day's totals over all its reports, and the first `limit` reports (`providers`), each policy
    with its largest failure details (`failure_details_total` counts them all)."""
    domain, day = _domain(domain), _day(report_date)
    limit = int_arg("limit", 20, 1, 100)
    totals = tls_store.tls_daily(context.pool(), Window(day, domain=domain), day)
    rows = tls_store.tls_day_reports(context.pool(), domain, day, limit, TLS_DETAILS_SHOWN)
    ok = totals[0]["successful_sessions"] if totals else 0
    failed = totals[0]["failed_sessions"] if totals else 0
    return jsonify(
        {
            "domain": domain,
            "date": report_date,
            "stats": {
                "total_reports": totals[0]["report_count"] if totals else 0,
                "total_providers": totals[0]["organization_count"] if totals else 0,
                "total_success": ok,
                "total_fail": failed,
                "total_sessions": ok + failed,
                "success_rate": _rate(ok, failed),
            },
            "providers": [
                {
                    "report_id": r["report_id"],
                    "organization_name": r["organization_name"],
                    "contact_info": r["contact_info"],
                    "start_datetime": iso(r["begin_at"]),
                    "end_datetime": iso(r["end_at"]),
                    "successful_sessions": r["total_success"],
                    "failed_sessions": r["total_fail"],
                    "total_sessions": r["total_success"] + r["total_fail"],
                    "success_rate": _rate(r["total_success"], r["total_fail"]),
                    "policies": [
                        {
                            "policy_type": p["policy_type"],
                            "policy_domain": p["policy_domain"],
                            "mx_host": ", ".join(p["mx_hosts"]) or None,
                            "successful_sessions": p["successful_sessions"],
                            "failed_sessions": p["failed_sessions"],
                            "total_sessions": p["successful_sessions"] + p["failed_sessions"],
                            "success_rate": _rate(p["successful_sessions"], p["failed_sessions"]),
                            "failure_details": p["failure_details"] or None,
                            "failure_details_total": p["failure_details_total"],
                        }
                        for p in r["policies"]
                    ],
                }
                for r in rows
            ],
        }
    )
