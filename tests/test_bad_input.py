"""Bad input and heavy requests: every search answers what it matched, a bad value is a 400 naming the
parameter, every error (a streamed CSV's included) is the JSON envelope, and one request's work is bounded."""

from __future__ import annotations

import csv
import io
import json
import re
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any

import httpx
import psycopg
import pytest
from psycopg import sql

from exporter.app import create_app
from exporter.config import ConfigError, load_config
from exporter.store.database import Pool, create_pool, migrate
from tests.conftest import make_config
from tests.mailflow import scenario
from tests.test_worker import _stop_postgres, private_postgres  # noqa: F401 (a fixture)


@pytest.fixture(scope="module")
def traffic(databases):
    """An hour of simulated traffic ending now, ingested and correlated: yields (pool, database URL)."""
    with scenario(databases, int(time.time()) - 3600, rate=20, seed=11) as (rig, pool, url):
        rig.run(3600, every=300)
        yield pool, url


@pytest.fixture(scope="module")
def client(traffic):
    pool, url = traffic
    return create_app(make_config(url), pool).test_client()


def _matches(term: str, text: str) -> bool:
    """The documented search: the term's words adjacent and in order, the last one as a prefix."""
    words = re.findall(r"[a-z0-9]+", term.lower())
    return re.search(r"(?<![a-z0-9])" + r"[^a-z0-9]+".join(words), (text or "").lower()) is not None


# --- every search works and answers exactly what matches ---------------------------------------------

# source -> (table, SQL for the searchable text of a row)
SOURCES = {
    "postfix": ("postfix_lines", "message"),
    "rspamd": ("rspamd_rows", "concat_ws(' ', subject, sender_smtp, message_id)"),
    "netfilter": ("netfilter_lines", "message"),
    "messages": ("messages", "search_text"),
}


def _terms(pool) -> dict[str, str]:
    """A term per source that some, not all, of its rows hold."""
    with pool.connection() as conn:
        ip = conn.execute("SELECT ip FROM netfilter_lines WHERE kind = 'warning' ORDER BY id LIMIT 1").fetchone()[0]
    return {"postfix": "relay access", "rspamd": "partner.example", "netfilter": ip, "messages": "partner.example"}


def _expected(pool, source: str, term: str) -> int:
    table, text = SOURCES[source]
    with pool.connection() as conn:
        rows = conn.execute(f"SELECT {text} FROM {table}").fetchall()
    found = sum(1 for (value,) in rows if _matches(term, value))
    assert 0 < found < len(rows), f"{term!r} should match some, not all, {source} rows"
    return found


def _rest(source: str) -> Callable[[Any, str], tuple[int, list[str]]]:
    text = {
        "postfix": lambda r: r["message"],
        "rspamd": lambda r: " ".join(r[k] or "" for k in ("subject", "sender_smtp", "message_id")),
        "netfilter": lambda r: r["message"],
    }[source]

    def run(client, term: str) -> tuple[int, list[str]]:
        response = client.get(f"/api/logs/{source}", query_string={"search": term, "limit": 500})
        assert response.status_code == 200, response.get_json()
        body = response.get_json()
        return body["total"], [text(r) for r in body["data"]]

    return run


def _csv(source: str) -> Callable[[Any, str], tuple[int, list[str]]]:
    columns = {
        "postfix": ("Message",),
        "rspamd": ("Subject", "Sender", "Message ID"),
        "netfilter": ("Message",),
        "messages": None,  # its search text is not one column: the rows are checked against /api/messages
    }[source]

    def run(client, term: str) -> tuple[int, list[str]]:
        response = client.get(f"/api/export/{source}/csv", query_string={"search": term})
        assert response.status_code == 200 and response.mimetype == "text/csv", response.data[:300]
        rows = list(csv.DictReader(io.StringIO(response.get_data(as_text=True))))
        if columns is None:
            listed = client.get("/api/messages", query_string={"search": term, "limit": 500}).get_json()["data"]
            assert sorted(r["Queue ID"] or "" for r in rows) == sorted(m["queue_id"] or "" for m in listed)
            return len(rows), [term] * len(rows)
        return len(rows), [" ".join(r[c] for c in columns) for r in rows]

    return run


