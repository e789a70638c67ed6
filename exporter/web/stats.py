"""`/api/stats/*`: dashboard counters, timeline, top lists, recent activity."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from flask import Blueprint, Response, jsonify

from exporter.http import params
from exporter.http.context import pool
from exporter.readmodels import mail as readmodels
from exporter.store import stats as stats_store

bp = Blueprint("stats", __name__, url_prefix="/api/stats")


@bp.get("/dashboard")
def dashboard() -> Response:
    c = stats_store.dashboard(pool(), datetime.now(UTC))
    return jsonify(
        {
            "messages": {"24h": c["m24"], "7d": c["m7"], "30d": c["m30"]},
            "spam": {
                "24h": c["s24"],
                "7d": c["s7"],
                "percentage_24h": round(c["s24"] * 100 / c["m24"], 2) if c["m24"] else 0.0,
            },
            "failed_deliveries": {"24h": c["f24"], "7d": c["f7"]},
            "auth_failures": {"24h": c["a24"], "7d": c["a7"]},
            "direction": {"inbound_24h": c["in24"], "outbound_24h": c["out24"], "internal_24h": c["int24"]},
        }
    )


@bp.get("/timeline")
def timeline() -> Response:
    args = params.parse(params.TimelineParams())
    end = args["end_date"] or datetime.now(UTC)
    start = args["start_date"] or end - timedelta(hours=args["hours"])
    step = max(60, (args["interval_ms"] or 3_600_000) // 1000)
    if (end - start).total_seconds() / step > 5000:  # bounded: at most 5000 points
        step = int((end - start).total_seconds() // 5000) + 1
    rows = stats_store.timeline(pool(), start, end, step)
    return jsonify(
        {
            "timeline": [
                {
                    "hour": readmodels.iso(r["bucket"]),
                    "time": int(r["bucket"].timestamp() * 1000),
                    "total": r["total"],
                    "spam": r["spam"],
                    "clean": r["clean"],
                }
                for r in rows
            ]
        }
    )


@bp.get("/top-spam-triggers")
def top_spam_triggers() -> Response:
    args = params.parse(params.LimitParams())
    since = datetime.now(UTC) - timedelta(hours=args["hours"])
    return jsonify({"triggers": stats_store.top_spam_symbols(pool(), since, args["limit"])})


@bp.get("/top-blocked-ips")
def top_blocked_ips() -> Response:
    args = params.parse(params.LimitParams())
    since = datetime.now(UTC) - timedelta(hours=args["hours"])
    rows = stats_store.top_blocked_ips(pool(), since, args["limit"])
    return jsonify(
        {
            "blocked_ips": [
                {"ip": r["ip"], "count": r["count"], "bans": r["bans"], "last_seen": readmodels.iso(r["last_seen"])}
                for r in rows
            ]
        }
    )


@bp.get("/recent-activity")
def recent_activity() -> Response:
    args = params.parse(params.LimitParams())
    rows = stats_store.recent_messages(pool(), args["limit"])
    return jsonify(
        {
            "activity": [
                {
                    "time": readmodels.iso(r["first_seen"]),
                    "sender": r["sender"],
                    "recipient": r["first_recipient"],
                    "subject": r["subject"],
                    "direction": r["direction"],
                    "status": r["final_status"],
                    "correlation_key": r["correlation_key"],
                }
                for r in rows
            ]
        }
    )
