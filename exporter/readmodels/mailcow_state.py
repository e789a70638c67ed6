"""mailcow's live queue, quarantine and status shaped for the API (seed 002) and for Grafana
tables. Pure functions over what the mailcow API returns (`mailcow-api.md` §2)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from exporter.parsers.flags import is_set


def _epoch(value: Any) -> float | None:
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def _iso_epoch(value: Any) -> str | None:
    seconds = _epoch(value)
    if seconds is None:
        return None
    return datetime.fromtimestamp(seconds, UTC).isoformat().replace("+00:00", "Z")


def _age(now: float, value: Any) -> int | None:
    seconds = _epoch(value)
    return None if seconds is None else max(0, int(now - seconds))


def split_recipient(entry: Any) -> tuple[str, str | None]:
    """mailcow writes a queued recipient as "addr" or "addr (defer reason)"."""
    text = str(entry)
    address, sep, reason = text.partition(" (")
    return address, (reason[:-1] if reason.endswith(")") else reason) if sep else None


def queue_item(item: dict[str, Any]) -> dict[str, Any]:
    """Seed 002's queue item: mailcow's own fields, as mailcow sends them."""
    return {
        "queue_name": item.get("queue_name"),
        "queue_id": item.get("queue_id"),
        "arrival_time": item.get("arrival_time"),
        "message_size": item.get("message_size"),
        "forced_expire": bool(item.get("forced_expire", False)),
        "sender": item.get("sender") or "",
        "recipients": [str(r) for r in item.get("recipients") or []],
    }


def queue_rows(items: list[dict[str, Any]], fetched: float) -> list[dict[str, Any]]:
    """One flat row per queued message, oldest first, with each recipient's defer reason."""
    rows = []
    for item in items:
        recipients = [split_recipient(r) for r in item.get("recipients") or []]
        arrival = _epoch(item.get("arrival_time"))
        rows.append(
            {
                "queue_id": item.get("queue_id"),
                "queue_name": item.get("queue_name"),
                "arrival": int(arrival * 1000) if arrival is not None else None,
                "age_seconds": _age(fetched, arrival),
                "size_bytes": item.get("message_size"),
                "sender": item.get("sender") or "<>",
                "recipients": ", ".join(address for address, _ in recipients),
                "reasons": "; ".join(f"{address}: {reason}" for address, reason in recipients if reason),
                "held": item.get("queue_name") == "hold",
                "fetched_at": int(fetched * 1000),
            }
        )
    rows.sort(key=lambda r: (r["arrival"] is None, r["arrival"] or 0))
    return rows


def quarantine_reason(item: dict[str, Any]) -> str:
    if item.get("virus_flag"):
        return "Virus found"
    score = item.get("score")
    return f"Spam score {score} (rspamd action: {item.get('action') or 'unknown'})"


def quarantine_item(item: dict[str, Any]) -> dict[str, Any]:
    """Seed 002's quarantine item, plus mailcow's score, action and queue id."""
    return {
        "id": item.get("id"),
        "subject": item.get("subject"),
        "sender": item.get("sender"),
        "recipients": [item["rcpt"]] if item.get("rcpt") else [],
        "created": _iso_epoch(item.get("created")),
        "reason": quarantine_reason(item),
        "qid": item.get("qid"),
        "score": item.get("score"),
        "action": item.get("action"),
        "virus": bool(item.get("virus_flag")),
        "notified": bool(item.get("notified")),
    }


def quarantine_rows(items: list[dict[str, Any]], fetched: float) -> list[dict[str, Any]]:
    """One flat row per quarantined message, newest first."""
    rows = []
    for item in items:
        created = _epoch(item.get("created"))
        score = _epoch(item.get("score"))
        rows.append(
            {
                "id": item.get("id"),
                "qid": item.get("qid"),
                "created": int(created * 1000) if created is not None else None,
                "age_seconds": _age(fetched, created),
                "score": round(score, 2) if score is not None else None,
                "action": item.get("action"),
                "recipient": item.get("rcpt"),
                "sender": item.get("sender"),
                "subject": item.get("subject"),
                "virus": bool(item.get("virus_flag")),
                "fetched_at": int(fetched * 1000),
            }
        )
    rows.sort(key=lambda r: -(r["created"] or 0))
    return rows


def containers(raw: dict[str, Any]) -> dict[str, Any]:
    """Seed 002's containers: each compose service with state and start time, plus a summary."""
    out = {}
    for key, value in (raw or {}).items():
        if not isinstance(value, dict):
            continue
        out[key] = {
            "name": key.removesuffix("-mailcow"),
            "state": value.get("state"),
            "started_at": value.get("started_at"),
            "image": value.get("image"),
        }
    running = sum(1 for c in out.values() if c["state"] == "running")
    return {"containers": out, "summary": {"running": running, "stopped": len(out) - running, "total": len(out)}}


def storage(raw: dict[str, Any]) -> dict[str, Any]:
    return {key: str((raw or {}).get(key, "")) for key in ("disk", "used", "total", "used_percent")}


def _active(rows: list[dict[str, Any]]) -> int:
    return sum(1 for r in rows if is_set(r.get("active", r.get("active_int", 1))))


def mailcow_info(accounts: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    return {
        name: {"total": len(accounts.get(name) or []), "active": _active(accounts.get(name) or [])}
        for name in ("domains", "mailboxes", "aliases")
    }
