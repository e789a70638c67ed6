"""Read queries behind the Grafana datasource: time buckets, top lists, annotations, variables.

Every query is bounded by the dashboard's time range and uses the time indexes; buckets come
from date_bin over the rows in range (no generate_series join per row).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from psycopg import sql
from psycopg.rows import dict_row
from psycopg_pool import ConnectionPool

from exporter.store import logs as queries
from exporter.store.correlation.batch import REASON_MASK

STATUSES = ("delivered", "deferred", "bounced", "rejected", "expired", "discarded", "queued")
DIRECTIONS = ("inbound", "outbound", "internal")
RSPAMD_ACTIONS = ("no action", "greylist", "add header", "rewrite subject", "soft reject", "reject")


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
        """Conditions on `messages m`; a search needs the pool to pick its plan (queries.message_search)."""
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
            condition, search_params = queries.message_search(pool, self.search)
            parts.append(condition)
            params += search_params
        return sql.SQL(" AND ".join(parts)), params


def _rows(pool: ConnectionPool, query: sql.Composable | str, params: Sequence[Any] | dict) -> list[dict[str, Any]]:
    with pool.connection() as conn, conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(query, params).fetchall()


def _step(seconds: int) -> str:
    return f"{max(1, seconds)} seconds"


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
    return _rows(pool, query, [_step(step), *params])


def status_series(pool: ConnectionPool, scope: Scope, step: int) -> list[dict[str, Any]]:
    """Messages per bucket by final status (and spam)."""
    return _series(pool, scope, step, _BY_STATUS)


def direction_series(pool: ConnectionPool, scope: Scope, step: int) -> list[dict[str, Any]]:
    return _series(pool, scope, step, _BY_DIRECTION)


def delay_histogram(pool: ConnectionPool, scope: Scope, step: int) -> list[dict[str, Any]]:
    """Delivered-recipient delay histogram (non-cumulative `count` per upper bound `le`) per bucket,
    from the hourly delay_rollup: hours overlapping the range count whole."""
    direction = "AND direction = %s" if scope.direction else ""
    return _rows(
        pool,
        f"""SELECT date_bin(%s, bucket, 'epoch') AS time, le, sum(count)::bigint AS count FROM delay_rollup
            WHERE bucket >= date_trunc('hour', %s::timestamptz) AND bucket <= %s {direction}
            GROUP BY 1, 2 ORDER BY 1, 2""",
        [_step(step), scope.start, scope.end, *([scope.direction] if scope.direction else [])],
    )


def summary(pool: ConnectionPool, scope: Scope) -> dict[str, Any]:
    rows, params = _message_rows(pool, scope)
    columns = {**_BY_DIRECTION, **_BY_STATUS}
    return _rows(pool, sql.SQL("SELECT ") + _counts(columns) + sql.SQL(" FROM (") + rows + sql.SQL(") q"), params)[0]


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
    return _rows(pool, query, [_step(step), *params])


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
    return _rows(pool, query, [*params, limit])


def top_delivery_reasons(pool: ConnectionPool, start: datetime, end: datetime, status: str, limit: int) -> list[dict]:
    """Most frequent remote replies of deferred or bounced delivery attempts (all directions)."""
    if end - start >= FACET_MIN_RANGE:
        return _rows(
            pool,
            """SELECT reason, sum(count)::bigint AS count FROM reason_rollup
               WHERE status = %s AND bucket >= date_trunc('day', %s::timestamptz) AND bucket <= %s
               GROUP BY reason ORDER BY count DESC, reason LIMIT %s""",
            (status, start, end, limit),
        )
    mask = REASON_MASK.format(reply="reply", dsn="dsn")
    return _rows(
        pool,
        f"""SELECT {mask} AS reason, count(*) AS count FROM postfix_lines
            WHERE status = %s AND kind = 'delivery' AND logged_at >= %s AND logged_at <= %s
            GROUP BY 1 ORDER BY count(*) DESC, 1 LIMIT %s""",
        (status, start, end, limit),
    )


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
    return _rows(pool, query, [_step(step), start, end])


def score_histogram(pool: ConnectionPool, start: datetime, end: datetime) -> list[dict[str, Any]]:
    return _rows(
        pool,
        """SELECT greatest(-10, least(30, floor(score)))::int AS score, count(*) AS count,
                  count(*) FILTER (WHERE is_spam) AS spam
           FROM rspamd_rows WHERE logged_at >= %s AND logged_at <= %s GROUP BY 1 ORDER BY 1""",
        (start, end),
    )


def top_symbols(pool: ConnectionPool, start: datetime, end: datetime, limit: int) -> list[dict[str, Any]]:
    return _rows(
        pool,
        """SELECT s.key AS symbol, count(*) AS count, round(avg((s.value ->> 'score')::float8)::numeric, 2)::float8
                  AS avg_score
           FROM rspamd_rows r, jsonb_each(r.symbols) s
           WHERE r.logged_at >= %s AND r.logged_at <= %s AND coalesce((s.value ->> 'score')::float8, 0) > 0
           GROUP BY s.key ORDER BY count(*) DESC, s.key LIMIT %s""",
        (start, end, limit),
    )


def netfilter_series(pool: ConnectionPool, start: datetime, end: datetime, step: int) -> list[dict[str, Any]]:
    return _rows(
        pool,
        """SELECT date_bin(%s, logged_at, 'epoch') AS time,
                  count(*) FILTER (WHERE kind = 'warning') AS warnings,
                  count(*) FILTER (WHERE kind = 'ban') AS bans,
                  count(*) FILTER (WHERE kind = 'unban') AS unbans
           FROM netfilter_lines WHERE logged_at >= %s AND logged_at <= %s GROUP BY 1 ORDER BY 1""",
        (_step(step), start, end),
    )


def top_blocked_ips(pool: ConnectionPool, start: datetime, end: datetime, limit: int) -> list[dict[str, Any]]:
    return _rows(
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
    return _rows(
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


def annotations(pool: ConnectionPool, start: datetime, end: datetime) -> list[dict[str, Any]]:
    """Notable events: netfilter bans, ingestion gaps, mailcow container (re)starts."""
    return _rows(
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


def domains(pool: ConnectionPool, configured: Sequence[str]) -> list[str]:
    rows = _rows(pool, "SELECT domain FROM mailcow_domains ORDER BY domain", ())
    return sorted({*(r["domain"] for r in rows), *(d.lower() for d in configured)})


def mailboxes(pool: ConnectionPool, start: datetime, end: datetime, limit: int = 1000) -> list[str]:
    """Authenticated senders seen in the range (mailcow's mailbox list is synced by a later job)."""
    rows = _rows(
        pool,
        """SELECT DISTINCT lower(sasl_username) AS name FROM messages
           WHERE sasl_username IS NOT NULL AND first_seen >= %s AND first_seen <= %s ORDER BY 1 LIMIT %s""",
        (start, end, limit),
    )
    return [r["name"] for r in rows]


def api_health(pool: ConnectionPool) -> list[dict[str, Any]]:
    return _rows(pool, "SELECT * FROM mailcow_api_health ORDER BY endpoint_group", ())