def _infinity(source: str) -> Callable[[Any, str], tuple[int, list[str]]]:
    def run(client, term: str) -> tuple[int, list[str]]:
        response = client.get(f"/grafana/infinity/{source}_logs", query_string={"search": term, "limit": 5000})
        assert response.status_code == 200, response.get_json()
        rows = response.get_json()
        return len(rows), [f"{r['body']} {r.get('message_id') or ''}" for r in rows]

    return run


def _json_datasource(source: str) -> Callable[[Any, str], tuple[int, list[str]]]:
    def run(client, term: str) -> tuple[int, list[str]]:
        target = {"refId": "A", "target": f"{source}_logs", "payload": {"limit": 5000}}
        body = {"targets": [target], "filters": [{"key": "search", "operator": "=", "value": term}]}
        response = client.post("/grafana/json/query", json=body)
        assert response.status_code == 200, response.get_json()
        fields = {f["name"]: f["values"] for f in response.get_json()[0]["fields"]}
        bodies, ids = fields.get("body", []), fields.get("message_id", [None] * len(fields.get("body", [])))
        return len(bodies), [f"{b} {i or ''}" for b, i in zip(bodies, ids, strict=True)]

    return run


SEARCHES = [
    *[(f"/api/logs/{s}", s, _rest(s)) for s in ("postfix", "rspamd", "netfilter")],
    *[(f"/api/export/{s}/csv", s, _csv(s)) for s in ("postfix", "rspamd", "netfilter", "messages")],
    *[(f"/grafana/infinity/{s}_logs", s, _infinity(s)) for s in ("postfix", "rspamd", "netfilter")],
    *[(f"/grafana/json/query {s}_logs", s, _json_datasource(s)) for s in ("postfix", "rspamd", "netfilter")],
]


@pytest.mark.parametrize(("endpoint", "source", "run"), SEARCHES, ids=[s[0] for s in SEARCHES])
def test_every_search_answers_exactly_the_matching_rows(traffic, client, endpoint, source, run):
    pool, _ = traffic
    term = _terms(pool)[source]
    count, texts = run(client, term)
    assert count == _expected(pool, source, term), endpoint
    assert all(_matches(term, text) for text in texts), endpoint


# --- bad values are a 400 naming the parameter ----------------------------------------------------------


def _envelope(response, status: int) -> dict[str, Any]:
    """The JSON error envelope of `response`, which must have `status`."""
    assert response.status_code == status, response.get_data(as_text=True)[:300]
    assert response.mimetype == "application/json"
    body = response.get_json()
    assert {"error", "detail", "code"} <= set(body) and all(isinstance(body[k], str) for k in ("detail", "code"))
    return body


NUL = "a\x00b"


@pytest.mark.parametrize(
    ("path", "params", "name"),
    [
        ("/api/messages", {"search": NUL}, "search"),
        ("/api/messages", {"sender": NUL}, "sender"),
        ("/api/logs/postfix", {"recipient": NUL}, "recipient"),
        ("/api/logs/netfilter", {"username": NUL}, "username"),
        ("/api/export/rspamd/csv", {"sender": NUL}, "sender"),
        ("/api/audit-log", {"actor": NUL}, "actor"),
        ("/api/mailbox-stats/all", {"domain": NUL}, "domain"),
        ("/api/message/a%00b/details", {}, "correlation_key"),
        ("/api/dmarc/domains/a%00b/overview", {}, "domain"),
        ("/grafana/infinity/messages", {"search": NUL}, "search"),
        ("/grafana/infinity/messages", {"sender": NUL}, "sender"),
        ("/grafana/infinity/message_lines", {"key": NUL}, "key"),
        ("/api/raw-logs/postfix", {"search": NUL}, "search"),
        ("/api/raw-logs/postfix", {"program": NUL}, "program"),
        ("/api/raw-logs/dovecot", {"filter": NUL}, "filter"),
        ("/api/raw-logs/a%00b", {}, "service"),
    ],
)
def test_a_nul_byte_in_any_text_parameter_is_a_400_naming_it(client, path, params, name):
    body = _envelope(client.get(path, query_string=params), 400)
    assert body["detail"].startswith(f"{name}: ") and "NUL" in body["detail"]


