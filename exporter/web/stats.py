"""`/api/stats/*`: dashboard counters, timeline, top lists, recent activity."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from flask import Blueprint, Response, jsonify

from exporter.http import params
from exporter.http.context import pool
from exporter.readmodels import stats
from exporter.store import queries

bp = Blueprint("stats", __name__, url_prefix="/api/stats")


@bp.get("/dashboard")
def dashboard() -> Response:
    return jsonify(stats.dashboard(queries.dashboard(pool(), datetime.now(UTC))))


@bp.get("/timeline")
def timeline() -> Response:
    args = params.parse(params.TimelineParams())
    end = args["end_date"] or datetime.now(UTC)
    start = args["start_date"] or end - timedelta(hours=args["hours"])
    step = max(60, (args["interval_ms"] or 3_600_000) // 1000)
    if (end - start).total_seconds() / step > 5000:  # bounded: at most 5000 points
        step = int((end - start).total_seconds() // 5000) + 1
    return jsonify(stats.timeline(queries.timeline(pool(), start, end, step)))


@bp.get("/top-spam-triggers")
def top_spam_triggers() -> Response:
    args = params.parse(params.LimitParams())
    since = datetime.now(UTC) - timedelta(hours=args["hours"])
    return jsonify(stats.spam_triggers(queries.top_spam_symbols(pool(), since, args["limit"])))


@bp.get("/top-blocked-ips")
def top_blocked_ips() -> Response:
    args = params.parse(params.LimitParams())
    since = datetime.now(UTC) - timedelta(hours=args["hours"])
    return jsonify(stats.blocked_ips(queries.top_blocked_ips(pool(), since, args["limit"])))


@bp.get("/recent-activity")
def recent_activity() -> Response:
    args = params.parse(params.LimitParams())
    return jsonify(stats.recent_activity(queries.recent_messages(pool(), args["limit"])))
