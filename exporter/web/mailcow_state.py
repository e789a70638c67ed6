"""Live mailcow state with the shapes of seed 002: queue, quarantine, status, rw-status.

Answers come from mailcow (cached a few seconds, `exporter.live`); when mailcow cannot be reached
the error handlers answer 502 (504 on a timeout) with a JSON error.
"""

from __future__ import annotations

from datetime import UTC, datetime

from flask import Blueprint, Response, jsonify, request

from exporter.http import context
from exporter.mailcow.errors import MailcowError
from exporter.readmodels import mailcow_state as live_views
from exporter.readmodels.mail import iso

bp = Blueprint("mailcow_state", __name__, url_prefix="/api")


@bp.get("/queue")
def queue() -> Response:
    """Postfix's queue now; `queue` (queue name) and `search` (sender, recipient, id) filter it."""
    items, _ = context.live().queue()
    data = [live_views.queue_item(i) for i in items]
    if name := request.args.get("queue"):
        data = [i for i in data if i["queue_name"] == name]
    if term := request.args.get("search", "").strip().lower():
        data = [i for i in data if term in " ".join([i["queue_id"] or "", i["sender"], *i["recipients"]]).lower()]
    return jsonify({"total": len(data), "data": data})


@bp.get("/quarantine")
def quarantine() -> Response:
    """mailcow's quarantine now, newest first; `search` filters on sender, recipient, subject."""
    items, _ = context.live().quarantine()
    data = sorted((live_views.quarantine_item(i) for i in items), key=lambda i: i["created"] or "", reverse=True)
    if term := request.args.get("search", "").strip().lower():
        data = [i for i in data if term in " ".join([i["sender"] or "", i["subject"] or "", *i["recipients"]]).lower()]
    return jsonify({"total": len(data), "data": data})


@bp.get("/status/containers")
def containers() -> Response:
    raw, _ = context.live().containers()
    return jsonify(live_views.containers(raw))


@bp.get("/status/storage")
def storage() -> Response:
    raw, _ = context.live().vmail()
    return jsonify(live_views.storage(raw))


@bp.get("/status/version")
def version() -> Response:
    """mailcow's version; mailcow does not say whether a newer one exists, so those stay null."""
    current, fetched = context.live().version()
    return jsonify(
        {
            "current_version": current,
            "latest_version": None,
            "update_available": None,
            "changelog": None,
            "last_checked": iso(datetime.fromtimestamp(int(fetched), UTC)),
        }
    )


@bp.get("/status/mailcow-connection")
def mailcow_connection() -> Response:
    """Whether mailcow answers right now (always 200: the answer is the status)."""
    body: dict = {"connected": True, "timestamp": iso(datetime.now(UTC).replace(microsecond=0))}
    try:
        context.live().version()
    except MailcowError as exc:
        body.update(connected=False, error=str(exc), code=exc.code)
    return jsonify(body)


@bp.get("/status/mailcow-info")
def mailcow_info() -> Response:
    accounts, _ = context.live().accounts()
    return jsonify(live_views.mailcow_info(accounts))


@bp.get("/status/summary")
def summary() -> Response:
    live = context.live()
    info = live_views.mailcow_info(live.accounts()[0])
    storage_ = live_views.storage(live.vmail()[0])
    return jsonify(
        {
            "containers": live_views.containers(live.containers()[0])["summary"],
            "storage": {k: storage_[k] for k in ("used_percent", "used", "total")},
            "system": {name: info[name]["total"] for name in ("domains", "mailboxes", "aliases")},
        }
    )


@bp.get("/rw-status")
def rw_status() -> Response:
    """Whether actions are possible: a read-write key is configured (MAILCOW_API_KEY_RW)."""
    configured = context.config().read_write
    return jsonify(
        {
            "configured": configured,
            "read_only": not configured,
            "actions_enabled": configured,
            "detail": "queue and quarantine actions are enabled"
            if configured
            else "read-only: set MAILCOW_API_KEY_RW to a read-write mailcow API key to enable actions",
        }
    )
