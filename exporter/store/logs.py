"""Read queries behind the REST API: filtered, indexed, bounded."""

from __future__ import annotations

from collections.abc import Generator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import psycopg
from psycopg import sql
from psycopg.rows import dict_row
from psycopg_pool import ConnectionPool

from exporter.parsers.words import word_count

# Rows read lazily through a server-side cursor; close() (or exhausting it) returns the connection.
RowStream = Generator[dict[str, Any], None, None]

MESSAGE_COLUMNS = sql.SQL(
    """m.id, m.correlation_key, m.queue_id, m.message_id, m.sender, m.first_recipient, m.recipient_count,
       m.subject, m.direction, m.final_status, m.is_complete, m.first_seen, m.last_seen, m.spam_score,
       m.is_spam, m.rspamd_action, m.sasl_username, m.client_ip, m.client_host, m.reject_class,
       m.reject_reason, m.quarantined, m.size"""
)


@dataclass
class Where:
    """A conjunction of SQL conditions with their parameters."""

    parts: list[sql.Composable] = field(default_factory=list)
    params: list[Any] = field(default_factory=list)

    def add(self, condition: str, *params: Any) -> None:
        self.parts.append(sql.SQL(condition))
        self.params.extend(params)

    def search_rspamd(self, alias: str, term: str) -> None:
        """rspamd rows with every word of `term` in subject, sender and Message-ID, adjacent and in
        order there (the last one as a prefix).

        The words are found through the GIN index on search_words; ARRAY(...) runs that lookup once
        (a bare @@ lets the planner pick a newest-first scan when it misjudges a prefix term). The
        index alone decides a one-word term; adjacency and order are checked on the text."""
        self.add(
            f"{alias}.id = ANY(ARRAY(SELECT id FROM rspamd_rows WHERE search_words::tsvector @@ mg_words_query(%s)))",
            term,
        )
        if word_count(term) > 1:
            self.add(
                f"concat_ws(' ', {alias}.subject, {alias}.sender_smtp, {alias}.message_id) ~* mg_words_pattern(%s)",
                term,
            )

    def search_words(self, alias: str, term: str, ranges: Sequence[tuple[int, int]] | None) -> None:
        """Postfix lines with every word of `term` adjacent and in order (the last one as a prefix).

        `ranges` are the id ranges of the blocks holding all the words (`search_blocks`): only their
        lines are read, through the primary key. None reads every line the other conditions leave:
        for a common term, a walk newest first that stops at the page is cheaper than the blocks."""
        if ranges is not None:
            self.add(f"({' OR '.join([f'{alias}.id BETWEEN %s AND %s'] * len(ranges)) or 'false'})")
            self.params.extend(bound for block in ranges for bound in block)
        self.add(f"{alias}.message ~* mg_words_pattern(%s)", term)

    def search_netfilter(self, alias: str, term: str) -> None:
        """Netfilter lines whose message has the words of `term` adjacent and in order (the last one as a
        prefix), through the GIN index on mg_search_vector(message); ARRAY(...) runs that lookup once."""
        self.add(
            f"{alias}.id = ANY(ARRAY(SELECT id FROM netfilter_lines"
            " WHERE mg_search_vector(message) @@ mg_search_query(%s)))",
            term,
        )

    def sql(self) -> sql.Composable:
        return sql.SQL(" WHERE ") + sql.SQL(" AND ").join(self.parts) if self.parts else sql.SQL("")


def _dates(where: Where, column: str, filters: Mapping[str, Any]) -> None:
    if filters.get("start_date"):
        where.add(f"{column} >= %s", filters["start_date"])
    if filters.get("end_date"):
        where.add(f"{column} <= %s", filters["end_date"])


def _page(
    pool: ConnectionPool,
    select: sql.Composable,
    table: sql.Composable,
    where: Where,
    order: str,
    page: int,
    limit: int,
    total: int | None = None,
) -> tuple[int, list[dict[str, Any]]]:
    """Total (counted here unless the caller knows it) and one page."""
    with pool.connection() as conn, conn.cursor(row_factory=dict_row) as cur:
        if total is None:
            count = sql.SQL("SELECT count(*) AS n FROM ") + table + where.sql()
            total = cur.execute(count, where.params).fetchone()["n"]
        rows = cur.execute(
            sql.SQL("SELECT ")
            + select
            + sql.SQL(" FROM ")
            + table
            + where.sql()
            + sql.SQL(f" ORDER BY {order} LIMIT %s OFFSET %s"),
            [*where.params, limit, (page - 1) * limit],
        ).fetchall()
    return total, rows


# --- messages ---------------------------------------------------------------------------


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


