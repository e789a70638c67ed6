"""The web skeleton: health/info shapes, JSON errors everywhere, and auth on every route."""

from __future__ import annotations

import base64
import http.client
import json
import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import httpx
import psycopg
import pytest

from exporter.app import create_app
from exporter.store import ingest as ingest_store
from exporter.store import jobs as job_store
from exporter.store.jobs import LEADER_LOCK_KEY
from tests.conftest import RO_KEY, make_config
from tests.prometheus import free_port

PASSWORD = "s3cret-pass"


def _basic(user: str, password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


@pytest.fixture
def app(db_url, pool):
    return create_app(make_config(db_url), pool)


@pytest.fixture
def secured(db_url, pool):
    return create_app(make_config(db_url, auth_enabled=True, auth_password=PASSWORD), pool)


def test_health_reports_database_and_config(app):
    response = app.test_client().get("/api/health")
    assert response.status_code == 200
    body = response.get_json()
    assert body["database"] == "connected"
    assert set(body["config"]) == {
        "fetch_interval",
        "retention_days",
        "mailcow_url",
        "blacklist_enabled",
        "auth_enabled",
    }


def _fetched(pool, source: str, age: timedelta) -> None:
    """Record a successful fetch of `source` as the worker does, `age` ago."""
    at = datetime.now(UTC) - age
    with pool.connection() as conn:
        ingest_store.save_state(conn, source, at, newest=at, oldest=at, fetched=10, inserted=10)


def _correlated(pool, age: timedelta) -> None:
    at = datetime.now(UTC) - age
    job_store.job_started(pool, "complete_correlations", at)
    job_store.job_finished(pool, "complete_correlations", at, 0.1, None)


def test_health_is_degraded_with_reasons_while_nothing_ingests(app):
    """No worker has run: the web side works (200, for liveness probes) but nothing is ingested."""
    response = app.test_client().get("/api/health")
    body = response.get_json()
    assert (response.status_code, body["status"]) == (200, "degraded")
    assert body["reasons"] == [
        "no worker holds the ingest lock: is the worker running?",
        "postfix: no successful fetch yet",
        "rspamd: no successful fetch yet",
        "netfilter: no successful fetch yet",
        "correlation: no successful run yet",
    ]
    assert body["ingestion"]["leader"] is False and body["ingestion"]["stale_after_seconds"] == 45


def test_health_tells_a_working_leader_from_stale_ingestion(app, pool, db_url):
    client = app.test_client()
    for source in ("postfix", "rspamd", "netfilter"):
        _fetched(pool, source, timedelta(seconds=5))
    _correlated(pool, timedelta(seconds=5))
    with psycopg.connect(db_url, autocommit=True) as leader:  # a worker's session holding the ingest lock
        assert leader.execute("SELECT pg_try_advisory_lock(%s)", (LEADER_LOCK_KEY,)).fetchone()[0]
        body = client.get("/api/health").get_json()
        assert (body["status"], body["reasons"]) == ("healthy", [])
        assert body["ingestion"]["leader"] is True
        assert 4 < body["ingestion"]["sources"]["postfix"]["last_success_age_seconds"] < 60

        _fetched(pool, "rspamd", timedelta(minutes=10))  # its fetches have failed since
        _correlated(pool, timedelta(minutes=2))
        response = client.get("/api/health")
        body = response.get_json()
        assert (response.status_code, body["status"]) == (200, "degraded")
        assert [re.sub(r"\d+ s \(", "N s (", r) for r in body["reasons"]] == [
            "rspamd: no successful fetch for N s (stale after 45 s)",
            "correlation: no successful run for N s (stale after 45 s)",
        ]
        assert 600 <= body["ingestion"]["sources"]["rspamd"]["last_success_age_seconds"] < 660
        settings = client.get("/api/settings/health").get_json()
        assert (settings["status"], len(settings["reasons"])) == ("degraded", 2)
    lost = "no worker holds the ingest lock: is the worker running?"
    deadline = time.monotonic() + 10  # the worker's session ended: its backend lets go of the lock at exit
    while (body := client.get("/api/health").get_json())["reasons"][0] != lost and time.monotonic() < deadline:
        time.sleep(0.1)
    assert body["reasons"][0] == lost


def test_health_is_503_when_the_database_is_down(db_url):
    from exporter.store.database import create_pool

    dead = create_pool("postgresql://nobody@127.0.0.1:1/none", 1)
    try:
        response = create_app(make_config(db_url), dead).test_client().get("/api/health")
    finally:
        dead.close(timeout=0)
    assert response.status_code == 503
    body = response.get_json()
    assert (body["status"], body["database"], body["ingestion"]) == ("unhealthy", "disconnected", None)


def test_info_shape_never_leaks_secrets(app):
    body = app.test_client().get("/api/info").get_json()
    for key in (
        "name",
        "version",
        "mailcow_url",
        "local_domains",
        "fetch_interval",
        "retention_days",
        "timezone",
        "app_title",
        "app_logo_url",
        "blacklist_count",
        "auth_enabled",
    ):
        assert key in body, key
    text = str(body)
    assert "A1B2C3" not in text and "F6E5D4" not in text


@pytest.mark.parametrize(
    ("method", "path", "status", "code"),
    [
        ("GET", "/no/such/page", 404, "NOT_FOUND"),
        ("POST", "/api/health", 405, "METHOD_NOT_ALLOWED"),
    ],
)
def test_errors_are_json(app, method, path, status, code):
    response = app.test_client().open(path, method=method)
    assert response.status_code == status
    assert response.is_json and response.get_json()["code"] == code
    assert set(response.get_json()) == {"error", "detail", "code"}


def test_unexpected_exceptions_are_json_500(db_url, pool):
    app = create_app(make_config(db_url), pool)

    @app.get("/api/boom")
    def boom():
        raise RuntimeError("secret internals")

    response = app.test_client().get("/api/boom")
    assert response.status_code == 500
    body = response.get_json()
    assert body["code"] == "INTERNAL_ERROR" and "secret internals" not in body["detail"]


def _concrete(rule) -> str:
    return re.sub(r"<(?:[^:>]+:)?([^>]+)>", "x", rule.rule)


def test_every_route_but_health_and_login_needs_credentials(secured):
    client = secured.test_client()
    checked = 0
    for rule in secured.url_map.iter_rules():
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
            response = client.open(_concrete(rule), method=method)
            if rule.endpoint in {"api.health", "login.login"}:
                assert response.status_code == 200
                continue
            assert response.status_code == 401, (rule.rule, method)
            assert response.get_json()["code"] == "AUTH_REQUIRED"
            # only the confirmation pages (opened by a person from a Grafana link) ask the browser to log in
            asks = rule.endpoint.startswith("action_pages.")
            assert ("WWW-Authenticate" in response.headers) == asks, rule.rule
            checked += 1
    assert checked >= 1
    assert client.get("/not/a/route").status_code == 401


def test_credentials_are_checked(secured):
    client = secured.test_client()
    assert client.get("/api/info", headers=_basic("admin", PASSWORD)).status_code == 200
    assert client.get("/api/info", headers=_basic("admin", "wrong")).status_code == 401
    assert client.get("/api/info", headers=_basic("root", PASSWORD)).status_code == 401
    assert client.get("/api/info", headers={"Authorization": "Basic !!!"}).status_code == 401


def test_security_headers_on_json_html_and_error_responses(db_url, pool):
    client = create_app(make_config(db_url), pool).test_client()
    responses = {
        "json": client.get("/api/info"),
        "html": client.get("/"),
        "action page": client.get("/actions/queue/hold?items=ABCDE12345"),  # mailcow down: an HTML error page
        "metrics": client.get("/metrics"),
        "not found": client.get("/no/such/page"),
        "bad method": client.post("/api/health"),
        "foreign host": client.get("/api/info", headers={"Host": "evil.example"}),
    }
    assert responses["html"].mimetype == responses["action page"].mimetype == "text/html"
    assert responses["foreign host"].status_code == 400
    for name, response in responses.items():
        assert response.headers["X-Content-Type-Options"] == "nosniff", name
        assert response.headers["Referrer-Policy"] == "same-origin", name
        assert "frame-ancestors 'none'" in response.headers["Content-Security-Policy"], name


SECRET_URL = "https://monitor:pa55-w0rd@mail.example.org"


def test_mailcow_url_credentials_are_masked_everywhere(db_url, pool, caplog):
    client = create_app(make_config(db_url, SECRET_URL), pool).test_client()
    caplog.set_level("DEBUG")
    shown = {
        "health": client.get("/api/health").get_json()["config"]["mailcow_url"],
        "info": client.get("/api/info").get_json()["mailcow_url"],
        "settings": client.get("/api/settings/info").get_json()["configuration"]["mailcow_url"],
    }
    assert shown == dict.fromkeys(shown, "https://********@mail.example.org")
    assert "pa55-w0rd" not in caplog.text


def test_auth_switched_off_on_purpose_is_a_health_warning(db_url, pool):
    quiet = create_app(make_config(db_url), pool).test_client().get("/api/health").get_json()
    assert quiet["warnings"] == []
    config = make_config(db_url, auth_enabled=False, auth_opt_out=True)
    response = create_app(config, pool).test_client().get("/api/health")
    # a warning, not a failure: the probe's answer stays 200 (no worker runs here, so the status is degraded)
    assert response.status_code == 200 and "AUTH_ENABLED=false" in response.get_json()["warnings"][0]


# --- the real web server: gunicorn, as `serve` runs it -------------------------------------------


@pytest.fixture(scope="module")
def gunicorn(db_url) -> Iterator[int]:
    """`mailcow-grafana serve` on a free loopback port; yields the port."""
    port = free_port()
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("MAILCOW_", "AUTH_", "DATABASE_"))}
    env = {**clean, "MAILCOW_URL": "http://127.0.0.1:9", "MAILCOW_API_KEY": RO_KEY, "DATABASE_URL": db_url}
    command = [sys.executable, "-m", "exporter.cli", "serve", "--bind", f"127.0.0.1:{port}", "--workers", "1"]
    server = subprocess.Popen(command, env=env, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                httpx.get(f"http://127.0.0.1:{port}/api/health", timeout=2)
                break
            except httpx.HTTPError:
                assert time.monotonic() < deadline and server.poll() is None, "serve did not start"
                time.sleep(0.3)
        yield port
    finally:
        server.terminate()
        server.wait(timeout=30)


def _raw(port: int, request: bytes) -> tuple[http.client.HTTPResponse, bytes]:
    """Send bytes as they are (no client library would send these) and read the answer."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(request)
        response = http.client.HTTPResponse(sock)
        response.begin()
        return response, response.read()


HEAD = b"GET /api/info HTTP/1.1\r\nHost: localhost\r\n"
MALFORMED_REQUESTS = {
    "request line over 4094 bytes": (b"GET /api/info?q=" + b"a" * 5000 + b" HTTP/1.1\r\nHost: localhost\r\n\r\n", 414),
    "control character in a header": (HEAD + b"X-Note: a\x01b\r\n\r\n", 400),
    "header over 8190 bytes": (HEAD + b"X-Note: " + b"a" * 9000 + b"\r\n\r\n", 431),
    "no request line": (b"GARBAGE\r\n\r\n", 400),
    "bad HTTP version": (b"GET /api/info HTTP/9.x\r\nHost: localhost\r\n\r\n", 400),
}


@pytest.mark.parametrize("name", MALFORMED_REQUESTS)
def test_requests_gunicorn_refuses_itself_get_the_json_envelope_and_security_headers(gunicorn, name):
    request, status = MALFORMED_REQUESTS[name]
    response, body = _raw(gunicorn, request)
    assert response.status == status
    assert response.getheader("Content-Type") == "application/json"
    envelope = json.loads(body)
    assert set(envelope) == {"error", "detail", "code"} and envelope["detail"]
    assert response.getheader("X-Content-Type-Options") == "nosniff"
    assert response.getheader("Referrer-Policy") == "same-origin"
    assert "frame-ancestors 'none'" in response.getheader("Content-Security-Policy")


def test_a_request_without_a_host_header_is_refused_like_a_foreign_host(gunicorn):
    """HTTP/1.0 allows leaving Host out; the server then fills in its bind address, which proves nothing."""
    response, body = _raw(gunicorn, b"GET /api/info HTTP/1.0\r\n\r\n")
    assert response.status == 400 and json.loads(body)["code"] == "HOST_NOT_TRUSTED"
    named, _ = _raw(gunicorn, b"GET /api/info HTTP/1.0\r\nHost: localhost\r\n\r\n")
    assert named.status == 200
    probe, _ = _raw(gunicorn, b"GET /api/health HTTP/1.0\r\n\r\n")  # load balancers probe by address
    assert probe.status == 200
