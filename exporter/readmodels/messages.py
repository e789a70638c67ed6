"""Messages: the REST shapes (list and details; seed 002 field names), their CSV columns, and the
Grafana queries over mail flow, delivery delay, top lists and one message's recipients, symbols and
lines."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

from psycopg_pool import ConnectionPool

from exporter.readmodels.args import Args
from exporter.readmodels.format import bracketed, fill, iso, ms, number
from exporter.readmodels.logs import Columns, netfilter_row, postfix_line, postfix_log_row, rspamd_summary
from exporter.store import grafana as store
from exporter.store import messages as message_store


def message_summary(row: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "correlation_key": row["correlation_key"],
        "message_id": bracketed(row["message_id"]),
        "queue_id": row["queue_id"],
        "sender": row["sender"],
        "recipient": row["first_recipient"],
        "recipient_count": row["recipient_count"],
        "subject": row["subject"],
        "direction": row["direction"],
        "final_status": row["final_status"],
        "is_complete": row["is_complete"],
        "first_seen": iso(row["first_seen"]),
        "last_seen": iso(row["last_seen"]),
        "spam_score": row["spam_score"],
        "is_spam": row["is_spam"],
        "rspamd_action": row["rspamd_action"],
        "quarantined": row["quarantined"],
        "reject_class": row["reject_class"],
        "user": row["sasl_username"],
        "ip": row["client_ip"],
    }


def _recipient(row: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "recipient": row["recipient"],
        "orig_to": row["orig_to"],
        "status": row["status"],
        "dsn": row["dsn"],
        "relay": row["relay"],
        "delay": row["delay"],
        "delays": row["delays"],
        "reply": row["reply"],
        "last_update": iso(row["last_at"]),
        "attempts": row["attempts"],
        "delivery": _delivery(row),
    }


def _delivery(row: Mapping[str, Any]) -> dict[str, Any] | None:
    """What the mailbox did (Dovecot's line): stored into `mailbox`, discarded, redirected (detail: the
    target), rejected, failed (detail: the reason); None when no Dovecot line is correlated."""
    if row["delivery_outcome"] is None:
        return None
    return {
        "outcome": row["delivery_outcome"],
        "mailbox": row["delivery_mailbox"],
        "detail": row["delivery_detail"],
        "at": iso(row["delivery_at"]),
    }


def message_details(row: Mapping[str, Any]) -> dict[str, Any]:
    """The details view: per-recipient status, rspamd verdict, every Postfix line, related mail."""
    summary = message_summary(row)
    lines = [postfix_line(line) for line in row["postfix_rows"]]
    by_recipient: dict[str, list[dict[str, Any]]] = {}
    for line in lines:
        by_recipient.setdefault(line["recipient"] or "_system", []).append(line)
    recipients = [_recipient(r) for r in row["recipient_rows"]]
    related = {r["queue_id"]: r for r in row["related"]}
    return {
        **summary,
        "recipients": [r["recipient"] for r in recipients],
        "recipient_count": len(recipients),
        "recipient_details": recipients,
        "rspamd": rspamd_summary(row["rspamd_row"], summary["direction"]) if row["rspamd_row"] else None,
        "postfix": lines,
        "postfix_by_recipient": by_recipient,
        "netfilter": [netfilter_row(n) for n in row["netfilter_rows"]],
        "size": row["size"],
        "service": row["service"],
        "sasl_method": row["sasl_method"],
        "helo": row["helo"],
        "reject_code": row["reject_code"],
        "reject_reason": row["reject_reason"],
        "held": row["held"],
        "bounce_notification": _related(related.get(row["ndn_queue_id"])) if row["ndn_queue_id"] else None,
        "bounce_of": _related(related.get(row["origin_queue_id"])) if row["origin_queue_id"] else None,
    }


def _related(row: Mapping[str, Any] | None) -> dict[str, Any] | None:
    if row is None:
        return None
    return {"queue_id": row["queue_id"], "correlation_key": row["correlation_key"], "final_status": row["final_status"]}


MESSAGES_CSV: Columns = (
    ("Time", "first_seen"),
    ("Sender", "sender"),
    ("Recipient", "recipient"),
    ("Subject", "subject"),
    ("Direction", "direction"),
    ("Status", "final_status"),
    ("Queue ID", "queue_id"),
    ("Message ID", "message_id"),
    ("Spam Score", "spam_score"),
    ("Is Spam", "is_spam"),
    ("User", "user"),
    ("IP", "ip"),
    ("Is Complete", "is_complete"),
)


# --- Grafana: mail flow ------------------------------------------------------------------------------


def message_flow(pool: ConnectionPool, args: Args) -> list[dict]:
    return fill(store.status_series(pool, args.scope, args.step), args, (*store.STATUSES, "spam", "total"))


def direction_flow(pool: ConnectionPool, args: Args) -> list[dict]:
    return fill(store.direction_series(pool, args.scope, args.step), args, store.DIRECTIONS)


def delivery_delay(pool: ConnectionPool, args: Args) -> list[dict]:
    """p50/p90/p99 from the hourly histogram when buckets are whole hours and only direction filters;
    exact from the recipients otherwise (short ranges, domain or search filters)."""
    if args.step % 3600 or args.domain or args.search:
        return fill(store.delay_series(pool, args.scope, args.step), args, ("p50", "p90", "p99"), zero=None)
    histograms: dict[datetime, list[tuple[float, int]]] = {}
    for row in store.delay_histogram(pool, args.scope, args.step):
        histograms.setdefault(row["time"], []).append((row["le"], row["count"]))
    rows = [
        {"time": t, **{f"p{int(q * 100)}": quantile(q, buckets) for q in (0.5, 0.9, 0.99)}}
        for t, buckets in histograms.items()
    ]
    return fill(rows, args, ("p50", "p90", "p99"), zero=None)


def quantile(q: float, buckets: list[tuple[float, int]]) -> float | None:
    """The q-quantile of a histogram (upper bound, count) by linear interpolation within the bucket,
    as Prometheus' histogram_quantile does; the open last bucket answers its lower bound."""
    total = sum(count for _, count in buckets)
    if not total:
        return None
    rank, seen, lower = q * total, 0, 0.0
    for upper, count in sorted(buckets):
        if seen + count >= rank:
            if math.isinf(upper):
                return lower
            return lower + (upper - lower) * ((rank - seen) / count if count else 0)
        seen += count
        lower = upper
    return lower


