"""Finding raw log lines: label matchers, substring and regex filters, time range, newest or oldest
first, after an id (live tails). Every filter runs in PostgreSQL.

Two paths, one result. A query with a substring to find (`|=` in LogQL, `search` in REST) of three or
more characters asks the gram index (raw_line_blocks) for the blocks that can hold it, a batch of blocks
at a time in time order, and checks only their lines; it stops once no later batch can hold a line that
belongs in the page. Any other query reads each service's lines in time order through its index and
stops at the page's end. Both stay bounded however many lines are stored.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import psycopg
from psycopg import sql
from psycopg.rows import class_row

from exporter.parsers import grams

LABELS = ("service", "level", "program")
BLOCK_BATCH = 64
FIRST_BATCH = 8
MAX_LIMIT = 5000
_PLAIN_ALTERNATIVE = re.compile(r"\^?[^.^$*+?()\[\]{}|\\]*\Z")  # a text without regex operators
_FLAGS = re.compile(r"\A\(\?[a-z]+\)")  # embedded options, which PostgreSQL allows only at the start


class BadPattern(ValueError):
    """A regular expression PostgreSQL refuses."""


@dataclass(frozen=True)
class LabelMatch:
    """A stream selector matcher on one of LABELS; an absent program reads as ""."""

    label: str
    op: str  # = != =~ !~ (regexes match the whole value, as Loki's do)
    value: str


@dataclass(frozen=True)
class TextMatch:
    """A filter on the line's text."""

    op: str  # |= (contains)  != (does not contain)  |~ (matches regex)  !~ (does not match)
    value: str
    case_sensitive: bool = True


@dataclass(frozen=True)
class LineQuery:
    """What to find. `services` are the candidates (the enabled ones); label matchers narrow them."""

    services: tuple[str, ...]
    labels: tuple[LabelMatch, ...] = ()
    text: tuple[TextMatch, ...] = ()
    start: datetime | None = None  # inclusive
    end: datetime | None = None  # exclusive
    after_id: int | None = None
    newest_first: bool = True
    limit: int = 100
    offset: int = 0


@dataclass(frozen=True)
class RawRow:
    """One stored line as readers get it."""

    id: int
    at: datetime
    service: str
    level: str
    program: str | None
    message: str
    item: dict[str, Any] = field(repr=False)


def anchored(pattern: str) -> str:
    """A label regex matching whole values, with its leading embedded options (e.g. `(?i)`) kept first."""
    flags = _FLAGS.match(pattern)
    head = flags.group(0) if flags else ""
    return f"{head}^(?:{pattern[len(head) :]})$"


def check_patterns(conn: psycopg.Connection, query: LineQuery) -> None:
    """Raise BadPattern for a regex PostgreSQL cannot compile, before any line is read."""
    patterns = [anchored(m.value) for m in query.labels if m.op in ("=~", "!~")]
    patterns += [t.value for t in query.text if t.op in ("|~", "!~")]
    for pattern in patterns:
        try:
            with conn.transaction():
                conn.execute("SELECT '' ~ %s", (pattern,))
        except psycopg.errors.InvalidRegularExpression as exc:
            raise BadPattern(f"invalid regular expression {pattern!r}: {exc.diag.message_primary}") from exc


def label_condition(column: sql.Composable, match: LabelMatch) -> sql.Composable:
    """`match` on `column` as SQL (also over raw_line_counts, whose columns have the same names)."""
    value = sql.SQL("coalesce({}, '')").format(column)
    if match.op == "=":
        return sql.SQL("{} = {}").format(value, sql.Literal(match.value))
    if match.op == "!=":
        return sql.SQL("{} <> {}").format(value, sql.Literal(match.value))
    negate = sql.SQL("!~" if match.op == "!~" else "~")
    return sql.SQL("{} {} {}").format(value, negate, sql.Literal(anchored(match.value)))


def _text_condition(match: TextMatch) -> sql.Composable:
    text, value = sql.SQL("l.message"), sql.Literal(match.value)
    if match.op in ("|=", "!="):
        if not match.case_sensitive:
            text, value = sql.SQL("lower(l.message)"), sql.SQL("lower({})").format(value)
        return sql.SQL("strpos({}, {}) {}").format(text, value, sql.SQL("> 0" if match.op == "|=" else "= 0"))
    operator = {"|~": "~", "!~": "!~"}[match.op]
    if not match.case_sensitive:
        operator += "*"
    return sql.SQL("{} {} {}").format(text, sql.SQL(operator), value)


def services_of(conn: psycopg.Connection, query: LineQuery) -> list[str]:
    """The candidate services the service matchers keep (evaluated by PostgreSQL's regex engine)."""
    conditions = [label_condition(sql.SQL("s"), m) for m in query.labels if m.label == "service"]
    if not conditions:
        return list(query.services)
    statement = sql.SQL("SELECT s FROM unnest({}::text[]) WITH ORDINALITY AS u(s, n) WHERE {} ORDER BY n").format(
        sql.Literal(list(query.services)), sql.SQL(" AND ").join(conditions)
    )
    return [s for (s,) in conn.execute(statement).fetchall()]