def test_a_nul_character_in_a_json_body_is_a_400(client):
    target = {"target": "messages", "payload": {"sender": NUL}}
    _envelope(client.post("/grafana/json/query", json={"targets": [target]}), 400)
    _envelope(client.post("/grafana/json/variable", json={"payload": NUL}), 400)
    _envelope(client.post("/api/queue/action", json={"action": NUL, "items": ["ABCDE12345"]}), 400)


@pytest.mark.parametrize("date", ["0001-01-01", "0001-01-01T00:00:00Z", "9999-12-31T23:59:59", "-62135596800000"])
@pytest.mark.parametrize(
    ("path", "name"),
    [
        ("/api/messages?start_date={}", "start_date"),
        ("/api/messages?end_date={}", "end_date"),
        ("/api/stats/timeline?end_date={}", "end_date"),
        ("/api/export/netfilter/csv?end_date={}", "end_date"),
        ("/api/audit-log?start_date={}", "start_date"),
        ("/api/raw-logs/postfix?start_date={}", "start_date"),
        ("/api/raw-logs/sogo?end_date={}", "end_date"),
        ("/grafana/infinity/message_flow?from={}", "from"),
        ("/grafana/infinity/top_senders?to={}", "to"),
    ],
)
def test_dates_in_year_1_or_9999_are_a_400_naming_the_parameter(client, path, name, date):
    body = _envelope(client.get(path.format(date)), 400)
    assert body["detail"].startswith(f"{name}: ")


@pytest.mark.parametrize("value", ["1e309", "-1e309", "Infinity", "-Infinity", "NaN", "9" * 400])
@pytest.mark.parametrize("name", ["limit", "interval_ms", "max_points"])
def test_infinite_and_huge_numbers_in_grafana_parameters_are_a_400(client, name, value):
    body = _envelope(client.get("/grafana/infinity/message_flow", query_string={name: value}), 400)
    assert body["detail"].startswith(f"{name}: ") and body["code"] == "VALIDATION_FAILED"
    payload = {"target": "postfix_logs", "payload": {name: value}}
    body = _envelope(client.post("/grafana/json/query", json={"targets": [payload]}), 400)
    assert body["detail"].startswith(f"{name}: ")


def test_a_timeline_interval_beyond_a_year_is_a_400(client):
    body = _envelope(client.get("/api/stats/timeline", query_string={"interval_ms": "9" * 400}), 400)
    assert body["detail"].startswith("interval_ms: ")


@pytest.mark.parametrize("value", ["1e309", "Infinity", "NaN"])
def test_infinite_scores_in_rest_filters_are_a_400(client, value):
    body = _envelope(client.get("/api/logs/rspamd", query_string={"min_score": value}), 400)
    assert body["detail"].startswith("min_score: ")


@pytest.mark.parametrize("path", ["/grafana/json/query", "/grafana/json/variable", "/grafana/json/tag-values"])
@pytest.mark.parametrize(
    ("body", "name"),
    [
        ({"range": ["now-1h", "now"]}, "range"),
        ({"range": "last hour"}, "range"),
        ({"range": 3600}, "range"),
        ({"targets": "message_flow"}, "targets"),
        ({"targets": 1}, "targets"),
        ({"targets": {"target": "message_flow"}}, "targets"),
        ({"targets": ["message_flow"]}, "targets.0"),
        ({"filters": "direction=inbound"}, "filters"),
        ({"filters": 7}, "filters"),
        ({"filters": [["direction", "=", "inbound"]]}, "filters.0"),
        ({"adhocFilters": {"key": "direction"}}, "adhocFilters"),
    ],
)
def test_json_datasource_bodies_of_the_wrong_shape_are_a_400_naming_the_field(client, path, body, name):
    answer = _envelope(client.post(path, json={"payload": "domains", **body}), 400)
    assert answer["detail"].startswith(f"{name}: ")


