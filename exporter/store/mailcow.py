"""State synced from mailcow: its domains and its quarantine."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from psycopg_pool import ConnectionPool


def replace_domains(pool: ConnectionPool, domains: Iterable[tuple[str, bool]]) -> int:
    """Make the stored domain list equal mailcow's (one transaction)."""
    rows = [(d.lower(), active) for d, active in domains]
    with pool.connection() as conn, conn.transaction():
        conn.execute("DELETE FROM mailcow_domains WHERE NOT (domain = ANY(%s))", ([d for d, _ in rows],))
        with conn.cursor() as cur:
            cur.executemany(
                """INSERT INTO mailcow_domains (domain, active, synced_at) VALUES (%s, %s, now())
                   ON CONFLICT (domain) DO UPDATE SET active = EXCLUDED.active, synced_at = now()""",
                rows,
            )
    return len(rows)


def local_domains(pool: ConnectionPool, configured: Sequence[str]) -> list[str]:
    """mailcow's domains plus LOCAL_DOMAINS, lower-cased."""
    with pool.connection() as conn:
        synced = [row[0] for row in conn.execute("SELECT domain FROM mailcow_domains")]
    return sorted({*synced, *(d.lower() for d in configured)})


def domain_states(pool: ConnectionPool) -> list[tuple[str, bool]]:
    """mailcow's domains as last synced, with whether each is active."""
    with pool.connection() as conn:
        return [(r[0], r[1]) for r in conn.execute("SELECT domain, active FROM mailcow_domains ORDER BY domain")]


def replace_quarantine(pool: ConnectionPool, items: Iterable[tuple[int, str]]) -> int:
    """Store mailcow's current quarantine (id, queue id) and flag the matching messages."""
    rows = list(items)
    with pool.connection() as conn, conn.transaction():
        conn.execute("DELETE FROM quarantine_items WHERE NOT (qitem_id = ANY(%s))", ([i for i, _ in rows],))
        with conn.cursor() as cur:
            cur.executemany(
                """INSERT INTO quarantine_items (qitem_id, queue_id) VALUES (%s, %s)
                   ON CONFLICT (qitem_id) DO UPDATE SET queue_id = EXCLUDED.queue_id, synced_at = now()""",
                rows,
            )
        conn.execute(
            """UPDATE messages m SET quarantined = true FROM quarantine_items q
               WHERE m.correlation_key = mg_queue_key(q.queue_id) AND NOT m.quarantined"""
        )
    return len(rows)
