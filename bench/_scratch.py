"""A scratch database per benchmark run: created empty on the given server, dropped afterwards."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
from psycopg import sql


@contextmanager
def scratch_database(server: str, prefix: str, keep: bool = False) -> Iterator[str]:
    """Yield the URL of a new database on `server` (a libpq URL to its maintenance database)."""
    name = f"{prefix}_{secrets.token_hex(4)}"
    with psycopg.connect(server, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    url = psycopg.conninfo.make_conninfo(server, dbname=name)
    try:
        yield url
    finally:
        if keep:
            print(f"kept database: {url}")
        else:
            with psycopg.connect(server, autocommit=True) as conn:
                conn.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(name)))
