"""The Grafana datasource's mail-flow panels: messages by status and direction per time bucket, delay
percentiles and histograms, top lists, and the dashboards' annotations.

Every query is bounded by the dashboard's time range and uses the time indexes; buckets come
from date_bin over the rows in range (no generate_series join per row); whole hours and days are
read from the rollups correlation keeps.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from psycopg import sql
from psycopg.rows import dict_row
from psycopg_pool import ConnectionPool

from exporter.store import messages, reads
from exporter.store.correlation.counts import REASON_MASK

STATUSES = ("delivered", "deferred", "bounced", "rejected", "expired", "discarded", "queued")
DIRECTIONS = ("inbound", "outbound", "internal")


@dataclass(frozen=True)
class Scope:
    """The dashboard's time range and the filters every mail panel honours."""

    start: datetime
    end: datetime
    direction: str | None = None
    domain: str | None = None
    search: str | None = None
    local: tuple[str, ...] = ()  # mailcow's domains: the ones message_rollup keeps per-domain counts for

    def message_filter(
        self,
        pool: ConnectionPool | None = None,
        start: datetime | None = None,
        end: datetime | None = None,
        end_open: bool = False,
    ) -> tuple[sql.Composable, list[Any]]:
        """Conditions on `messages m`; a search needs the pool to pick its plan (messages.message_search)."""
        alias = "m"
        parts = [f"{alias}.first_seen >= %s AND {alias}.first_seen {'<' if end_open else '<='} %s"]
        params: list[Any] = [start or self.start, end or self.end]
        if self.direction:
            parts.append(f"{alias}.direction = %s")
            params.append(self.direction)
        if self.domain:
            parts.append(
                f"(lower(split_part({alias}.sender, '@', 2)) = %s"
                f" OR lower(split_part({alias}.first_recipient, '@', 2)) = %s)"
            )
            params += [self.domain.lower(), self.domain.lower()]
        if self.search:
            if pool is None:
                raise ValueError("a search filter needs the pool")
            condition, search_params = messages.message_search(pool, self.search)
            parts.append(condition)
            params += search_params
        return sql.SQL(" AND ".join(parts)), params


def _hour_ceil(value: datetime) -> datetime:
    floor = value.replace(minute=0, second=0, microsecond=0)
    return floor if floor == value else floor + timedelta(hours=1)


def _message_rows(pool: ConnectionPool, scope: Scope) -> tuple[sql.Composable, list[Any]]:
    """(t, direction, status, spam, n) for the scope: whole hours from message_rollup, the partial
    hours at both ends (and anything the rollup cannot filter: search, non-local domains) from messages."""
    domain = (scope.domain or "").lower()
    full_start, full_end = _hour_ceil(scope.start), scope.end.replace(minute=0, second=0, microsecond=0)
    rollup = not scope.search and (not domain or domain in scope.local) and full_end > full_start
    if not rollup:
        where, params = scope.message_filter(pool)
        return (
            sql.SQL(
                "SELECT m.first_seen AS t, m.direction, m.final_status AS status, m.is_spam AS spam, 1 AS n "
                "FROM messages m WHERE "
            )
            + where,
            params,
        )
    head, head_params = scope.message_filter(end=full_start, end_open=True)
    tail, tail_params = scope.message_filter(start=full_end)
    raw = sql.SQL("SELECT m.first_seen, m.direction, m.final_status, m.is_spam, 1 FROM messages m WHERE ")
    direction = sql.SQL(" AND r.direction = %s") if scope.direction else sql.SQL("")
    query = (
        raw
        + sql.SQL("(")
        + head
        + sql.SQL(") UNION ALL ")
        + raw
        + sql.SQL("(")
        + tail
        + sql.SQL(") UNION ALL ")
        + sql.SQL(
            "SELECT r.bucket, r.direction, r.status, r.spam, r.messages FROM message_rollup r "
            "WHERE r.domain = %s AND r.bucket >= %s AND r.bucket < %s AND r.messages <> 0"
        )
        + direction
    )
    params = [*head_params, *tail_params, domain, full_start, full_end, *([scope.direction] if scope.direction else [])]
    return sql.SQL("SELECT * FROM (") + query + sql.SQL(") AS x (t, direction, status, spam, n)"), params


def _counts(columns: dict[str, str]) -> sql.Composable:
    return sql.SQL(", ").join(
        sql.SQL("coalesce(sum(n) FILTER (WHERE {}), 0)::bigint AS {}").format(sql.SQL(cond), sql.Identifier(name))
        for name, cond in columns.items()
    )


_BY_STATUS = {
    "total": "true",
    **{s: f"status = '{s}'" for s in STATUSES},
    "spam": "spam",
}
_BY_DIRECTION = {d: f"direction = '{d}'" for d in DIRECTIONS}


