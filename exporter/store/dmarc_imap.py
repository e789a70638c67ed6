"""The history of DMARC IMAP syncs: one row a run, opened when it starts and closed with its counts."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from psycopg.rows import class_row
from psycopg.types.json import Jsonb
from psycopg_pool import ConnectionPool


@dataclass(frozen=True)
class SyncRun:
    """One IMAP import run: when, how it ended, what it found and stored, the mails it could not read."""

    id: int
    sync_type: str  # auto | manual
    status: str  # running | success | error
    started_at: datetime
    completed_at: datetime | None
    emails_found: int
    emails_processed: int
    reports_created: int
    reports_duplicate: int
    reports_failed: int
    error_message: str | None
    failed_emails: list[dict[str, Any]] | None


_COLUMNS = """id, sync_type, status, started_at, completed_at, emails_found, emails_processed, reports_created,
              reports_duplicate, reports_failed, error_message, failed_emails"""


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
) -> SyncRun:
    with pool.connection() as conn, conn.cursor(row_factory=class_row(SyncRun)) as cur:
        return cur.execute(
            f"""UPDATE dmarc_imap_syncs SET status = %s, completed_at = now(), emails_found = %s,
                   emails_processed = %s, reports_created = %s, reports_duplicate = %s, reports_failed = %s,
                   error_message = %s, failed_emails = %s
               WHERE id = %s RETURNING {_COLUMNS}""",
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


def syncs(pool: ConnectionPool, limit: int) -> list[SyncRun]:
    """The newest runs first."""
    with pool.connection() as conn, conn.cursor(row_factory=class_row(SyncRun)) as cur:
        return cur.execute(
            f"SELECT {_COLUMNS} FROM dmarc_imap_syncs ORDER BY started_at DESC, id DESC LIMIT %s", (limit,)
        ).fetchall()
