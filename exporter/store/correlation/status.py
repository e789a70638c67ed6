"""How far correlation has got, for /api/settings: message counts, lines waiting, recent activity."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from psycopg.rows import class_row
from psycopg_pool import ConnectionPool


@dataclass(frozen=True)
class CorrelationStatus:
    """Messages by completeness, the newest change, and the Postfix lines not correlated yet."""

    total: int
    complete: int
    incomplete: int
    expired: int
    last_update: datetime | None
    pending_lines: int


def correlation_status(pool: ConnectionPool) -> CorrelationStatus:
    with pool.connection() as conn, conn.cursor(row_factory=class_row(CorrelationStatus)) as cur:
        return cur.execute(
            """SELECT count(*) AS total, count(*) FILTER (WHERE is_complete) AS complete,
                      count(*) FILTER (WHERE NOT is_complete) AS incomplete,
                      count(*) FILTER (WHERE final_status = 'expired') AS expired,
                      max(updated_at) AS last_update,
                      (SELECT count(*) FROM postfix_lines
                       WHERE id > (SELECT last_id FROM correlation_state WHERE source = 'postfix')) AS pending_lines
               FROM messages"""
        ).fetchone()


@dataclass(frozen=True)
class IncompleteMessage:
    """A message whose correlation is not complete yet."""

    message_id: str | None
    queue_id: str | None
    sender: str | None
    first_recipient: str | None
    first_seen: datetime
    final_status: str | None
    correlation_key: str


def recent_incomplete(pool: ConnectionPool, limit: int = 10) -> list[IncompleteMessage]:
    with pool.connection() as conn, conn.cursor(row_factory=class_row(IncompleteMessage)) as cur:
        return cur.execute(
            """SELECT message_id, queue_id, sender, first_recipient, first_seen, final_status, correlation_key
               FROM messages WHERE NOT is_complete ORDER BY first_seen DESC LIMIT %s""",
            (limit,),
        ).fetchall()


@dataclass(frozen=True)
class RecentActivity:
    """Lines imported and messages correlated since a moment."""

    postfix_imported: int
    rspamd_imported: int
    correlations_created: int


def recent_activity_counts(pool: ConnectionPool, since: datetime) -> RecentActivity:
    with pool.connection() as conn, conn.cursor(row_factory=class_row(RecentActivity)) as cur:
        return cur.execute(
            """SELECT (SELECT count(*) FROM postfix_lines WHERE logged_at >= %(s)s) AS postfix_imported,
                      (SELECT count(*) FROM rspamd_rows WHERE logged_at >= %(s)s) AS rspamd_imported,
                      (SELECT count(*) FROM messages WHERE first_seen >= %(s)s) AS correlations_created""",
            {"s": since},
        ).fetchone()
