"""All SQL of the service and its migrations, one module per feature under the name the other layers
use for it (messages, logs, dmarc, tls, correlation, ...); `reads` holds what the read queries share."""

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
