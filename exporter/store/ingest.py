"""Loading fetched log lines, per-source fetch state, gaps and retention."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg
from psycopg import sql
from psycopg.rows import class_row
from psycopg_pool import ConnectionPool

from exporter.parsers import netfilter, rspamd
from exporter.parsers.postfix import EVENT_FIELDS
from exporter.parsers.words import words_literal
from exporter.store import counters

POSTFIX_COLUMNS = ("logged_at", "program", "priority", "message", "line_key", "occurrence", *EVENT_FIELDS)
RSPAMD_COLUMNS = (*rspamd.ROW_FIELDS, "line_key", "occurrence")
NETFILTER_COLUMNS = ("logged_at", "priority", "message", *netfilter.EVENT_FIELDS, "line_key", "occurrence")
UNPARSED_COLUMNS = ("source", "item", "error", "line_key", "occurrence")
TABLES = {
    "postfix": ("postfix_lines", POSTFIX_COLUMNS, ("logged_at", "line_key", "occurrence")),
    "rspamd": ("rspamd_rows", RSPAMD_COLUMNS, ("logged_at", "line_key", "occurrence")),
    "netfilter": ("netfilter_lines", NETFILTER_COLUMNS, ("line_key", "occurrence")),
    "unparsed": ("unparsed_lines", UNPARSED_COLUMNS, ("source", "line_key", "occurrence")),
}
# New Postfix lines have their search words stored by blocks of consecutive ids (postfix_line_words).
_AT, _MESSAGE, _KEY, _OCCURRENCE = (
    POSTFIX_COLUMNS.index(c) for c in ("logged_at", "message", "line_key", "occurrence")
)
BLOCK_LINES = 512
BLOCK_CHARS = 900_000  # the lexemes of one tsvector must stay under 1 MB: no line's words outweigh its text


# Counters of new netfilter lines, read from the rows the INSERT returns (`ins`). Postfix and
# rspamd lines are counted by correlation, which sees each new line exactly once.
_COUNTED_ON_LOAD = {
    "netfilter": """
        SELECT CASE kind WHEN 'warning' THEN 'netfilter_warnings' WHEN 'ban' THEN 'netfilter_bans'
                         ELSE 'netfilter_unbans' END,
               CASE kind WHEN 'warning' THEN jsonb_build_object('rule', coalesce(rule_id::text, 'unknown'))
                         ELSE '{}'::jsonb END,
               1
        FROM ins WHERE kind IN ('warning', 'ban', 'unban')""",
}


def load(conn: psycopg.Connection, kind: str, rows: Sequence[Sequence[Any]]) -> int:
    """Bulk-load rows (in log order, oldest first) into one table; return how many were new.

    Loading the same rows again inserts nothing (nor counts anything), and ids follow the log.
    """
    if not rows:
        return 0
    if kind in _COPIED_DIRECTLY:
        # One writer at a time, until its commit (the worker and an import-logs run may overlap): the
        # lines stored meanwhile are never in the way of a COPY, a block of search words holds only
        # its own ids, and ids are committed in order, so correlation's watermark never passes a line
        # that is not committed yet.
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (LINE_WRITER_LOCK_KEY,))
        return _copy_new(conn, kind, rows)
    return _insert_new(conn, kind, rows)


LINE_WRITER_LOCK_KEY = 0x6D63_6C77  # "mclw"
# Tables whose identity starts with the line's time: the lines already stored for a window are
# one range read, and the rest is COPYed straight into the table.
_COPIED_DIRECTLY = ("postfix", "rspamd")


def _copy_new(conn: psycopg.Connection, kind: str, rows: Sequence[Sequence[Any]]) -> int:
    """COPY the rows not stored yet straight into the table (no staging table, no per-row conflict
    check): half the cost of `_insert_new` for the same lines. Binary COPY: neither side formats
    or parses each value as text."""
    table, columns, identity = TABLES[kind]
    at, key, occurrence = (columns.index(c) for c in identity)
    times = [row[at] for row in rows]
    stored = set(
        conn.execute(
            sql.SQL("SELECT logged_at, line_key, occurrence FROM {} WHERE logged_at BETWEEN %s AND %s").format(
                sql.Identifier(table)
            ),
            (min(times), max(times)),
        ).fetchall()
    )
    new = [row for row in rows if (row[at], row[key], row[occurrence]) not in stored] if stored else rows
    cols = sql.SQL(", ").join(map(sql.Identifier, columns))
    statement = sql.SQL("COPY {} ({}) FROM STDIN (FORMAT BINARY)").format(sql.Identifier(table), cols)
    types = _column_types(conn, table, columns)
    with conn.cursor().copy(statement) as copy:
        copy.set_types(types)
        for row in new:
            copy.write_row(row)
    if kind == "postfix":
        _index_words(conn, new)
    return len(new)


_TYPES: dict[str, list[int]] = {}


def _column_types(conn: psycopg.Connection, table: str, columns: Sequence[str]) -> list[int]:
    """The type oids of a table's columns (what a binary COPY must send), read once per process."""
    if table not in _TYPES:
        oids = dict(
            conn.execute(
                "SELECT attname, atttypid::int FROM pg_attribute WHERE attrelid = %s::regclass AND attnum > 0",
                (table,),
            ).fetchall()
        )
        _TYPES[table] = [oids[c] for c in columns]
    return _TYPES[table]


