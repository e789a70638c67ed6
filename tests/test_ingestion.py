"""Fetching the simulator's logs into PostgreSQL: idempotent, lossless for repeated lines."""

from __future__ import annotations

import psycopg

from exporter import ingestion, store
from exporter.jobs import tracked
from exporter.mailcow_client import MailcowClient
from exporter.parsers.raw_lines import normalize
from exporter.web.app import create_app
from tests.conftest import RO_KEY, make_config


def _count(pool, source: str) -> int:
    with pool.connection() as conn:
        return conn.execute("SELECT count(*) FROM log_lines WHERE source = %s", (source,)).fetchone()[0]


def test_fetch_stores_lines_and_refetch_adds_nothing(mailcow, pool, db_url):
    client = MailcowClient(mailcow.url, RO_KEY)
    config = make_config(db_url, mailcow.url, fetch_count_postfix=300)
    first = ingestion.fetch_all(client, pool, config)
    assert first["postfix"] == _count(pool, "postfix") > 0
    assert first["rspamd"] > 0 and first["netfilter"] > 0
    again = ingestion.fetch_all(client, pool, config)
    assert again == {"postfix": 0, "rspamd": 0, "netfilter": 0}
    info = create_app(config, pool).test_client().get("/api/info").get_json()
    assert info["import_status"]["postfix"]["total_entries"] == first["postfix"]
    assert info["import_status"]["postfix"]["newest_entry"].endswith("Z")


def test_identical_lines_in_one_window_are_all_kept(pool):
    reject = {
        "time": "1790000000",
        "program": "postfix/smtpd",
        "priority": "info",
        "message": "NOQUEUE: reject: RCPT from unknown[62.149.156.25]: 454 4.7.1 <a@x.example>: Relay access "
        "denied; from=<> to=<a@x.example> proto=ESMTP helo=<h>",
    }
    lines, bad = normalize("postfix", [reject, dict(reject), dict(reject)])
    assert bad == [] and [line.occurrence for line in lines] == [0, 1, 2]
    from datetime import UTC, datetime

    assert store.store_log_lines(pool, "postfix", lines, datetime.now(UTC)) == 3
    assert store.store_log_lines(pool, "postfix", lines, datetime.now(UTC)) == 0
    assert _count(pool, "postfix") == 3


def test_items_without_time_do_not_drop_their_neighbours():
    lines, bad = normalize(
        "postfix",
        [{"time": "x", "message": "m"}, {"time": "1790000000", "program": "p", "priority": "info", "message": "ok"}],
    )
    assert [line.message for line in lines] == ["ok"] and len(bad) == 1


def test_failed_fetch_is_recorded_for_the_job_and_the_source(pool, db_url):
    client = MailcowClient("http://127.0.0.1:9", RO_KEY, retries=1)
    config = make_config(db_url)
    tracked(pool, "fetch_logs", lambda: ingestion.fetch_all(client, pool, config))()
    status = {row["name"]: row for row in store.job_statuses(pool)}["fetch_logs"]
    assert status["status"] == "failed" and status["failures"] == 1 and "MailcowError" in status["last_error"]
    sources = {row["source"]: row for row in store.ingest_statuses(pool)}
    assert "cannot reach mailcow" in sources["postfix"]["last_error"]


def test_timestamps_are_stored_as_utc_instants(mailcow, pool, db_url):
    client = MailcowClient(mailcow.url, RO_KEY)
    ingestion.fetch_source(client, pool, "postfix", 5)
    newest = client.logs("postfix", count=1)[0]
    with psycopg.connect(db_url) as conn:
        epoch = conn.execute("SELECT extract(epoch FROM max(logged_at))::bigint FROM log_lines").fetchone()[0]
    assert epoch == int(newest["time"])
