"""`/api/messages` and `/api/message/{correlation_key}/details`."""

from __future__ import annotations

from flask import Blueprint, Response, jsonify

from exporter.http import params
from exporter.http.context import pool
from exporter.http.errors import ApiError
from exporter.readmodels import messages as readmodels
from exporter.readmodels.format import page_body
from exporter.store import messages as message_store

bp = Blueprint("messages", __name__, url_prefix="/api")


@bp.get("/messages")
def messages() -> Response:
    args = params.parse(params.MessageParams())
    total, rows = message_store.messages_page(pool(), args, args["page"], args["limit"])
    return jsonify(page_body(total, args["page"], args["limit"], [readmodels.message_summary(r) for r in rows]))


@bp.get("/message/<correlation_key>/details")
def message_details(correlation_key: str) -> Response:
    row = message_store.message_by_key(pool(), correlation_key)
    if row is None:
        raise ApiError(404, "Not Found", f"no message with correlation key {correlation_key!r}", "MESSAGE_NOT_FOUND")
    return jsonify(readmodels.message_details(row))
