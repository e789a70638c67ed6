"""Abuse limits kept in PostgreSQL, so every process and replica counts the same: failed sign-ins and
lockouts per client address, API requests per address and minute. One statement per call."""

from __future__ import annotations

from psycopg_pool import ConnectionPool


def lockout_remaining(pool: ConnectionPool, address: str) -> float | None:
    """Seconds `address` stays blocked, or None when it is not."""
    with pool.connection() as conn:
        row = conn.execute(
            "SELECT extract(epoch FROM until - now()) FROM auth_lockouts WHERE address = %s AND until > now()",
            (address,),
        ).fetchone()
    return float(row[0]) if row else None


def add_failure(pool: ConnectionPool, address: str, max_failures: int, window_seconds: int) -> float | None:
    """Count a failed sign-in from `address`; at `max_failures` within `window_seconds` block it for as long
    and forget its failures. Returns the seconds blocked when this failure started a lockout, else None.
    Expired failures of the address and expired lockouts of any address are pruned on the way."""
    with pool.connection() as conn:
        row = conn.execute(
            """WITH window_start AS (SELECT now() - make_interval(secs => %(window)s) AS t),
                    pruned AS (DELETE FROM auth_failures WHERE address = %(address)s
                               AND at <= (SELECT t FROM window_start)),
                    expired AS (DELETE FROM auth_lockouts WHERE until <= now()),
                    recent AS (SELECT count(*) + 1 AS n FROM auth_failures WHERE address = %(address)s
                               AND at > (SELECT t FROM window_start)),
                    added AS (INSERT INTO auth_failures (address)
                              SELECT %(address)s WHERE (SELECT n FROM recent) < %(max)s),
                    cleared AS (DELETE FROM auth_failures WHERE address = %(address)s
                                AND (SELECT n FROM recent) >= %(max)s)
               INSERT INTO auth_lockouts (address, until)
               SELECT %(address)s, now() + make_interval(secs => %(window)s)
               WHERE (SELECT n FROM recent) >= %(max)s
               ON CONFLICT (address) DO UPDATE SET until = EXCLUDED.until
               RETURNING extract(epoch FROM until - now())""",
            {"address": address, "window": window_seconds, "max": max_failures},
        ).fetchone()
    return float(row[0]) if row else None


def count_request(pool: ConnectionPool, address: str) -> tuple[int, float]:
    """Count a request from `address` in the current minute: (requests so far this minute, seconds until
    the next). The first request of an address in a minute prunes the rows of minutes gone by."""
    with pool.connection() as conn:
        hits, left = conn.execute(
            """INSERT INTO request_counts AS c (address, minute, hits)
               VALUES (%s, date_trunc('minute', now()), 1)
               ON CONFLICT (address, minute) DO UPDATE SET hits = c.hits + 1
               RETURNING hits, 60 - extract(epoch FROM now() - minute)""",
            (address,),
        ).fetchone()
        if hits == 1:
            conn.execute("DELETE FROM request_counts WHERE minute < date_trunc('minute', now())")
    return int(hits), float(left)
