"""`/api/logs/postfix`, `/api/logs/postfix/by-queue/{queue_id}`, `/api/logs/rspamd`, `/api/logs/netfilter`."""

from __future__ import annotations

from flask import Blueprint, Response, jsonify

from exporter.http import params
from exporter.http.context import local_domains, pool
from exporter.http.errors import ApiError
from exporter.readmodels import logs
from exporter.readmodels.format import page_body
from exporter.store import logs as log_store

bp = Blueprint("logs", __name__, url_prefix="/api/logs")


@bp.get("/postfix")
def postfix() -> Response:
    args = params.parse(params.PostfixParams())
    total, rows = log_store.postfix_page(pool(), args, args["page"], args["limit"])
    return jsonify(page_body(total, args["page"], args["limit"], [logs.postfix_line(r) for r in rows]))


@bp.get("/postfix/by-queue/<queue_id>")
def postfix_by_queue(queue_id: str) -> Response:
    params.load(params.QueueIdParams(), {"queue_id": queue_id})
    found = log_store.postfix_by_queue(pool(), queue_id)
    if not found["rows"]:
        raise ApiError(404, "Not Found", f"no Postfix lines for queue id {queue_id}", "QUEUE_ID_NOT_FOUND")
    return jsonify(logs.by_queue(queue_id, found))


@bp.get("/rspamd")
def rspamd() -> Response:
    args = params.parse(params.RspamdParams())
    total, rows = log_store.rspamd_page(pool(), args, local_domains(), args["page"], args["limit"])
    return jsonify(page_body(total, args["page"], args["limit"], [logs.rspamd_row(r) for r in rows]))


@bp.get("/netfilter")
def netfilter() -> Response:
    args = params.parse(params.NetfilterParams())
    total, rows = log_store.netfilter_page(pool(), args, args["page"], args["limit"])
    return jsonify(page_body(total, args["page"], args["limit"], [logs.netfilter_row(r) for r in rows]))
