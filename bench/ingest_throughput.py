"""Measure simulator generation and bulk-load throughput of raw log lines into PostgreSQL.

Usage: .venv/bin/python bench/ingest_throughput.py [DATABASE_URL] [HOURS]
Creates and drops a scratch database on the given server (default 127.0.0.1:5432).
"""

from __future__ import annotations

import secrets
import sys
import time
from datetime import UTC, datetime

import psycopg
from psycopg import sql

from exporter.database import create_pool, migrate
from exporter.parsers.raw_lines import normalize
from exporter.simulator.state import MailcowState
from exporter.simulator.traffic import Simulation
from exporter.store import store_log_lines


def main() -> None:
    server = sys.argv[1] if len(sys.argv) > 1 else "postgresql://postgres@127.0.0.1:5432/postgres"
    hours = float(sys.argv[2]) if len(sys.argv) > 2 else 6
    state = MailcowState(log_cap=10_000_000)
    t0 = time.perf_counter()
    Simulation(state, seed=1, start=0, rate_per_minute=60, clock=lambda: hours * 3600).advance()
    items = list(state.logs["postfix"])
    gen = time.perf_counter() - t0
    print(
        f"simulator: {len(items)} postfix lines for {hours:g} h at 60 mails/min in {gen:.2f} s "
        f"({len(items) / gen:,.0f} lines/s)"
    )

    name = f"mg_bench_{secrets.token_hex(4)}"
    with psycopg.connect(server, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    url = psycopg.conninfo.make_conninfo(server, dbname=name)
    try:
        migrate(url)
        pool = create_pool(url, 2)
        pool.wait()
        t0 = time.perf_counter()
        total = 0
        for start in range(0, len(items), 2000):  # pages of 2000, as FETCH_COUNT_POSTFIX
            lines, _ = normalize("postfix", items[start : start + 2000])
            total += store_log_lines(pool, "postfix", lines, datetime.now(UTC))
        load = time.perf_counter() - t0
        print(f"bulk load: {total} lines in {load:.2f} s ({total / load:,.0f} lines/s, pages of 2000)")
        t0 = time.perf_counter()
        lines, _ = normalize("postfix", items[:2000])
        again = store_log_lines(pool, "postfix", lines, datetime.now(UTC))
        print(f"re-load of a stored page: {again} new lines in {(time.perf_counter() - t0) * 1000:.1f} ms")
        pool.close()
    finally:
        with psycopg.connect(server, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(name)))


if __name__ == "__main__":
    main()
