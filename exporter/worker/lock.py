"""The leader lock: of several worker replicas, the one holding it ingests and runs the jobs.

A session-level PostgreSQL advisory lock on its own connection: when the leader dies its connection
closes, the lock is released, and another worker takes it within one interval.
"""

from __future__ import annotations

import logging
import os

import psycopg

from exporter.store.database import connect
from exporter.store.jobs import LEADER_LOCK_KEY

log = logging.getLogger(__name__)


class LeaderLock:
    """A session advisory lock on its own connection: released when this process dies."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.conn: psycopg.Connection | None = None
        self.held = False

    def __enter__(self) -> LeaderLock:
        try:
            self.conn = connect(self.url, autocommit=True)
            self.held = bool(self.conn.execute("SELECT pg_try_advisory_lock(%s)", (LEADER_LOCK_KEY,)).fetchone()[0])
            if self.held:  # lets an operator (and the tests) see which process leads
                self.conn.execute(f"SET application_name = 'mailcow-grafana leader pid {os.getpid()}'")
        except psycopg.Error as exc:
            log.warning("cannot reach the database for the leader lock: %s", exc)
            self.held = False
        return self

    def alive(self) -> bool:
        try:
            assert self.conn is not None
            self.conn.execute("SELECT 1")
            return True
        except (psycopg.Error, AssertionError):
            return False

    def __exit__(self, *exc: object) -> None:
        if self.conn is not None:
            self.conn.close()
