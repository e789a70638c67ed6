"""Read queries behind the Grafana datasource: time buckets, top lists, annotations, variables.

Every query is bounded by the dashboard's time range and uses the time indexes; buckets come
from date_bin over the rows in range (no generate_series join per row).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from psycopg import sql
from psycopg.rows import dict_row
from psycopg_pool import ConnectionPool

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

    def message_filter(self, alias: str = "m") -> tuple[sql.Composable, list[Any]]:
        parts = [f"{alias}.first_seen >= %s AND {alias}.first_seen <= %s"]
        params: list[Any] = [self.start, self.end]
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
            parts.append(
                f"{alias}.id = ANY(ARRAY(SELECT id FROM messages WHERE mg_search_vector(search_text)"
                " @@ mg_search_query(%s)))"
            )
            params.append(self.search)
        return sql.SQL(" AND ".join(parts)), params


def _rows(pool: ConnectionPool, query: sql.Composable | str, params: Sequence[Any] | dict) -> list[dict[str, Any]]:
    with pool.connection() as conn, conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(query, params).fetchall()


def _step(seconds: int) -> str:
    return f"{max(1, seconds)} seconds"


def status_series(pool: ConnectionPool, scope: Scope, step: int) -> list[dict[str, Any]]:
    """Messages per bucket by final status (and spam), zero-filled by the caller's bucket list."""
    where, params = scope.message_filter()
    columns = sql.SQL(", ").join(
        sql.SQL("count(*) FILTER (WHERE m.final_status = {}) AS {}").format(sql.Literal(s), sql.Identifier(s))
        for s in STATUSES
    )
    query = (
        sql.SQL("SELECT date_bin(%s, m.first_seen, 'epoch') AS time, count(*) AS total, ")
        + columns
        + sql.SQL(", count(*) FILTER (WHERE m.is_spam) AS spam FROM messages m WHERE ")
        + where
        + sql.SQL(" GROUP BY 1 ORDER BY 1")
    )
    return _rows(pool, query, [_step(step), *params])


def direction_series(pool: ConnectionPool, scope: Scope, step: int) -> list[dict[str, Any]]:
    where, params = scope.message_filter()
    columns = sql.SQL(", ").join(
        sql.SQL("count(*) FILTER (WHERE m.direction = {}) AS {}").format(sql.Literal(d), sql.Identifier(d))
        for d in DIRECTIONS
    )
    query = (
        sql.SQL("SELECT date_bin(%s, m.first_seen, 'epoch') AS time, ")
        + columns
        + sql.SQL(" FROM messages m WHERE ")
        + where
        + sql.SQL(" GROUP BY 1 ORDER BY 1")
    )
    return _rows(pool, query, [_step(step), *params])


def delay_series(pool: ConnectionPool, scope: Scope, step: int) -> list[dict[str, Any]]:
    """Delivery delay percentiles (seconds) of delivered recipients per bucket."""
    where, params = scope.message_filter()
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


def summary(pool: ConnectionPool, scope: Scope) -> dict[str, Any]:
    where, params = scope.message_filter()
    columns = sql.SQL(", ").join(
        [
            *(
                sql.SQL("count(*) FILTER (WHERE m.direction = {}) AS {}").format(sql.Literal(d), sql.Identifier(d))
                for d in DIRECTIONS
            ),
            *(
                sql.SQL("count(*) FILTER (WHERE m.final_status = {}) AS {}").format(sql.Literal(s), sql.Identifier(s))
                for s in STATUSES
            ),
        ]
    )
    query = (
        sql.SQL("SELECT count(*) AS total, ")
        + columns
        + sql.SQL(", count(*) FILTER (WHERE m.is_spam) AS spam FROM messages m WHERE ")
        + where
    )
    return _rows(pool, query, params)[0]


# top lists: name -> (expression grouped on, extra condition)
_TOP_MESSAGES = {
    "senders": ("lower(m.sender)", "m.sender <> ''"),
    "recipients": ("lower(m.first_recipient)", "m.first_recipient IS NOT NULL"),
    "sender_domains": ("lower(split_part(m.sender, '@', 2))", "m.sender LIKE '%%@%%'"),
    "recipient_domains": ("lower(split_part(m.first_recipient, '@', 2))", "m.first_recipient LIKE '%%@%%'"),
    "users": ("lower(m.sasl_username)", "m.sasl_username IS NOT NULL"),
    "reject_reasons": ("coalesce(m.reject_class, 'other')", "m.final_status = 'rejected'"),
}


def top_messages(pool: ConnectionPool, scope: Scope, what: str, limit: int) -> list[dict[str, Any]]:
    """Most frequent senders, recipients, domains... with delivered/failed counts."""
    expression, condition = _TOP_MESSAGES[what]
    where, params = scope.message_filter()
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


def top_delivery_reasons(pool: ConnectionPool, scope: Scope, status: str, limit: int) -> list[dict[str, Any]]:
    """Most frequent remote replies of deferred or bounced recipients (numbers masked so they group)."""
    where, params = scope.message_filter()
    query = (
        sql.SQL(
            """SELECT left(regexp_replace(coalesce(r.reply, r.dsn, 'unknown'), '[0-9]+', 'N', 'g'), 200) AS reason,
                  count(*) AS count, count(DISTINCT lower(split_part(r.recipient, '@', 2))) AS domains
           FROM messages m JOIN message_recipients r ON r.message_pk = m.id
           WHERE r.status = %s AND """
        )
        + where
        + sql.SQL(" GROUP BY 1 ORDER BY count(*) DESC, 1 LIMIT %s")
    )
    return _rows(pool, query, [status, *params, limit])


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


def snapshot(pool: ConnectionPool, kind: str) -> tuple[Any, datetime] | None:
    rows = _rows(pool, "SELECT data, fetched_at FROM mailcow_snapshots WHERE kind = %s", (kind,))
    return (rows[0]["data"], rows[0]["fetched_at"]) if rows else None


def api_health(pool: ConnectionPool) -> list[dict[str, Any]]:
    return _rows(pool, "SELECT * FROM mailcow_api_health ORDER BY endpoint_group", ())
