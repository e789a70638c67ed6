"""How many raw log lines a query matches, for the REST list's `total`, without counting every line.

Without a text filter the answer is exact and cheap: whole minutes come from the per-minute counts
(raw_line_counts, which hold service, level and program), and only the partial minutes at the
range's edges are counted in raw_lines. A text filter has to look at lines: the count goes through
the gram index like `raw_search.find` and stops at `cap`, so its cost stays bounded too.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta

import psycopg
from psycopg import sql

from exporter.store.raw_search import LineQuery, gram_query, label_condition, line_conditions, services_of

MINUTE = timedelta(minutes=1)


def count(conn: psycopg.Connection, query: LineQuery, cap: int) -> tuple[int, bool]:
    """(matching lines, exact): with a text filter at most `cap` lines are counted (exact is False then)."""
    services = services_of(conn, query)
    if not services:
        return 0, True
    if query.text:
        found = _count_lines(conn, query, services, cap + 1)
        return min(found, cap), found <= cap
    first = _ceil(query.start) if query.start else None
    last = _floor(query.end) if query.end else None
    if first is not None and last is not None and first >= last:
        return _count_lines(conn, query, services, None), True
    total = _count_minutes(conn, query, services, first, last)
    if query.start is not None and first is not None and query.start < first:
        total += _count_lines(conn, replace(query, end=first), services, None)
    if query.end is not None and last is not None and last < query.end:
        total += _count_lines(conn, replace(query, start=last), services, None)
    return total, True


def _floor(at: datetime) -> datetime:
    return at.replace(second=0, microsecond=0)


def _ceil(at: datetime) -> datetime:
    floor = _floor(at)
    return floor if floor == at else floor + MINUTE


def _count_minutes(
    conn: psycopg.Connection,
    query: LineQuery,
    services: list[str],
    first: datetime | None,
    last: datetime | None,
) -> int:
    """Lines of the whole minutes from `first` (inclusive) to `last` (exclusive)."""
    where = [sql.SQL("c.service = ANY({})").format(sql.Literal(services))]
    if first is not None:
        where.append(sql.SQL("c.minute >= {}").format(sql.Literal(first)))
    if last is not None:
        where.append(sql.SQL("c.minute < {}").format(sql.Literal(last)))
    for match in query.labels:
        if match.label != "service":
            where.append(label_condition(sql.SQL("c.{}").format(sql.Identifier(match.label)), match))
    statement = sql.SQL("SELECT coalesce(sum(c.lines), 0)::bigint FROM raw_line_counts c WHERE {}").format(
        sql.SQL(" AND ").join(where)
    )
    return int(conn.execute(statement).fetchone()[0])


def _count_lines(conn: psycopg.Connection, query: LineQuery, services: list[str], cap: int | None) -> int:
    """Matching lines counted one by one (up to `cap`), through the candidate blocks when a substring
    is searched."""
    where = [sql.SQL("l.service = ANY({})").format(sql.Literal(services)), *line_conditions(query)]
    source = sql.SQL("raw_lines l")
    tsquery = gram_query(query)
    if tsquery is not None:
        block_where = [
            sql.SQL("b.service = ANY({})").format(sql.Literal(services)),
            sql.SQL("(b.grams @@ {}::tsquery OR NOT b.complete)").format(sql.Literal(tsquery)),
        ]
        if query.start is not None:
            block_where.append(sql.SQL("b.last_at >= {}").format(sql.Literal(query.start)))
        if query.end is not None:
            block_where.append(sql.SQL("b.first_at < {}").format(sql.Literal(query.end)))
        source = sql.SQL(
            "(SELECT service, first_id, last_id FROM raw_line_blocks b WHERE {}) b "
            "JOIN raw_lines l ON l.service = b.service AND l.id BETWEEN b.first_id AND b.last_id"
        ).format(sql.SQL(" AND ").join(block_where))
    limit = sql.SQL("LIMIT {}").format(sql.Literal(cap)) if cap is not None else sql.SQL("")
    statement = sql.SQL("SELECT count(*) FROM (SELECT 1 FROM {} WHERE {} {}) matched").format(
        source, sql.SQL(" AND ").join(where), limit
    )
    return int(conn.execute(statement).fetchone()[0])


def bounds(conn: psycopg.Connection, services: list[str]) -> dict[str, tuple[datetime, datetime]]:
    """The oldest and newest stored line of each service that has any (two index lookups each)."""
    rows = conn.execute(
        """SELECT s, (SELECT min(at) FROM raw_lines WHERE service = s),
                     (SELECT max(at) FROM raw_lines WHERE service = s)
           FROM unnest(%s::text[]) AS u(s)""",
        (services,),
    ).fetchall()
    return {service: (oldest, newest) for service, oldest, newest in rows if oldest is not None}
