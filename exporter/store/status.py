"""mailcow status snapshots and API reachability: written by the worker's jobs, read by the Grafana
catalog."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from psycopg.rows import class_row
from psycopg.types.json import Jsonb
from psycopg_pool import ConnectionPool


@dataclass(frozen=True)
class ApiGroupState:
    """Whether a group of mailcow endpoints answered when a job last used it."""

    endpoint_group: str
    up: bool
    checked_at: datetime
    last_success_at: datetime | None
    last_error: str | None


API_GROUPS = (
    "SELECT endpoint_group, up, checked_at, last_success_at, last_error FROM mailcow_api_health ORDER BY endpoint_group"
)


def save_snapshot(pool: ConnectionPool, kind: str, data: Any, at: datetime) -> None:
    """Keep mailcow's newest answer for one status endpoint (queue, containers, vmail, ...)."""
    with pool.connection() as conn:
        conn.execute(
            """INSERT INTO mailcow_snapshots (kind, data, fetched_at) VALUES (%s, %s, %s)
               ON CONFLICT (kind) DO UPDATE SET data = EXCLUDED.data, fetched_at = EXCLUDED.fetched_at""",
            (kind, Jsonb(data), at),
        )


def record_api(pool: ConnectionPool, group: str, at: datetime, error: str | None) -> None:
    """Whether a group of mailcow endpoints answered (error None) when a job last used it."""
    with pool.connection() as conn:
        conn.execute(
            """INSERT INTO mailcow_api_health AS h (endpoint_group, up, checked_at, last_success_at, last_error)
               VALUES (%(group)s, %(up)s, %(at)s, CASE WHEN %(up)s THEN %(at)s END, %(error)s)
               ON CONFLICT (endpoint_group) DO UPDATE SET
                   up = EXCLUDED.up, checked_at = EXCLUDED.checked_at,
                   last_success_at = coalesce(EXCLUDED.last_success_at, h.last_success_at),
                   last_error = EXCLUDED.last_error""",
            {"group": group, "up": error is None, "at": at, "error": error},
        )


def api_health(pool: ConnectionPool) -> list[ApiGroupState]:
    """Each group of mailcow endpoints as last used: up, when checked, last success, last error."""
    with pool.connection() as conn, conn.cursor(row_factory=class_row(ApiGroupState)) as cur:
        return cur.execute(API_GROUPS).fetchall()
