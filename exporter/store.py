"""All SQL of the service: the only module that talks to PostgreSQL tables."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from psycopg.rows import dict_row
from psycopg.types.json import Jsonb
from psycopg_pool import ConnectionPool

from exporter.parsers.raw_lines import RawLine


def ping(pool: ConnectionPool) -> bool:
    """True when a pooled connection answers a trivial query within the pool timeout."""
    try:
        with pool.connection(timeout=3) as conn:
            conn.execute("SELECT 1")
        return True
    except Exception:
        return False


# --- background jobs -------------------------------------------------------------------


def job_started(pool: ConnectionPool, name: str, at: datetime) -> None:
    with pool.connection() as conn:
        conn.execute(
            """INSERT INTO job_status (name, status, last_run_at) VALUES (%s, 'running', %s)
               ON CONFLICT (name) DO UPDATE SET status = 'running', last_run_at = EXCLUDED.last_run_at""",
            (name, at),
        )


def job_finished(pool: ConnectionPool, name: str, at: datetime, duration: float, error: str | None) -> None:
    ok = error is None
    with pool.connection() as conn:
        conn.execute(
            """UPDATE job_status SET
                   status = %(status)s,
                   last_duration_seconds = %(duration)s,
                   last_error = %(error)s,
                   last_success_at = CASE WHEN %(ok)s THEN %(at)s ELSE last_success_at END,
                   runs = runs + 1,
                   failures = failures + CASE WHEN %(ok)s THEN 0 ELSE 1 END
               WHERE name = %(name)s""",
            {
                "status": "success" if ok else "failed",
                "duration": duration,
                "error": error,
                "ok": ok,
                "at": at,
                "name": name,
            },
        )


def job_statuses(pool: ConnectionPool) -> list[dict[str, Any]]:
    with pool.connection() as conn, conn.cursor(row_factory=dict_row) as cur:
        return cur.execute("SELECT * FROM job_status ORDER BY name").fetchall()


# --- log ingestion ---------------------------------------------------------------------


def store_log_lines(pool: ConnectionPool, source: str, lines: Sequence[RawLine], fetched_at: datetime) -> int:
    """Load one fetched window in a single transaction; return how many lines were new.

    COPY into a temporary table, then one INSERT … ON CONFLICT DO NOTHING: re-loading a
    window changes nothing, and no line is written one commit at a time.
    """
    with pool.connection() as conn, conn.transaction():
        conn.execute(
            """CREATE TEMP TABLE incoming_lines (
                   logged_at timestamptz, program text, priority text, message text,
                   extra jsonb, line_key bytea, occurrence integer) ON COMMIT DROP"""
        )
        with conn.cursor().copy(
            "COPY incoming_lines (logged_at, program, priority, message, extra, line_key, occurrence) FROM STDIN"
        ) as copy:
            for line in lines:
                copy.write_row(
                    (
                        line.logged_at,
                        line.program,
                        line.priority,
                        line.message,
                        Jsonb(line.extra) if line.extra is not None else None,
                        line.line_key,
                        line.occurrence,
                    )
                )
        inserted = conn.execute(
            """INSERT INTO log_lines (source, logged_at, program, priority, message, extra, line_key, occurrence)
               SELECT %s, logged_at, program, priority, message, extra, line_key, occurrence
               FROM incoming_lines ORDER BY logged_at, occurrence
               ON CONFLICT (source, line_key, occurrence) DO NOTHING""",
            (source,),
        ).rowcount
        conn.execute(
            """INSERT INTO ingest_state AS s (source, last_fetch_at, last_success_at, newest_line_at,
                                              oldest_line_at, lines_total, last_fetched, last_inserted, last_error)
               SELECT %(source)s, %(at)s, %(at)s, max(logged_at), min(logged_at), %(inserted)s,
                      %(fetched)s, %(inserted)s, NULL
               FROM incoming_lines
               ON CONFLICT (source) DO UPDATE SET
                   last_fetch_at = EXCLUDED.last_fetch_at,
                   last_success_at = EXCLUDED.last_success_at,
                   newest_line_at = GREATEST(s.newest_line_at, EXCLUDED.newest_line_at),
                   oldest_line_at = LEAST(s.oldest_line_at, EXCLUDED.oldest_line_at),
                   lines_total = s.lines_total + EXCLUDED.lines_total,
                   last_fetched = EXCLUDED.last_fetched,
                   last_inserted = EXCLUDED.last_inserted,
                   last_error = NULL""",
            {"source": source, "at": fetched_at, "inserted": inserted, "fetched": len(lines)},
        )
    return inserted


def record_fetch_error(pool: ConnectionPool, source: str, at: datetime, error: str) -> None:
    with pool.connection() as conn:
        conn.execute(
            """INSERT INTO ingest_state (source, last_fetch_at, last_error) VALUES (%s, %s, %s)
               ON CONFLICT (source) DO UPDATE SET last_fetch_at = EXCLUDED.last_fetch_at,
                                                  last_error = EXCLUDED.last_error""",
            (source, at, error),
        )


def ingest_statuses(pool: ConnectionPool) -> list[dict[str, Any]]:
    with pool.connection() as conn, conn.cursor(row_factory=dict_row) as cur:
        return cur.execute("SELECT * FROM ingest_state ORDER BY source").fetchall()


def delete_lines_before(pool: ConnectionPool, cutoff: datetime, batch: int = 50_000) -> int:
    """Retention: delete old lines in bounded batches so no single statement locks for long."""
    total = 0
    while True:
        with pool.connection() as conn:
            deleted = conn.execute(
                """DELETE FROM log_lines WHERE id IN (
                       SELECT id FROM log_lines WHERE logged_at < %s LIMIT %s)""",
                (cutoff, batch),
            ).rowcount
        total += deleted
        if deleted < batch:
            return total
