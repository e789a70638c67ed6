"""Ingesting all ten mailcow log lists from the simulator: every line once, gaps per list, a list
mailcow lacks skipped with its reason and not asked for again at once."""

from __future__ import annotations

import itertools
import time
from collections import deque

from exporter.config_values import RAW_LOG_SERVICES
from exporter.services.raw_logs import RawLogs
from exporter.store import ingest as ingest_store
from tests.mailflow import make_rig


def _stored(pool) -> dict[str, int]:
    with pool.connection() as conn:
        return dict(conn.execute("SELECT service, count(*) FROM raw_lines GROUP BY service").fetchall())


def _requests_for(rig, service: str) -> int:
    """How often we asked mailcow for a list: the simulated mailcow logs every API request it serves."""
    with rig.sim.state.lock:
        return sum(1 for item in rig.sim.state.logs["api"] if item["uri"].startswith(f"/api/v1/get/logs/{service}"))


def test_every_line_of_every_list_is_stored_once(pool, live_app):
    now = int(time.time())
    rig = make_rig(pool, live_app, start=now - 1800, rate=60, raw=RawLogs(interval=15))
    rig.sim.advance()
    for _ in range(12):
        rig.step(30)  # fetches every list, as often as the ingestor asks for
    rig.sim.rate = 0
    rig.clock.now += 1
    rig.sim.advance()
    with rig.sim.state.lock:
        logged = dict(rig.sim.state.pushed)
    rig.ingestor.fetch_all()  # the last lines, including the api log's own requests
    stored = _stored(pool)
    for service in RAW_LOG_SERVICES:
        if service == "api":  # every fetch logs a request after the api list's snapshot was taken
            assert logged[service] <= stored[service] <= logged[service] + len(RAW_LOG_SERVICES) + 1
            continue
        assert stored.get(service, 0) == logged.get(service, 0) > 0, service
    assert set(stored) == set(RAW_LOG_SERVICES)
    assert not ingest_store.gaps(pool)
    rig.ingestor.fetch_all()
    assert {s: n for s, n in _stored(pool).items() if s != "api"} == {s: n for s, n in stored.items() if s != "api"}


def test_a_list_that_rotates_between_fetches_records_a_gap_for_that_list_only(pool, live_app):
    now = int(time.time())
    rig = make_rig(pool, live_app, start=now - 600, rate=60, raw=RawLogs(services=frozenset({"sogo", "dovecot"})))
    rig.sim.state.logs["sogo"] = deque(rig.sim.state.logs["sogo"], maxlen=30)  # a short list: rotates first
    rig.step(10)
    rig.clock.now += 180  # about 57 sogo lines: the list rotates before the next fetch, the others do not
    rig.sim.advance()
    rig.ingestor.fetch_all()
    assert {g.source for g in ingest_store.gaps(pool)} == {"sogo"}
    assert rig.ingestor.state["sogo"].interval == 2.0  # and the next fetch comes sooner


def test_a_list_mailcow_lacks_is_skipped_with_its_reason_and_backs_off(pool, live_app):
    now = int(time.time())
    rig = make_rig(pool, live_app, start=now - 600, rate=30, raw=RawLogs(interval=20))
    rig.sim.state.missing_logs = {"acme"}
    rig.sim.advance()
    rig.ingestor.fetch_all()  # mail flow's lists are fine: the round does not fail
    status = {s.source: s for s in ingest_store.ingest_statuses(pool)}
    assert status["acme"].last_error.startswith("skipped: ") and "route not found" in status["acme"].last_error
    assert status["dovecot"].last_error is None and status["dovecot"].last_success_at is not None
    asked, tries = _requests_for(rig, "acme"), [rig.clock.now]
    while rig.clock.now < tries[0] + 300:  # the worker's loop: only what is due, as soon as anything is
        rig.clock.now += rig.ingestor.due_in()
        failures = rig.ingestor.state["acme"].failures
        rig.ingestor.fetch_all(due_only=True)
        if rig.ingestor.state["acme"].failures > failures:
            tries.append(rig.clock.now)
    waits = [round(b - a) for a, b in itertools.pairwise(tries)]
    assert waits == [20, 40, 80, 160]  # never a tight loop: each pause twice the last
    assert _requests_for(rig, "acme") == asked + 4
    rig.sim.state.missing_logs = set()
    rig.clock.now += rig.ingestor.state["acme"].interval
    rig.ingestor.fetch_all(due_only=True)
    status = {s.source: s for s in ingest_store.ingest_statuses(pool)}
    assert rig.ingestor.state["acme"].failures == 0 and rig.ingestor.state["acme"].interval <= 20
    assert status["acme"].last_success_at is not None


def test_without_raw_logs_only_dovecot_is_read_for_its_deliveries(pool, live_app):
    """RAW_LOGS_ENABLED=false: no raw lines, no other list asked for, but what the mailboxes did still arrives."""
    now = int(time.time())
    rig = make_rig(pool, live_app, start=now - 1800, rate=60, raw=None)
    rig.run(600, every=60)
    assert not _stored(pool)
    assert set(rig.ingestor.state) == {"postfix", "rspamd", "netfilter", "dovecot"}
    assert all(_requests_for(rig, name) == 0 for name in ("sogo", "acme", "watchdog", "autodiscover"))
    with pool.connection() as conn:
        outcomes = dict(conn.execute("SELECT outcome, count(*) FROM dovecot_deliveries GROUP BY 1").fetchall())
        matched = conn.execute("SELECT count(*) FROM message_recipients WHERE delivery_outcome IS NOT NULL").fetchone()
    assert outcomes.get("stored", 0) > 100 and matched[0] > 100