def _series(pool: ConnectionPool, scope: Scope, step: int, columns: dict[str, str]) -> list[dict[str, Any]]:
    """Messages per bucket counted by `columns`; the caller zero-fills empty buckets."""
    rows, params = _message_rows(pool, scope)
    query = (
        sql.SQL("SELECT date_bin(%s, t, 'epoch') AS time, ")
        + _counts(columns)
        + sql.SQL(" FROM (")
        + rows
        + sql.SQL(") q GROUP BY 1 ORDER BY 1")
    )
    return reads.rows(pool, query, [reads.bin_step(step), *params])


def status_series(pool: ConnectionPool, scope: Scope, step: int) -> list[dict[str, Any]]:
    """Messages per bucket by final status (and spam)."""
    return _series(pool, scope, step, _BY_STATUS)


def direction_series(pool: ConnectionPool, scope: Scope, step: int) -> list[dict[str, Any]]:
    return _series(pool, scope, step, _BY_DIRECTION)


def delay_histogram(pool: ConnectionPool, scope: Scope, step: int) -> list[dict[str, Any]]:
    """Delivered-recipient delay histogram (non-cumulative `count` per upper bound `le`) per bucket,
    from the hourly delay_rollup: hours overlapping the range count whole."""
    direction = "AND direction = %s" if scope.direction else ""
    return reads.rows(
        pool,
        f"""SELECT date_bin(%s, bucket, 'epoch') AS time, le, sum(count)::bigint AS count FROM delay_rollup
            WHERE bucket >= date_trunc('hour', %s::timestamptz) AND bucket <= %s {direction}
            GROUP BY 1, 2 ORDER BY 1, 2""",
        [reads.bin_step(step), scope.start, scope.end, *([scope.direction] if scope.direction else [])],
    )


def summary(pool: ConnectionPool, scope: Scope) -> dict[str, Any]:
    rows, params = _message_rows(pool, scope)
    columns = {**_BY_DIRECTION, **_BY_STATUS}
    return reads.rows(pool, sql.SQL("SELECT ") + _counts(columns) + sql.SQL(" FROM (") + rows + sql.SQL(") q"), params)[
        0
    ]


def delay_series(pool: ConnectionPool, scope: Scope, step: int) -> list[dict[str, Any]]:
    """Delivery delay percentiles (seconds) of delivered recipients per bucket."""
    where, params = scope.message_filter(pool)
    query = (
        sql.SQL(
            """SELECT date_bin(%s, r.last_at, 'epoch') AS time,
                      percentile_cont(0.5) WITHIN GROUP (ORDER BY r.delay) AS p50,
                      percentile_cont(0.9) WITHIN GROUP (ORDER BY r.delay) AS p90,
                      percentile_cont(0.99) WITHIN GROUP (ORDER BY r.delay) AS p99
               FROM messages m JOIN message_recipients r ON r.message_pk = m.id
               WHERE r.status = 'delivered' AND r.delay IS NOT NULL AND """
        )
        + where
        + sql.SQL(" GROUP BY 1 ORDER BY 1")
    )
    return reads.rows(pool, query, [reads.bin_step(step), *params])


# top lists: name -> (expression grouped on, extra condition)
_TOP_MESSAGES = {
    "senders": ("lower(m.sender)", "m.sender <> ''"),
    "recipients": ("lower(m.first_recipient)", "m.first_recipient IS NOT NULL"),
    "sender_domains": ("lower(split_part(m.sender, '@', 2))", "m.sender LIKE '%%@%%'"),
    "recipient_domains": ("lower(split_part(m.first_recipient, '@', 2))", "m.first_recipient LIKE '%%@%%'"),
    "users": ("lower(m.sasl_username)", "m.sasl_username IS NOT NULL"),
    "reject_reasons": ("coalesce(m.reject_class, 'other')", "m.final_status = 'rejected'"),
}


# Top lists read whole UTC days from the monthly running totals when the range spans at least this
# long and no filter narrows it; shorter or filtered ranges scan the messages in range.
FACET_MIN_RANGE = timedelta(days=3)


def _days(counts: str) -> str:
    """The count of the range's days within one month row of message_facets."""
    return (
        f"mg_cum(f.{counts}, f.first_day, CASE WHEN f.month = %(last_month)s THEN %(last_day)s ELSE 31 END)"
        f" - mg_cum(f.{counts}, f.first_day, CASE WHEN f.month = %(first_month)s THEN %(first_day)s - 1 ELSE 0 END)"
    )


# Whole UTC days of the range from the monthly running totals: rank on the message count alone
# (narrow rows, one hash aggregate), then the other counts of the names that made the list.
_TOP_FACETS = f"""
    SELECT r.name, r.count::bigint AS count, c.delivered, c.failed, c.spam
    FROM (
        SELECT f.name, sum({_days("messages")}) AS count
        FROM message_facets f
        WHERE f.facet = %(facet)s AND f.month = ANY(%(months)s)
        GROUP BY f.name HAVING sum({_days("messages")}) > 0 ORDER BY count DESC, f.name LIMIT %(limit)s
    ) r
    CROSS JOIN LATERAL (
        SELECT sum({_days("delivered")})::bigint AS delivered, sum({_days("failed")})::bigint AS failed,
               sum({_days("spam")})::bigint AS spam
        FROM message_facets f
        WHERE f.facet = %(facet)s AND f.month = ANY(%(months)s) AND f.name = r.name
    ) c
    ORDER BY r.count DESC, r.name"""


