"""Persistent Prometheus counters: added to in the caller's transaction, read by the collector."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import psycopg

# Upper bounds (seconds) of the delivery delay histogram: Postfix `delay=` spans from
# sub-second local delivery to days of retries.
DELAY_BUCKETS = (0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0, 14400.0, 86400.0, 432000.0)


def add(conn: psycopg.Connection, rows_sql: str, params: Mapping[str, Any] | None = None, ctes: str = "") -> None:
    """Add the rows of `rows_sql` — (name text, labels jsonb, value numeric) — to the counters.

    Rows with the same name and labels are summed first, so a query may yield one row per event.
    `ctes` are WITH items `rows_sql` reads (data-modifying ones must sit at the top level).
    """
    conn.execute(
        f"""WITH {ctes + "," if ctes else ""} q (name, labels, value) AS ({rows_sql})
            INSERT INTO metric_counters AS c (name, labels, value)
            SELECT name, labels, sum(value) FROM q GROUP BY name, labels
            ON CONFLICT (name, labels) DO UPDATE SET value = c.value + EXCLUDED.value""",
        params,
    )


def read_all(conn: psycopg.Connection) -> list[tuple[str, dict[str, str], float]]:
    """Every counter (a few hundred rows at most: labels are bounded by design)."""
    return conn.execute("SELECT name, labels, value FROM metric_counters ORDER BY name, labels::text").fetchall()
