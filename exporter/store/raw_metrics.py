"""Counting raw log lines for LogQL metric queries, label lists and index statistics (issue 22).

Two sources, one answer shape. Without line filters every number comes from raw_line_counts (lines and
bytes per minute, service, level and program, kept at load), so a day of counts reads at most 1,440 rows
per stream whatever the number of lines. With line filters, or windows finer than a minute, the lines
themselves are counted in PostgreSQL, bounded by the time range and QUERY_TIMEOUT. Either way the
result is (stream, bucket) totals; the read model slides its windows over the buckets.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import psycopg
from psycopg import sql

from exporter.store.raw_search import LineQuery, line_conditions, services_of

STREAM_COLUMNS = ("service", "level", "program")


@dataclass(frozen=True)
class Bucket:
    """Lines and bytes of one label set in bucket `index` (of `width_ms` from the origin)."""

    labels: tuple[str, ...]  # values of the grouping columns asked for, in that order ("" = no program)
    index: int
    lines: int
    bytes: int


def _group(columns: tuple[str, ...], table_program: sql.Composable) -> list[sql.Composable]:
    return [table_program if c == "program" else sql.SQL("l.{}").format(sql.Identifier(c)) for c in columns]


def buckets(
    conn: psycopg.Connection,
    query: LineQuery,
    origin: datetime,
    end: datetime,
    width_ms: int,
    columns: tuple[str, ...],
) -> list[Bucket]:
    """Totals per (`columns`, bucket) of the lines in [origin, end) matching `query` (its own start, end
    and limit are ignored). Bucket i holds [origin + i·width, origin + (i+1)·width). From the per-minute
    counts when `query` has no text filter and minutes tile the buckets, otherwise from the lines."""
    services = services_of(conn, query)
    if not services:
        return []
    labels_only = LineQuery(services=query.services, labels=query.labels, text=query.text)
    from_counts = not query.text and width_ms % 60_000 == 0 and origin.timestamp() % 60 == 0
    if from_counts:
        table, at, lines, size = "raw_line_counts", "minute", "sum(l.lines)", "sum(l.bytes)"
        program = sql.SQL("l.program")
    else:
        table, at, lines, size = "raw_lines", "at", "count(*)", "sum(octet_length(l.message))"
        program = sql.SQL("coalesce(l.program, '')")
    group = _group(columns, program)
    index = sql.SQL("floor(extract(epoch FROM l.{at} - {o}) * 1000 / {w})::bigint").format(
        at=sql.Identifier(at), o=sql.Literal(origin), w=sql.Literal(width_ms)
    )
    where = [
        sql.SQL("l.service = ANY({})").format(sql.Literal(services)),
        sql.SQL("l.{} >= {}").format(sql.Identifier(at), sql.Literal(origin)),
        sql.SQL("l.{} < {}").format(sql.Identifier(at), sql.Literal(end)),
        *line_conditions(labels_only),
    ]
    statement = sql.SQL("SELECT {g} {i} AS bucket, {n}::bigint, {b}::bigint FROM {t} l WHERE {w} GROUP BY {k}").format(
        g=sql.SQL("").join(sql.SQL("{}, ").format(c) for c in group),
        i=index,
        n=sql.SQL(lines),
        b=sql.SQL(size),
        t=sql.Identifier(table),
        w=sql.SQL(" AND ").join(where),
        k=sql.SQL(", ").join(sql.SQL(str(n)) for n in range(1, len(group) + 2)),
    )
    width = len(columns)
    return [Bucket(tuple(row[:width]), row[width], row[width + 1], row[width + 2]) for row in conn.execute(statement)]


@dataclass(frozen=True)
class StreamTotal:
    """One stream (service, level, program: "" = none) with its lines and bytes and the minutes it has
    lines in (each minute row is what Loki's index statistics call a chunk)."""

    service: str
    level: str
    program: str
    lines: int
    bytes: int
    minutes: int


def streams(conn: psycopg.Connection, query: LineQuery, start: datetime, end: datetime) -> list[StreamTotal]:
    """The streams with lines between `start` and `end` (whole minutes) matching `query`'s labels."""
    services = services_of(conn, query)
    if not services:
        return []
    where = [
        sql.SQL("l.service = ANY({})").format(sql.Literal(services)),
        sql.SQL("l.minute >= date_trunc('minute', {}::timestamptz)").format(sql.Literal(start)),
        sql.SQL("l.minute < {}").format(sql.Literal(end)),
        *line_conditions(LineQuery(services=query.services, labels=query.labels)),
    ]
    statement = sql.SQL(
        "SELECT l.service, l.level, l.program, sum(l.lines)::bigint, sum(l.bytes)::bigint, count(*)::bigint "
        "FROM raw_line_counts l WHERE {} GROUP BY 1, 2, 3 ORDER BY 1, 2, 3"
    ).format(sql.SQL(" AND ").join(where))
    return [StreamTotal(*row) for row in conn.execute(statement)]
