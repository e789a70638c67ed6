"""The worker process: killed mid-fetch it loses nothing; with two replicas exactly one ingests; it
survives a PostgreSQL restart and a mailcow outage, and `run` restarts it when it dies."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import IO

import httpx
import pgserver
import psycopg
import pytest

from exporter.app import create_app
from exporter.mailcow.client import MailcowClient
from exporter.services import correlation
from exporter.simulator.app import create_simulator_app
from exporter.simulator.state import LOCAL_DOMAINS, MailcowState
from exporter.simulator.traffic import Simulation
from exporter.store.database import create_pool, migrate
from exporter.store.jobs import LEADER_LOCK_KEY
from exporter.worker import registry
from exporter.worker.loop import Worker, tracked
from tests.conftest import RO_KEY, RW_KEY, SIM_START, ManualClock, make_config
from tests.mailflow import make_rig
from tests.prometheus import free_port
from tests.test_ingestion import _snapshot

FETCH_INTERVAL = 5  # the smallest the configuration allows: health calls ingestion stale after 15 s


def _command(command: str, url: str, mailcow_url: str, *args: str, output: IO | int = subprocess.DEVNULL):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MAILCOW_", "AUTH_"))}
    env.update(
        {
            "DATABASE_URL": url,
            "MAILCOW_URL": mailcow_url,
            "MAILCOW_API_KEY": RO_KEY,
            "MAILCOW_API_KEY_RW": RW_KEY,
            "FETCH_INTERVAL": str(FETCH_INTERVAL),
            "LOCAL_DOMAINS": ",".join(LOCAL_DOMAINS),
            "LOG_LEVEL": "WARNING",
        }
    )
    return subprocess.Popen(
        [sys.executable, "-m", "exporter.cli", command, *args], env=env, stdout=output, stderr=subprocess.STDOUT
    )


def _worker(url: str, mailcow_url: str) -> subprocess.Popen:
    return _command("worker", url, mailcow_url)


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


def _leader(url: str) -> int | None:
    """The pid of the worker process holding the ingest lock in this database."""
    with psycopg.connect(url) as conn:
        row = conn.execute(
            """SELECT a.application_name FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
               WHERE l.locktype = 'advisory' AND l.objid = %s AND l.granted AND a.datname = current_database()""",
            (LEADER_LOCK_KEY,),
        ).fetchone()
    return int(row[0].rsplit(" ", 1)[1]) if row and "leader pid" in row[0] else None


def test_two_workers_one_leader_and_failover(pool, live_app, databases):
    rig = make_rig(pool, live_app, SIM_START, rate=60)
    rig.clock.now += 600
    rig.sim.advance()
    mailcow_url = str(rig.ingestor.client._http.base_url).removesuffix("/api/v1/")
    url = databases.create()
    migrate(url)
    workers = [_worker(url, mailcow_url), _worker(url, mailcow_url)]

    def leader() -> int | None:
        return _leader(url)

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


def _traffic(live_app) -> tuple[Simulation, ManualClock, str]:
    """A simulated mailcow with ten minutes of traffic; its clock moves only when the test says."""
    clock = ManualClock(SIM_START)
    sim = Simulation(MailcowState(), seed=11, start=SIM_START - 600, rate_per_minute=60, clock=clock)
    sim.advance()
    return sim, clock, live_app(create_simulator_app(sim, RO_KEY, RW_KEY, advance_on_request=False)).url


def _health(base: str) -> tuple[int, dict]:
    try:
        response = httpx.get(f"{base}/api/health", timeout=10)
    except httpx.HTTPError:
        return 0, {}
    return response.status_code, response.json()


@pytest.fixture
def private_postgres() -> Iterator[pgserver.PostgresServer]:
    """A PostgreSQL cluster of this test's own, to stop and start under the running service (never
    the shared one). A short directory: its Unix socket lives there."""
    root = Path(tempfile.mkdtemp(prefix="mg-pg-"))
    server = pgserver.get_server(root / "pgdata", cleanup_mode="delete")
    yield server
    server.cleanup()
    root.rmdir()


def _stop_postgres(server: pgserver.PostgresServer) -> None:
    os.kill(server.get_pid(), signal.SIGINT)  # PostgreSQL's fast shutdown
    _wait(lambda: not server.get_postmaster_info().is_running(), 30, "PostgreSQL to stop")


def test_jobs_run_on_while_the_database_is_down_and_record_again_after(private_postgres, caplog):
    url = private_postgres.get_uri()
    migrate(url)
    pool = create_pool(url, 2)
    try:
        with pool.connection() as conn:  # leaves a connection idle in the pool
            conn.execute("SELECT 1")
        _stop_postgres(private_postgres)
        private_postgres.ensure_postgres_running()
        with pool.connection() as conn:  # the pool hands out a live connection, not the dead one it held
            assert conn.execute("SELECT 1").fetchone() == (1,)

        _stop_postgres(private_postgres)
        pool.timeout = 1.0  # wait less than the default 10 s for a connection that cannot come
        runs: list[int] = []
        assert tracked(pool, "probe", lambda: runs.append(1) or "done")() == "done"
        assert runs == [1], "the job ran although its status could not be recorded"
        assert "job probe: cannot record its status" in caplog.text
        private_postgres.ensure_postgres_running()
        pool.timeout = 10.0
        tracked(pool, "probe", lambda: runs.append(2))()
        with pool.connection() as conn:
            row = conn.execute("SELECT status, runs FROM job_status WHERE name = 'probe'").fetchone()
        assert row == ("success", 1) and runs == [1, 2]
    finally:
        pool.close()


def test_worker_and_health_survive_a_postgresql_restart(private_postgres, live_app, tmp_path):
    """The database stops under the running service in the middle of a fetch, then mailcow fails too:
    health says so, the same worker process keeps going and resumes ingesting once both are back."""
    url = private_postgres.get_uri()
    migrate(url)
    sim, clock, mailcow_url = _traffic(live_app)
    base = f"http://127.0.0.1:{free_port()}"
    output = (tmp_path / "run.log").open("w")
    service = _command("run", url, mailcow_url, "--bind", base.removeprefix("http://"), "--workers", "1", output=output)
    try:
        _wait(lambda: _health(base)[1].get("status") == "healthy", 60, "a healthy start")
        leader = _leader(url)
        assert leader is not None and _health(base)[1]["reasons"] == []

        # PostgreSQL stops in the middle of a fetch round (mailcow answers slowly)
        slow = time.time()
        httpx.post(f"{mailcow_url}/sim/fault", json={"mode": "slow", "delay": 2})
        _wait(
            lambda: (
                _one(
                    url,
                    "SELECT count(*) FROM job_status WHERE name = 'fetch_logs' AND status = 'running' "
                    "AND last_run_at > to_timestamp(%s)",
                    slow,
                )
                == 1
            ),
            30,
            "a fetch round under way",
        )
        down = time.monotonic()
        _stop_postgres(private_postgres)
        status, body = _health(base)
        assert (status, body["status"], body["database"]) == (503, "unhealthy", "disconnected")
        time.sleep(max(0.0, 12 - (time.monotonic() - down)))  # longer than a pool waits for a connection (10 s)

        httpx.post(f"{mailcow_url}/sim/fault", json={"mode": "server_error"})  # mailcow fails as well
        back = time.time()
        private_postgres.ensure_postgres_running()
        _wait(
            lambda: any(r.startswith("postfix: no successful fetch for") for r in _health(base)[1].get("reasons", [])),
            40,
            "health to report stale ingestion",
        )
        status, body = _health(base)
        assert (status, body["status"], body["database"]) == (200, "degraded", "connected")
        _wait(
            lambda: (
                _one(
                    url,
                    "SELECT count(*) FROM job_status WHERE name = 'fetch_logs' AND status = 'failed' "
                    "AND last_run_at > to_timestamp(%s)",
                    back,
                )
                == 1
            ),
            30,
            "the worker to record its failing fetches",
        )

        httpx.post(f"{mailcow_url}/sim/fault", json={"mode": None})
        clock.now += 60
        sim.advance()
        newest = max(int(i["time"]) for i in sim.state.logs["postfix"])
        _wait(
            lambda: _one(url, "SELECT extract(epoch FROM max(logged_at))::bigint FROM postfix_lines") == newest,
            40,
            "the lines logged meanwhile",
        )
        _wait(lambda: _health(base)[1].get("status") == "healthy", 30, "health to recover")
        assert _leader(url) == leader, "the same worker process leads: it never died"
        assert service.poll() is None
    finally:
        service.send_signal(signal.SIGTERM)
        service.wait(30)
        output.close()
    log = (tmp_path / "run.log").read_text()
    assert not re.search(r"worker \(pid \d+\) exited", log), "run never had to restart it"


def test_run_restarts_a_killed_worker(databases, live_app, tmp_path):
    url = databases.create()
    migrate(url)
    _, _, mailcow_url = _traffic(live_app)
    bind = f"127.0.0.1:{free_port()}"
    output = (tmp_path / "run.log").open("w")
    service = _command("run", url, mailcow_url, "--bind", bind, "--workers", "1", output=output)
    try:
        _wait(lambda: _leader(url) is not None, 60, "a leader")
        first = _leader(url)
        os.kill(first, signal.SIGKILL)
        _wait(lambda: _leader(url) not in (None, first), 30, "a restarted worker to lead")
        second = _leader(url)
        assert service.poll() is None
        assert _health(f"http://{bind}")[0] == 200
    finally:
        service.send_signal(signal.SIGTERM)
        code = service.wait(30)
        output.close()
    log = (tmp_path / "run.log").read_text()
    assert code == 0, log[-3000:]
    assert re.search(rf"worker \(pid {first}\) exited with signal SIGKILL after \d+ s; restarting in 1 s", log)
    assert f"worker restarted (pid {second})" in log

    def gone() -> bool:
        try:
            os.kill(second, 0)
        except ProcessLookupError:
            return True
        return False

    _wait(gone, 10, "the worker to stop with run")


def test_every_job_is_declared_once_scheduled_and_listed(pool, db_url):
    """The scheduler and /api/settings/info read one registry; the README names every job."""
    client = MailcowClient("http://127.0.0.1:9", RO_KEY)
    imap = make_config(db_url, dmarc_imap_enabled=True, dmarc_imap_host="imap.example.org")
    scheduled = {job.id: job for job in Worker(imap, pool, client).scheduler().get_jobs()}
    listed = create_app(imap, pool).test_client().get("/api/settings/info").get_json()["background_jobs"]
    assert set(listed) == set(scheduled) | {"fetch_logs", "complete_correlations"}
    assert {"sync_accounts", "dns_check", "update_geoip", "dmarc_imap_import"} <= set(scheduled)
    assert listed["sync_status"]["interval"] == "every 30 seconds (STATUS_SYNC_INTERVAL)"
    assert scheduled["sync_status"].trigger.interval == timedelta(seconds=30)
    assert listed["dns_check"]["interval"] == "every 6 hours (DNS_CHECK_INTERVAL_HOURS)"
    assert scheduled["dns_check"].trigger.interval == timedelta(hours=6)
    assert all(listed[name]["description"] and listed[name]["status"] == "scheduled" for name in scheduled)

    plain = make_config(db_url)  # no IMAP server: the import is listed as disabled and never scheduled
    assert "dmarc_imap_import" not in {job.id for job in Worker(plain, pool, client).scheduler().get_jobs()}
    listed = create_app(plain, pool).test_client().get("/api/settings/info").get_json()["background_jobs"]
    assert listed["dmarc_imap_import"]["status"] == "disabled"

    readme = (Path(__file__).parent.parent / "README.md").read_text()
    assert [name for name in listed if f"| `{name}` |" not in readme] == []


def test_the_readme_job_table_is_the_registrys():
    """A job added to the registry without its README row fails here."""
    readme = (Path(__file__).parent.parent / "README.md").read_text()
    table = registry.markdown_table()
    header = table.splitlines()[0]
    assert readme.count(header) == 1, "the README has one job table"
    assert table in readme, f"paste this table into README.md (Background jobs):\n{table}"


def test_settings_info_gives_each_job_its_category(pool, db_url):
    listed = create_app(make_config(db_url), pool).test_client().get("/api/settings/info").get_json()["background_jobs"]
    assert {name: job["category"] for name, job in listed.items()} == {
        name: str(job.category) for name, job in registry.JOBS.items()
    }
    assert listed["fetch_logs"]["category"] == "ingest" and listed["dns_check"]["category"] == "DNS"
    assert list(listed["sync_status"])[:4] == ["interval", "description", "category", "status"]
