"""PostgreSQL access: the connection pool, the embedded server, and schema migrations.

Every session is pinned to UTC so `timestamptz` values never shift with the server's
TimeZone setting (the existing viewer's issue #19).
"""

from __future__ import annotations

import logging
import re
from importlib import resources
from pathlib import Path

import psycopg
from psycopg_pool import ConnectionPool

log = logging.getLogger(__name__)

# Arbitrary but fixed: every process of this product serialises migrations on this key.
MIGRATION_LOCK_KEY = 0x6D63_6766  # "mcgf"
_MIGRATION_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")
# JIT off: correlation's statements are large enough to trigger compilation on every batch, which
# cost more than it saved (end-to-end ingest 22.5k -> 27.6k lines/s with it off).
# Custom plans always: psycopg prepares a statement run five times, and PostgreSQL may then switch to
# one generic plan for every parameter, which for a search term or a rare status can be a scan of
# everything (seconds instead of milliseconds, seen on /api/logs/postfix?search=).
_SESSION_OPTIONS = "-c jit=off -c plan_cache_mode=force_custom_plan -c TimeZone=UTC -c application_name=mailcow-grafana"
POOL_WAIT = 10.0  # seconds a caller waits for a free connection
DOWN_WAIT = 1.0  # ... while the database is known to be down: nothing frees up, the answer is known
PROBE_TIMEOUT = 2  # seconds (libpq's minimum) one direct connection attempt may take


class Pool(ConnectionPool):
    """A connection pool that tells a database that is down from one whose connections are all busy.

    Both make a caller wait for a connection in vain; `database_answers` then tries one direct connection.
    While the database is known to be down, callers wait DOWN_WAIT instead of POOL_WAIT, so an outage
    does not hold every request (and web server thread) for seconds; the first connection handed out
    again ends that."""

    _down = False

    def getconn(self, timeout: float | None = None) -> psycopg.Connection:
        if timeout is None and self._down:
            timeout = DOWN_WAIT
        conn = super().getconn(timeout)
        self._down = False
        return conn

    def database_answers(self) -> bool:
        """After a wait in vain: does the database accept a new connection (so the pool is busy), or not?"""
        try:
            psycopg.connect(str(self.conninfo), **{**(self.kwargs or {}), "connect_timeout": PROBE_TIMEOUT}).close()
        except psycopg.OperationalError:
            self._down = True
            return False
        self._down = False
        return True


def start_embedded(data_dir: Path) -> str:
    """Start (or join) the private PostgreSQL in `data_dir` and return its URL.

    pgserver keeps the server running while any process holds it, so the web and worker
    processes of `run` share one server.
    """
    import pgserver  # imported lazily: only installs without DATABASE_URL need it

    data_dir.mkdir(parents=True, exist_ok=True)
    server = pgserver.get_server(data_dir, cleanup_mode="stop")
    return server.get_uri()


def connect(url: str, **kwargs: object) -> psycopg.Connection:
    """A single connection with the same session settings as the pool's."""
    return psycopg.connect(url, options=_SESSION_OPTIONS, **kwargs)


def create_pool(url: str, size: int = 5, statement_timeout: float | None = None) -> Pool:
    """A connection pool whose sessions are pinned to UTC; `statement_timeout` (seconds) bounds every
    statement (the web app's pool: one request must not hold a connection for minutes).

    Each connection is checked as it is handed out: after a database restart the pool replaces its
    dead connections instead of failing one job or request per connection it held."""
    options = _SESSION_OPTIONS
    if statement_timeout is not None:
        options += f" -c statement_timeout={round(statement_timeout * 1000)}"
    pool = Pool(
        url,
        min_size=1,
        max_size=size,
        kwargs={"options": options},
        check=ConnectionPool.check_connection,
        open=False,
        name="mailcow-grafana",
        timeout=POOL_WAIT,
    )
    pool.open(wait=False)
    return pool


def migration_files() -> list[tuple[int, str, str]]:
    """(version, name, sql) of every packaged migration, in order."""
    out = []
    for entry in resources.files("exporter.store.migrations").iterdir():
        match = _MIGRATION_NAME.match(entry.name)
        if match:
            out.append((int(match.group(1)), match.group(2), entry.read_text(encoding="utf-8")))
    out.sort()
    versions = [v for v, _, _ in out]
    if len(set(versions)) != len(versions):
        raise RuntimeError("two migration files share a version number")
    return out


def migrate(url: str) -> list[int]:
    """Apply pending migrations under an advisory lock; return the versions applied here.

    The lock makes concurrent starts safe: the second process waits, then sees every
    migration recorded and applies nothing.
    """
    applied_now: list[int] = []
    with connect(url, autocommit=True) as conn:
        conn.execute("SELECT pg_advisory_lock(%s)", (MIGRATION_LOCK_KEY,))
        try:
            conn.execute(
                """CREATE TABLE IF NOT EXISTS schema_migrations (
                       version integer PRIMARY KEY,
                       name text NOT NULL,
                       applied_at timestamptz NOT NULL DEFAULT now())"""
            )
            done = {row[0] for row in conn.execute("SELECT version FROM schema_migrations")}
            for version, name, sql in migration_files():
                if version in done:
                    continue
                with conn.transaction():
                    conn.execute(sql)
                    conn.execute("INSERT INTO schema_migrations (version, name) VALUES (%s, %s)", (version, name))
                log.info("applied migration %04d_%s", version, name)
                applied_now.append(version)
        finally:
            conn.execute("SELECT pg_advisory_unlock(%s)", (MIGRATION_LOCK_KEY,))
    return applied_now
