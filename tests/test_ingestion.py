"""Lossless ingestion: snapshots, idempotent loads, repeated lines, unparsed items, gaps, late lines."""

from __future__ import annotations

import gc
import json
import secrets
import threading
import time
from datetime import UTC, datetime

import psycopg
import pytest
from flask import Flask, Response
from prometheus_client.parser import text_string_to_metric_families

from exporter.app import create_app
from exporter.mailcow.client import MailcowClient
from exporter.parsers import MAX_FIELD
from exporter.services import correlation
from exporter.services.ingest import MIN_INTERVAL, fetch_source, load_groups, load_window
from exporter.services.ingestor import Ingestor
from exporter.simulator.state import LOCAL_DOMAINS
from tests.conftest import RO_KEY, SIM_START, make_config
from tests.mailflow import COUNTS, make_rig


def _count(pool, table: str) -> int:
    with pool.connection() as conn:
        return conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0]


def _snapshot(pool) -> tuple:
    """Everything a user could see: stored lines and correlated messages with recipients."""
    with pool.connection() as conn:
        lines = conn.execute("SELECT encode(line_key, 'hex'), occurrence FROM postfix_lines ORDER BY 1, 2").fetchall()
        rspamd = conn.execute("SELECT encode(line_key, 'hex'), occurrence FROM rspamd_rows ORDER BY 1, 2").fetchall()
        messages = conn.execute(
            """SELECT m.correlation_key, m.final_status, m.direction, m.is_spam, m.sender,
                      array_agg(r.recipient || ':' || r.status ORDER BY r.recipient)
               FROM messages m LEFT JOIN message_recipients r ON r.message_pk = m.id
               GROUP BY m.id ORDER BY 1"""
        ).fetchall()
    return lines, rspamd, messages


def test_refetching_the_same_window_changes_nothing(pool, live_app):
    rig = make_rig(pool, live_app, SIM_START, rate=60)
    rig.run(600, every=60)
    before = _snapshot(pool)
    assert before[2], "messages were correlated"
    rig.ingestor.fetch_all()
    correlation.correlate(pool, LOCAL_DOMAINS)
    assert _snapshot(pool) == before


def test_fetch_pages_back_until_it_overlaps(pool, live_app):
    rig = make_rig(pool, live_app, SIM_START, rate=60)
    rig.step(60)
    client = rig.ingestor.client
    rig.clock.now += 240
    rig.sim.advance()
    new_lines = len([i for i in rig.sim.state.logs["postfix"] if int(i["time"]) > SIM_START + 60])
    result = fetch_source(client, pool, "postfix", first_count=100)
    assert result.requests > 1 and result.gap is None
    assert _count(pool, "postfix_lines") == len(rig.sim.state.logs["postfix"])
    assert result.inserted >= new_lines


def test_identical_lines_are_all_kept_and_loading_twice_adds_nothing(pool):
    reject = {
        "time": "1790000000",
        "program": "postfix/smtpd",
        "priority": "info",
        "message": "NOQUEUE: reject: RCPT from unknown[62.149.156.25]: 454 4.7.1 <a@x.example>: Relay access "
        "denied; from=<> to=<a@x.example> proto=ESMTP helo=<h>",
    }
    window = [reject, dict(reject), dict(reject)]
    with pool.connection() as conn, conn.transaction():
        assert load_window(conn, "postfix", window) == (3, 0)
    with pool.connection() as conn, conn.transaction():
        assert load_window(conn, "postfix", window) == (0, 0)
        # a fourth identical line arrives in the same second: only it is new
        assert load_window(conn, "postfix", [dict(reject), *window]) == (1, 0)
    correlation.correlate(pool, LOCAL_DOMAINS)
    with pool.connection() as conn:
        assert conn.execute("SELECT count(*) FROM messages WHERE final_status = 'rejected'").fetchone()[0] == 4


def test_lines_stored_meanwhile_by_another_writer_are_not_stored_twice(pool, db_url):
    """Two writers (say import-logs beside the worker) load the same window at once: the second
    waits on the first's uncommitted lines, then stores nothing and loses nothing."""
    window = [
        {"time": "1790000100", "program": "postfix/qmgr", "priority": "info", "message": f"ABCDEF00{n:02X}: removed"}
        for n in range(3)
    ]
    second: list[tuple[int, int]] = []

    def load_again() -> None:
        with pool.connection() as conn, conn.transaction():
            second.append(load_window(conn, "postfix", window))

    with psycopg.connect(db_url, autocommit=True) as watcher, pool.connection() as first:
        with first.transaction():
            assert load_window(first, "postfix", window) == (3, 0)
            other = threading.Thread(target=load_again)
            other.start()
            for _ in range(200):  # until the second writer waits on our uncommitted lines
                waiting = watcher.execute(
                    "SELECT count(*) FROM pg_stat_activity "
                    "WHERE wait_event_type = 'Lock' AND datname = current_database()"
                ).fetchone()[0]
                if waiting:
                    break
                time.sleep(0.02)
            assert waiting == 1
        other.join(10)
    assert second == [(0, 0)]
    assert _count(pool, "postfix_lines") == 3


