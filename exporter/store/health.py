"""What health is judged by: the ingest leader's lock, each source's last fetch, the last correlation."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from psycopg.rows import class_row
from psycopg_pool import ConnectionPool

from exporter.store.jobs import LEADER_LOCK_KEY


@dataclass(frozen=True)
class SourceFacts:
    """One log source's last fetch: ages in seconds (by the database's clock) and item counts; all
    None for a source never fetched."""

    source: str
    last_success_age_seconds: float | None = None
    newest_line_age_seconds: float | None = None
    last_fetched: int | None = None
    last_unparsed: int | None = None
    unparsed_total: int | None = None


@dataclass(frozen=True)
class IngestFacts:
    leader: bool  # some worker holds the ingest lock in this database
    sources: dict[str, SourceFacts]  # every source asked about
    job_ages: dict[str, float | None]  # seconds since each named job last succeeded (None: never)


def ingest_facts(
    pool: ConnectionPool, sources: Sequence[str], jobs: Sequence[str], timeout: float = 3.0
) -> IngestFacts:
    """One short read-only transaction; ages are measured against the database's `now()`."""
    with pool.connection(timeout=timeout) as conn, conn.transaction():
        conn.execute("SET TRANSACTION READ ONLY")
        # a session lock on one bigint key: classid holds its high half, objid its low half, objsubid 1
        leader = conn.execute(
            """SELECT EXISTS (SELECT FROM pg_locks WHERE locktype = 'advisory' AND granted
                                AND database = (SELECT oid FROM pg_database WHERE datname = current_database())
                                AND classid::bigint = %(high)s AND objid::bigint = %(low)s AND objsubid = 1)
                   AS held""",
            {"high": LEADER_LOCK_KEY >> 32, "low": LEADER_LOCK_KEY & 0xFFFF_FFFF},
        ).fetchone()[0]
        with conn.cursor(row_factory=class_row(SourceFacts)) as cur:
            fetched = {
                row.source: row
                for row in cur.execute(
                    """SELECT source,
                              extract(epoch FROM now() - last_success_at)::float8 AS last_success_age_seconds,
                              extract(epoch FROM now() - newest_line_at)::float8 AS newest_line_age_seconds,
                              last_fetched, last_unparsed, unparsed_total
                       FROM ingest_state ORDER BY source"""
                )
            }
        ages = dict(
            conn.execute(
                "SELECT name, extract(epoch FROM now() - last_success_at)::float8 AS age FROM job_status "
                "WHERE name = ANY(%s)",
                (list(jobs),),
            ).fetchall()
        )
    return IngestFacts(
        leader,
        {name: fetched.get(name, SourceFacts(name)) for name in sources},
        {name: ages.get(name) for name in jobs},
    )
