"""Live mailcow state with the shapes of seed 002: queue, quarantine, status, rw-status.

Answers come from mailcow (cached a few seconds, `exporter.mailcow.live`); when mailcow cannot be reached
the error handlers answer 502 (504 on a timeout) with a JSON error.
"""

from __future__ import annotations

from flask import Blueprint, Response, jsonify, request

from exporter.http import context
from exporter.readmodels import mailcow_state

bp = Blueprint("mailcow_state", __name__, url_prefix="/api")


@bp.get("/queue")
def queue() -> Response:
    """Postfix's queue now; `queue` (queue name) and `search` (sender, recipient, id) filter it."""
    items, _ = context.live().queue()
    term = request.args.get("search", "").strip().lower()
    return jsonify(mailcow_state.queue_list(items, request.args.get("queue"), term))


@bp.get("/quarantine")
def quarantine() -> Response:
    """mailcow's quarantine now, newest first; `search` filters on sender, recipient, subject."""
    items, _ = context.live().quarantine()
    return jsonify(mailcow_state.quarantine_list(items, request.args.get("search", "").strip().lower()))


@bp.get("/status/containers")
def containers() -> Response:
    raw, _ = context.live().containers()
    return jsonify(mailcow_state.containers(raw))


@bp.get("/status/storage")
def storage() -> Response:
    raw, _ = context.live().vmail()
    return jsonify(mailcow_state.storage(raw))


@bp.get("/status/version")
def version() -> Response:
    return jsonify(mailcow_state.version(*context.live().version()))


@bp.get("/status/mailcow-connection")
def mailcow_connection() -> Response:
    """Whether mailcow answers right now (always 200: the answer is the status)."""
    return jsonify(mailcow_state.connection(context.live().version))


@bp.get("/status/mailcow-info")
def mailcow_info() -> Response:
    accounts, _ = context.live().accounts()
    return jsonify(mailcow_state.mailcow_info(accounts))


@bp.get("/status/summary")
def summary() -> Response:
    live = context.live()
    return jsonify(mailcow_state.summary(live.accounts()[0], live.vmail()[0], live.containers()[0]))


@bp.get("/rw-status")
def rw_status() -> Response:
    """Whether actions are possible: a read-write key is configured (MAILCOW_API_KEY_RW)."""
    return jsonify(mailcow_state.rw_status(context.config().read_write))
