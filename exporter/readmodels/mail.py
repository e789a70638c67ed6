"""Shapes store rows into the API's JSON (seed 002 field names). Pure functions."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

# Recipient status back to Postfix's word, as the log endpoints report it.
_POSTFIX_WORD = {"delivered": "sent"}
NETFILTER_ACTION = {"warning": "warning", "attempts": "warning", "ban": "banned", "unban": "unbanned"}


def iso(value: datetime | None) -> str | None:
    """RFC 3339 UTC with a Z suffix."""
    if value is None:
        return None
    return value.isoformat().replace("+00:00", "Z")


def _bracketed(message_id: str | None) -> str | None:
    return f"<{message_id}>" if message_id else None


def message_summary(row: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "correlation_key": row["correlation_key"],
        "message_id": _bracketed(row["message_id"]),
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


def postfix_line(row: Mapping[str, Any]) -> dict[str, Any]:
    status = row["status"]
    if row.get("kind") in ("noqueue_reject", "milter_reject", "rcpt_reject"):
        status = "rejected"
    return {
        "id": row["id"],
        "time": iso(row["logged_at"]),
        "program": row["program"],
        "priority": row["priority"],
        "message": row["message"],
        "queue_id": row["queue_id"],
        "message_id": _bracketed(row.get("message_id")),
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
        "message_id": _bracketed(row["message_id"]),
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


def message_details(row: Mapping[str, Any]) -> dict[str, Any]:
    """The details view: per-recipient status, rspamd verdict, every Postfix line, related mail."""
    summary = message_summary(row)
    lines = [postfix_line(line) for line in row["postfix_rows"]]
    by_recipient: dict[str, list[dict[str, Any]]] = {}
    for line in lines:
        by_recipient.setdefault(line["recipient"] or "_system", []).append(line)
    recipients = [
        {
            "recipient": r["recipient"],
            "orig_to": r["orig_to"],
            "status": r["status"],
            "dsn": r["dsn"],
            "relay": r["relay"],
            "delay": r["delay"],
            "delays": r["delays"],
            "reply": r["reply"],
            "last_update": iso(r["last_at"]),
            "attempts": r["attempts"],
        }
        for r in row["recipient_rows"]
    ]
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
