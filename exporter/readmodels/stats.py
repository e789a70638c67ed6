"""`/api/stats`: the dashboard's counters, the message timeline, the top spam triggers and blocked IPs,
and the recent messages (seed 002 field names)."""

from __future__ import annotations

from typing import Any

from exporter.readmodels.format import iso, ms
from exporter.store.stats import AuthFailures, BlockedIp, MessageCounts, SymbolCount, TimelineBucket


def dashboard(counts: tuple[MessageCounts, AuthFailures]) -> dict[str, Any]:
    """The dashboard's counters for the last day, week and month."""
    c, auth = counts
    return {
        "messages": {"24h": c.m24, "7d": c.m7, "30d": c.m30},
        "spam": {
            "24h": c.s24,
            "7d": c.s7,
            "percentage_24h": round(c.s24 * 100 / c.m24, 2) if c.m24 else 0.0,
        },
        "failed_deliveries": {"24h": c.f24, "7d": c.f7},
        "auth_failures": {"24h": auth.a24, "7d": auth.a7},
        "direction": {"inbound_24h": c.in24, "outbound_24h": c.out24, "internal_24h": c.int24},
    }


def timeline(rows: list[TimelineBucket]) -> dict[str, Any]:
    return {
        "timeline": [
            {
                "hour": iso(r.bucket),
                "time": ms(r.bucket),
                "total": r.total,
                "spam": r.spam,
                "clean": r.clean,
            }
            for r in rows
        ]
    }


def recent_activity(rows: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "activity": [
            {
                "time": iso(r["first_seen"]),
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


def spam_triggers(rows: list[SymbolCount]) -> dict[str, Any]:
    """`/api/stats/top-spam-triggers`."""
    return {"triggers": [{"symbol": r.symbol, "count": r.count} for r in rows]}


def blocked_ips(rows: list[BlockedIp]) -> dict[str, Any]:
    """`/api/stats/top-blocked-ips`."""
    return {
        "blocked_ips": [{"ip": r.ip, "count": r.count, "bans": r.bans, "last_seen": iso(r.last_seen)} for r in rows]
    }