def _insert_new(conn: psycopg.Connection, kind: str, rows: Sequence[Sequence[Any]]) -> int:
    """COPY into a temporary table, then one INSERT … ON CONFLICT DO NOTHING ordered like the log."""
    table, columns, conflict = TABLES[kind]
    temp = sql.Identifier(f"incoming_{table}")
    cols = sql.SQL(", ").join(map(sql.Identifier, columns))
    conn.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(temp))
    conn.execute(
        sql.SQL("CREATE TEMP TABLE {} ON COMMIT DROP AS SELECT {}, 0::bigint AS ord FROM {} WITH NO DATA").format(
            temp, cols, sql.Identifier(table)
        )
    )
    with conn.cursor().copy(sql.SQL("COPY {} ({}, ord) FROM STDIN").format(temp, cols)) as copy:
        for ord_, row in enumerate(rows):
            copy.write_row((*row, ord_))
    insert = sql.SQL("INSERT INTO {} ({}) SELECT {} FROM {} ORDER BY ord ON CONFLICT ({}) DO NOTHING").format(
        sql.Identifier(table), cols, cols, temp, sql.SQL(", ").join(map(sql.Identifier, conflict))
    )
    if kind not in _COUNTED_ON_LOAD:
        return conn.execute(insert).rowcount
    new_rows = sql.SQL("CREATE TEMP TABLE ins ON COMMIT DROP AS WITH i AS ({} RETURNING *) SELECT * FROM i")
    conn.execute(new_rows.format(insert))
    counters.add(conn, _COUNTED_ON_LOAD[kind])
    inserted = conn.execute("SELECT count(*) FROM ins").fetchone()[0]
    conn.execute("DROP TABLE ins")
    return inserted


def _index_words(conn: psycopg.Connection, rows: Sequence[Sequence[Any]]) -> None:
    """Store the search words of new Postfix lines (rows in id order, just stored) by blocks of
    consecutive lines: a block's row holds its id range and every word of its lines."""
    if not rows:
        return
    blocks: list[tuple[int, int]] = []  # (first, last) row of each block
    first, chars = 0, 0
    for n, row in enumerate(rows):
        size = len(row[_MESSAGE])
        if n > first and (n - first == BLOCK_LINES or chars + size > BLOCK_CHARS):
            blocks.append((first, n - 1))
            first, chars = n, 0
        chars += size
    blocks.append((first, len(rows) - 1))
    ends = sorted({n for block in blocks for n in block})  # only where blocks begin and end
    found = conn.execute(
        """SELECT t.id FROM unnest(%s::timestamptz[], %s::bytea[], %s::int[]) WITH ORDINALITY
                              AS k (logged_at, line_key, occurrence, n)
           JOIN postfix_lines t USING (logged_at, line_key, occurrence) ORDER BY k.n""",
        [[rows[n][i] for n in ends] for i in (_AT, _KEY, _OCCURRENCE)],
    ).fetchall()
    id_of = {n: id_ for n, (id_,) in zip(ends, found, strict=True)}
    with conn.cursor().copy("COPY postfix_line_words (first_id, last_id, words) FROM STDIN") as copy:
        for first, last in blocks:
            literal = words_literal(row[_MESSAGE] for row in rows[first : last + 1])
            if len(literal) > BLOCK_CHARS:  # one line of more than BLOCK_CHARS: its first words only
                literal = literal[:BLOCK_CHARS].rsplit(" ", 1)[0]
            copy.write_row((id_of[first], id_of[last], literal))


def newest_stored(conn: psycopg.Connection, source: str) -> datetime | None:
    row = conn.execute("SELECT newest_line_at FROM ingest_state WHERE source = %s", (source,)).fetchone()
    return row[0] if row else None


