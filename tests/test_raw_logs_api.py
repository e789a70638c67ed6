"""The raw log REST API (seed 000) over real stored lines of all ten services: pages, search, dates,
levels, programs, order, 404s for unknown and uncollected services, the services list and the worker's
status after a real ingestion round against the simulator."""

from __future__ import annotations

import time
from datetime import UTC, datetime

import pytest

from exporter.app import create_app
from exporter.config_values import RAW_LOG_SERVICES
from exporter.mailcow.client import MailcowClient
from exporter.services import raw_logs as raw_service
from exporter.services.ingestor import Ingestor
from exporter.services.raw_logs import RawLogs
from exporter.worker.loop import tracked
from tests import raw_log_items as items
from tests.conftest import RO_KEY, make_config
from tests.mailflow import COUNTS, make_rig

NOW = int(time.time()) // 60 * 60 - 600  # a minute boundary ten minutes ago


@pytest.fixture
def raw(pool):
    items.clear(pool)
    yield pool
    items.clear(pool)


def _client(pool, db_url, **overrides):
    return create_app(make_config(db_url, **overrides), pool).test_client()


def _postfix_window(count: int, end: int) -> list[dict]:
    """`count` real postfix lines, one every 5 s up to `end`, newest first (as mailcow answers)."""
    names = list(items.POSTFIX)
    window = [
        items.timed("postfix", items.POSTFIX[names[i % len(names)]], end - 5 * (count - 1 - i)) for i in range(count)
    ]
    return window[::-1]


def _iso(epoch: int) -> str:
    return datetime.fromtimestamp(epoch, UTC).isoformat().replace("+00:00", "Z")


def test_pages_cover_every_line_once_newest_first_or_oldest_first(raw, db_url):
    window = _postfix_window(120, NOW)
    assert items.store(raw, "postfix", window) == 120
    client = _client(raw, db_url)
    seen = []
    for page in (1, 2, 3):
        body = client.get(f"/api/raw-logs/postfix?limit=50&page={page}").get_json()
        assert (body["total"], body["page"], body["limit"], body["pages"], body["total_exact"]) == (
            120,
            page,
            50,
            3,
            True,
        )
        seen += body["data"]
    assert len({row["id"] for row in seen}) == 120
    assert [row["time"] for row in seen] == sorted((row["time"] for row in seen), reverse=True)
    assert seen[0]["raw"] == window[0] and seen[-1]["raw"] == window[-1]  # the item exactly as mailcow sent it
    oldest = client.get("/api/raw-logs/postfix?limit=50&sort_order=asc").get_json()["data"]
    assert [r["id"] for r in oldest] == [r["id"] for r in seen[::-1][:50]]
    first = seen[0]
    assert set(first) == {"id", "time", "service", "level", "priority", "program", "message", "raw"}
    assert first["time"] == _iso(NOW) and first["service"] == "postfix"


def test_a_row_carries_level_mailcows_priority_and_program(raw, db_url):
    items.store(raw, "netfilter", [items.timed("netfilter", items.NETFILTER["matched"], NOW)])
    items.store(raw, "postfix", [items.timed("postfix", items.POSTFIX["sasl_failed"], NOW)])
    client = _client(raw, db_url)
    (netfilter,) = client.get("/api/raw-logs/netfilter").get_json()["data"]
    assert (netfilter["level"], netfilter["priority"], netfilter["program"]) == ("warning", "warn", None)
    (postfix,) = client.get("/api/raw-logs/postfix").get_json()["data"]
    assert (postfix["level"], postfix["priority"], postfix["program"]) == ("warning", "warning", "postfix/smtpd")


def test_search_is_a_case_insensitive_substring_and_counts_what_it_finds(raw, db_url):
    window = _postfix_window(120, NOW)
    items.store(raw, "postfix", window)
    client = _client(raw, db_url)
    expected = [i for i in window if "noqueue: reject" in i["message"].lower()]
    body = client.get("/api/raw-logs/postfix?search=noQUEUE: Reject&limit=500").get_json()
    assert body["total"] == len(expected) > 0 and body["total_exact"] is True
    assert [r["raw"] for r in body["data"]] == expected
    assert client.get("/api/raw-logs/postfix?search=ab").get_json()["total"] == sum(
        "ab" in i["message"].lower() for i in window
    )  # shorter than a gram: read line by line
    assert client.get("/api/raw-logs/postfix?search=no such words").get_json()["total"] == 0