def summary(pool: ConnectionPool, args: Args) -> list[dict]:
    row = store.summary(pool, args.scope)
    finished = sum(row[s] for s in ("delivered", "bounced", "expired", "rejected"))
    return [
        {
            **row,
            "delivery_success_ratio": round(row["delivered"] / finished, 4) if finished else None,
            "spam_ratio": round(row["spam"] / row["total"], 4) if row["total"] else None,
        }
    ]


# The Grafana messages query's own options (the REST filters of the same names).
MESSAGE_OPTIONS = ("sender", "recipient", "status", "ip", "user", "delivery", "mailbox")


def messages(pool: ConnectionPool, args: Args) -> list[dict]:
    """Newest first, with what the mailbox did (`delivery`) and the folders it stored into (`mailbox`)."""
    filters = {
        "start_date": args.start,
        "end_date": args.end,
        "direction": args.direction,
        "domain": args.domain,
        "search": args.search,
        **{k: v for k, v in args.options.items() if k in MESSAGE_OPTIONS and v},
    }
    found = list(message_store.export_messages(pool, filters, args.limit))
    mailbox = message_store.deliveries_of(pool, [m["id"] for m in found])
    return [
        {
            "time": ms(m["first_seen"]),
            "sender": m["sender"],
            "recipient": m["first_recipient"],
            "recipient_count": m["recipient_count"],
            "subject": m["subject"],
            "status": m["final_status"],
            "direction": m["direction"],
            "delivery": mailbox.get(m["id"], {}).get("delivery"),
            "mailbox": mailbox.get(m["id"], {}).get("mailbox"),
            "spam_score": number(m["spam_score"]),
            "rspamd_action": m["rspamd_action"],
            "client_ip": m["client_ip"],
            "user": m["sasl_username"],
            "queue_id": m["queue_id"],
            "correlation_key": m["correlation_key"],
            "details_url": f"/api/message/{m['correlation_key']}/details",
        }
        for m in found
    ]


def top(what: str) -> Callable[[ConnectionPool, Args], list[dict]]:
    """The query of one top list (senders, recipients, their domains, users, reject reasons)."""

    def run(pool: ConnectionPool, args: Args) -> list[dict]:
        return store.top_messages(pool, args.scope, what, args.limit)

    return run


def reasons(status: str) -> Callable[[ConnectionPool, Args], list[dict]]:
    """The query of the most frequent replies of delivery attempts with this status."""

    def run(pool: ConnectionPool, args: Args) -> list[dict]:
        return store.top_delivery_reasons(pool, args.start, args.end, status, args.limit)

    return run


# --- Grafana: one message (the details dashboard; option `key` = correlation key) --------------------


def _message(pool: ConnectionPool, args: Args) -> dict[str, Any] | None:
    key = args.options.get("key")
    return message_store.message_by_key(pool, key) if key else None


def message_recipients(pool: ConnectionPool, args: Args) -> list[dict]:
    found = _message(pool, args)
    return [
        {
            "last_update": ms(r["last_at"]),
            "recipient": r["recipient"],
            "orig_to": r["orig_to"],
            "status": r["status"],
            "dsn": r["dsn"],
            "relay": r["relay"],
            "delay": number(r["delay"]),
            "attempts": r["attempts"],
            "reply": r["reply"],
            "delivery": r["delivery_outcome"],
            "mailbox": r["delivery_mailbox"],
            "delivery_detail": r["delivery_detail"],
        }
        for r in (found["recipient_rows"] if found else [])
    ]


def message_symbols(pool: ConnectionPool, args: Args) -> list[dict]:
    found = _message(pool, args)
    row = found["rspamd_row"] if found else None
    symbols = row["symbols"] if row and isinstance(row["symbols"], dict) else {}
    out = [
        {
            "symbol": name,
            "score": number(value.get("score") if isinstance(value, dict) else None),
            "description": value.get("description") if isinstance(value, dict) else None,
            "options": ", ".join(map(str, value.get("options") or [])) if isinstance(value, dict) else None,
        }
        for name, value in symbols.items()
    ]
    return sorted(out, key=lambda r: -(r["score"] or 0))


def message_lines(pool: ConnectionPool, args: Args) -> list[dict]:
    found = _message(pool, args)
    return [
        postfix_log_row(r, ("program", "kind", "recipient", "status")) for r in (found["postfix_rows"] if found else [])
    ]