def stored_keys(conn: psycopg.Connection, kind: str, at: datetime, keys: Sequence[tuple[bytes, int]]) -> int:
    """How many of the (line_key, occurrence) pairs of lines logged at `at` are already stored; a list
    kept only as raw lines (dovecot, sogo, …) is looked up in raw_lines (its keys name the list)."""
    if not keys:
        return 0
    table, column = (TABLES[kind][0], "logged_at") if kind in TABLES else ("raw_lines", "at")
    return conn.execute(
        sql.SQL(
            "SELECT count(*) FROM {} t JOIN unnest(%s::bytea[], %s::int[]) AS k(line_key, occurrence) "
            "USING (line_key, occurrence) WHERE t.{} = %s"
        ).format(sql.Identifier(table), sql.Identifier(column)),
        ([k for k, _ in keys], [o for _, o in keys], at),
    ).fetchone()[0]


def save_state(
    conn: psycopg.Connection,
    source: str,
    at: datetime,
    *,
    newest: datetime | None,
    oldest: datetime | None,
    fetched: int,
    inserted: int,
    unparsed: int = 0,
    unparsed_new: int = 0,
    error: str | None = None,
    interval: float | None = None,
    rate: float | None = None,
) -> None:
    """A successful fetch: `unparsed` of its `fetched` items were unreadable, `unparsed_new` of them
    stored for the first time (the counter), `error` says what was wrong with them (else None)."""
    conn.execute(
        """INSERT INTO ingest_state AS s (source, last_fetch_at, last_success_at, newest_line_at, oldest_line_at,
                                          lines_total, last_fetched, last_inserted, last_error, interval_seconds,
                                          lines_per_second, unparsed_total, last_unparsed)
           VALUES (%(source)s, %(at)s, %(at)s, %(newest)s, %(oldest)s, %(inserted)s, %(fetched)s, %(inserted)s,
                   %(error)s, %(interval)s, %(rate)s, %(unparsed_new)s, %(unparsed)s)
           ON CONFLICT (source) DO UPDATE SET
               last_fetch_at = EXCLUDED.last_fetch_at,
               last_success_at = EXCLUDED.last_success_at,
               newest_line_at = GREATEST(s.newest_line_at, EXCLUDED.newest_line_at),
               oldest_line_at = LEAST(s.oldest_line_at, EXCLUDED.oldest_line_at),
               lines_total = s.lines_total + EXCLUDED.lines_total,
               last_fetched = EXCLUDED.last_fetched,
               last_inserted = EXCLUDED.last_inserted,
               last_error = EXCLUDED.last_error,
               unparsed_total = s.unparsed_total + EXCLUDED.unparsed_total,
               last_unparsed = EXCLUDED.last_unparsed,
               interval_seconds = coalesce(EXCLUDED.interval_seconds, s.interval_seconds),
               lines_per_second = coalesce(EXCLUDED.lines_per_second, s.lines_per_second)""",
        {
            "source": source,
            "at": at,
            "newest": newest,
            "oldest": oldest,
            "fetched": fetched,
            "inserted": inserted,
            "unparsed": unparsed,
            "unparsed_new": unparsed_new,
            "error": error,
            "interval": interval,
            "rate": rate,
        },
    )


def set_interval(pool: ConnectionPool, source: str, interval: float, rate: float | None) -> None:
    with pool.connection() as conn:
        conn.execute(
            "UPDATE ingest_state SET interval_seconds = %s, lines_per_second = coalesce(%s, lines_per_second) "
            "WHERE source = %s",
            (interval, rate, source),
        )


def record_gap(conn: psycopg.Connection, source: str, start: datetime, end: datetime) -> None:
    conn.execute("INSERT INTO ingest_gaps (source, gap_start, gap_end) VALUES (%s, %s, %s)", (source, start, end))
    conn.execute("UPDATE ingest_state SET gaps_total = gaps_total + 1 WHERE source = %s", (source,))


def record_fetch_error(pool: ConnectionPool, source: str, at: datetime, error: str) -> None:
    with pool.connection() as conn:
        conn.execute(
            """INSERT INTO ingest_state (source, last_fetch_at, last_error) VALUES (%s, %s, %s)
               ON CONFLICT (source) DO UPDATE SET last_fetch_at = EXCLUDED.last_fetch_at,
                                                  last_error = EXCLUDED.last_error""",
            (source, at, error),
        )


