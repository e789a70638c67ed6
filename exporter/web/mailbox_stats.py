"""`/api/mailbox-stats/{summary,all,domains}` with the shapes of seed 002."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from flask import Blueprint, Response, jsonify
from marshmallow import fields, validate

from exporter.http import context
from exporter.http.params import SEARCH, Params, bounded_int, parse
from exporter.readmodels.mail import iso
from exporter.store import mailbox_stats as store

bp = Blueprint("mailbox_stats", __name__, url_prefix="/api/mailbox-stats")
RANGES = {"today": 0, "7days": 7, "30days": 30, "90days": 90}


class RangeParams(Params):
    date_range = fields.String(load_default="30days", validate=validate.OneOf(tuple(RANGES)))


class StatsParams(RangeParams):
    domain = fields.String(load_default=None)
    active_only = fields.Boolean(load_default=True)
    hide_zero = fields.Boolean(load_default=False)
    search = fields.String(load_default=None, validate=SEARCH)
    sort_by = fields.String(load_default="sent_total", validate=validate.OneOf(tuple(store.SORTS)))
    sort_order = fields.String(load_default="desc", validate=validate.OneOf(("asc", "desc")))
    page = bounded_int(1, 1, 100_000)
    page_size = bounded_int(50, 10, 100)


def _window(name: str) -> tuple[datetime, datetime]:
    now = datetime.now(UTC)
    if name == "today":
        return now.replace(hour=0, minute=0, second=0, microsecond=0), now
    return now - timedelta(days=RANGES[name]), now


def _rate(failed: int, total: int) -> float:
    return round(100.0 * failed / total, 1) if total else 0.0


def _size(value: int) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if value < 1024 or unit == "TB":
            return f"{value:.0f} {unit}" if unit in ("B", "KB", "MB") else f"{value:.1f} {unit}"
        value /= 1024
    return ""


@bp.get("/summary")
def summary() -> Response:
    args = parse(RangeParams())
    start, end = _window(args["date_range"])
    row = store.summary(context.pool(), start, end)
    return jsonify(
        {
            "total_mailboxes": row["total_mailboxes"],
            "active_mailboxes": row["active_mailboxes"],
            "inactive_mailboxes": row["total_mailboxes"] - row["active_mailboxes"],
            "total_sent": row["total_sent"],
            "total_received": row["total_received"],
            "sent_failed": row["sent_failed"],
            "failure_rate": _rate(row["sent_failed"], row["total_sent"]),
            "date_range": args["date_range"],
            "start_date": iso(start),
            "end_date": iso(end),
        }
    )


def _counts(row: dict[str, Any]) -> dict[str, Any]:
    keys = ("sent_total", "sent_delivered", "sent_bounced", "sent_deferred", "sent_rejected", "sent_failed")
    out = {k: row.get(k) or 0 for k in keys}
    out["received_total"] = row.get("received_total") or 0
    out["failure_rate"] = _rate(out["sent_failed"], out["sent_total"])
    return out


def _mailbox(row: dict[str, Any]) -> dict[str, Any]:
    quota, used = row["quota"], row["quota_used"]
    aliases = [{**a, "failure_rate": _rate(a["sent_failed"], a["sent_total"])} for a in row["aliases"]]
    sent, received, failed = row["combined_sent"], row["combined_received"], row["combined_failed"]
    return {
        "username": row["username"],
        "domain": row["domain"],
        "name": row["name"],
        "active": row["active"],
        "quota": quota,
        "quota_formatted": _size(quota) if quota else "unlimited",
        "quota_used": used,
        "quota_used_formatted": _size(used),
        "percent_in_use": round(100.0 * used / quota, 1) if quota else None,
        "messages_in_mailbox": row["messages"],
        "last_imap_login": iso(row["last_imap_login"]),
        "last_pop3_login": iso(row["last_pop3_login"]),
        "last_smtp_login": iso(row["last_smtp_login"]),
        "rl_value": row["rl_value"],
        "rl_frame": row["rl_frame"],
        "attributes": row["attributes"],
        "mailbox_counts": _counts(row),
        "aliases": aliases,
        "alias_count": len(aliases),
        "combined_sent": sent,
        "combined_received": received,
        "combined_total": sent + received,
        "combined_failed": failed,
        "combined_failure_rate": _rate(failed, sent),
        "created": iso(row["created"]),
        "modified": iso(row["modified"]),
    }


@bp.get("/all")
def all_mailboxes() -> Response:
    args = parse(StatsParams())
    start, end = _window(args["date_range"])
    filters = store.Filters(
        start=start,
        end=end,
        domain=args["domain"].lower() if args["domain"] else None,
        active_only=args["active_only"],
        hide_zero=args["hide_zero"],
        search=args["search"],
        sort_by=args["sort_by"],
        sort_order=args["sort_order"],
        page=args["page"],
        page_size=args["page_size"],
    )
    total, rows = store.page(context.pool(), filters)
    return jsonify(
        {
            "total": total,
            "page": args["page"],
            "page_size": args["page_size"],
            "total_pages": (total + args["page_size"] - 1) // args["page_size"],
            "date_range": args["date_range"],
            "start_date": iso(start),
            "end_date": iso(end),
            "mailboxes": [_mailbox(r) for r in rows],
        }
    )


@bp.get("/domains")
def domains() -> Response:
    return jsonify({"domains": store.domains(context.pool())})