def line_conditions(query: LineQuery) -> list[sql.Composable]:
    """Every condition on a line but its service (time, other labels, text, after_id)."""
    out: list[sql.Composable] = []
    if query.start is not None:
        out.append(sql.SQL("l.at >= {}").format(sql.Literal(query.start)))
    if query.end is not None:
        out.append(sql.SQL("l.at < {}").format(sql.Literal(query.end)))
    if query.after_id is not None:
        out.append(sql.SQL("l.id > {}").format(sql.Literal(query.after_id)))
    for match in query.labels:
        if match.label != "service":
            out.append(label_condition(sql.SQL("l.{}").format(sql.Identifier(match.label)), match))
    out.extend(_text_condition(t) for t in query.text if not _matches_all(t))
    return out


def _matches_all(match: TextMatch) -> bool:
    """`|~ ".*"`, `|~ "(?i)"` or `|= ""`: what a dashboard sends while a filter is unset, true of
    every line, so it costs nothing (and never hides the gram index)."""
    pattern = _FLAGS.sub("", match.value, count=1) if match.op == "|~" else match.value
    return match.op in ("|~", "|=") and pattern in ("", ".*", "^.*$", "(?:.*)")


def _needed(text: str, folds_all: bool) -> set[str]:
    """The grams a line holding `text` holds; with `folds_all` (lower(), `~*`, `(?i)`), which fold more
    than ASCII letters, only the ASCII grams are sure to be there."""
    found = grams.grams(text)
    return {g for g in found if g.isascii()} if folds_all else found


def _alternatives(pattern: str) -> list[str] | None:
    """The texts of a regex made only of plain texts joined by `|` (each may start with `^`; the whole
    may start with `(?i)`), e.g. `blocked using |DNSBL rank `; None for any other regex."""
    body = pattern.removeprefix("(?i)")
    parts = body.split("|")
    if not all(_PLAIN_ALTERNATIVE.match(p) for p in parts):
        return None
    return [p.removeprefix("^") for p in parts]


def gram_query(query: LineQuery) -> str | None:
    """The tsquery of every substring the lines must contain, None when the index cannot help. A regex
    of plain alternatives needs the grams of one of them (each at least three characters long)."""
    clauses: list[str] = []
    for match in query.text:
        folds_all = not match.case_sensitive or match.value.startswith("(?i)")
        if match.op == "|=" and (needed := grams.query_literal(_needed(match.value, folds_all))):
            clauses.append(needed)
        elif match.op == "|~" and (alternatives := _alternatives(match.value)):
            groups = [grams.query_literal(_needed(text, folds_all)) for text in alternatives]
            if all(groups):
                clauses.append("(" + " | ".join(f"({g})" for g in groups) + ")" if len(groups) > 1 else groups[0])
    return " & ".join(clauses) or None


_SELECT = sql.SQL("SELECT l.id, l.at, l.service, l.level, l.program, l.message, l.item FROM raw_lines l")


def _order(query: LineQuery) -> sql.Composable:
    return sql.SQL("ORDER BY at DESC, id DESC" if query.newest_first else "ORDER BY at, id")


def find(conn: psycopg.Connection, query: LineQuery) -> list[RawRow]:
    """One page of matching lines, in the query's order."""
    services = services_of(conn, query)
    if not services or query.limit <= 0:
        return []
    tsquery = gram_query(query)
    if tsquery is None:
        return _by_time(conn, query, services)
    return _by_blocks(conn, query, services, tsquery)


def _fetch(conn: psycopg.Connection, statement: sql.Composable) -> list[RawRow]:
    with conn.cursor(row_factory=class_row(RawRow)) as cur:
        return cur.execute(statement).fetchall()


def _by_time(conn: psycopg.Connection, query: LineQuery, services: Sequence[str]) -> list[RawRow]:
    """Each service's lines through (service, at, id), merged: every branch reads at most one page."""
    take = query.limit + query.offset
    order = _order(query)
    branches = [
        sql.SQL("({} WHERE {} {} LIMIT {})").format(
            _SELECT,
            sql.SQL(" AND ").join([sql.SQL("l.service = {}").format(sql.Literal(s)), *line_conditions(query)]),
            order,
            sql.Literal(take),
        )
        for s in services
    ]
    statement = sql.SQL("SELECT * FROM ({}) u {} LIMIT {} OFFSET {}").format(
        sql.SQL(" UNION ALL ").join(branches), order, sql.Literal(query.limit), sql.Literal(query.offset)
    )
    return _fetch(conn, statement)


