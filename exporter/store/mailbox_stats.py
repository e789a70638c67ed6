"""Mailbox statistics: per mailbox and per alias, the correlated mail sent from and received at
each address in a date range (every recipient of a message counts, aliases by the address the
sender used). Filtering, sorting and pagination happen in SQL."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from psycopg.rows import class_row, dict_row
from psycopg_pool import ConnectionPool

SORTS = {
    "sent_total": "coalesce(s.sent_total, 0)",
    "received_total": "coalesce(rc.received_total, 0)",
    "failure_rate": "coalesce(s.sent_failed::float8 / nullif(s.sent_total, 0), 0)",
    "quota_used": "b.quota_used",
    "username": "b.username",
}


@dataclass(frozen=True)
class Filters:
    start: datetime
    end: datetime
    domain: str | None = None
    active_only: bool = True
    hide_zero: bool = False
    search: str | None = None
    sort_by: str = "sent_total"
    sort_order: str = "desc"
    page: int = 1
    page_size: int = 50


# Counted per address: sent (by envelope sender) and received (by the address the mail was sent to:
# orig_to for alias expansion, else the recipient). A greylisted attempt is not a message of its own.
_COUNTS = """
    addresses AS (
        SELECT username AS address FROM mailcow_mailboxes UNION SELECT address FROM mailcow_aliases
    ),
    s AS (
        SELECT lower(m.sender) AS address, count(*) AS sent_total,
               count(*) FILTER (WHERE m.final_status = 'delivered') AS sent_delivered,
               count(*) FILTER (WHERE m.final_status = 'bounced') AS sent_bounced,
               count(*) FILTER (WHERE m.final_status = 'deferred') AS sent_deferred,
               count(*) FILTER (WHERE m.final_status = 'rejected') AS sent_rejected,
               count(*) FILTER (WHERE m.final_status IN ('bounced', 'rejected', 'expired')) AS sent_failed
        FROM messages m
        WHERE m.first_seen >= %(start)s AND m.first_seen < %(end)s AND m.reject_class IS DISTINCT FROM 'greylist'
          AND lower(m.sender) IN (SELECT address FROM addresses)
        GROUP BY 1
    ),
    rc AS (
        SELECT lower(coalesce(r.orig_to, r.recipient)) AS address, count(DISTINCT r.message_pk) AS received_total
        FROM message_recipients r JOIN messages m ON m.id = r.message_pk
        WHERE m.first_seen >= %(start)s AND m.first_seen < %(end)s AND m.reject_class IS DISTINCT FROM 'greylist'
          AND lower(coalesce(r.orig_to, r.recipient)) IN (SELECT address FROM addresses)
        GROUP BY 1
    )"""


def _alias_json(alias: str) -> str:
    return f"""jsonb_build_object(
        'alias_address', {alias}.address, 'active', {alias}.active, 'is_catch_all', {alias}.is_catch_all,
        'sent_total', coalesce(sa.sent_total, 0), 'sent_delivered', coalesce(sa.sent_delivered, 0),
        'sent_bounced', coalesce(sa.sent_bounced, 0), 'sent_deferred', coalesce(sa.sent_deferred, 0),
        'sent_rejected', coalesce(sa.sent_rejected, 0), 'sent_failed', coalesce(sa.sent_failed, 0),
        'received_total', coalesce(ra.received_total, 0))"""


def page(pool: ConnectionPool, f: Filters) -> tuple[int, list[dict[str, Any]]]:
    """(total matching mailboxes, the page's rows with their counts and aliases)."""
    direction = "ASC" if f.sort_order == "asc" else "DESC"
    params = {
        "start": f.start,
        "end": f.end,
        "domain": f.domain,
        "active_only": f.active_only,
        "hide_zero": f.hide_zero,
        "pattern": f"%{f.search}%" if f.search else None,
        "limit": f.page_size,
        "offset": (f.page - 1) * f.page_size,
    }
    query = f"""
        WITH {_COUNTS},
        aliased AS (
            SELECT trim(t) AS username, a.* FROM mailcow_aliases a, unnest(string_to_array(a.goto, ',')) t
        ),
        alias_counts AS (
            SELECT x.username, jsonb_agg({_alias_json("x")} ORDER BY x.address) AS aliases,
                   sum(coalesce(sa.sent_total, 0))::bigint AS sent,
                   sum(coalesce(ra.received_total, 0))::bigint AS received,
                   sum(coalesce(sa.sent_failed, 0))::bigint AS failed
            FROM aliased x LEFT JOIN s sa ON sa.address = x.address LEFT JOIN rc ra ON ra.address = x.address
            GROUP BY x.username
        ),
        filtered AS (
            SELECT b.*, s.sent_total, s.sent_delivered, s.sent_bounced, s.sent_deferred, s.sent_rejected,
                   s.sent_failed, rc.received_total, coalesce(ac.aliases, '[]') AS aliases,
                   coalesce(s.sent_total, 0) + coalesce(ac.sent, 0) AS combined_sent,
                   coalesce(rc.received_total, 0) + coalesce(ac.received, 0) AS combined_received,
                   coalesce(s.sent_failed, 0) + coalesce(ac.failed, 0) AS combined_failed,
                   {SORTS[f.sort_by]} AS sort_key
            FROM mailcow_mailboxes b
            LEFT JOIN s ON s.address = b.username
            LEFT JOIN rc ON rc.address = b.username
            LEFT JOIN alias_counts ac ON ac.username = b.username
            WHERE (%(domain)s::text IS NULL OR b.domain = %(domain)s)
              AND (NOT %(active_only)s OR b.active)
              AND (%(pattern)s::text IS NULL OR b.username ILIKE %(pattern)s OR b.name ILIKE %(pattern)s
                   OR EXISTS (SELECT 1 FROM aliased x WHERE x.username = b.username AND x.address ILIKE %(pattern)s))
        ),
        kept AS (
            SELECT * FROM filtered WHERE NOT %(hide_zero)s OR combined_sent + combined_received > 0
        )
        SELECT n.matching, p.* FROM (SELECT count(*) AS matching FROM kept) n
        LEFT JOIN LATERAL (
            SELECT * FROM kept ORDER BY sort_key {direction}, username LIMIT %(limit)s OFFSET %(offset)s
        ) p ON true"""
    with pool.connection() as conn, conn.cursor(row_factory=dict_row) as cur:
        rows = cur.execute(query, params).fetchall()
    return rows[0]["matching"], [r for r in rows if r["username"] is not None]


@dataclass(frozen=True)
class Summary:
    """Mailboxes (all, active) and the mail they sent, received and failed to send in a range."""

    total_mailboxes: int
    active_mailboxes: int
    total_sent: int
    total_received: int
    sent_failed: int


def summary(pool: ConnectionPool, start: datetime, end: datetime) -> Summary:
    with pool.connection() as conn, conn.cursor(row_factory=class_row(Summary)) as cur:
        return cur.execute(
            f"""WITH {_COUNTS}
                SELECT (SELECT count(*) FROM mailcow_mailboxes) AS total_mailboxes,
                       (SELECT count(*) FROM mailcow_mailboxes WHERE active) AS active_mailboxes,
                       (SELECT coalesce(sum(sent_total), 0)::bigint FROM s) AS total_sent,
                       (SELECT coalesce(sum(received_total), 0)::bigint FROM rc) AS total_received,
                       (SELECT coalesce(sum(sent_failed), 0)::bigint FROM s) AS sent_failed""",
            {"start": start, "end": end},
        ).fetchone()


@dataclass(frozen=True)
class DomainMailboxes:
    """A domain that has mailboxes, and how many."""

    domain: str
    mailbox_count: int


def domains(pool: ConnectionPool) -> list[DomainMailboxes]:
    with pool.connection() as conn, conn.cursor(row_factory=class_row(DomainMailboxes)) as cur:
        return cur.execute(
            "SELECT domain, count(*) AS mailbox_count FROM mailcow_mailboxes GROUP BY domain ORDER BY domain"
        ).fetchall()