def message_where(pool: ConnectionPool, filters: Mapping[str, Any]) -> Where:
    where = Where()
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
    if filters.get("ip"):
        where.add("m.client_ip = %s", filters["ip"])
    if filters.get("domain"):
        where.add(
            "(lower(split_part(m.sender, '@', 2)) = lower(%s)"
            " OR lower(split_part(m.first_recipient, '@', 2)) = lower(%s))",
            filters["domain"],
            filters["domain"],
        )
    _dates(where, "m.first_seen", filters)
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
        where = Where()
        where.add(condition, *params)
        return _page(pool, MESSAGE_COLUMNS, sql.SQL("messages m"), where, _NEWEST, page, limit, found)
    return _page(pool, MESSAGE_COLUMNS, sql.SQL("messages m"), message_where(pool, filters), _NEWEST, page, limit)


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
            """SELECT recipient, orig_to, status, dsn, relay, delay, delays, reply, last_at, attempts
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


def export_messages(pool: ConnectionPool, filters: Mapping[str, Any], limit: int) -> RowStream:
    where = message_where(pool, filters)
    query = (
        sql.SQL("SELECT ")
        + MESSAGE_COLUMNS
        + sql.SQL(" FROM messages m")
        + where.sql()
        + sql.SQL(" ORDER BY m.first_seen DESC, m.id DESC LIMIT %s")
    )
    yield from _stream(pool, query, [*where.params, limit])


def _stream(pool: ConnectionPool, query: sql.Composable, params: Sequence[Any]) -> RowStream:
    """Rows through a server-side cursor: constant memory whatever the export size."""
    with pool.connection() as conn, conn.transaction(), conn.cursor(name="export", row_factory=dict_row) as cur:
        cur.itersize = 2000
        cur.execute(query, params)
        yield from cur


# --- log tables -------------------------------------------------------------------------

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


def postfix_where(conn: psycopg.Connection, filters: Mapping[str, Any]) -> Where:
    where = Where()
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
    _dates(where, "p.logged_at", filters)
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


def export_postfix(pool: ConnectionPool, filters: Mapping[str, Any], limit: int) -> RowStream:
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
    yield from _stream(pool, query, [*where.params, limit])


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


def rspamd_where(filters: Mapping[str, Any], local: Sequence[str]) -> Where:
    where = Where()
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
    _dates(where, "r.logged_at", filters)
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


def export_rspamd(pool: ConnectionPool, filters: Mapping[str, Any], local: Sequence[str], limit: int) -> RowStream:
    select, params = _rspamd_select(local)
    where = rspamd_where(filters, local)
    query = (
        sql.SQL("SELECT ")
        + select
        + sql.SQL(" FROM rspamd_rows r")
        + where.sql()
        + sql.SQL(" ORDER BY r.logged_at DESC, r.id DESC LIMIT %s")
    )
    yield from _stream(pool, query, [*params, *where.params, limit])


NETFILTER_ACTIONS = {"warning": ("warning", "attempts"), "banned": ("ban",), "unbanned": ("unban",)}


def netfilter_where(filters: Mapping[str, Any]) -> Where:
    where = Where()
    if filters.get("search"):
        where.search_netfilter("n", filters["search"])
    if filters.get("ip"):
        where.add("n.ip = %s", filters["ip"])
    if filters.get("username"):
        where.add("lower(n.username) = lower(%s)", filters["username"])
    if filters.get("action"):
        where.add("n.kind = ANY(%s)", list(NETFILTER_ACTIONS[filters["action"]]))
    _dates(where, "n.logged_at", filters)
    return where


def netfilter_page(
    pool: ConnectionPool, filters: Mapping[str, Any], page: int, limit: int
) -> tuple[int, list[dict[str, Any]]]:
    return _page(
        pool,
        sql.SQL("n.*"),
        sql.SQL("netfilter_lines n"),
        netfilter_where(filters),
        "n.logged_at DESC, n.id DESC",
        page,
        limit,
    )


def export_netfilter(pool: ConnectionPool, filters: Mapping[str, Any], limit: int) -> RowStream:
    where = netfilter_where(filters)
    query = (
        sql.SQL("SELECT n.* FROM netfilter_lines n")
        + where.sql()
        + sql.SQL(" ORDER BY n.logged_at DESC, n.id DESC LIMIT %s")
    )
    yield from _stream(pool, query, [*where.params, limit])


# --- statistics -------------------------------------------------------------------------


def dashboard(pool: ConnectionPool, now: datetime) -> dict[str, Any]:
    with pool.connection() as conn, conn.cursor(row_factory=dict_row) as cur:
        messages = cur.execute(
            """SELECT count(*) FILTER (WHERE first_seen >= %(now)s - interval '24 hours') AS m24,
                      count(*) FILTER (WHERE first_seen >= %(now)s - interval '7 days') AS m7,
                      count(*) AS m30,
                      count(*) FILTER (WHERE is_spam AND first_seen >= %(now)s - interval '24 hours') AS s24,
                      count(*) FILTER (WHERE is_spam AND first_seen >= %(now)s - interval '7 days') AS s7,
                      count(*) FILTER (WHERE final_status IN ('bounced', 'expired')
                                       AND first_seen >= %(now)s - interval '24 hours') AS f24,
                      count(*) FILTER (WHERE final_status IN ('bounced', 'expired')
                                       AND first_seen >= %(now)s - interval '7 days') AS f7,
                      count(*) FILTER (WHERE direction = 'inbound'
                                       AND first_seen >= %(now)s - interval '24 hours') AS in24,
                      count(*) FILTER (WHERE direction = 'outbound'
                                       AND first_seen >= %(now)s - interval '24 hours') AS out24,
                      count(*) FILTER (WHERE direction = 'internal'
                                       AND first_seen >= %(now)s - interval '24 hours') AS int24
               FROM messages WHERE first_seen >= %(now)s - interval '30 days' AND first_seen <= %(now)s""",
            {"now": now},
        ).fetchone()
        auth = cur.execute(
            """SELECT count(*) FILTER (WHERE logged_at >= %(now)s - interval '24 hours') AS a24, count(*) AS a7
               FROM netfilter_lines WHERE kind = 'warning' AND logged_at >= %(now)s - interval '7 days'
                 AND logged_at <= %(now)s""",
            {"now": now},
        ).fetchone()
    return {**messages, **auth}


def timeline(pool: ConnectionPool, start: datetime, end: datetime, step_seconds: int) -> list[dict[str, Any]]:
    with pool.connection() as conn, conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(
            """WITH buckets AS (
                   SELECT generate_series(date_bin(%(step)s, %(start)s, 'epoch'), %(end)s, %(step)s) AS bucket)
               SELECT b.bucket, count(m.id) AS total, count(m.id) FILTER (WHERE m.is_spam) AS spam,
                      count(m.id) FILTER (WHERE NOT m.is_spam) AS clean
               FROM buckets b
               LEFT JOIN messages m ON m.first_seen >= b.bucket AND m.first_seen < b.bucket + %(step)s
                                   AND m.first_seen >= %(start)s AND m.first_seen <= %(end)s
               GROUP BY b.bucket ORDER BY b.bucket""",
            {"step": f"{step_seconds} seconds", "start": start, "end": end},
        ).fetchall()


def top_spam_symbols(pool: ConnectionPool, since: datetime, limit: int) -> list[dict[str, Any]]:
    with pool.connection() as conn, conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(
            """SELECT s.key AS symbol, count(*) AS count
               FROM rspamd_rows r, jsonb_each(r.symbols) s
               WHERE r.logged_at >= %s AND r.is_spam AND coalesce((s.value ->> 'score')::float8, 0) > 0
               GROUP BY s.key ORDER BY count(*) DESC, s.key LIMIT %s""",
            (since, limit),
        ).fetchall()


def top_blocked_ips(pool: ConnectionPool, since: datetime, limit: int) -> list[dict[str, Any]]:
    with pool.connection() as conn, conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(
            """SELECT ip, count(*) AS count, max(logged_at) AS last_seen,
                      count(*) FILTER (WHERE kind = 'ban') AS bans
               FROM netfilter_lines WHERE kind IN ('warning', 'ban') AND ip IS NOT NULL AND logged_at >= %s
               GROUP BY ip ORDER BY count(*) DESC, ip LIMIT %s""",
            (since, limit),
        ).fetchall()


def recent_messages(pool: ConnectionPool, limit: int) -> list[dict[str, Any]]:
    with pool.connection() as conn, conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(
            sql.SQL("SELECT ")
            + MESSAGE_COLUMNS
            + sql.SQL(" FROM messages m ORDER BY m.first_seen DESC, m.id DESC LIMIT %s"),
            (limit,),
        ).fetchall()


# --- status -----------------------------------------------------------------------------


def correlation_status(pool: ConnectionPool) -> dict[str, Any]:
    with pool.connection() as conn, conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(
            """SELECT count(*) AS total, count(*) FILTER (WHERE is_complete) AS complete,
                      count(*) FILTER (WHERE NOT is_complete) AS incomplete,
                      count(*) FILTER (WHERE final_status = 'expired') AS expired,
                      max(updated_at) AS last_update,
                      (SELECT count(*) FROM postfix_lines
                       WHERE id > (SELECT last_id FROM correlation_state WHERE source = 'postfix')) AS pending_lines
               FROM messages"""
        ).fetchone()


def recent_incomplete(pool: ConnectionPool, limit: int = 10) -> list[dict[str, Any]]:
    with pool.connection() as conn, conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(
            """SELECT message_id, queue_id, sender, first_recipient, first_seen, final_status, correlation_key
               FROM messages WHERE NOT is_complete ORDER BY first_seen DESC LIMIT %s""",
            (limit,),
        ).fetchall()


def recent_activity_counts(pool: ConnectionPool, since: datetime) -> dict[str, int]:
    with pool.connection() as conn, conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(
            """SELECT (SELECT count(*) FROM postfix_lines WHERE logged_at >= %(s)s) AS postfix_imported,
                      (SELECT count(*) FROM rspamd_rows WHERE logged_at >= %(s)s) AS rspamd_imported,
                      (SELECT count(*) FROM messages WHERE first_seen >= %(s)s) AS correlations_created""",
            {"s": since},
        ).fetchone()
