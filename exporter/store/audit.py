"""The action audit log, spent confirmation tokens and the service's own generated secrets."""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from psycopg.rows import class_row
from psycopg.types.json import Jsonb
from psycopg_pool import ConnectionPool

from exporter.store import counters


@dataclass(frozen=True)
class AuditEntry:
    actor: str
    via: str
    target: str
    action: str
    items: list[str]
    outcome: str
    remote_addr: str | None = None
    origin: str | None = None
    grafana_user: str | None = None
    code: str | None = None
    detail: str | None = None
    results: list[dict[str, Any]] = field(default_factory=list)
    metric_action: str = "unknown"  # the action as a bounded metric label: a made-up action is "unknown"


@dataclass(frozen=True)
class AuditRecord:
    """A stored attempt: the entry as written, with its id and time."""

    id: int
    at: datetime
    actor: str
    grafana_user: str | None
    remote_addr: str | None
    origin: str | None
    via: str
    target: str
    action: str
    items: list[str]
    outcome: str
    code: str | None
    detail: str | None
    results: list[dict[str, Any]]


_COLUMNS = (
    "id, at, actor, grafana_user, remote_addr, origin, via, target, action, items, outcome, code, detail, results"
)


def record(pool: ConnectionPool, entry: AuditEntry) -> AuditRecord:
    """Store one attempt and count it for /metrics; returns the stored row (with id and time)."""
    with pool.connection() as conn, conn.cursor(row_factory=class_row(AuditRecord)) as cur:
        counters.add(
            conn,
            "SELECT 'actions', jsonb_build_object('target', %s::text, 'action', %s::text, 'outcome', %s::text), 1",
            (entry.target, entry.metric_action, entry.outcome),
        )
        return cur.execute(
            """INSERT INTO action_audit (actor, grafana_user, remote_addr, origin, via, target, action, items,
                                         outcome, code, detail, results)
               VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s) RETURNING """
            + _COLUMNS,
            (
                entry.actor,
                entry.grafana_user,
                entry.remote_addr,
                entry.origin,
                entry.via,
                entry.target,
                entry.action,
                Jsonb(entry.items),
                entry.outcome,
                entry.code,
                entry.detail,
                Jsonb(entry.results),
            ),
        ).fetchone()


_FILTERS = ("target", "action", "outcome", "actor")


def page(
    pool: ConnectionPool, filters: dict[str, str], since: datetime | None, offset: int, limit: int
) -> tuple[int, list[AuditRecord]]:
    """Newest first, filtered on equality; the total counts the filtered rows."""
    where, params = ["true"], []
    for name in _FILTERS:
        if filters.get(name):
            where.append(f"{name} = %s")
            params.append(filters[name])
    if since is not None:
        where.append("at >= %s")
        params.append(since)
    clause = " AND ".join(where)
    with pool.connection() as conn, conn.cursor(row_factory=class_row(AuditRecord)) as cur:
        total = conn.execute(f"SELECT count(*) AS n FROM action_audit WHERE {clause}", params).fetchone()[0]
        rows = cur.execute(
            f"SELECT {_COLUMNS} FROM action_audit WHERE {clause} ORDER BY at DESC, id DESC OFFSET %s LIMIT %s",
            [*params, offset, limit],
        ).fetchall()
    return total, rows


def secret(pool: ConnectionPool, name: str) -> str:
    """A random secret created once and shared by every process using this database."""
    with pool.connection() as conn:
        conn.execute(
            "INSERT INTO app_secrets (name, value) VALUES (%s, %s) ON CONFLICT (name) DO NOTHING",
            (name, secrets.token_urlsafe(32)),
        )
        return conn.execute("SELECT value FROM app_secrets WHERE name = %s", (name,)).fetchone()[0]


def spend_token(pool: ConnectionPool, nonce: str, expires_at: datetime) -> bool:
    """Mark a confirmation token used; False when it was used before. One statement, so two requests
    racing with the same token cannot both win; tokens long expired are dropped on the way."""
    with pool.connection() as conn:
        row = conn.execute(
            """WITH expired AS (DELETE FROM spent_action_tokens WHERE expires_at < now() - interval '1 hour')
               INSERT INTO spent_action_tokens (nonce, expires_at) VALUES (%s, %s)
               ON CONFLICT (nonce) DO NOTHING RETURNING nonce""",
            (nonce, expires_at),
        ).fetchone()
    return row is not None