def test_dates_bound_the_lines_and_the_total_counts_partial_minutes_exactly(raw, db_url):
    window = _postfix_window(120, NOW)  # 10 minutes of lines, every 5 s
    items.store(raw, "postfix", window)
    client = _client(raw, db_url)
    start, end = NOW - 437, NOW - 122  # neither on a minute
    expected = [i for i in window if start <= int(i["time"]) < end]
    body = client.get(f"/api/raw-logs/postfix?start_date={_iso(start)}&end_date={_iso(end)}&limit=500").get_json()
    assert body["total"] == len(expected) and [r["raw"] for r in body["data"]] == expected
    epoch_ms = client.get(f"/api/raw-logs/postfix?start_date={start * 1000}&end_date={end * 1000}").get_json()
    assert epoch_ms["total"] == len(expected)
    inside = client.get(f"/api/raw-logs/postfix?start_date={_iso(NOW - 20)}&end_date={_iso(NOW - 9)}").get_json()
    assert inside["total"] == 3  # one minute's part only: NOW-20, -15, -10
    late = client.get(f"/api/raw-logs/postfix?start_date={_iso(NOW - 30)}").get_json()
    assert late["total"] == 7
    bad = client.get(f"/api/raw-logs/postfix?start_date={_iso(end)}&end_date={_iso(start)}")
    assert bad.status_code == 400 and bad.get_json()["detail"].startswith("start_date:")


def test_levels_one_or_several_by_level_or_priority_and_program(raw, db_url):
    items.store_all(raw, end=NOW)
    client = _client(raw, db_url)

    def messages(query: str) -> list[str]:
        body = client.get(f"/api/raw-logs/dovecot?{query}").get_json()
        assert body["total"] == len(body["data"])
        return [r["message"] for r in body["data"]]

    assert messages("level=critical") == [items.DOVECOT["fatal"]["message"]]
    assert messages("priority=crit") == [items.DOVECOT["fatal"]["message"]]
    assert len(messages("level=info,critical")) == len(items.DOVECOT)
    assert messages("level=critical&priority=info") == []  # both given: the levels both name
    assert messages("level=warning") == []
    postfix = client.get("/api/raw-logs/postfix?program=postfix/postscreen&limit=500").get_json()
    assert {r["program"] for r in postfix["data"]} == {"postfix/postscreen"} and postfix["total"] == 4
    wrong = client.get("/api/raw-logs/postfix?level=loud")
    assert wrong.status_code == 400 and wrong.get_json()["code"] == "VALIDATION_FAILED"


def test_every_service_lists_its_real_items(raw, db_url):
    items.store_all(raw, end=NOW)
    client = _client(raw, db_url)
    for service, sent in items.ITEMS.items():
        body = client.get(f"/api/raw-logs/{service}?sort_order=asc").get_json()
        assert body["total"] == len(sent), service
        assert [{k: v for k, v in r["raw"].items() if k not in ("time", "unix_time")} for r in body["data"]] == [
            {k: v for k, v in i.items() if k not in ("time", "unix_time")} for i in sent.values()
        ], service
    assert client.get("/api/raw-logs/rspamd").get_json()["total"] == len(items.RSPAMD)  # seed 000's name


def test_unknown_and_uncollected_services_are_404s_saying_which(raw, db_url):
    client = _client(raw, db_url, raw_logs_services=["postfix"])
    unknown = client.get("/api/raw-logs/cron")
    assert unknown.status_code == 404 and unknown.get_json()["code"] == "SERVICE_NOT_FOUND"
    off = client.get("/api/raw-logs/dovecot")
    assert off.status_code == 404 and off.get_json()["code"] == "SERVICE_DISABLED"
    assert "RAW_LOGS_SERVICES" in off.get_json()["detail"]
    assert client.get("/api/raw-logs/dovecot/smart-filters").status_code == 200  # definitions, always
    assert client.get("/api/raw-logs/cron/smart-filters").status_code == 404
    disabled = _client(raw, db_url, raw_logs_enabled=False).get("/api/raw-logs/postfix")
    assert disabled.status_code == 404 and "RAW_LOGS_ENABLED" in disabled.get_json()["detail"]