@pytest.mark.parametrize("path", ["/grafana/json/query", "/grafana/json/variable", "/api/queue/action"])
@pytest.mark.parametrize("body", ["[" * 100_000 + "]" * 100_000, '{"a":' * 50 + "1" + "}" * 50, "not json", "[1, 2]"])
def test_deeply_nested_or_broken_json_bodies_are_a_4xx_envelope(client, path, body):
    response = client.post(path, data=body, content_type="application/json")
    assert 400 <= response.status_code < 500
    _envelope(response, response.status_code)


@pytest.mark.parametrize(
    "payload", ['{"limit": Infinity}', '{"limit": 1e309}', '{"limit": NaN}', '{"sender": "\\ud800"}']
)
def test_json_bodies_are_standard_json_only(client, payload):
    """No NaN or Infinity literals, no numbers beyond a double, no lone surrogates (not text PostgreSQL stores)."""
    body = f'{{"targets": [{{"target": "messages", "payload": {payload}}}]}}'
    _envelope(client.post("/grafana/json/query", data=body, content_type="application/json"), 400)


# --- one request's work is bounded ----------------------------------------------------------------------


def test_a_json_query_takes_at_most_20_targets(client):
    targets = [{"refId": f"T{n}", "target": "summary"} for n in range(21)]
    body = _envelope(client.post("/grafana/json/query", json={"targets": targets}), 400)
    assert body["detail"].startswith("targets: ") and "20" in body["detail"]
    assert len(client.post("/grafana/json/query", json={"targets": targets[:20]}).get_json()) == 20


def test_a_json_query_answering_more_than_50000_rows_is_a_413(client):
    """11 log targets of 5,000 lines each (the fixture holds over 11,000 Postfix lines)."""
    targets = [{"refId": f"T{n}", "target": "postfix_logs", "payload": {"limit": 5000}} for n in range(11)]
    body = _envelope(client.post("/grafana/json/query", json={"targets": targets}), 413)
    assert body["code"] == "TOO_MANY_ROWS"
    assert client.post("/grafana/json/query", json={"targets": targets[:10]}).status_code == 200


@pytest.fixture
def strict_app(traffic):
    """The app as `serve` builds it (its own pool) with QUERY_TIMEOUT=1."""
    _, url = traffic
    app = create_app(make_config(url, query_timeout=1))
    yield app
    app.config["MG_POOL"].close()


@contextmanager
def _locked(url: str, table: str) -> Iterator[None]:
    """Another session holds `table` exclusively: every read of it waits."""
    with psycopg.connect(url) as conn:
        conn.execute(sql.SQL("LOCK TABLE {} IN ACCESS EXCLUSIVE MODE").format(sql.Identifier(table)))
        yield
        conn.rollback()


def _send(client, request: str):
    method, _, path = request.partition(" ")
    if method == "POST":
        return client.post(path, json={"targets": [{"target": "netfilter_logs"}]})
    return client.get(path)


@pytest.mark.parametrize(
    "request_",
    [
        "GET /api/logs/netfilter",
        "GET /api/export/netfilter/csv",
        "GET /grafana/infinity/netfilter_logs",
        "POST /grafana/json/query",
    ],
)
def test_a_statement_longer_than_query_timeout_is_a_503_with_retry_after(traffic, strict_app, request_):
    """A streamed CSV included: its query runs before the first byte, so the error is still the envelope."""
    started = time.monotonic()
    with _locked(traffic[1], "netfilter_lines"):
        response = _send(strict_app.test_client(), request_)
    assert time.monotonic() - started < 5
    assert _envelope(response, 503)["code"] == "QUERY_TIMEOUT"
    assert int(response.headers["Retry-After"]) > 0


@pytest.mark.parametrize(("value", "ok"), [("5", True), ("0", False), ("61", False), ("soon", False)])
def test_query_timeout_is_seconds_below_the_web_servers_worker_timeout(value, ok):
    env = {"MAILCOW_URL": "https://mail.example.org", "MAILCOW_API_KEY": "x", "QUERY_TIMEOUT": value}
    if ok:
        assert load_config(env).query_timeout == float(value)
    else:
        with pytest.raises(ConfigError, match=r"^QUERY_TIMEOUT: "):
            load_config(env)


