"""Log lines of Postfix, Rspamd and Netfilter: the REST shapes (seed 002 field names), their CSV
columns, and the Grafana log queries (timestamp, body, level first: Infinity's logs format)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from psycopg_pool import ConnectionPool

from exporter.readmodels.args import Args
from exporter.readmodels.format import bracketed, iso, ms, number
from exporter.store import logs as log_store

# Recipient status back to Postfix's word, as the log endpoints report it.
_POSTFIX_WORD = {"delivered": "sent"}
NETFILTER_ACTION = {"warning": "warning", "attempts": "warning", "ban": "banned", "unban": "unbanned"}
REJECT_KINDS = ("noqueue_reject", "milter_reject", "rcpt_reject")


def postfix_line(row: Mapping[str, Any]) -> dict[str, Any]:
    status = row["status"]
    if row.get("kind") in REJECT_KINDS:
        status = "rejected"
    return {
        "id": row["id"],
        "time": iso(row["logged_at"]),
        "program": row["program"],
        "priority": row["priority"],
        "message": row["message"],
        "queue_id": row["queue_id"],
        "message_id": bracketed(row.get("message_id")),
        "sender": row.get("line_sender") or row.get("sender"),
        "recipient": row["recipient"],
        "status": _POSTFIX_WORD.get(status, status) if status else None,
        "relay": row["relay"],
        "delay": row["delay"],
        "dsn": row["dsn"],
        "kind": row.get("kind"),
        "correlation_key": row.get("correlation_key"),
    }


def rspamd_summary(row: Mapping[str, Any], direction: str | None = None) -> dict[str, Any]:
    """Rspamd's verdict on one message, as the message details and the queue id lookup show it."""
    return {
        "time": iso(row["logged_at"]),
        "score": row["score"],
        "required_score": row["required_score"],
        "action": row["action"],
        "symbols": row["symbols"],
        "is_spam": row["is_spam"],
        "direction": direction or row.get("direction"),
        "subject": row["subject"],
        "ip": row["ip"],
        "user": row["user"],
        "has_auth": row["user"] is not None,
        "size": row["size"],
    }


def rspamd_row(row: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "id": row["id"],
        "time": iso(row["logged_at"]),
        "message_id": bracketed(row["message_id"]),
        "subject": row["subject"],
        "size": row["size"],
        "sender_smtp": row["sender_smtp"],
        "recipients_smtp": row["rcpt_smtp"],
        "score": row["score"],
        "required_score": row["required_score"],
        "action": row["action"],
        "direction": row["direction"],
        "ip": row["ip"],
        "is_spam": row["is_spam"],
        "has_auth": row["user"] is not None,
        "user": row["user"],
        "symbols": row["symbols"],
        "correlation_key": row["correlation_key"],
    }


def netfilter_row(row: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "id": row["id"],
        "time": iso(row["logged_at"]),
        "priority": row["priority"],
        "message": row["message"],
        "ip": row["ip"],
        "rule_id": row["rule_id"],
        "attempts_left": row["attempts_left"],
        "username": row["username"],
        "auth_method": row["auth_method"],
        "action": NETFILTER_ACTION.get(row["kind"], "info"),
        "ban_minutes": row["ban_minutes"],
    }


def by_queue(queue_id: str, found: Mapping[str, Any]) -> dict[str, Any]:
    """`/api/logs/postfix/by-queue/{queue_id}`: the queue id's lines, its message and rspamd verdict."""
    message = found["message"]
    return {
        "queue_id": queue_id,
        "correlation_key": message["correlation_key"] if message else None,
        "rspamd": rspamd_summary(found["rspamd"], message["direction"]) if found["rspamd"] else None,
        "logs": [postfix_line(r) for r in found["rows"]],
    }


# --- CSV exports: (header, key of the row's shape) per column ------------------------------------

Columns = tuple[tuple[str, str], ...]