def test_pages_stop_at_10000_lines_deep(raw, db_url):
    client = _client(raw, db_url)
    assert client.get("/api/raw-logs/postfix?page=20&limit=500").status_code == 200
    deep = client.get("/api/raw-logs/postfix?page=21&limit=500")
    assert deep.status_code == 400 and "end_date" in deep.get_json()["detail"]
    assert client.get("/api/raw-logs/postfix?limit=501").status_code == 400


def test_services_list_every_list_with_counts_and_flags(raw, db_url):
    items.store_all(raw, end=NOW)
    body = _client(raw, db_url, raw_logs_services=["postfix", "dovecot"]).get("/api/raw-logs/services").get_json()
    assert body["collection_enabled"] is True and body["total"] == 10
    assert [s["name"] for s in body["services"]] == list(RAW_LOG_SERVICES)
    by_name = {s["name"]: s for s in body["services"]}
    assert by_name["postfix"]["enabled"] and not by_name["sogo"]["enabled"]
    assert by_name["dovecot"]["entries"] == len(items.DOVECOT)
    assert by_name["rspamd-history"]["display_name"] == "Rspamd"
    assert by_name["postfix"]["smart_filters"] == 7
    assert by_name["postfix"]["newest"] == _iso(NOW) and by_name["postfix"]["oldest"] == _iso(
        NOW - 7 * (len(items.POSTFIX) - 1)
    )
    assert by_name["sogo"]["entries"] == 3 and by_name["api"]["newest"] == _iso(NOW)


def test_worker_status_after_a_real_ingestion_round(raw, db_url, live_app):
    rig = make_rig(raw, live_app, start=int(time.time()) - 900, rate=20)
    settings = RawLogs()
    client = MailcowClient(rig.mailcow_url, RO_KEY, timeout=30)
    rig.ingestor = Ingestor(client, raw, COUNTS, max_interval=60, clock=rig.clock, raw=settings)
    rig.run(900, every=300)
    tracked(raw, "raw_logs_retention", lambda: raw_service.maintain(raw, settings.retention_days))()
    app_client = _client(raw, db_url)
    body = app_client.get("/api/raw-logs/worker-status").get_json()
    assert body["settings"]["retention_days"] == 2 and body["collection_enabled"] is True
    by_name = {s["service"]: s for s in body["services"]}
    assert set(by_name) == set(RAW_LOG_SERVICES) and by_name["rspamd-history"]["source"] == "rspamd"
    for name, status in by_name.items():
        assert status["enabled"] and status["last_fetch"], name
        # every list read again and again, also one whose oldest item is the newest second stored (api)
        assert status["healthy"] and not status["skipped"] and status["last_error"] is None, status
    postfix = by_name["postfix"]
    assert postfix["lines_stored"] > 0 and postfix["last_success"] and postfix["interval_seconds"] > 0
    counted = app_client.get("/api/raw-logs/postfix").get_json()["total"]
    assert counted == postfix["lines_stored"]
    retention = body["jobs"]["raw_logs_retention"]
    assert retention["status"] == "success" and retention["runs"] == 1 and retention["last_success"]
    assert body["jobs"]["fetch_logs"]["schedule"]


def test_a_search_over_many_blocks_pages_exactly_both_ways(raw, db_url):
    """6,000 lines (a dozen gram blocks, so the block batches grow): every page is the lines that match,
    in order, whether the term is rare (one line in 700) or common."""
    window = _postfix_window(6000, NOW)
    rare_at = {int(i["time"]) for i in window[::700]}
    window = [{**i, "message": i["message"] + " PREGREET marker"} if int(i["time"]) in rare_at else i for i in window]
    assert items.store(raw, "postfix", window) == 6000
    client = _client(raw, db_url)
    for term, limit in (("pregreet MARKER", 3), ("relay access", 200)):
        expected = [i for i in window if term.lower() in i["message"].lower()]
        for order, ordered in (("desc", expected), ("asc", expected[::-1])):
            got = []
            for page in range(1, (len(expected) + limit - 1) // limit + 1):
                body = client.get(
                    "/api/raw-logs/postfix",
                    query_string={"search": term, "limit": limit, "page": page, "sort_order": order},
                ).get_json()
                assert body["total"] == len(expected) and body["total_exact"]
                got += [r["raw"] for r in body["data"]]
            assert got == ordered, (term, order)