def test_a_bad_item_is_kept_as_unparsed_and_its_neighbours_load(pool):
    good = {"time": "1790000001", "program": "postfix/qmgr", "priority": "info", "message": "ABCDEF1234: removed"}
    with pool.connection() as conn, conn.transaction():
        assert load_window(conn, "postfix", [good, {"time": "soon", "message": 5}, "garbage"]) == (1, 2)
    with pool.connection() as conn:
        errors = [r[0] for r in conn.execute("SELECT error FROM unparsed_lines ORDER BY id")]
    assert len(errors) == 2 and all(errors)


def test_a_mail_with_kilobytes_of_message_id_and_sender_is_correlated_and_the_next_one_too(pool):
    """A sender chooses its Message-ID and address: one longer than an index entry holds once failed
    every correlation batch after it. They are cut to MAX_FIELD and the mail is shown like any other."""
    long_id, long_sender = secrets.token_hex(2000), secrets.token_hex(2000) + "@example.com"

    def mail(qid: str, at: int, message_id: str, sender: str) -> list[dict]:
        said = [
            ("postfix/smtpd", f"{qid}: client=unknown[192.0.2.1]"),
            ("postfix/cleanup", f"{qid}: message-id=<{message_id}>"),
            ("postfix/qmgr", f"{qid}: from=<{sender}>, size=100, nrcpt=1 (queue active)"),
            (
                "postfix/lmtp",
                f"{qid}: to=<a@example.org>, relay=dovecot, delay=1, delays=0/0/0/0, dsn=2.0.0, "
                "status=sent (250 2.0.0 Ok)",
            ),
            ("postfix/qmgr", f"{qid}: removed"),
        ]
        lines = [{"time": str(at + n), "program": p, "priority": "info", "message": m} for n, (p, m) in enumerate(said)]
        return lines[::-1]

    rspamd = {
        "unix_time": SIM_START,
        "action": "no action",
        "score": 0.5,
        "message-id": long_id,
        "sender_smtp": long_sender,
        "rcpt_smtp": ["a@example.org"],
        "ip": "192.0.2.1",
    }
    with pool.connection() as conn, conn.transaction():
        window = mail("ABCDEF1234", SIM_START + 10, long_id, long_sender) + mail(
            "ABCDEF5678", SIM_START, "ok@x", "b@x.net"
        )
        assert load_window(conn, "postfix", window) == (10, 0)
        assert load_window(conn, "rspamd", [rspamd]) == (1, 0)
    correlation.correlate(pool, LOCAL_DOMAINS)
    with pool.connection() as conn:
        shown = conn.execute(
            "SELECT queue_id, final_status, length(message_id), length(sender), rspamd_row_id IS NOT NULL "
            "FROM messages ORDER BY queue_id"
        ).fetchall()
    assert shown == [("ABCDEF1234", "delivered", MAX_FIELD, MAX_FIELD, True), ("ABCDEF5678", "delivered", 4, 7, False)]


def test_a_nul_in_what_mailcow_sends_is_stored_as_a_replacement_character_and_blocks_nothing(pool, mailcow, sim):
    """PHP escapes a NUL in a log line (a subject a sender chose, say) as \\u0000, and PostgreSQL text
    cannot hold one: it failed the COPY of its whole window on every fetch, so nothing new was stored."""
    now = SIM_START + 1
    sim.state.push(
        "postfix",
        {
            "time": str(now),
            "program": "postfix/smtpd",
            "priority": "info",
            "message": "ABCDEF1234: client=a\x00b[192.0.2.1]",
        },
    )
    sim.state.push(
        "rspamd-history",
        {"unix_time": now, "action": "no action", "score": 0.1, "subject": "hi\x00there", "message-id": "m\x00id@x"},
    )
    sim.state.push("netfilter", {"time": now, "priority": "crit", "message": "Banning 192.0.2.1\x00/32 for 5 minutes"})
    client = MailcowClient(mailcow.url, RO_KEY)
    for source, table, column in (
        ("postfix", "postfix_lines", "message"),
        ("rspamd", "rspamd_rows", "subject"),
        ("netfilter", "netfilter_lines", "message"),
    ):
        assert fetch_source(client, pool, source, 2000).inserted > 0
        with pool.connection() as conn:
            stored = conn.execute(f"SELECT {column} FROM {table} WHERE {column} LIKE '%\ufffd%'").fetchall()
        assert len(stored) == 1 and "\x00" not in stored[0][0]
    correlation.correlate(pool, LOCAL_DOMAINS)
    with pool.connection() as conn:
        assert conn.execute("SELECT count(*) FROM messages").fetchone()[0] > 0  # the hour's mail around it