POSTFIX_CSV: Columns = (
    ("Time", "time"),
    ("Program", "program"),
    ("Priority", "priority"),
    ("Queue ID", "queue_id"),
    ("Message ID", "message_id"),
    ("Sender", "sender"),
    ("Recipient", "recipient"),
    ("Status", "status"),
    ("Relay", "relay"),
    ("Delay", "delay"),
    ("DSN", "dsn"),
    ("Message", "message"),
)
RSPAMD_CSV: Columns = (
    ("Time", "time"),
    ("Message ID", "message_id"),
    ("Subject", "subject"),
    ("Sender", "sender_smtp"),
    ("Recipients", "recipients"),
    ("Score", "score"),
    ("Required Score", "required_score"),
    ("Action", "action"),
    ("Direction", "direction"),
    ("Is Spam", "is_spam"),
    ("Has Auth", "has_auth"),
    ("User", "user"),
    ("IP", "ip"),
    ("Size", "size"),
    ("Top Symbols", "top_symbols"),
)
NETFILTER_CSV: Columns = (
    ("Time", "time"),
    ("IP", "ip"),
    ("Username", "username"),
    ("Auth Method", "auth_method"),
    ("Action", "action"),
    ("Attempts Left", "attempts_left"),
    ("Rule ID", "rule_id"),
    ("Priority", "priority"),
    ("Message", "message"),
)


def rspamd_export(row: Mapping[str, Any]) -> dict[str, Any]:
    """An Rspamd result for the CSV export: the raw Message-ID, recipients joined, the five symbols
    that weighed most."""
    top = sorted(row["symbols"].items(), key=lambda kv: -abs(float((kv[1] or {}).get("score") or 0)))[:5]
    return {
        **row,
        "time": iso(row["logged_at"]),
        "recipients": ", ".join(row["rcpt_smtp"]),
        "has_auth": row["user"] is not None,
        "top_symbols": ", ".join(k for k, _ in top),
    }


# --- Grafana log queries ---------------------------------------------------------------------------

_LEVELS = {"warning": "warning", "warn": "warning", "err": "error", "error": "error", "crit": "critical"}


def _level(priority: str | None, default: str = "info") -> str:
    return _LEVELS.get((priority or "").lower(), default)


def _log_filters(args: Args) -> dict[str, Any]:
    return {"start_date": args.start, "end_date": args.end, "search": args.search}


def postfix_log_row(row: Mapping[str, Any], labels: tuple[str, ...]) -> dict[str, Any]:
    """A Postfix line as a log row; rejects show as warnings whatever their syslog priority."""
    return {
        "timestamp": ms(row["logged_at"]),
        "body": row["message"],
        "level": "warning" if row["kind"] in REJECT_KINDS else _level(row["priority"]),
        **{label: row[label] for label in labels},
    }


def postfix_logs(pool: ConnectionPool, args: Args) -> list[dict]:
    return [
        postfix_log_row(r, ("program", "queue_id", "kind", "status", "correlation_key"))
        for r in log_store.export_postfix(pool, _log_filters(args), args.limit)
    ]


def rspamd_logs(pool: ConnectionPool, args: Args, local: list[str]) -> list[dict]:
    return [
        {
            "timestamp": ms(r["logged_at"]),
            "body": f"{r['action']} score={r['score']:.2f} from=<{r['sender_smtp'] or ''}> "
            f"to=<{','.join(r['rcpt_smtp'] or [])}> ip={r['ip'] or ''} subject={r['subject'] or ''}",
            "level": "error" if r["action"] == "reject" else "warning" if r["is_spam"] else "info",
            "action": r["action"],
            "score": number(r["score"]),
            "direction": r["direction"],
            "message_id": r["message_id"],
            "correlation_key": r["correlation_key"],
        }
        for r in log_store.export_rspamd(pool, _log_filters(args), local, args.limit)
    ]


def netfilter_logs(pool: ConnectionPool, args: Args) -> list[dict]:
    return [
        {
            "timestamp": ms(r["logged_at"]),
            "body": r["message"],
            "level": "warning" if r["kind"] in ("warning", "ban") else _level(r["priority"]),
            "kind": r["kind"],
            "ip": r["ip"],
            "username": r["username"],
        }
        for r in log_store.export_netfilter(pool, _log_filters(args), args.limit)
    ]
