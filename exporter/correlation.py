"""Turns stored log lines into messages: runs the store's set-based correlation in batches."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta

from psycopg_pool import ConnectionPool

from exporter.store import correlation as sql


def correlate(pool: ConnectionPool, local_domains: Sequence[str], domain_labels: bool = False) -> dict[str, int]:
    """Correlate everything not yet correlated, one transaction per batch; return totals.

    `domain_labels` adds a per-domain label to the message counters (METRICS_DOMAIN_LABELS)."""
    totals = {"lines": 0, "messages": 0}
    while True:
        with pool.connection() as conn, conn.transaction():
            result = sql.run_batch(conn, local_domains, domain_labels)
        totals["lines"] += result["lines"]
        totals["messages"] += result["messages"]
        if not result["more"]:
            return totals


def expire(pool: ConnectionPool, horizon: timedelta, local_domains: Sequence[str], domain_labels: bool = False) -> int:
    with pool.connection() as conn, conn.transaction():
        return sql.expire(conn, horizon, local_domains, domain_labels)


def refresh_incomplete(pool: ConnectionPool, local_domains: Sequence[str], domain_labels: bool = False) -> int:
    with pool.connection() as conn, conn.transaction():
        return sql.refresh_incomplete(conn, local_domains, domain_labels)