def test_bulk_load_commits_groups_in_log_order_and_reports_each(pool):
    def line(second: int, n: int) -> dict:
        return {
            "time": str(1790000000 + second),
            "program": "postfix/qmgr",
            "priority": "info",
            "message": f"ABCDEF{n:04X}: removed",
        }

    groups = [[("postfix", [line(g, g * 10 + i) for i in range(9, -1, -1)])] for g in range(5)]
    groups[2] = [("postfix", [*groups[2][0][1], "garbage"])]  # a bad item in the middle group
    seen: list[int] = []

    def loaded() -> None:  # runs after each commit: another connection already sees the group
        seen.append(_count(pool, "postfix_lines"))

    thresholds = gc.get_threshold()
    assert load_groups(pool, groups, loaded) == 50
    assert seen == [10, 20, 30, 40, 50]
    assert gc.get_threshold() == thresholds  # the collector is as the process had it
    with pool.connection() as conn:
        order = [m for (m,) in conn.execute("SELECT message FROM postfix_lines ORDER BY id")]
    assert order == [f"ABCDEF{n:04X}: removed" for n in range(50)]
    assert _count(pool, "unparsed_lines") == 1
    assert load_groups(pool, groups) == 0  # loading again adds nothing


def test_gap_is_recorded_when_the_list_rotates_faster_than_we_fetch(pool, live_app, db_url):
    rig = make_rig(pool, live_app, SIM_START, rate=120, log_cap=500)
    rig.step(30)
    assert rig.ingestor.next_delay() > MIN_INTERVAL
    rig.step(600)  # ~15,000 postfix lines into a 500-line list
    with pool.connection() as conn:
        gaps = conn.execute("SELECT source, gap_start, gap_end FROM ingest_gaps").fetchall()
    assert "postfix" in {g[0] for g in gaps}
    postfix_gap = next(g for g in gaps if g[0] == "postfix")
    assert postfix_gap[1] <= datetime.fromtimestamp(SIM_START + 31, tz=UTC) < postfix_gap[2]
    assert rig.ingestor.next_delay() == MIN_INTERVAL
    info = create_app(make_config(db_url), pool).test_client().get("/api/settings/info").get_json()
    assert info["import_status"]["postfix"]["gaps"] >= 1 and info["gaps"][0]["source"] in (
        "postfix",
        "rspamd",
        "dovecot",
    )


def test_busy_server_shortens_the_interval(pool, live_app):
    rig = make_rig(pool, live_app, SIM_START, rate=1500)
    rig.step(30)
    rig.step(10)
    # ~230 postfix lines/s fill the 10,000-line list in ~45 s: fetch at least three times as often
    postfix = rig.ingestor.state["postfix"]
    assert postfix.rate > 150
    assert MIN_INTERVAL <= rig.ingestor.next_delay() <= postfix.interval <= 10_000 / postfix.rate / 3 + 0.01
    assert rig.ingestor.next_delay() < 20


def test_deferred_for_five_hours_then_delivered_shows_delivered(pool, live_app, db_url):
    rig = make_rig(pool, live_app, SIM_START, rate=0)
    message = rig.sim.inject("outbound_deferred", deliver_after=5 * 3600)
    client = create_app(make_config(db_url), pool).test_client()
    rig.step(120)

    def shown() -> dict:
        return client.get(f"/api/messages?sender={message.sender}").get_json()["data"][0]

    assert (shown()["final_status"], shown()["is_complete"]) == ("deferred", False)
    rig.run(4 * 3600, every=1800)
    assert shown()["final_status"] == "deferred"
    rig.run(3600, every=600)
    assert (shown()["final_status"], shown()["is_complete"]) == ("delivered", True)
    details = client.get(f"/api/message/{shown()['correlation_key']}/details").get_json()
    assert details["recipient_details"][0]["attempts"] >= 2


