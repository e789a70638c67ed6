"""mailcow's live queue, quarantine and status shaped for the API (seed 002) and for Grafana
tables, from what the mailcow API returns (`mailcow-api.md` §2), read live (cached a few seconds)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from exporter.mailcow.errors import MailcowError
from exporter.mailcow.live import LiveMailcow
from exporter.parsers.flags import is_set
from exporter.readmodels.args import Args
from exporter.readmodels.format import iso


def _epoch(value: Any) -> float | None:
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def _iso_epoch(value: Any) -> str | None:
    seconds = _epoch(value)
    return None if seconds is None else iso(datetime.fromtimestamp(seconds, UTC))


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


# --- REST: /api/queue, /api/quarantine, /api/status, /api/rw-status -------------------------------------


def queue_list(items: list[dict[str, Any]], queue_name: str | None, term: str) -> dict[str, Any]:
    """The queue, of one queue name if given, with `term` (lower case) in its id, sender or recipients."""
    data = [queue_item(i) for i in items]
    if queue_name:
        data = [i for i in data if i["queue_name"] == queue_name]
    if term:
        data = [i for i in data if term in " ".join([i["queue_id"] or "", i["sender"], *i["recipients"]]).lower()]
    return {"total": len(data), "data": data}


def quarantine_list(items: list[dict[str, Any]], term: str) -> dict[str, Any]:
    """The quarantine newest first, with `term` (lower case) in its sender, subject or recipients."""
    data = sorted((quarantine_item(i) for i in items), key=lambda i: i["created"] or "", reverse=True)
    if term:
        data = [i for i in data if term in " ".join([i["sender"] or "", i["subject"] or "", *i["recipients"]]).lower()]
    return {"total": len(data), "data": data}


def version(current: Any, fetched: float) -> dict[str, Any]:
    """mailcow's version; mailcow does not say whether a newer one exists, so those stay null."""
    return {
        "current_version": current,
        "latest_version": None,
        "update_available": None,
        "changelog": None,
        "last_checked": iso(datetime.fromtimestamp(int(fetched), UTC)),
    }


def connection(probe: Callable[[], object]) -> dict[str, Any]:
    """Whether mailcow answers `probe` right now, and if not, why."""
    body: dict = {"connected": True, "timestamp": iso(datetime.now(UTC).replace(microsecond=0))}
    try:
        probe()
    except MailcowError as exc:
        body.update(connected=False, error=str(exc), code=exc.code)
    return body


def summary(accounts: dict[str, list[dict[str, Any]]], vmail: dict[str, Any], raw: dict[str, Any]) -> dict[str, Any]:
    """Containers running, storage used and accounts, from the accounts, vmail and containers reads."""
    info = mailcow_info(accounts)
    used = storage(vmail)
    return {
        "containers": containers(raw)["summary"],
        "storage": {k: used[k] for k in ("used_percent", "used", "total")},
        "system": {name: info[name]["total"] for name in ("domains", "mailboxes", "aliases")},
    }


def rw_status(configured: bool) -> dict[str, Any]:
    """Whether actions are possible: a read-write key is configured (MAILCOW_API_KEY_RW)."""
    return {
        "configured": configured,
        "read_only": not configured,
        "actions_enabled": configured,
        "detail": "queue and quarantine actions are enabled"
        if configured
        else "read-only: set MAILCOW_API_KEY_RW to a read-write mailcow API key to enable actions",
    }


def confirmation_table(target: str, items: list[dict[str, Any]], fetched: float) -> tuple[list[str], list[list]]:
    """Headers and rows of the queued or quarantined items an action confirmation page lists."""
    if target == "queue":
        headers = ["Queue id", "Queue", "Age (s)", "Size", "Sender", "Recipients", "Defer reasons"]
        keys = ("queue_id", "queue_name", "age_seconds", "size_bytes", "sender", "recipients", "reasons")
        return headers, [[r[k] for k in keys] for r in queue_rows(items, fetched)]
    headers = ["Id", "Score", "rspamd action", "Recipient", "Sender", "Subject", "Age (s)"]
    keys = ("id", "score", "action", "recipient", "sender", "subject", "age_seconds")
    return headers, [[r[k] for k in keys] for r in quarantine_rows(items, fetched)]


# --- Grafana ------------------------------------------------------------------------------------------------

# empty columns that host Grafana's action buttons (browser `fetch` and server-side `infinity` actions)
_ACTION_CELLS = {"actions": "", "server_actions": ""}


def _table(rows: list[dict[str, Any]], args: Args, searched: tuple[str, ...]) -> list[dict]:
    """Rows with the action cells, those with the search term in the `searched` columns, at most `limit`."""
    rows = [{**row, **_ACTION_CELLS} for row in rows]
    if args.search:
        term = args.search.lower()
        rows = [r for r in rows if term in " ".join(f"{r[key]}" for key in searched).lower()]
    return rows[: args.limit]


def queue(live: LiveMailcow, args: Args) -> list[dict]:
    """mailcow's Postfix queue now (cached a few seconds), oldest first, defer reasons split out."""
    items, fetched = live.queue()
    return _table(queue_rows(items, fetched), args, ("queue_id", "sender", "recipients"))


def quarantine(live: LiveMailcow, args: Args) -> list[dict]:
    """mailcow's quarantine now (cached a few seconds), newest first."""
    items, fetched = live.quarantine()
    return _table(quarantine_rows(items, fetched), args, ("sender", "recipient", "subject"))
