"""Storing raw log lines of every mailcow service: bulk load, day partitions, retention, counts.

Rows arrive from exporter/services/raw_logs.py already normalised. One load is one COPY into a
temporary table and one INSERT … ON CONFLICT DO NOTHING (an overlapping fetch inserts only new lines),
then the new lines' search blocks and per-minute counts. Each table is partitioned by UTC day:
retention drops whole days, whatever their size.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

import psycopg
from psycopg import sql
from psycopg.rows import class_row
from psycopg_pool import ConnectionPool

from exporter.parsers import grams

TABLES = ("raw_lines", "raw_line_blocks", "raw_line_counts")
COLUMNS = ("at", "service", "level", "program", "message", "item", "line_key", "occurrence")
BLOCK_LINES = 512
CHANNEL = "raw_lines"  # NOTIFY channel: the id of the newest line of each committed load


def _partition(table: str, day: date) -> str:
    return f"{table}_p{day:%Y%m%d}"


def ensure_days(conn: psycopg.Connection, days: Sequence[date]) -> None:
    """Create the day partitions of all three tables for `days` where missing.

    Creating a partition locks its parent for a moment, so the maintenance job creates the coming
    days ahead of time and a load rarely has to; a load only asks whether its days exist."""
    wanted = sorted(set(days))
    names = [_partition("raw_lines", day) for day in wanted]
    found = conn.execute("SELECT to_regclass(n) IS NOT NULL FROM unnest(%s::text[]) AS n", (names,)).fetchall()
    for day, (exists,) in zip(wanted, found, strict=True):
        if exists:
            continue
        start = datetime(day.year, day.month, day.day, tzinfo=UTC)
        for table in TABLES:
            conn.execute(
                sql.SQL("CREATE TABLE IF NOT EXISTS {} PARTITION OF {} FOR VALUES FROM ({}) TO ({})").format(
                    sql.Identifier(_partition(table, day)),
                    sql.Identifier(table),
                    sql.Literal(start),
                    sql.Literal(start + timedelta(days=1)),
                )
            )


def load(conn: psycopg.Connection, rows: Sequence[Sequence[Any]]) -> int:
    """Store rows (COLUMNS order, oldest first) in the caller's transaction; return how many were new.

    Loading the same rows again inserts nothing, counts nothing and indexes nothing."""
    if not rows:
        return 0
    ensure_days(conn, [row[0].astimezone(UTC).date() for row in rows])
    cols = sql.SQL(", ").join(map(sql.Identifier, COLUMNS))
    conn.execute("DROP TABLE IF EXISTS incoming_raw_lines")
    conn.execute(
        sql.SQL(
            "CREATE TEMP TABLE incoming_raw_lines ON COMMIT DROP AS SELECT {}, 0::bigint AS ord FROM raw_lines "
            "WITH NO DATA"
        ).format(cols)
    )
    with conn.cursor().copy(sql.SQL("COPY incoming_raw_lines ({}, ord) FROM STDIN").format(cols)) as copy:
        for ord_, row in enumerate(rows):
            copy.write_row((*row, ord_))
    new = conn.execute(
        sql.SQL(
            """WITH ins AS (INSERT INTO raw_lines ({c}) SELECT {c} FROM incoming_raw_lines ORDER BY ord
                            ON CONFLICT DO NOTHING RETURNING id, at, service, level, program, message),
                    counted AS (INSERT INTO raw_line_counts AS c (minute, service, level, program, lines, bytes)
                                SELECT date_trunc('minute', at), service, level, coalesce(program, ''), count(*),
                                       sum(octet_length(message))
                                FROM ins GROUP BY 1, 2, 3, 4
                                ON CONFLICT (minute, service, level, program) DO UPDATE
                                SET lines = c.lines + EXCLUDED.lines, bytes = c.bytes + EXCLUDED.bytes)
               SELECT id, at, service, message FROM ins ORDER BY id"""
        ).format(c=cols)
    ).fetchall()
    _index(conn, new)
    if new:  # delivered at commit: live tails (exporter/services/raw_tail.py) wake up
        conn.execute("SELECT pg_notify(%s, %s)", (CHANNEL, str(new[-1][0])))
    return len(new)


def _index(conn: psycopg.Connection, new: Sequence[tuple[int, datetime, str, str]]) -> None:
    """Search blocks of the new lines (id order): consecutive lines of one service and one UTC day, at
    most BLOCK_LINES lines, split further while their grams outgrow a tsvector."""
    columns = "service, first_id, last_id, first_at, last_at, grams, complete"
    with conn.cursor().copy(f"COPY raw_line_blocks ({columns}) FROM STDIN") as copy:
        block: list[tuple[int, datetime, str, str]] = []
        for line in new:
            if block and (len(block) == BLOCK_LINES or line[2] != block[0][2] or _day(line) != _day(block[0])):
                _write_block(copy, block)
                block = []
            block.append(line)
        if block:
            _write_block(copy, block)


def _day(line: tuple[int, datetime, str, str]) -> date:
    return line[1].astimezone(UTC).date()


def _write_block(copy: psycopg.Copy, block: list[tuple[int, datetime, str, str]]) -> None:
    found = grams.block_grams(line[3] for line in block)
    if len(found) > grams.MAX_GRAMS and len(block) > 1:
        half = len(block) // 2
        _write_block(copy, block[:half])
        _write_block(copy, block[half:])
        return
    complete = len(found) <= grams.MAX_GRAMS  # else one huge line: searches always read it
    ats = [line[1] for line in block]
    literal = grams.vector_literal(found) if complete else ""
    copy.write_row((block[0][2], block[0][0], block[-1][0], min(ats), max(ats), literal, complete))


def drop_days_before(conn: psycopg.Connection, cutoff: date) -> list[str]:
    """Drop every day partition older than `cutoff` (a whole UTC day); return the days dropped."""
    names = [
        name
        for (name,) in conn.execute(
            """SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
               WHERE i.inhparent = 'raw_lines'::regclass ORDER BY 1"""
        ).fetchall()
    ]
    dropped = []
    for name in names:
        day = datetime.strptime(name.rsplit("_p", 1)[1], "%Y%m%d").date()
        if day < cutoff:
            for table in TABLES:
                conn.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(sql.Identifier(_partition(table, day))))
            dropped.append(day.isoformat())
    return dropped


@dataclass(frozen=True)
class ServiceCount:
    """Stored lines of one service."""

    service: str
    lines: int
    oldest: datetime | None
    newest: datetime | None


def service_counts(pool: ConnectionPool) -> list[ServiceCount]:
    """Lines per service from the per-minute counts (never a count over the lines themselves)."""
    with pool.connection() as conn, conn.cursor(row_factory=class_row(ServiceCount)) as cur:
        return cur.execute(
            """SELECT service, sum(lines)::bigint AS lines, min(minute) AS oldest,
                      max(minute) + interval '1 minute' AS newest
               FROM raw_line_counts GROUP BY service ORDER BY service"""
        ).fetchall()


def newest_id(conn: psycopg.Connection) -> int:
    """The id of the newest committed line (0 before the first): live tails start after it."""
    return int(conn.execute("SELECT coalesce(max(id), 0) FROM raw_lines").fetchone()[0])
