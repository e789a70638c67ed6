"""The audit log (queue and quarantine actions and the other state changes, told apart by `kind`), spent
confirmation tokens and the service's own generated secrets."""

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
    kind: str
    what: str | None


_COLUMNS = (
    "id, at, actor, grafana_user, remote_addr, origin, via, target, action, items, outcome, code, detail, results,"
    " kind, what"
)

KINDS = ("queue_action", "quarantine_action", "dmarc_upload", "dns_check", "imap_sync", "sign_in_lockout")


@dataclass(frozen=True)
class AuditEvent:
    """A state change that is no queue or quarantine action: `what` is a short summary, never a secret."""

    kind: str
    actor: str
    remote_addr: str | None
    what: str
    outcome: str  # ok | failed
    detail: str | None = None
    via: str = "api"


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
                                         outcome, code, detail, results, kind)
               VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s) RETURNING """
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
                f"{entry.target}_action",
            ),
        ).fetchone()


def note(pool: ConnectionPool, event: AuditEvent) -> AuditRecord:
    """Store a non-action state change; unlike `record` it counts no action for /metrics."""
    target, _, action = event.kind.partition("_")
    with pool.connection() as conn, conn.cursor(row_factory=class_row(AuditRecord)) as cur:
        return cur.execute(
            """INSERT INTO action_audit (actor, remote_addr, via, target, action, items, outcome, detail, kind, what)
               VALUES (%s, %s, %s, %s, %s, '[]', %s, %s, %s, %s) RETURNING """
            + _COLUMNS,
            (
                event.actor,
                event.remote_addr,
                event.via,
                target,
                action,
                event.outcome,
                event.detail[:500] if event.detail else None,
                event.kind,
                event.what[:200],
            ),
        ).fetchone()


_FILTERS = ("target", "action", "outcome", "actor")


@dataclass(frozen=True)
class AuditFilter:
    """Equality filters (`_FILTERS`), any of `kinds`, and the window [since, until)."""

    equal: dict[str, str] = field(default_factory=dict)
    kinds: tuple[str, ...] = ()
    since: datetime | None = None
    until: datetime | None = None


def page(pool: ConnectionPool, wanted: AuditFilter, offset: int, limit: int) -> tuple[int, list[AuditRecord]]:
    """Newest first, filtered; the total counts the filtered rows."""
    where, params = ["true"], []
    for name in _FILTERS:
        if wanted.equal.get(name):
            where.append(f"{name} = %s")
            params.append(wanted.equal[name])
    if wanted.kinds:
        where.append("kind = ANY(%s)")
        params.append(list(wanted.kinds))
    if wanted.since is not None:
        where.append("at >= %s")
        params.append(wanted.since)
    if wanted.until is not None:
        where.append("at < %s")
        params.append(wanted.until)
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