def test_late_rspamd_rows_still_link(pool, live_app):
    rig = make_rig(pool, live_app, SIM_START, rate=30)
    rig.clock.now += 300
    rig.sim.advance()
    client = MailcowClient(rig.ingestor.client._http.base_url.join("/").__str__().rstrip("/"), RO_KEY)
    fetch_source(client, pool, "postfix", 2000)
    correlation.correlate(pool, LOCAL_DOMAINS)
    with pool.connection() as conn:
        assert conn.execute("SELECT count(*) FROM messages WHERE rspamd_row_id IS NOT NULL").fetchone()[0] == 0
    fetch_source(client, pool, "rspamd", 500)
    correlation.correlate(pool, LOCAL_DOMAINS)
    with pool.connection() as conn:
        linked, queued = conn.execute(
            "SELECT count(rspamd_row_id), count(*) FROM messages WHERE queue_id IS NOT NULL AND service IS NOT NULL"
        ).fetchone()
    assert linked > 0.9 * queued


def test_timestamps_are_utc_instants(pool, live_app, db_url):
    rig = make_rig(pool, live_app, SIM_START, rate=30)
    rig.step(60)
    newest = rig.sim.state.logs["postfix"][0]
    with psycopg.connect(db_url) as conn:
        epoch = conn.execute("SELECT extract(epoch FROM max(logged_at))::bigint FROM postfix_lines").fetchone()[0]
    assert epoch == int(newest["time"])


def test_discarded_mail_shows_discarded(pool):
    lines = [
        {
            "time": "1790000000",
            "program": "postfix/smtpd",
            "priority": "info",
            "message": "A1B2C3D4E5: client=x.example[198.51.100.1]",
        },
        {
            "time": "1790000001",
            "program": "postfix/cleanup",
            "priority": "info",
            "message": "A1B2C3D4E5: discard: header Subject: lottery from x.example[198.51.100.1]; from=<a@x.example> "
            "to=<bob@example.org> proto=ESMTP helo=<x.example>",
        },
    ]
    with pool.connection() as conn, conn.transaction():
        load_window(conn, "postfix", lines[::-1])
    correlation.correlate(pool, LOCAL_DOMAINS)
    with pool.connection() as conn:
        row = conn.execute("SELECT final_status, is_complete FROM messages WHERE queue_id = 'A1B2C3D4E5'").fetchone()
    assert row == ("discarded", True)


def _garbage_mailcow() -> Flask:
    """A mailcow behind a misbehaving proxy: garbage items in the postfix list, an HTML page for the
    rspamd history, a JSON answer cut short for netfilter."""
    app = Flask("garbage")
    good = {"time": "1790000000", "program": "postfix/qmgr", "priority": "info", "message": "ABCDEF1234: removed"}

    @app.get("/api/v1/get/logs/<service>/<int:count>")
    def logs(service: str, count: int) -> Response:
        if service == "postfix":
            items = ["<html><body>502 Bad Gateway</body></html>", {"unexpected": "shape"}, 42, good]
            return Response(json.dumps(items), content_type="application/json")
        if service == "rspamd-history":
            return Response("<html><body>Please log in</body></html>", content_type="text/html")
        return Response('[{"time": "1790000000", "mess', content_type="application/json")

    return app


def test_garbage_from_mailcow_is_counted_once_and_surfaced(pool, live_app, db_url):
    server = live_app(_garbage_mailcow())
    ingestor = Ingestor(MailcowClient(server.url, RO_KEY), pool, COUNTS, max_interval=60)
    with pytest.raises(RuntimeError, match="non-JSON"):  # whole answers that are not JSON fail the fetch
        ingestor.fetch_all()
    with pytest.raises(RuntimeError):  # the same answer again: the unreadable items are not counted twice
        ingestor.fetch_all()
    assert (_count(pool, "postfix_lines"), _count(pool, "unparsed_lines")) == (1, 3)

    app = create_app(make_config(db_url), pool).test_client()
    status = app.get("/api/settings/info").get_json()["import_status"]
    assert (status["postfix"]["unparsed_total"], status["postfix"]["last_unparsed"]) == (3, 3)
    assert status["postfix"]["last_error"].startswith("3 of 4 items could not be parsed, e.g. ")
    assert "non-JSON" in status["rspamd"]["last_error"] and "non-JSON" in status["netfilter"]["last_error"]
    assert status["rspamd"]["unparsed_total"] == 0
    scraped = {
        (s.name, tuple(s.labels.items())): s.value
        for family in text_string_to_metric_families(app.get("/metrics").get_data(as_text=True))
        for s in family.samples
    }
    assert scraped[("mailcow_grafana_unparsed_lines_total", (("source", "postfix"),))] == 3
    reasons = app.get("/api/health").get_json()["reasons"]
    assert "postfix: 3 of the 4 items of the last fetch could not be parsed" in reasons
