"""The log tables behind /api/logs (pages, a queue id's lines, CSV exports) and the Grafana panels
over rspamd and netfilter: filtered on the time indexes, searched through the words indexes."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

import psycopg
from psycopg import sql
from psycopg.rows import dict_row
from psycopg_pool import ConnectionPool

from exporter.store import reads

POSTFIX_STATUS = {
    "sent": "delivered",
    "delivered": "delivered",
    "deferred": "deferred",
    "bounced": "bounced",
    "expired": "expired",
}
POSTFIX_SELECT = sql.SQL(
    """p.id, p.logged_at, p.program, p.priority, p.message, p.queue_id, p.kind, p.sender AS line_sender,
       p.recipient, p.status, p.relay, p.delay, p.dsn, p.reject_class,
       m.message_id, m.sender, m.correlation_key"""
)
POSTFIX_JOIN = sql.SQL("LEFT JOIN messages m ON m.correlation_key = mg_queue_key(p.queue_id)")
POSTFIX_FROM = sql.SQL("postfix_lines p ") + POSTFIX_JOIN


# More block ranges than this: the term is common, and reading the lines in time order is cheaper.
MAX_SEARCH_RANGES = 64


def search_blocks(conn: psycopg.Connection, term: str) -> list[tuple[int, int]] | None:
    """The id ranges (adjacent blocks merged) of the Postfix lines whose block holds every word of
    `term`, through the words index; None when there are more than MAX_SEARCH_RANGES."""
    ranges: list[tuple[int, int]] = []
    for first, last in conn.execute(
        "SELECT first_id, last_id FROM postfix_line_words WHERE words @@ mg_words_query(%s) ORDER BY first_id",
        (term,),
    ):
        if ranges and ranges[-1][1] + 1 == first:
            ranges[-1] = (ranges[-1][0], last)
        else:
            ranges.append((first, last))
    return ranges if len(ranges) <= MAX_SEARCH_RANGES else None


def postfix_where(conn: psycopg.Connection, filters: Mapping[str, Any]) -> reads.Where:
    where = reads.Where()
    if filters.get("search"):
        where.search_words("p", filters["search"], search_blocks(conn, filters["search"]))
    if filters.get("queue_id"):
        where.add("p.queue_id = %s", filters["queue_id"])
    if filters.get("sender"):
        where.add(
            """(lower(p.sender) = lower(%s) OR p.queue_id IN (
                   SELECT queue_id FROM messages WHERE lower(sender) = lower(%s) AND queue_id IS NOT NULL))""",
            filters["sender"],
            filters["sender"],
        )
    if filters.get("recipient"):
        where.add("lower(p.recipient) = lower(%s)", filters["recipient"])
    if filters.get("status") == "rejected":
        where.add("p.kind IN ('noqueue_reject', 'milter_reject', 'rcpt_reject')")
    elif filters.get("status"):
        where.add("p.status = %s", POSTFIX_STATUS[filters["status"]])
    reads.dates(where, "p.logged_at", filters)
    return where


def postfix_page(
    pool: ConnectionPool, filters: Mapping[str, Any], page: int, limit: int
) -> tuple[int, list[dict[str, Any]]]:
    """The page's lines are picked first and only they are joined to their messages: joined before
    the LIMIT, every line a common search term finds would hash its queue id for the join."""
    order = sql.SQL("p.logged_at DESC, p.id DESC")
    with pool.connection() as conn, conn.cursor(row_factory=dict_row) as cur:
        where = postfix_where(conn, filters)
        picked = sql.SQL("SELECT p.* FROM postfix_lines p") + where.sql() + sql.SQL(" ORDER BY ") + order
        count = sql.SQL("SELECT count(*) AS n FROM postfix_lines p") + where.sql()
        total = cur.execute(count, where.params).fetchone()["n"]
        rows = cur.execute(
            sql.SQL("SELECT {} FROM ({} LIMIT %s OFFSET %s) p {} ORDER BY {}").format(
                POSTFIX_SELECT, picked, POSTFIX_JOIN, order
            ),
            [*where.params, limit, (page - 1) * limit],
        ).fetchall()
    return total, rows


def export_postfix(pool: ConnectionPool, filters: Mapping[str, Any], limit: int) -> reads.RowStream:
    with pool.connection() as conn:
        where = postfix_where(conn, filters)
    query = (
        sql.SQL("SELECT ")
        + POSTFIX_SELECT
        + sql.SQL(" FROM ")
        + POSTFIX_FROM
        + where.sql()
        + sql.SQL(" ORDER BY p.logged_at DESC, p.id DESC LIMIT %s")
    )
    yield from reads.stream(pool, query, [*where.params, limit])


def postfix_by_queue(pool: ConnectionPool, queue_id: str) -> dict[str, Any]:
    with pool.connection() as conn, conn.cursor(row_factory=dict_row) as cur:
        message = cur.execute(
            "SELECT correlation_key, rspamd_row_id, message_id, sender, direction FROM messages "
            "WHERE correlation_key = mg_queue_key(%s)",
            (queue_id,),
        ).fetchone()
        rows = cur.execute(
            sql.SQL("SELECT ")
            + POSTFIX_SELECT
            + sql.SQL(" FROM ")
            + POSTFIX_FROM
            + sql.SQL(" WHERE p.queue_id = %s ORDER BY p.logged_at, p.id"),
            (queue_id,),
        ).fetchall()
        rspamd = (
            cur.execute("SELECT * FROM rspamd_rows WHERE id = %s", (message["rspamd_row_id"],)).fetchone()
            if message and message["rspamd_row_id"]
            else None
        )
    return {"message": message, "rows": rows, "rspamd": rspamd}


RSPAMD_DIRECTION = """CASE
    WHEN r."user" IS NOT NULL AND lower(split_part(r.sender_smtp, '@', 2)) = ANY(%s::text[])
         AND NOT EXISTS (SELECT 1 FROM unnest(r.rcpt_smtp) x
                         WHERE NOT lower(split_part(x, '@', 2)) = ANY(%s::text[])) THEN 'internal'
    WHEN r."user" IS NOT NULL THEN 'outbound'
    WHEN r.sender_smtp IS NULL AND cardinality(r.rcpt_smtp) = 0 THEN 'unknown'
    ELSE 'inbound' END"""


def rspamd_where(filters: Mapping[str, Any], local: Sequence[str]) -> reads.Where:
    where = reads.Where()
    if filters.get("search"):
        where.search_rspamd("r", filters["search"])
    if filters.get("sender"):
        where.add("r.sender_smtp = %s", filters["sender"])
    if filters.get("direction"):
        where.add(f"({RSPAMD_DIRECTION}) = %s", list(local), list(local), filters["direction"])
    if filters.get("min_score") is not None:
        where.add("r.score >= %s", filters["min_score"])
    if filters.get("max_score") is not None:
        where.add("r.score <= %s", filters["max_score"])
    if filters.get("action"):
        where.add("r.action = %s", filters["action"])
    if filters.get("is_spam") is not None:
        where.add("r.is_spam = %s", filters["is_spam"])
    reads.dates(where, "r.logged_at", filters)
    return where


def _rspamd_select(local: Sequence[str]) -> tuple[sql.Composable, list[Any]]:
    return (
        sql.SQL(
            f"r.*, ({RSPAMD_DIRECTION}) AS direction, "
            "(SELECT correlation_key FROM messages m WHERE m.rspamd_row_id = r.id LIMIT 1) AS correlation_key"
        ),
        [list(local), list(local)],
    )


def rspamd_page(
    pool: ConnectionPool, filters: Mapping[str, Any], local: Sequence[str], page: int, limit: int
) -> tuple[int, list[dict[str, Any]]]:
    select, params = _rspamd_select(local)
    where = rspamd_where(filters, local)
    with pool.connection() as conn, conn.cursor(row_factory=dict_row) as cur:
        total = cur.execute(sql.SQL("SELECT count(*) AS n FROM rspamd_rows r") + where.sql(), where.params).fetchone()[
            "n"
        ]
        rows = cur.execute(
            sql.SQL("SELECT ")
            + select
            + sql.SQL(" FROM rspamd_rows r")
            + where.sql()
            + sql.SQL(" ORDER BY r.logged_at DESC, r.id DESC LIMIT %s OFFSET %s"),
            [*params, *where.params, limit, (page - 1) * limit],
        ).fetchall()
    return total, rows


def export_rspamd(
    pool: ConnectionPool, filters: Mapping[str, Any], local: Sequence[str], limit: int
) -> reads.RowStream:
    select, params = _rspamd_select(local)
    where = rspamd_where(filters, local)
    query = (
        sql.SQL("SELECT ")
        + select
        + sql.SQL(" FROM rspamd_rows r")
        + where.sql()
        + sql.SQL(" ORDER BY r.logged_at DESC, r.id DESC LIMIT %s")
    )
    yield from reads.stream(pool, query, [*params, *where.params, limit])


NETFILTER_ACTIONS = {"warning": ("warning", "attempts"), "banned": ("ban",), "unbanned": ("unban",)}


def netfilter_where(filters: Mapping[str, Any]) -> reads.Where:
    where = reads.Where()
    if filters.get("search"):
        where.search_netfilter("n", filters["search"])
    if filters.get("ip"):
        where.add("n.ip = %s", filters["ip"])
    if filters.get("username"):
        where.add("lower(n.username) = lower(%s)", filters["username"])
    if filters.get("action"):
        where.add("n.kind = ANY(%s)", list(NETFILTER_ACTIONS[filters["action"]]))
    reads.dates(where, "n.logged_at", filters)
    return where


def netfilter_page(
    pool: ConnectionPool, filters: Mapping[str, Any], page: int, limit: int
) -> tuple[int, list[dict[str, Any]]]:
    return reads.page(
        pool,
        sql.SQL("n.*"),
        sql.SQL("netfilter_lines n"),
        netfilter_where(filters),
        "n.logged_at DESC, n.id DESC",
        page,
        limit,
    )


def export_netfilter(pool: ConnectionPool, filters: Mapping[str, Any], limit: int) -> reads.RowStream:
    where = netfilter_where(filters)
    query = (
        sql.SQL("SELECT n.* FROM netfilter_lines n")
        + where.sql()
        + sql.SQL(" ORDER BY n.logged_at DESC, n.id DESC LIMIT %s")
    )
    yield from reads.stream(pool, query, [*where.params, limit])


# --- Grafana panels -----------------------------------------------------------------------

RSPAMD_ACTIONS = ("no action", "greylist", "add header", "rewrite subject", "soft reject", "reject")


def rspamd_series(pool: ConnectionPool, start: datetime, end: datetime, step: int) -> list[dict[str, Any]]:
    columns = sql.SQL(", ").join(
        sql.SQL("count(*) FILTER (WHERE action = {}) AS {}").format(sql.Literal(a), sql.Identifier(a.replace(" ", "_")))
        for a in RSPAMD_ACTIONS
    )
    query = (
        sql.SQL("SELECT date_bin(%s, logged_at, 'epoch') AS time, ")
        + columns
        + sql.SQL(", avg(score) AS avg_score FROM rspamd_rows WHERE logged_at >= %s AND logged_at <= %s")
        + sql.SQL(" GROUP BY 1 ORDER BY 1")
    )
    return reads.rows(pool, query, [reads.bin_step(step), start, end])


def score_histogram(pool: ConnectionPool, start: datetime, end: datetime) -> list[dict[str, Any]]:
    return reads.rows(
        pool,
        """SELECT greatest(-10, least(30, floor(score)))::int AS score, count(*) AS count,
                  count(*) FILTER (WHERE is_spam) AS spam
           FROM rspamd_rows WHERE logged_at >= %s AND logged_at <= %s GROUP BY 1 ORDER BY 1""",
        (start, end),
    )


def top_symbols(pool: ConnectionPool, start: datetime, end: datetime, limit: int) -> list[dict[str, Any]]:
    return reads.rows(
        pool,
        """SELECT s.key AS symbol, count(*) AS count, round(avg((s.value ->> 'score')::float8)::numeric, 2)::float8
                  AS avg_score
           FROM rspamd_rows r, jsonb_each(r.symbols) s
           WHERE r.logged_at >= %s AND r.logged_at <= %s AND coalesce((s.value ->> 'score')::float8, 0) > 0
           GROUP BY s.key ORDER BY count(*) DESC, s.key LIMIT %s""",
        (start, end, limit),
    )


def netfilter_series(pool: ConnectionPool, start: datetime, end: datetime, step: int) -> list[dict[str, Any]]:
    return reads.rows(
        pool,
        """SELECT date_bin(%s, logged_at, 'epoch') AS time,
                  count(*) FILTER (WHERE kind = 'warning') AS warnings,
                  count(*) FILTER (WHERE kind = 'ban') AS bans,
                  count(*) FILTER (WHERE kind = 'unban') AS unbans
           FROM netfilter_lines WHERE logged_at >= %s AND logged_at <= %s GROUP BY 1 ORDER BY 1""",
        (reads.bin_step(step), start, end),
    )


def top_blocked_ips(pool: ConnectionPool, start: datetime, end: datetime, limit: int) -> list[dict[str, Any]]:
    return reads.rows(
        pool,
        """SELECT ip, count(*) FILTER (WHERE kind = 'warning') AS warnings,
                  count(*) FILTER (WHERE kind = 'ban') AS bans, max(logged_at) AS last_seen
           FROM netfilter_lines WHERE kind IN ('warning', 'ban') AND ip IS NOT NULL
             AND logged_at >= %s AND logged_at <= %s
           GROUP BY ip ORDER BY count(*) DESC, ip LIMIT %s""",
        (start, end, limit),
    )


def auth_failures(pool: ConnectionPool, start: datetime, end: datetime, limit: int) -> list[dict[str, Any]]:
    """Failed logins by user and source IP: Postfix SASL failures and netfilter's matched warnings."""
    return reads.rows(
        pool,
        """SELECT coalesce(username, '(unknown)') AS username, ip, service, count(*) AS count,
                  max(logged_at) AS last_seen
           FROM (SELECT sasl_username AS username, client_ip AS ip, 'smtp' AS service, logged_at
                 FROM postfix_lines WHERE kind = 'sasl_failure' AND logged_at >= %(s)s AND logged_at <= %(e)s
                 UNION ALL
                 SELECT username, ip, coalesce(auth_method, 'rule ' || rule_id) AS service, logged_at
                 FROM netfilter_lines WHERE kind = 'warning' AND logged_at >= %(s)s AND logged_at <= %(e)s
                   AND coalesce(rule_id, 0) <> 3) f
           GROUP BY 1, 2, 3 ORDER BY count(*) DESC, 1, 2 LIMIT %(limit)s""",
        {"s": start, "e": end, "limit": limit},
    )
