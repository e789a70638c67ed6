"""The worker process: killed mid-fetch it loses nothing; with two replicas exactly one ingests."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable

import httpx
import psycopg

from exporter import correlation
from exporter.database import migrate
from exporter.jobs import LEADER_LOCK_KEY
from exporter.simulator.state import LOCAL_DOMAINS
from tests.conftest import RO_KEY, RW_KEY, SIM_START
from tests.mailflow import make_rig
from tests.test_ingestion import _snapshot


def _worker(url: str, mailcow_url: str) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MAILCOW_", "AUTH_"))}
    env.update(
        {
            "DATABASE_URL": url,
            "MAILCOW_URL": mailcow_url,
            "MAILCOW_API_KEY": RO_KEY,
            "MAILCOW_API_KEY_RW": RW_KEY,
            "FETCH_INTERVAL": "5",
            "LOCAL_DOMAINS": ",".join(LOCAL_DOMAINS),
            "LOG_LEVEL": "WARNING",
        }
    )
    return subprocess.Popen(
        [sys.executable, "-m", "exporter.cli", "worker"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )


def _wait(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def _one(url: str, query: str, *params: object) -> object:
    with psycopg.connect(url) as conn:
        return conn.execute(query, params).fetchone()[0]


class _Pool:
    """The tiny part of a pool `_snapshot` needs, over a plain URL."""

    def __init__(self, url: str) -> None:
        self.url = url

    def connection(self):
        return psycopg.connect(self.url)


def test_sigkill_in_the_middle_of_a_fetch_loses_and_duplicates_nothing(pool, live_app, databases):
    rig = make_rig(pool, live_app, SIM_START, rate=60)
    rig.clock.now += 1800
    rig.sim.advance()
    rig.ingestor.fetch_all()
    correlation.correlate(pool, LOCAL_DOMAINS)
    expected = _snapshot(pool)
    mailcow_url = str(rig.ingestor.client._http.base_url).removesuffix("/api/v1/")

    url = databases.create()
    migrate(url)
    httpx.post(f"{mailcow_url}/sim/fault", json={"mode": "slow", "delay": 1.5})
    worker = _worker(url, mailcow_url)
    try:
        _wait(lambda: _one(url, "SELECT count(*) FROM postfix_lines") > 0, 60, "the first page to load")
        worker.send_signal(signal.SIGKILL)
        worker.wait(10)
        assert _one(url, "SELECT count(*) FROM rspamd_rows") == 0, "killed before rspamd was fetched"
    finally:
        if worker.poll() is None:
            worker.kill()
    httpx.post(f"{mailcow_url}/sim/fault", json={"mode": None})
    restarted = time.time()
    worker = _worker(url, mailcow_url)
    try:
        _wait(
            lambda: (
                _one(
                    url,
                    "SELECT count(*) FROM job_status WHERE name = 'complete_correlations' AND status = 'success' "
                    "AND last_success_at > to_timestamp(%s) + interval '1 second'",
                    restarted,
                )
                == 1
                and _one(url, "SELECT count(*) FROM rspamd_rows") > 0
            ),
            90,
            "a complete run after the restart",
        )
        time.sleep(6)  # one more cycle: re-reading the same window must not change anything
    finally:
        worker.send_signal(signal.SIGTERM)
        worker.wait(30)
    assert _snapshot(_Pool(url)) == expected


def test_two_workers_one_leader_and_failover(pool, live_app, databases):
    rig = make_rig(pool, live_app, SIM_START, rate=60)
    rig.clock.now += 600
    rig.sim.advance()
    mailcow_url = str(rig.ingestor.client._http.base_url).removesuffix("/api/v1/")
    url = databases.create()
    migrate(url)
    workers = [_worker(url, mailcow_url), _worker(url, mailcow_url)]

    def leader() -> int | None:
        with psycopg.connect(url) as conn:
            row = conn.execute(
                """SELECT a.application_name FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
                   WHERE l.locktype = 'advisory' AND l.objid = %s AND l.granted""",
                (LEADER_LOCK_KEY,),
            ).fetchone()
        return int(row[0].rsplit(" ", 1)[1]) if row and "leader pid" in row[0] else None

    try:
        _wait(lambda: leader() is not None, 30, "a leader")
        first = leader()
        assert first in {w.pid for w in workers}
        _wait(lambda: _one(url, "SELECT count(*) FROM postfix_lines") > 0, 30, "ingestion by the leader")
        os.kill(first, signal.SIGKILL)
        killed_at = time.monotonic()
        _wait(lambda: leader() not in (None, first), 30, "the other worker to take over")
        assert time.monotonic() - killed_at < 5 + 5, "takeover within one interval (FETCH_INTERVAL=5) plus slack"
        rig.clock.now += 60
        rig.sim.advance()
        newest = max(int(i["time"]) for i in rig.sim.state.logs["postfix"])
        _wait(
            lambda: _one(url, "SELECT extract(epoch FROM max(logged_at))::bigint FROM postfix_lines") == newest,
            30,
            "the new leader to ingest new lines",
        )
    finally:
        for worker in workers:
            if worker.poll() is None:
                worker.send_signal(signal.SIGTERM)
                worker.wait(30)


def test_correlation_thread_serves_every_poke_and_survives_a_failure():
    """Pokes during a run are served by one more run; a failing run is kept, and the next runs."""
    runs: list[int] = []

    def job() -> None:
        runs.append(len(runs))
        time.sleep(0.2)
        if len(runs) == 2:
            raise RuntimeError("database went away")

    background = correlation.Background(job).start()
    try:
        background.poke()
        time.sleep(0.05)  # the first run is under way
        background.poke()
        background.poke()
        assert background.idle(timeout=5)
        assert len(runs) == 2  # the two pokes during the first run were served by one more
        assert isinstance(background.error, RuntimeError)
        background.poke()
        assert background.idle(timeout=5) and len(runs) == 3
    finally:
        background.stop()
