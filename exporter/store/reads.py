"""What the read queries share: a WHERE builder (with the indexed searches of the log tables), a
counted page, a streamed export and rows as dicts for the read models to shape."""

from __future__ import annotations

from collections.abc import Generator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from psycopg import sql
from psycopg.rows import dict_row
from psycopg_pool import ConnectionPool

from exporter.parsers.words import word_count

# Rows read lazily through a server-side cursor; close() (or exhausting it) returns the connection.
RowStream = Generator[dict[str, Any], None, None]


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


def dates(where: Where, column: str, filters: Mapping[str, Any]) -> None:
    if filters.get("start_date"):
        where.add(f"{column} >= %s", filters["start_date"])
    if filters.get("end_date"):
        where.add(f"{column} <= %s", filters["end_date"])


def page(
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


def stream(pool: ConnectionPool, query: sql.Composable, params: Sequence[Any]) -> RowStream:
    """Rows through a server-side cursor: constant memory whatever the export size."""
    with pool.connection() as conn, conn.transaction(), conn.cursor(name="export", row_factory=dict_row) as cur:
        cur.itersize = 2000
        cur.execute(query, params)
        yield from cur


def rows(
    pool: ConnectionPool, query: sql.Composable | str, params: Sequence[Any] | Mapping[str, Any]
) -> list[dict[str, Any]]:
    """Every row of one query, as dicts (the shapes the read models turn into JSON)."""
    with pool.connection() as conn, conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(query, params).fetchall()


def bin_step(seconds: int) -> str:
    """A date_bin stride of at least one second."""
    return f"{max(1, seconds)} seconds"
