"""Messages behind /api/messages (page, detail, CSV export) and the Grafana mailbox variable: filtered
on the time index, searched through the GIN indexes by how common a term is."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from psycopg import sql
from psycopg.rows import dict_row
from psycopg_pool import ConnectionPool

from exporter.store import reads

MESSAGE_COLUMNS = sql.SQL(
    """m.id, m.correlation_key, m.queue_id, m.message_id, m.sender, m.first_recipient, m.recipient_count,
       m.subject, m.direction, m.final_status, m.is_complete, m.first_seen, m.last_seen, m.spam_score,
       m.is_spam, m.rspamd_action, m.sasl_username, m.client_ip, m.client_host, m.reject_class,
       m.reject_reason, m.quarantined, m.size"""
)


# A term matching more messages than this is checked row by row while walking the time index (a page
# fills at once); a rarer term gets its few ids from the GIN index first (a walk would read them all).
COMMON_TERM = 5000


def message_search(pool: ConnectionPool, term: str) -> tuple[str, list[Any]]:
    """The condition (alias m) for messages matching `term`, chosen by how common the term is."""
    with pool.connection() as conn, conn.transaction():
        conn.execute("SET LOCAL enable_seqscan = off")  # count through the GIN index, never a table scan
        conn.execute("SET LOCAL enable_indexscan = off")
        found = conn.execute(
            "SELECT count(*) FROM (SELECT 1 FROM messages WHERE search_vector @@ mg_search_query(%s) LIMIT %s) x",
            (term, COMMON_TERM + 1),
        ).fetchone()[0]
    if found > COMMON_TERM:
        return "m.search_vector @@ mg_search_query(%s)", [term]
    return "m.id = ANY(ARRAY(SELECT id FROM messages WHERE search_vector @@ mg_search_query(%s)))", [term]


_RECIPIENT_IDS = """SELECT message_pk FROM message_recipients
                    WHERE lower(recipient) = lower(%s) OR lower(orig_to) = lower(%s)"""


def recipient_messages(pool: ConnectionPool, address: str, cap: int | None = None) -> int:
    """How many messages went to `address` (as recipient or alias), counting at most `cap` + 1."""
    limit = "" if cap is None else f" LIMIT {int(cap) + 1}"
    with pool.connection() as conn:
        return conn.execute(
            f"SELECT count(DISTINCT message_pk) FROM ({_RECIPIENT_IDS}{limit}) x", (address, address)
        ).fetchone()[0]


def recipient_condition(pool: ConnectionPool, address: str, found: int | None = None) -> tuple[str, list[Any]]:
    """Messages to `address` (as recipient or alias), by how common it is: a common one is checked
    per message while walking the time index (a page fills at once); a rare one's few ids come from
    the recipient indexes first (a walk would read every message to find none)."""
    if found is None:
        found = recipient_messages(pool, address, COMMON_TERM)
    if found > COMMON_TERM:
        return (
            """EXISTS (SELECT 1 FROM message_recipients r WHERE r.message_pk = m.id
                         AND (lower(r.recipient) = lower(%s) OR lower(r.orig_to) = lower(%s)))""",
            [address, address],
        )
    return f"m.id = ANY(ARRAY({_RECIPIENT_IDS}))", [address, address]


def message_where(pool: ConnectionPool, filters: Mapping[str, Any]) -> reads.Where:
    where = reads.Where()
    if filters.get("search"):
        condition, params = message_search(pool, filters["search"])
        where.add(condition, *params)
    if filters.get("sender"):
        where.add("lower(m.sender) = lower(%s)", filters["sender"])
    if filters.get("recipient"):
        condition, params = recipient_condition(pool, filters["recipient"])
        where.add(condition, *params)
    if filters.get("direction"):
        where.add("m.direction = %s", filters["direction"])
    if filters.get("status") == "spam":
        where.add("(m.final_status = 'spam' OR m.is_spam)")
    elif filters.get("status"):
        where.add("m.final_status = %s", filters["status"])
    if filters.get("user"):
        where.add("lower(m.sasl_username) = lower(%s)", filters["user"])
    for name, column in (("delivery", "delivery_outcome"), ("mailbox", "delivery_mailbox")):
        if filters.get(name):  # what the mailbox did for any recipient (Dovecot's line), or the folder
            where.add(
                f"EXISTS (SELECT 1 FROM message_recipients r WHERE r.message_pk = m.id AND r.{column} = %s)",
                filters[name],
            )
    if filters.get("ip"):
        where.add("m.client_ip = %s", filters["ip"])
    if filters.get("domain"):
        where.add(
            "(lower(split_part(m.sender, '@', 2)) = lower(%s)"
            " OR lower(split_part(m.first_recipient, '@', 2)) = lower(%s))",
            filters["domain"],
            filters["domain"],
        )
    reads.dates(where, "m.first_seen", filters)
    return where


_NEWEST = "m.first_seen DESC, m.id DESC"
MESSAGE_FILTERS = (
    "search",
    "sender",
    "recipient",
    "direction",
    "status",
    "user",
    "ip",
    "domain",
    "delivery",
    "mailbox",
    "start_date",
    "end_date",
)


def messages_page(
    pool: ConnectionPool, filters: Mapping[str, Any], page: int, limit: int
) -> tuple[int, list[dict[str, Any]]]:
    if [k for k in MESSAGE_FILTERS if filters.get(k)] == ["recipient"]:
        # a recipient alone: its messages counted once in the recipient indexes (never visiting the
        # messages), which also picks the page's plan
        found = recipient_messages(pool, filters["recipient"])
        condition, params = recipient_condition(pool, filters["recipient"], found)
        where = reads.Where()
        where.add(condition, *params)
        return reads.page(pool, MESSAGE_COLUMNS, sql.SQL("messages m"), where, _NEWEST, page, limit, found)
    return reads.page(pool, MESSAGE_COLUMNS, sql.SQL("messages m"), message_where(pool, filters), _NEWEST, page, limit)


def message_by_key(pool: ConnectionPool, key: str) -> dict[str, Any] | None:
    with pool.connection() as conn, conn.cursor(row_factory=dict_row) as cur:
        message = cur.execute(
            sql.SQL("SELECT ")
            + MESSAGE_COLUMNS
            + sql.SQL(""", m.ndn_queue_id, m.origin_queue_id, m.rspamd_row_id, m.source_line_id, m.sasl_method,
                           m.service, m.helo, m.reject_code, m.removed_at, m.held, m.expired, m.nrcpt
                        FROM messages m WHERE m.correlation_key = %s"""),
            (key,),
        ).fetchone()
        if message is None:
            return None
        message["recipient_rows"] = cur.execute(
            """SELECT recipient, orig_to, status, dsn, relay, delay, delays, reply, last_at, attempts,
                      delivery_outcome, delivery_mailbox, delivery_detail, delivery_at
               FROM message_recipients WHERE message_pk = %s ORDER BY coalesce(orig_to, recipient), recipient""",
            (message["id"],),
        ).fetchall()
        if message["queue_id"]:
            message["postfix_rows"] = cur.execute(
                "SELECT * FROM postfix_lines WHERE queue_id = %s ORDER BY logged_at, id", (message["queue_id"],)
            ).fetchall()
        else:
            message["postfix_rows"] = cur.execute(
                "SELECT * FROM postfix_lines WHERE id = %s", (message["source_line_id"],)
            ).fetchall()
        message["rspamd_row"] = (
            cur.execute("SELECT * FROM rspamd_rows WHERE id = %s", (message["rspamd_row_id"],)).fetchone()
            if message["rspamd_row_id"]
            else None
        )
        message["netfilter_rows"] = (
            cur.execute(
                """SELECT * FROM netfilter_lines WHERE ip = %s
                 AND logged_at BETWEEN %s - interval '1 hour' AND %s + interval '1 hour'
               ORDER BY logged_at LIMIT 100""",
                (message["client_ip"], message["first_seen"], message["last_seen"]),
            ).fetchall()
            if message["client_ip"]
            else []
        )
        related = [q for q in (message["ndn_queue_id"], message["origin_queue_id"]) if q]
        message["related"] = (
            cur.execute(
                "SELECT queue_id, correlation_key, final_status FROM messages "
                "WHERE correlation_key IN (SELECT mg_queue_key(q) FROM unnest(%s::text[]) q)",
                (related,),
            ).fetchall()
            if related
            else []
        )
    return message


def export_messages(pool: ConnectionPool, filters: Mapping[str, Any], limit: int) -> reads.RowStream:
    where = message_where(pool, filters)
    query = (
        sql.SQL("SELECT ")
        + MESSAGE_COLUMNS
        + sql.SQL(" FROM messages m")
        + where.sql()
        + sql.SQL(" ORDER BY m.first_seen DESC, m.id DESC LIMIT %s")
    )
    yield from reads.stream(pool, query, [*where.params, limit])


def deliveries_of(pool: ConnectionPool, ids: list[int]) -> dict[int, dict[str, str | None]]:
    """Per message: what the mailbox did for its recipients (distinct outcomes) and the folders it stored
    into, each joined by ", " (Dovecot's lines; messages without one are left out)."""
    rows = reads.rows(
        pool,
        """SELECT message_pk AS id, string_agg(DISTINCT delivery_outcome, ', ') AS delivery,
                  string_agg(DISTINCT delivery_mailbox, ', ') FILTER (WHERE delivery_outcome = 'stored') AS mailbox
           FROM message_recipients
           WHERE message_pk = ANY(%s) AND delivery_outcome IS NOT NULL GROUP BY message_pk""",
        (ids,),
    )
    return {r["id"]: r for r in rows}


def mailboxes(pool: ConnectionPool, start: datetime, end: datetime, limit: int = 1000) -> list[str]:
    """Authenticated senders seen in the range (mailcow's mailbox list is synced by a later job)."""
    rows = reads.rows(
        pool,
        """SELECT DISTINCT lower(sasl_username) AS name FROM messages
           WHERE sasl_username IS NOT NULL AND first_seen >= %s AND first_seen <= %s ORDER BY 1 LIMIT %s""",
        (start, end, limit),
    )
    return [r["name"] for r in rows]
