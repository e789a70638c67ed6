"""Seed 000's raw log API: `/api/raw-logs/services`, `/api/raw-logs/<service>`, its smart filters,
`/api/raw-logs/worker-status`, and the live socket `/ws/raw-logs?service=`.

A service mailcow does not have is a 404 (SERVICE_NOT_FOUND); one this configuration does not collect
(RAW_LOGS_ENABLED off, or not in RAW_LOGS_SERVICES) is a 404 too (SERVICE_DISABLED), saying so, since
its lines are neither fetched nor kept. Its smart filters are listed all the same: they are definitions.

The socket is a route like any other: authentication (AUTH_ENABLED), the Host check and then this
module's checks run before the upgrade, so a bad parameter is a 400 envelope, never a half-open socket.
Browsers send an Origin on every websocket upgrade and cached Basic credentials with it, so a page of
another site could otherwise open it in the user's name (cross-site websocket hijacking): an upgrade
whose Origin is not this service's own (or PUBLIC_URL's) is refused with a 403. Each open socket holds
one web server thread while it lives.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from typing import Any

import psycopg
from flask import Blueprint, Response, current_app, g, jsonify, request
from flask_sock import Sock
from psycopg_pool import PoolTimeout

from exporter.http import context, origin, params
from exporter.http.errors import ApiError, InvalidParameter
from exporter.readmodels import raw_logs, smart_filters
from exporter.services import raw_tail
from exporter.store import raw_logs as raw_store
from exporter.store import raw_search

log = logging.getLogger(__name__)
bp = Blueprint("raw_logs", __name__, url_prefix="/api/raw-logs")
tail_bp = Blueprint("raw_tail", __name__)
sock = Sock()

COUNT_CAP = params.RAW_MAX_ROWS  # a text filter's total is counted up to the deepest page reachable
TAIL_WAIT = 5.0  # seconds a socket sleeps between checks that its client is still there
TAIL_BATCH = 1000  # lines sent per wake at most; a burst beyond it sends the newest (`truncated`)
# websocket pings: proxies keep an idle socket open (nginx closes after 60 s of silence), and a client
# that vanished without closing is noticed (no pong) and its thread freed
PING_INTERVAL = 25


@tail_bp.record_once
def _ping_sockets(state: Any) -> None:
    state.app.config.setdefault("SOCK_SERVER_OPTIONS", {"ping_interval": PING_INTERVAL})


def _known(name: str) -> str:
    service = raw_logs.canonical(name)
    if service is None:
        raise ApiError(
            404,
            "Not Found",
            f"no mailcow log list named {name[:40]!r}; use one of {', '.join(raw_logs.INFO)}",
            "SERVICE_NOT_FOUND",
        )
    return service


def _collected(name: str) -> str:
    service = _known(name)
    if not raw_logs.enabled(context.config(), service):
        raise ApiError(
            404,
            "Not Found",
            f"{service} lines are not collected: set RAW_LOGS_ENABLED=true and add {service} to RAW_LOGS_SERVICES",
            "SERVICE_DISABLED",
        )
    return service


def _smart(service: str, filter_id: str | None) -> smart_filters.SmartFilter | None:
    if filter_id is None:
        return None
    found = smart_filters.find(service, filter_id)
    if found is None:
        ids = ", ".join(f.id for f in smart_filters.of(service)) or "none"
        raise InvalidParameter(f"filter: {service} has no smart filter {filter_id[:60]!r} (its filters: {ids})")
    return found


@bp.get("/services")
def services() -> Response:
    return jsonify(raw_logs.services(context.config(), context.pool()))


@bp.get("/worker-status")
def worker_status() -> Response:
    return jsonify(raw_logs.worker_status(context.config(), context.pool(), context.jobs()))


@bp.get("/<service>")
def lines(service: str) -> Response:
    name = _collected(service)
    args = params.parse(params.RawLogParams())
    query = raw_logs.line_query(name, args, _smart(name, args["filter"]))
    return jsonify(raw_logs.page(context.pool(), query, args["page"], args["limit"], COUNT_CAP))


@bp.get("/<service>/smart-filters")
def service_smart_filters(service: str) -> Response:
    name = _known(service)
    found = [smart_filters.describe(name, f) for f in smart_filters.of(name)]
    return jsonify({"service": name, "total": len(found), "filters": found})


# --- the live socket ---------------------------------------------------------------------------------


@tail_bp.before_request
def _before_upgrade() -> None:
    """Refuse a foreign page's upgrade and bad parameters while an HTTP answer is still possible."""
    if "Origin" in request.headers:
        caller = origin.origin_of(request.headers["Origin"])
        if caller is None or caller not in origin.own_origins():
            raise ApiError(
                403,
                "Forbidden",
                f"pages of {request.headers['Origin'][:80]!r} may not open this socket",
                "ORIGIN_REFUSED",
            )
    args = params.parse(params.RawTailParams())
    name = _collected(args["service"])
    g.raw_tail = (name, raw_logs.line_query(name, args, _smart(name, args["filter"])))


def _send(ws: Any, message: dict[str, Any]) -> None:
    ws.send(current_app.json.dumps(message))


@sock.route("/ws/raw-logs", bp=tail_bp)
def tail(ws: Any) -> None:
    """A hello, then every new matching line as it is stored (oldest first, in `entries` messages)."""
    service, query = g.raw_tail
    pool = context.pool()
    hub = raw_tail.hub(pool.conninfo)
    with pool.connection() as conn:
        seen = raw_store.newest_id(conn)
    _send(ws, {"type": "hello", "service": service, "after_id": seen})
    while ws.connected:
        latest = hub.wait(seen, TAIL_WAIT)
        if latest <= seen:
            continue
        try:
            with pool.connection() as conn:
                rows = raw_search.find(conn, replace(query, after_id=seen, newest_first=True, limit=TAIL_BATCH))
        except (psycopg.Error, PoolTimeout) as exc:  # the client reconnects once the database is back
            log.warning("raw log socket for %s closed: %s", service, exc)
            ws.close(reason=1011, message="the database does not answer; reconnect later")
            return
        seen = max([latest, *(r.id for r in rows)])
        if rows:
            entries = [raw_logs.line(r) for r in reversed(rows)]
            _send(ws, {"type": "entries", "service": service, "data": entries, "truncated": len(rows) == TAIL_BATCH})
