"""What health is judged by: the ingest leader's lock, each source's last fetch, the last correlation."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from psycopg.rows import dict_row
from psycopg_pool import ConnectionPool

from exporter.store.jobs import LEADER_LOCK_KEY


@dataclass
class IngestFacts:
    leader: bool  # some worker holds the ingest lock in this database
    sources: dict[str, dict[str, Any]]  # per source: ages in seconds (by the database's clock) and counts
    job_ages: dict[str, float | None]  # seconds since each named job last succeeded (None: never)


def ingest_facts(pool: ConnectionPool, jobs: list[str], timeout: float = 3.0) -> IngestFacts:
    """One short read-only transaction; ages are measured against the database's `now()`."""
    with pool.connection(timeout=timeout) as conn, conn.transaction(), conn.cursor(row_factory=dict_row) as cur:
        cur.execute("SET TRANSACTION READ ONLY")
        # a session lock on one bigint key: classid holds its high half, objid its low half, objsubid 1
        leader = cur.execute(
            """SELECT EXISTS (SELECT FROM pg_locks WHERE locktype = 'advisory' AND granted
                                AND database = (SELECT oid FROM pg_database WHERE datname = current_database())
                                AND classid::bigint = %(high)s AND objid::bigint = %(low)s AND objsubid = 1)
                   AS held""",
            {"high": LEADER_LOCK_KEY >> 32, "low": LEADER_LOCK_KEY & 0xFFFF_FFFF},
        ).fetchone()["held"]
        sources = {
            row.pop("source"): row
            for row in cur.execute(
                """SELECT source,
                          extract(epoch FROM now() - last_success_at)::float8 AS last_success_age_seconds,
                          extract(epoch FROM now() - newest_line_at)::float8 AS newest_line_age_seconds,
                          last_fetched, last_unparsed, unparsed_total
                   FROM ingest_state ORDER BY source"""
            )
        }
        ages = {
            row["name"]: row["age"]
            for row in cur.execute(
                "SELECT name, extract(epoch FROM now() - last_success_at)::float8 AS age FROM job_status "
                "WHERE name = ANY(%s)",
                (jobs,),
            )
        }
    return IngestFacts(leader, sources, {name: ages.get(name) for name in jobs})
