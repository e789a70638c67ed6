"""`/api/dmarc/...` with the shapes of seed 002: domains, overview, daily reports, sources,
upload, IMAP status/sync/history, TLS reports (list, daily, details), plus report details per day
and failure reports. `failures_only=true` keeps records that failed DMARC or had the policy applied."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from flask import Blueprint, Response, current_app, jsonify, request

from exporter.http import context
from exporter.http.audit_trail import audited
from exporter.http.errors import ApiError
from exporter.http.params import ReportDayParams, int_arg, load
from exporter.parsers.dmarc.errors import InvalidReport
from exporter.readmodels import dmarc, dmarc_imap, tls
from exporter.services import dmarc_imap as imap_import
from exporter.services.dmarc import import_bytes, reverse_dns
from exporter.services.geoip import GeoIP
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


def _domain(domain: str) -> str:
    return domain.strip().lower().rstrip(".")


@bp.get("/domains")
def domains() -> Response:
    window = _window()
    return jsonify(dmarc.domains(store.domains(context.pool(), window), store.totals(context.pool(), window)))


@bp.get(f"/domains/{_DOMAIN}/overview")
def overview(domain: str) -> Response:
    domain = _domain(domain)
    summary = store.totals(context.pool(), _window(domain))
    return jsonify(dmarc.overview(domain, summary, store.daily(context.pool(), _window(domain))))


@bp.get(f"/domains/{_DOMAIN}/reports")
def reports(domain: str) -> Response:
    domain = _domain(domain)
    return jsonify(dmarc.reports(domain, store.daily(context.pool(), _window(domain))))


def _day(value: str) -> datetime:
    return load(ReportDayParams(), {"report_date": value})["report_date"]


@bp.get(f"/domains/{_DOMAIN}/reports/<report_date>/details")
def report_details(domain: str, report_date: str) -> Response:
    domain, day = _domain(domain), _day(report_date)
    return jsonify(dmarc.report_details(domain, report_date, store.reports_on(context.pool(), domain, day)))


@bp.get(f"/domains/{_DOMAIN}/sources")
def sources(domain: str) -> Response:
    domain = _domain(domain)
    limit = int_arg("limit", 500, 1, 5000)
    return jsonify(dmarc.sources(domain, store.sources(context.pool(), _window(domain), limit)))


@bp.get(f"/domains/{_DOMAIN}/failure-reports")
def failure_reports(domain: str) -> Response:
    rows = store.failure_reports(context.pool(), _window(_domain(domain)), int_arg("limit", 100, 1, 1000))
    return jsonify(dmarc.failure_reports(_domain(domain), rows))


# --- upload and IMAP ---------------------------------------------------------------------------------------


@bp.post("/upload")
def upload() -> Response:
    """A report file (XML, gzip, zip, JSON TLS report, or a report e-mail) as multipart `file`, from a
    script: the app's cross-site guard refuses forms that web pages send."""
    config = context.config()
    file = request.files.get("file")
    with audited("dmarc_upload", f"file {(file.filename if file else None) or '(none)'}"[:200]) as done:
        if not config.dmarc_manual_upload_enabled:
            detail = "manual uploads are disabled (DMARC_MANUAL_UPLOAD_ENABLED)"
            raise ApiError(403, "Forbidden", detail, "UPLOAD_DISABLED")
        if file is None:
            raise ApiError(400, "Bad Request", 'send the report as multipart form field "file"', "FILE_REQUIRED")
        data = file.read(config.dmarc_upload_max_bytes + 1)
        if len(data) > config.dmarc_upload_max_bytes:
            limit = f"at most {config.dmarc_upload_max_bytes:,} bytes"
            raise ApiError(413, "Payload Too Large", limit, "FILE_TOO_LARGE")
        try:
            rdns = reverse_dns if config.dmarc_reverse_dns else None
            result = import_bytes(context.pool(), data, file.filename or "upload", geoip(), rdns, "upload")
        except InvalidReport as exc:
            raise ApiError(400, "Bad Request", f"Failed to parse DMARC report: {exc}", "INVALID_REPORT") from None
        done.detail = "created" if result.created else "duplicate"
    if result.created:
        response = jsonify(dmarc.upload_created(result))
        response.status_code = 201
        return response
    return jsonify(dmarc.upload_duplicate(result))


@bp.get("/imap/status")
def imap_status() -> Response:
    config = context.config()
    if not config.dmarc_imap_host:
        raise ApiError(
            404, "Not Found", "DMARC IMAP auto-import is not configured (DMARC_IMAP_HOST)", "IMAP_NOT_CONFIGURED"
        )
    last = sync_store.syncs(context.pool(), 1)
    return jsonify(dmarc_imap.imap_status(config, last[0] if last else None))


@bp.post("/imap/sync")
def imap_sync() -> Response:
    """Run one import now (synchronous), even when the scheduled import is off."""
    config = context.config()
    if not config.dmarc_imap_host:
        return jsonify(dmarc_imap.IMAP_DISABLED)
    with audited("imap_sync", f"folder {config.dmarc_imap_folder}"[:200]) as done:
        row = imap_import.sync(config, context.pool(), geoip(), "manual")
        done.failed = row.status != "success"
        counts = f"{row.reports_created} created, {row.reports_duplicate} duplicate, {row.reports_failed} failed"
        done.detail = f"{row.status}: {row.error_message or counts}"[:500]
    return jsonify(dmarc_imap.sync_row(row))


@bp.get("/imap/history")
def imap_history() -> Response:
    rows = sync_store.syncs(context.pool(), int_arg("limit", 20, 1, 100))
    return jsonify(dmarc_imap.sync_history(rows))


# --- TLS ------------------------------------------------------------------------------------------------------


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
    return jsonify(tls.reports(domain, page, size, days, rows))


@bp.get(f"/domains/{_DOMAIN}/tls-reports/daily")
def tls_daily(domain: str) -> Response:
    domain = _domain(domain)
    page, size = int_arg("page", 1, 1, 10_000), int_arg("page_size", 20, 1, 500)
    return jsonify(tls.daily(domain, page, size, tls_store.tls_daily(context.pool(), _tls_window(domain))))


@bp.get(f"/domains/{_DOMAIN}/tls-reports/<report_date>/details")
def tls_details(domain: str, report_date: str) -> Response:
    """The day's totals over all its reports, and the first `limit` reports (`providers`), each policy
    with its largest failure details (`failure_details_total` counts them all)."""
    domain, day = _domain(domain), _day(report_date)
    limit = int_arg("limit", 20, 1, 100)
    totals = tls_store.tls_daily(context.pool(), Window(day, domain=domain), day)
    rows = tls_store.tls_day_reports(context.pool(), domain, day, limit, tls.DETAILS_SHOWN)
    return jsonify(tls.details(domain, report_date, totals, rows))