@dataclass(frozen=True)
class IngestStatus:
    """One log source's fetching and loading so far, as /api/info, /api/settings/info and Grafana show it."""

    source: str
    last_fetch_at: datetime | None
    last_success_at: datetime | None
    newest_line_at: datetime | None
    oldest_line_at: datetime | None
    lines_total: int
    interval_seconds: float | None
    lines_per_second: float | None
    gaps_total: int
    unparsed_total: int
    last_unparsed: int
    last_error: str | None


def ingest_statuses(pool: ConnectionPool) -> list[IngestStatus]:
    with pool.connection() as conn, conn.cursor(row_factory=class_row(IngestStatus)) as cur:
        return cur.execute(
            """SELECT source, last_fetch_at, last_success_at, newest_line_at, oldest_line_at, lines_total,
                      interval_seconds, lines_per_second, gaps_total, unparsed_total, last_unparsed, last_error
               FROM ingest_state ORDER BY source"""
        ).fetchall()


@dataclass(frozen=True)
class Gap:
    """A stretch of time a source's lines could not be fetched for."""

    source: str
    gap_start: datetime
    gap_end: datetime
    detected_at: datetime


def gaps(pool: ConnectionPool, limit: int = 100) -> list[Gap]:
    with pool.connection() as conn, conn.cursor(row_factory=class_row(Gap)) as cur:
        return cur.execute(
            "SELECT source, gap_start, gap_end, detected_at FROM ingest_gaps ORDER BY detected_at DESC LIMIT %s",
            (limit,),
        ).fetchall()


# A deleted message's recipients and Message-ID go with it, in the same statement (no foreign key does it).
_RECIPIENTS_OF_GONE = (
    ", rcpt AS (DELETE FROM message_recipients WHERE message_pk IN (SELECT id FROM gone))"
    ", ids AS (DELETE FROM message_ids WHERE message_pk IN (SELECT id FROM gone))"
)


def delete_before(pool: ConnectionPool, cutoff: datetime, batch: int = 20_000) -> dict[str, int]:
    """Retention: delete old lines and messages in bounded batches (no long locks)."""
    targets = {
        "postfix_lines": "logged_at",
        "rspamd_rows": "logged_at",
        "netfilter_lines": "logged_at",
        "dovecot_deliveries": "at",
        "messages": "last_seen",
        "ingest_gaps": "detected_at",
    }
    deleted: dict[str, int] = {}
    for table, column in targets.items():
        total = 0
        while True:
            with pool.connection() as conn:
                count = conn.execute(
                    sql.SQL(
                        "WITH gone AS (DELETE FROM {t} WHERE id IN (SELECT id FROM {t} WHERE {c} < %s LIMIT %s) "
                        "RETURNING id){recipients} SELECT count(*) FROM gone"
                    ).format(
                        t=sql.Identifier(table),
                        c=sql.Identifier(column),
                        recipients=sql.SQL(_RECIPIENTS_OF_GONE if table == "messages" else ""),
                    ),
                    (cutoff, batch),
                ).fetchone()[0]
            total += count
            if count < batch:
                break
        deleted[table] = total
    with pool.connection() as conn:  # search word blocks left without a line: one per 512 lines
        deleted["postfix_line_words"] = conn.execute(
            """DELETE FROM postfix_line_words b
               WHERE NOT EXISTS (SELECT 1 FROM postfix_lines p WHERE p.id BETWEEN b.first_id AND b.last_id)"""
        ).rowcount
    with pool.connection() as conn:  # the hourly rollups: a few rows per hour, one statement each
        for table in ("message_rollup", "delay_rollup", "reason_rollup"):
            deleted[table] = conn.execute(
                sql.SQL("DELETE FROM {} WHERE bucket < %s").format(sql.Identifier(table)), (cutoff,)
            ).rowcount
        # top lists: whole months before the cutoff's, then the days before its day in that month
        deleted["message_facets"] = conn.execute(
            "DELETE FROM message_facets WHERE month < date_trunc('month', %s::timestamptz)", (cutoff,)
        ).rowcount
        conn.execute(
            """UPDATE message_facets SET first_day = d.day,
                   messages = mg_prefix_from(messages, first_day, d.day),
                   delivered = mg_prefix_from(delivered, first_day, d.day),
                   failed = mg_prefix_from(failed, first_day, d.day), spam = mg_prefix_from(spam, first_day, d.day)
               FROM (SELECT date_trunc('month', t) AS month, extract(day FROM t)::int AS day
                     FROM (SELECT %s::timestamptz AS t) c) d
               WHERE message_facets.month = d.month AND first_day < d.day""",
            (cutoff,),
        )
    return deleted
