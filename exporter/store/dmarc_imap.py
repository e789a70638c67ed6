"""The history of DMARC IMAP syncs: one row a run, opened when it starts and closed with its counts."""

from __future__ import annotations

from typing import Any

from psycopg.rows import dict_row
from psycopg.types.json import Jsonb
from psycopg_pool import ConnectionPool

from exporter.store import reads


def sync_started(pool: ConnectionPool, sync_type: str) -> int:
    with pool.connection() as conn:
        return conn.execute(
            "INSERT INTO dmarc_imap_syncs (sync_type, status) VALUES (%s, 'running') RETURNING id", (sync_type,)
        ).fetchone()[0]


def sync_finished(
    pool: ConnectionPool,
    sync_id: int,
    status: str,
    counts: dict[str, int],
    error: str | None,
    failed: list[dict] | None,
) -> dict[str, Any]:
    with pool.connection() as conn, conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(
            """UPDATE dmarc_imap_syncs SET status = %s, completed_at = now(), emails_found = %s,
                   emails_processed = %s, reports_created = %s, reports_duplicate = %s, reports_failed = %s,
                   error_message = %s, failed_emails = %s
               WHERE id = %s RETURNING *""",
            (
                status,
                counts.get("emails_found", 0),
                counts.get("emails_processed", 0),
                counts.get("reports_created", 0),
                counts.get("reports_duplicate", 0),
                counts.get("reports_failed", 0),
                error,
                Jsonb(failed) if failed else None,
                sync_id,
            ),
        ).fetchone()


def syncs(pool: ConnectionPool, limit: int) -> list[dict]:
    return reads.rows(pool, "SELECT * FROM dmarc_imap_syncs ORDER BY started_at DESC, id DESC LIMIT %s", (limit,))
