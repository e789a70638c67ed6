"""Shared fixtures: a real PostgreSQL (fresh database per run), a live simulator, the web app."""

from __future__ import annotations

import os
import secrets
import threading
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from psycopg import sql
from werkzeug.serving import make_server

from exporter.config import Config
from exporter.simulator.app import create_simulator_app
from exporter.simulator.state import MailcowState
from exporter.simulator.traffic import Simulation
from exporter.store.database import create_pool, migrate, start_embedded

LOCAL_PG = "postgresql://postgres@127.0.0.1:5432/postgres"
RO_KEY = "A1B2C3-D4E5F6-0A1B2C-3D4E5F-6A7B8C"
RW_KEY = "F6E5D4-C3B2A1-C2B1A0-F5E4D3-C8B7A6"
SIM_START = 1_790_000_000  # 2026-09-21, a fixed simulated "now" for reproducible traffic


def _server_url(tmp_root: Path) -> str:
    """DATABASE_URL if given, else the local server on 5432 if it answers, else an embedded one."""
    if os.environ.get("DATABASE_URL"):
        return os.environ["DATABASE_URL"]
    try:
        psycopg.connect(LOCAL_PG, connect_timeout=3).close()
        return LOCAL_PG
    except psycopg.OperationalError:
        return start_embedded(tmp_root / "pgdata")


def _with_dbname(url: str, name: str) -> str:
    info = psycopg.conninfo.conninfo_to_dict(url)
    info["dbname"] = name
    return psycopg.conninfo.make_conninfo(**info)


class Databases:
    """Creates throw-away databases on one server and drops them at the end of the run."""

    def __init__(self, server_url: str) -> None:
        self.server_url = server_url
        self.names: list[str] = []

    def create(self) -> str:
        name = f"mg_test_{secrets.token_hex(6)}"
        with psycopg.connect(self.server_url, autocommit=True) as conn:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        self.names.append(name)
        return _with_dbname(self.server_url, name)

    def drop_all(self) -> None:
        with psycopg.connect(self.server_url, autocommit=True) as conn:
            for name in self.names:
                conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


@pytest.fixture(scope="session")
def databases(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Databases]:
    dbs = Databases(_server_url(tmp_path_factory.mktemp("pg")))
    yield dbs
    dbs.drop_all()


@pytest.fixture(scope="session")
def db_url(databases: Databases) -> str:
    """One migrated database shared by the run's tests (tables are emptied per test by `pool`)."""
    url = databases.create()
    migrate(url)
    return url


@pytest.fixture
def pool(db_url: str) -> Iterator:
    p = create_pool(db_url, 4)
    p.wait()
    with p.connection() as conn:
        conn.execute(
            """TRUNCATE postfix_lines, postfix_line_words, rspamd_rows, netfilter_lines, unparsed_lines, ingest_gaps,
                        messages, message_recipients, ingest_state, job_status, mailcow_domains, quarantine_items,
                        raw_lines, raw_line_blocks, raw_line_counts, dovecot_deliveries, message_ids,
                        auth_failures, auth_lockouts, request_counts"""
        )
        conn.execute("UPDATE correlation_state SET last_id = 0")
    yield p
    p.close()


class ManualClock:
    """A clock the test moves by hand, so simulated traffic is exactly reproducible."""

    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def sim() -> Simulation:
    """A simulation with one simulated hour of traffic, frozen at SIM_START."""
    clock = ManualClock(SIM_START)
    simulation = Simulation(MailcowState(), seed=7, start=SIM_START - 3600, rate_per_minute=10, clock=clock)
    simulation.advance()
    return simulation


class LiveServer:
    def __init__(self, app, host: str = "127.0.0.1") -> None:
        self.server = make_server(host, 0, app, threaded=True)
        self.url = f"http://{host}:{self.server.server_port}"
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def live_app():
    """Start any WSGI app on a free loopback port; stopped after the test."""
    servers: list[LiveServer] = []

    def start(app) -> LiveServer:
        server = LiveServer(app)
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()


@pytest.fixture
def mailcow(sim: Simulation, live_app) -> LiveServer:
    """The simulator served over real HTTP on loopback (its clock stays frozen)."""
    return live_app(create_simulator_app(sim, RO_KEY, RW_KEY, advance_on_request=False))


def make_config(db_url: str, mailcow_url: str = "http://127.0.0.1:9", **overrides) -> Config:
    # the suite hammers the app from 127.0.0.1: only tests of the limit turn it on
    values = {"mailcow_api_key": RO_KEY, "mailcow_api_key_rw": RW_KEY, "rate_limit_per_minute": 0, **overrides}
    return Config(mailcow_url=mailcow_url, database_url=db_url, **values)
