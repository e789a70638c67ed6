"""All SQL of the service lives in this package, one module per concern."""

from __future__ import annotations

from psycopg_pool import ConnectionPool


def ping(pool: ConnectionPool) -> bool:
    """True when a pooled connection answers a trivial query within the pool timeout."""
    try:
        with pool.connection(timeout=3) as conn:
            conn.execute("SELECT 1")
        return True
    except Exception:
        return False
