"""How far correlation has got, for /api/settings: message counts, lines waiting, recent activity."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from psycopg.rows import dict_row
from psycopg_pool import ConnectionPool


def correlation_status(pool: ConnectionPool) -> dict[str, Any]:
    with pool.connection() as conn, conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(
            """SELECT count(*) AS total, count(*) FILTER (WHERE is_complete) AS complete,
                      count(*) FILTER (WHERE NOT is_complete) AS incomplete,
                      count(*) FILTER (WHERE final_status = 'expired') AS expired,
                      max(updated_at) AS last_update,
                      (SELECT count(*) FROM postfix_lines
                       WHERE id > (SELECT last_id FROM correlation_state WHERE source = 'postfix')) AS pending_lines
               FROM messages"""
        ).fetchone()


def recent_incomplete(pool: ConnectionPool, limit: int = 10) -> list[dict[str, Any]]:
    with pool.connection() as conn, conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(
            """SELECT message_id, queue_id, sender, first_recipient, first_seen, final_status, correlation_key
               FROM messages WHERE NOT is_complete ORDER BY first_seen DESC LIMIT %s""",
            (limit,),
        ).fetchall()


def recent_activity_counts(pool: ConnectionPool, since: datetime) -> dict[str, int]:
    with pool.connection() as conn, conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(
            """SELECT (SELECT count(*) FROM postfix_lines WHERE logged_at >= %(s)s) AS postfix_imported,
                      (SELECT count(*) FROM rspamd_rows WHERE logged_at >= %(s)s) AS rspamd_imported,
                      (SELECT count(*) FROM messages WHERE first_seen >= %(s)s) AS correlations_created""",
            {"s": since},
        ).fetchone()