def test_the_statement_timeout_is_the_web_pools_only(traffic, strict_app):
    """The worker's pool runs correlation and retention, which may take long on a big database."""
    with strict_app.config["MG_POOL"].connection() as conn:
        assert conn.execute("SHOW statement_timeout").fetchone()[0] == "1s"
    worker_pool = create_pool(traffic[1], 1)
    try:
        with worker_pool.connection() as conn:
            assert conn.execute("SHOW statement_timeout").fetchone()[0] == "0"
    finally:
        worker_pool.close()


def test_a_json_query_stops_once_its_targets_ran_longer_than_query_timeout(traffic, strict_app):
    """Each target waits about 0.6 s (under the 1 s statement timeout): the third is not started."""
    stop = threading.Event()

    def lock_in_turns() -> None:
        with psycopg.connect(traffic[1]) as conn:
            while not stop.is_set():
                conn.execute("LOCK TABLE netfilter_lines IN ACCESS EXCLUSIVE MODE")
                time.sleep(0.6)
                conn.rollback()

    locker = threading.Thread(target=lock_in_turns)
    locker.start()
    try:
        targets = [{"refId": f"T{n}", "target": "netfilter_logs"} for n in range(6)]
        response = strict_app.test_client().post("/grafana/json/query", json={"targets": targets})
    finally:
        stop.set()
        locker.join()
    assert _envelope(response, 503)["code"] == "QUERY_TIMEOUT"
    assert response.headers["Retry-After"]


def test_a_request_finding_every_connection_busy_is_a_503(traffic):
    """The pool's wait for a free connection is bounded; the answer says to come back."""
    _, url = traffic
    pool = Pool(url, min_size=1, max_size=1, timeout=0.5, open=True)
    try:
        app = create_app(make_config(url), pool)
        with pool.connection():
            response = app.test_client().get("/api/logs/netfilter")
        assert _envelope(response, 503)["code"] == "DATABASE_BUSY"
        assert response.headers["Retry-After"]
    finally:
        pool.close()


def test_a_database_that_is_down_is_a_quick_503_saying_so(private_postgres):  # noqa: F811 (the fixture)
    """Not "every connection is busy" after 10 s per request: the database stopped under the running app."""
    url = private_postgres.get_uri()
    migrate(url)
    app = create_app(make_config(url))  # its own pool, as `serve` builds it
    client = app.test_client()
    try:
        assert client.get("/api/logs/netfilter").status_code == 200
        _stop_postgres(private_postgres)
        for _ in range(3):
            started = time.monotonic()
            response = client.get("/api/logs/netfilter")
            assert _envelope(response, 503)["code"] == "DATABASE_UNAVAILABLE"
            assert response.get_json()["detail"].startswith("the database does not answer")
            assert int(response.headers["Retry-After"]) > 0
        assert time.monotonic() - started < 3, "requests kept waiting for a connection while the database is down"
        private_postgres.ensure_postgres_running()
        deadline = time.monotonic() + 30
        while (status := client.get("/api/logs/netfilter").status_code) != 200 and time.monotonic() < deadline:
            time.sleep(0.2)
        assert status == 200
    finally:
        app.config["MG_POOL"].close()


def test_eight_concurrent_81_kb_queries_are_refused_at_once(traffic, live_app):
    """The review's load (8 clients at once, each a JSON query of about 81 KB: 1,000 targets) held the web
    server's threads for 40 s, so /api/health waited; now each is a 400 before any query runs."""
    pool, url = traffic
    server = live_app(create_app(make_config(url), pool))
    targets = [{"refId": f"R{n}", "target": "message_flow", "payload": {"direction": "inbound"}} for n in range(1000)]
    now = int(time.time() * 1000)
    body = json.dumps({"targets": targets, "range": {"from": now - 7 * 86_400_000, "to": now}})
    assert len(body) > 80_000
    started = time.monotonic()
    with httpx.Client(base_url=server.url, timeout=120) as http, ThreadPoolExecutor(8) as workers:
        answers = list(workers.map(lambda _: http.post("/grafana/json/query", content=body), range(8)))
        assert http.get("/api/health").status_code == 200
    assert time.monotonic() - started < 3
    assert [a.status_code for a in answers] == [400] * 8
    assert all(a.json()["detail"].startswith("targets: ") for a in answers)
