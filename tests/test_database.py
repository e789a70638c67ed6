"""Migrations apply once even when processes race; sessions are pinned to UTC."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, datetime

import psycopg

from exporter.store.database import connect, migration_files


def test_two_migrate_processes_at_once_apply_each_migration_once(databases):
    url = databases.create()
    env = {**os.environ, "DATABASE_URL": url}
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "exporter.cli", "migrate"],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    outputs = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outputs
    with psycopg.connect(url) as conn:
        rows = conn.execute("SELECT version, count(*) FROM schema_migrations GROUP BY version ORDER BY 1").fetchall()
    assert rows == [(version, 1) for version, _, _ in migration_files()]
    applied = sorted(out for out, _ in outputs)
    assert applied[0].startswith("applied 0 migration(s)")
    assert applied[1].startswith(f"applied {len(rows)} migration(s)")


def test_sessions_are_utc_whatever_the_server_says(databases, db_url):
    name = psycopg.conninfo.conninfo_to_dict(db_url)["dbname"]
    with psycopg.connect(databases.server_url, autocommit=True) as admin:
        admin.execute(f"ALTER DATABASE \"{name}\" SET timezone TO 'America/New_York'")
    try:
        with connect(db_url) as conn:
            assert conn.execute("SHOW TimeZone").fetchone()[0] == "UTC"
            moment = datetime(2026, 7, 1, 12, 0, tzinfo=UTC)
            text = conn.execute("SELECT %s::timestamptz::text", (moment,)).fetchone()[0]
            assert text == "2026-07-01 12:00:00+00"
    finally:
        with psycopg.connect(databases.server_url, autocommit=True) as admin:
            admin.execute(f'ALTER DATABASE "{name}" RESET timezone')


def test_every_timestamp_column_is_timestamptz(db_url):
    with psycopg.connect(db_url) as conn:
        naive = conn.execute(
            """SELECT table_name, column_name FROM information_schema.columns
               WHERE table_schema = 'public' AND data_type = 'timestamp without time zone'"""
        ).fetchall()
    assert naive == []
