"""Background job status rows."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from psycopg.rows import class_row
from psycopg_pool import ConnectionPool

# The ingest leader's session advisory lock (exporter.worker.jobs): whoever holds it fetches and runs the jobs.
LEADER_LOCK_KEY = 0x6D63_6C64  # "mcld"


@dataclass(frozen=True)
class JobStatus:
    """One background job's last run and its totals, as `job_status` keeps them."""

    name: str
    status: str  # idle | running | success | failed
    last_run_at: datetime | None
    last_success_at: datetime | None
    last_duration_seconds: float | None
    last_error: str | None
    runs: int
    failures: int


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


def job_statuses(pool: ConnectionPool) -> list[JobStatus]:
    with pool.connection() as conn, conn.cursor(row_factory=class_row(JobStatus)) as cur:
        return cur.execute(
            "SELECT name, status, last_run_at, last_success_at, last_duration_seconds, last_error, runs, failures "
            "FROM job_status ORDER BY name"
        ).fetchall()
