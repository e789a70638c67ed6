"""Mail sent and received per mailbox (and its aliases) with quota: the REST shapes of
`/api/mailbox-stats` (seed 002) and the Grafana mailbox tables. Named like `store/mailbox_stats`
and `web/mailbox_stats`."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from psycopg_pool import ConnectionPool

from exporter.readmodels.args import Args
from exporter.readmodels.format import iso
from exporter.store import mailbox_stats as store

_COUNTS = ("sent_total", "sent_delivered", "sent_bounced", "sent_deferred", "sent_rejected", "sent_failed")


def _rate(failed: int, total: int) -> float:
    return round(100.0 * failed / total, 1) if total else 0.0


def _size(value: int) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if value < 1024 or unit == "TB":
            return f"{value:.0f} {unit}" if unit in ("B", "KB", "MB") else f"{value:.1f} {unit}"
        value /= 1024
    return ""


def _window(date_range: str, start: datetime, end: datetime) -> dict[str, Any]:
    return {"date_range": date_range, "start_date": iso(start), "end_date": iso(end)}


def summary(row: store.Summary, date_range: str, start: datetime, end: datetime) -> dict[str, Any]:
    return {
        "total_mailboxes": row.total_mailboxes,
        "active_mailboxes": row.active_mailboxes,
        "inactive_mailboxes": row.total_mailboxes - row.active_mailboxes,
        "total_sent": row.total_sent,
        "total_received": row.total_received,
        "sent_failed": row.sent_failed,
        "failure_rate": _rate(row.sent_failed, row.total_sent),
        **_window(date_range, start, end),
    }


def _counts(row: dict[str, Any]) -> dict[str, Any]:
    out = {k: row.get(k) or 0 for k in _COUNTS}
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


def page(total: int, rows: list[dict[str, Any]], f: store.Filters, date_range: str) -> dict[str, Any]:
    """One page of mailboxes with their counts, and how many pages there are."""
    return {
        "total": total,
        "page": f.page,
        "page_size": f.page_size,
        "total_pages": (total + f.page_size - 1) // f.page_size,
        **_window(date_range, f.start, f.end),
        "mailboxes": [_mailbox(r) for r in rows],
    }


def domains(rows: list[store.DomainMailboxes]) -> dict[str, Any]:
    """The domains that have mailboxes, with how many, for the page's filter."""
    return {"domains": [{"domain": r.domain, "mailbox_count": r.mailbox_count} for r in rows]}


# --- Grafana ------------------------------------------------------------------------------------------------


def mailbox_summary(pool: ConnectionPool, args: Args) -> list[dict]:
    row = store.summary(pool, args.start, args.end)
    return [
        {
            "total_mailboxes": row.total_mailboxes,
            "active_mailboxes": row.active_mailboxes,
            "total_sent": row.total_sent,
            "total_received": row.total_received,
            "sent_failed": row.sent_failed,
            "failure_rate": _rate(row.sent_failed, row.total_sent),
        }
    ]


def mailbox_activity(pool: ConnectionPool, args: Args) -> list[dict]:
    """Mailboxes with mail sent and received in the range (theirs and their aliases'), quota;
    option sort_by: sent_total (default), received_total, failure_rate, quota_used, username."""
    sort = args.options.get("sort_by", "sent_total")
    if sort not in store.SORTS:
        sort = "sent_total"
    filters = store.Filters(
        start=args.start,
        end=args.end,
        domain=args.domain.lower() if args.domain else None,
        active_only=False,
        sort_by=sort,
        sort_order="asc" if sort == "username" else "desc",
        page_size=args.limit,
    )
    _, rows = store.page(pool, filters)
    return [
        {
            "mailbox": r["username"],
            "name": r["name"],
            "sent": r["sent_total"] or 0,
            "received": r["received_total"] or 0,
            "failed": r["sent_failed"] or 0,
            "failure_rate": _rate(r["sent_failed"] or 0, r["sent_total"]),
            "combined_sent": r["combined_sent"],
            "combined_received": r["combined_received"],
            "aliases": len(r["aliases"]),
            "quota_used": r["quota_used"],
            "quota_used_pct": round(100.0 * r["quota_used"] / r["quota"], 1) if r["quota"] else None,
            "messages": r["messages"],
        }
        for r in rows
    ]