def _block_query(
    query: LineQuery, services: Sequence[str], tsquery: str, cursor: tuple[datetime, int] | None, size: int
) -> sql.Composable:
    """The next `size` + 1 candidate blocks in the query's order.

    The gram match runs alone in a materialised CTE, through the GIN index (the caller disables
    sequential scans): the planner does not count the cost of reading each block's large, toasted
    tsvector, so left to itself it walks every block of the range in time order, which costs ten
    times more for a rare word and grows with the table. The GIN index needs no recheck for a plain
    AND of grams, so even a common word only reads the small block rows."""
    edge = "last_at" if query.newest_first else "first_at"
    inner = [sql.SQL("(b.grams @@ {}::tsquery OR NOT b.complete)").format(sql.Literal(tsquery))]
    if query.start is not None:  # a block spans at most one UTC day: prunes older day partitions
        inner.append(sql.SQL("b.first_at >= {}::timestamptz - interval '1 day'").format(sql.Literal(query.start)))
    if query.end is not None:
        inner.append(sql.SQL("b.first_at < {}").format(sql.Literal(query.end)))
    outer = [sql.SQL("b.service = ANY({})").format(sql.Literal(list(services)))]
    if query.start is not None:
        outer.append(sql.SQL("b.last_at >= {}").format(sql.Literal(query.start)))
    if query.after_id is not None:
        outer.append(sql.SQL("b.last_id > {}").format(sql.Literal(query.after_id)))
    if cursor is not None:
        outer.append(
            sql.SQL("(b.{e}, b.first_id) {c} ({t}, {i})").format(
                e=sql.Identifier(edge),
                c=sql.SQL("<" if query.newest_first else ">"),
                t=sql.Literal(cursor[0]),
                i=sql.Literal(cursor[1]),
            )
        )
    return sql.SQL(
        "WITH b AS MATERIALIZED (SELECT service, first_id, last_id, first_at, last_at FROM raw_line_blocks b "
        "WHERE {i}) SELECT service, first_id, last_id, {e} FROM b WHERE {o} "
        "ORDER BY b.{e} {d}, b.first_id {d} LIMIT {n}"
    ).format(
        i=sql.SQL(" AND ").join(inner),
        o=sql.SQL(" AND ").join(outer),
        e=sql.Identifier(edge),
        d=sql.SQL("DESC" if query.newest_first else "ASC"),
        n=sql.Literal(size + 1),
    )


def _by_blocks(conn: psycopg.Connection, query: LineQuery, services: Sequence[str], tsquery: str) -> list[RawRow]:
    """Batches of candidate blocks in time order; stop when the page is full and the next block cannot
    hold a line that sorts before the page's last."""
    take = query.limit + query.offset
    found: list[RawRow] = []
    cursor: tuple[datetime, int] | None = None
    size = FIRST_BATCH  # a common term fills the page from the first few blocks; rarer ones get bigger batches
    with conn.transaction():  # SET LOCAL ends with it (a savepoint's end does not: reset below)
        conn.execute("SET LOCAL enable_seqscan = off")
        while True:
            blocks = conn.execute(_block_query(query, services, tsquery, cursor, size)).fetchall()
            batch, following = blocks[:size], blocks[size:]
            size = min(size * 2, BLOCK_BATCH)
            if batch:
                found = _merge(found, _lines_of(conn, query, batch), query, take)
            if not following:
                break
            cursor = (batch[-1][3], batch[-1][1])
            if len(found) >= take and _settled(found[-1].at, following[0][3], query.newest_first):
                break
        conn.execute("SET LOCAL enable_seqscan TO DEFAULT")
    return found[query.offset : query.offset + query.limit]


def _settled(last: datetime, next_edge: datetime, newest_first: bool) -> bool:
    return next_edge < last if newest_first else next_edge > last


def _lines_of(conn: psycopg.Connection, query: LineQuery, batch: Sequence[tuple]) -> list[RawRow]:
    ranges = sql.SQL(" OR ").join(
        sql.SQL("(l.service = {} AND l.id BETWEEN {} AND {})").format(
            sql.Literal(service), sql.Literal(first), sql.Literal(last)
        )
        for service, first, last, _ in batch
    )
    conditions = [sql.SQL("({})").format(ranges), *line_conditions(query)]
    # The candidates first, through the id ranges: left to itself the planner may walk the time index
    # and test every line against the ranges, a scan of the whole service when the matches are rare.
    statement = sql.SQL(
        "WITH hit AS MATERIALIZED (SELECT l.id, l.at FROM raw_lines l WHERE {w}), "
        "page AS (SELECT id, at FROM hit {o} LIMIT {n}) "
        "{s} JOIN page p ON l.id = p.id AND l.at = p.at {o}"
    ).format(w=sql.SQL(" AND ").join(conditions), o=_order(query), n=sql.Literal(query.limit + query.offset), s=_SELECT)
    return _fetch(conn, statement)


def _merge(found: list[RawRow], more: list[RawRow], query: LineQuery, take: int) -> list[RawRow]:
    def key(row: RawRow) -> tuple[datetime, int]:
        return (row.at, row.id)

    return sorted(found + more, key=key, reverse=query.newest_first)[:take]
