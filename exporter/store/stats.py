"""The figures behind /api/stats: the dashboard's counters, the timeline, top lists, recent messages."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from psycopg import sql
from psycopg.rows import class_row, dict_row
from psycopg_pool import ConnectionPool

from exporter.store.messages import MESSAGE_COLUMNS


@dataclass(frozen=True)
class MessageCounts:
    """Messages in the last 24 hours, 7 and 30 days: all, spam, failed, and by direction (24 hours)."""

    m24: int
    m7: int
    m30: int
    s24: int
    s7: int
    f24: int
    f7: int
    in24: int
    out24: int
    int24: int


@dataclass(frozen=True)
class AuthFailures:
    """Authentication failures (netfilter warnings) in the last 24 hours and 7 days."""

    a24: int
    a7: int


def dashboard(pool: ConnectionPool, now: datetime) -> tuple[MessageCounts, AuthFailures]:
    with (
        pool.connection() as conn,
        conn.cursor(row_factory=class_row(MessageCounts)) as cur,
        conn.cursor(row_factory=class_row(AuthFailures)) as auth_cur,
    ):
        messages = cur.execute(
            """SELECT count(*) FILTER (WHERE first_seen >= %(now)s - interval '24 hours') AS m24,
                      count(*) FILTER (WHERE first_seen >= %(now)s - interval '7 days') AS m7,
                      count(*) AS m30,
                      count(*) FILTER (WHERE is_spam AND first_seen >= %(now)s - interval '24 hours') AS s24,
                      count(*) FILTER (WHERE is_spam AND first_seen >= %(now)s - interval '7 days') AS s7,
                      count(*) FILTER (WHERE final_status IN ('bounced', 'expired')
                                       AND first_seen >= %(now)s - interval '24 hours') AS f24,
                      count(*) FILTER (WHERE final_status IN ('bounced', 'expired')
                                       AND first_seen >= %(now)s - interval '7 days') AS f7,
                      count(*) FILTER (WHERE direction = 'inbound'
                                       AND first_seen >= %(now)s - interval '24 hours') AS in24,
                      count(*) FILTER (WHERE direction = 'outbound'
                                       AND first_seen >= %(now)s - interval '24 hours') AS out24,
                      count(*) FILTER (WHERE direction = 'internal'
                                       AND first_seen >= %(now)s - interval '24 hours') AS int24
               FROM messages WHERE first_seen >= %(now)s - interval '30 days' AND first_seen <= %(now)s""",
            {"now": now},
        ).fetchone()
        auth = auth_cur.execute(
            """SELECT count(*) FILTER (WHERE logged_at >= %(now)s - interval '24 hours') AS a24, count(*) AS a7
               FROM netfilter_lines WHERE kind = 'warning' AND logged_at >= %(now)s - interval '7 days'
                 AND logged_at <= %(now)s""",
            {"now": now},
        ).fetchone()
    return messages, auth


@dataclass(frozen=True)
class TimelineBucket:
    """Messages first seen in one bucket of the timeline."""

    bucket: datetime
    total: int
    spam: int
    clean: int


def timeline(pool: ConnectionPool, start: datetime, end: datetime, step_seconds: int) -> list[TimelineBucket]:
    with pool.connection() as conn, conn.cursor(row_factory=class_row(TimelineBucket)) as cur:
        return cur.execute(
            """WITH buckets AS (
                   SELECT generate_series(date_bin(%(step)s, %(start)s, 'epoch'), %(end)s, %(step)s) AS bucket)
               SELECT b.bucket, count(m.id) AS total, count(m.id) FILTER (WHERE m.is_spam) AS spam,
                      count(m.id) FILTER (WHERE NOT m.is_spam) AS clean
               FROM buckets b
               LEFT JOIN messages m ON m.first_seen >= b.bucket AND m.first_seen < b.bucket + %(step)s
                                   AND m.first_seen >= %(start)s AND m.first_seen <= %(end)s
               GROUP BY b.bucket ORDER BY b.bucket""",
            {"step": f"{step_seconds} seconds", "start": start, "end": end},
        ).fetchall()


@dataclass(frozen=True)
class SymbolCount:
    """An rspamd symbol and how many spam messages scored on it."""

    symbol: str
    count: int


def top_spam_symbols(pool: ConnectionPool, since: datetime, limit: int) -> list[SymbolCount]:
    with pool.connection() as conn, conn.cursor(row_factory=class_row(SymbolCount)) as cur:
        return cur.execute(
            """SELECT s.key AS symbol, count(*) AS count
               FROM rspamd_rows r, jsonb_each(r.symbols) s
               WHERE r.logged_at >= %s AND r.is_spam AND coalesce((s.value ->> 'score')::float8, 0) > 0
               GROUP BY s.key ORDER BY count(*) DESC, s.key LIMIT %s""",
            (since, limit),
        ).fetchall()


@dataclass(frozen=True)
class BlockedIp:
    """An address with authentication warnings or bans: how many, how many bans, the last one."""

    ip: str
    count: int
    last_seen: datetime
    bans: int


def top_blocked_ips(pool: ConnectionPool, since: datetime, limit: int) -> list[BlockedIp]:
    with pool.connection() as conn, conn.cursor(row_factory=class_row(BlockedIp)) as cur:
        return cur.execute(
            """SELECT ip, count(*) AS count, max(logged_at) AS last_seen,
                      count(*) FILTER (WHERE kind = 'ban') AS bans
               FROM netfilter_lines WHERE kind IN ('warning', 'ban') AND ip IS NOT NULL AND logged_at >= %s
               GROUP BY ip ORDER BY count(*) DESC, ip LIMIT %s""",
            (since, limit),
        ).fetchall()


def recent_messages(pool: ConnectionPool, limit: int) -> list[dict[str, Any]]:
    with pool.connection() as conn, conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(
            sql.SQL("SELECT ")
            + MESSAGE_COLUMNS
            + sql.SQL(" FROM messages m ORDER BY m.first_seen DESC, m.id DESC LIMIT %s"),
            (limit,),
        ).fetchall()