def _facet_range(facet: str, start: datetime, end: datetime, limit: int) -> dict[str, Any]:
    """Query parameters: the UTC months and days of the month the range starts and ends in."""
    first, last = start.astimezone(UTC), end.astimezone(UTC)
    months = [first.replace(day=1, hour=0, minute=0, second=0, microsecond=0)]
    while (months[-1].year, months[-1].month) < (last.year, last.month):
        following = months[-1] + timedelta(days=32)
        months.append(following.replace(day=1))
    return {
        "facet": facet,
        "months": months,
        "first_month": months[0],
        "first_day": first.day,
        "last_month": months[-1],
        "last_day": last.day,
        "limit": limit,
    }


def top_messages(pool: ConnectionPool, scope: Scope, what: str, limit: int) -> list[dict[str, Any]]:
    """Most frequent senders, recipients, domains... with delivered/failed/spam counts."""
    if scope.end - scope.start >= FACET_MIN_RANGE and not (scope.direction or scope.domain or scope.search):
        with pool.connection() as conn, conn.cursor(row_factory=dict_row) as cur:
            cur.execute("SET LOCAL work_mem = '64MB'")  # one in-memory hash aggregate over the names
            return cur.execute(_TOP_FACETS, _facet_range(what, scope.start, scope.end, limit)).fetchall()
    expression, condition = _TOP_MESSAGES[what]
    where, params = scope.message_filter(pool)
    query = (
        sql.SQL(
            f"""SELECT {expression} AS name, count(*) AS count,
                   count(*) FILTER (WHERE m.final_status = 'delivered') AS delivered,
                   count(*) FILTER (WHERE m.final_status IN ('bounced', 'expired', 'rejected')) AS failed,
                   count(*) FILTER (WHERE m.is_spam) AS spam
            FROM messages m WHERE {condition} AND """
        )
        + where
        + sql.SQL(" GROUP BY 1 ORDER BY count(*) DESC, 1 LIMIT %s")
    )
    return reads.rows(pool, query, [*params, limit])


def top_delivery_reasons(pool: ConnectionPool, start: datetime, end: datetime, status: str, limit: int) -> list[dict]:
    """Most frequent remote replies of deferred or bounced delivery attempts (all directions)."""
    if end - start >= FACET_MIN_RANGE:
        return reads.rows(
            pool,
            """SELECT reason, sum(count)::bigint AS count FROM reason_rollup
               WHERE status = %s AND bucket >= date_trunc('day', %s::timestamptz) AND bucket <= %s
               GROUP BY reason ORDER BY count DESC, reason LIMIT %s""",
            (status, start, end, limit),
        )
    mask = REASON_MASK.format(reply="reply", dsn="dsn")
    return reads.rows(
        pool,
        f"""SELECT {mask} AS reason, count(*) AS count FROM postfix_lines
            WHERE status = %s AND kind = 'delivery' AND logged_at >= %s AND logged_at <= %s
            GROUP BY 1 ORDER BY count(*) DESC, 1 LIMIT %s""",
        (status, start, end, limit),
    )


def annotations(pool: ConnectionPool, start: datetime, end: datetime) -> list[dict[str, Any]]:
    """Notable events: netfilter bans, ingestion gaps, mailcow container (re)starts."""
    return reads.rows(
        pool,
        """SELECT logged_at AS time, NULL::timestamptz AS time_end, 'netfilter ban ' || coalesce(network, ip) AS title,
                  message AS text, 'netfilter,ban' AS tags
           FROM netfilter_lines WHERE kind = 'ban' AND logged_at >= %(s)s AND logged_at <= %(e)s
           UNION ALL
           SELECT gap_start, gap_end, 'ingest gap (' || source || ')',
                  'mailcow rotated ' || source || ' lines away before they were read', 'ingest,gap'
           FROM ingest_gaps WHERE gap_end >= %(s)s AND gap_start <= %(e)s
           UNION ALL
           SELECT (c.value ->> 'started_at')::timestamptz, NULL, c.key || ' started',
                  'container ' || c.key || ' is ' || coalesce(c.value ->> 'state', 'unknown'), 'mailcow,container'
           FROM mailcow_snapshots s, jsonb_each(s.data) c
           WHERE s.kind = 'containers' AND jsonb_typeof(s.data) = 'object' AND c.value ? 'started_at'
             AND (c.value ->> 'started_at')::timestamptz BETWEEN %(s)s AND %(e)s
           ORDER BY 1 LIMIT 1000""",
        {"s": start, "e": end},
    )
