"""`/api/stats/*`: dashboard counters, timeline, top lists, recent activity."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from flask import Blueprint, Response, jsonify

from exporter.http import params
from exporter.http.context import pool
from exporter.readmodels import stats
from exporter.store import stats as stats_store

bp = Blueprint("stats", __name__, url_prefix="/api/stats")


@bp.get("/dashboard")
def dashboard() -> Response:
    return jsonify(stats.dashboard(stats_store.dashboard(pool(), datetime.now(UTC))))


@bp.get("/timeline")
def timeline() -> Response:
    args = params.parse(params.TimelineParams())
    end = args["end_date"] or datetime.now(UTC)
    start = args["start_date"] or end - timedelta(hours=args["hours"])
    step = max(60, (args["interval_ms"] or 3_600_000) // 1000)
    if (end - start).total_seconds() / step > 5000:  # bounded: at most 5000 points
        step = int((end - start).total_seconds() // 5000) + 1
    return jsonify(stats.timeline(stats_store.timeline(pool(), start, end, step)))


@bp.get("/top-spam-triggers")
def top_spam_triggers() -> Response:
    args = params.parse(params.LimitParams())
    since = datetime.now(UTC) - timedelta(hours=args["hours"])
    return jsonify(stats.spam_triggers(stats_store.top_spam_symbols(pool(), since, args["limit"])))


@bp.get("/top-blocked-ips")
def top_blocked_ips() -> Response:
    args = params.parse(params.LimitParams())
    since = datetime.now(UTC) - timedelta(hours=args["hours"])
    return jsonify(stats.blocked_ips(stats_store.top_blocked_ips(pool(), since, args["limit"])))


@bp.get("/recent-activity")
def recent_activity() -> Response:
    args = params.parse(params.LimitParams())
    return jsonify(stats.recent_activity(stats_store.recent_messages(pool(), args["limit"])))
