"""The live socket /ws/raw-logs over a real port with a real websocket client: new lines arrive as they
are stored, filters apply, and upgrades without credentials, from a foreign page or with bad parameters
are refused with the JSON envelope before any socket opens."""

from __future__ import annotations

import base64
import http.client
import json
import time
from urllib.parse import urlencode, urlsplit

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from simple_websocket import Client

from exporter.app import create_app
from tests import raw_log_items as items
from tests.conftest import make_config
from tests.test_properties import VALUES

GOOD = ["error,critical", "warn", "postscreen", "bans", "unhealthy", "postfix/smtpd", "NOQUEUE"]
PASSWORD = "correct horse battery staple"
UPGRADE = {
    "Connection": "Upgrade",
    "Upgrade": "websocket",
    "Sec-WebSocket-Version": "13",
    "Sec-WebSocket-Key": base64.b64encode(b"0123456789abcdef").decode(),
}


@pytest.fixture
def raw(pool):
    items.clear(pool)
    yield pool
    items.clear(pool)


def _serve(live_app, pool, db_url, **overrides) -> str:
    return live_app(create_app(make_config(db_url, **overrides), pool)).url


def _upgrade(url: str, query: dict, headers: dict | None = None) -> tuple[int, dict | None]:
    """Send a websocket upgrade as a browser would; (status, JSON body of a refusal)."""
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)
    try:
        conn.request("GET", f"/ws/raw-logs?{urlencode(query)}", headers={**UPGRADE, **(headers or {})})
        response = conn.getresponse()
        if response.status == 101:
            return 101, None
        assert response.getheader("Content-Type", "").startswith("application/json"), response.getheader("Content-Type")
        return response.status, json.loads(response.read())
    finally:
        conn.close()


def _receive(ws: Client, timeout: float) -> dict:
    message = ws.receive(timeout=timeout)
    assert message is not None, f"nothing within {timeout} s"
    return json.loads(message)


def _auth(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def test_a_stored_line_arrives_within_two_seconds(raw, db_url, live_app):
    url = _serve(live_app, raw, db_url)
    ws = Client.connect(url.replace("http", "ws") + "/ws/raw-logs?service=postfix")
    try:
        hello = _receive(ws, 5)
        assert hello["type"] == "hello" and hello["service"] == "postfix"
        item = items.timed("postfix", items.POSTFIX["relay"], int(time.time()))
        stored_at = time.monotonic()
        items.store(raw, "postfix", [item])
        pushed = _receive(ws, 2)
        assert time.monotonic() - stored_at < 2
        assert pushed["type"] == "entries" and pushed["truncated"] is False
        (entry,) = pushed["data"]
        assert entry["raw"] == item and entry["service"] == "postfix" and entry["id"] > hello["after_id"]
        assert entry["message"] == item["message"] and entry["program"] == "postfix/smtpd"
    finally:
        ws.close()


def test_an_idle_socket_is_pinged_and_stays_open(raw, db_url, live_app):
    app = create_app(make_config(db_url), raw)
    assert app.config["SOCK_SERVER_OPTIONS"] == {"ping_interval": 25}
    app.config["SOCK_SERVER_OPTIONS"] = {"ping_interval": 0.2}  # the client answers each ping
    url = live_app(app).url
    ws = Client.connect(url.replace("http", "ws") + "/ws/raw-logs?service=acme")
    try:
        _receive(ws, 5)
        time.sleep(1.5)
        items.store(raw, "acme", [items.timed("acme", items.ACME["retrying"], int(time.time()))])
        assert _receive(ws, 2)["data"][0]["level"] == "warning"
    finally:
        ws.close()


def test_filters_choose_what_is_pushed_and_other_services_stay_out(raw, db_url, live_app):
    url = _serve(live_app, raw, db_url)
    query = "service=dovecot&level=critical,warning&search=LUA"
    ws = Client.connect(url.replace("http", "ws") + "/ws/raw-logs?" + query)
    try:
        _receive(ws, 5)
        now = int(time.time())
        items.store(raw, "postfix", [items.timed("postfix", items.POSTFIX["sasl_failed"], now)])  # warning, postfix
        items.store(raw, "dovecot", [items.timed("dovecot", items.DOVECOT["login"], now)])  # info
        items.store(raw, "dovecot", [items.timed("dovecot", items.DOVECOT["fatal"], now)])  # critical, "lua"
        pushed = _receive(ws, 2)
        assert [e["message"] for e in pushed["data"]] == [items.DOVECOT["fatal"]["message"]]
        assert ws.receive(timeout=0.5) is None
    finally:
        ws.close()


def test_a_smart_filter_applies_to_the_socket(raw, db_url, live_app):
    url = _serve(live_app, raw, db_url)
    ws = Client.connect(url.replace("http", "ws") + "/ws/raw-logs?service=netfilter&filter=bans")
    try:
        _receive(ws, 5)
        now = int(time.time())
        window = [items.timed("netfilter", items.NETFILTER[n], now) for n in ("ban", "unban", "matched")]
        items.store(raw, "netfilter", window)
        pushed = _receive(ws, 2)
        assert [e["message"] for e in pushed["data"]] == [items.NETFILTER["ban"]["message"]]
    finally:
        ws.close()


def test_with_auth_on_an_upgrade_needs_valid_basic_credentials(raw, db_url, live_app):
    url = _serve(live_app, raw, db_url, auth_enabled=True, auth_username="admin", auth_password=PASSWORD)
    status, body = _upgrade(url, {"service": "postfix"})
    assert status == 401 and body["code"] == "AUTH_REQUIRED"
    status, body = _upgrade(url, {"service": "postfix"}, {"Authorization": _auth("admin", "wrong")})
    assert status == 401
    assert _upgrade(url, {"service": "postfix"}, {"Authorization": _auth("admin", PASSWORD)}) == (101, None)
    ws = Client.connect(
        url.replace("http", "ws") + "/ws/raw-logs?service=postfix",
        headers={"Authorization": _auth("admin", PASSWORD)},
    )
    try:
        assert _receive(ws, 5)["type"] == "hello"
    finally:
        ws.close()


def test_a_foreign_page_may_not_open_the_socket(raw, db_url, live_app):
    url = _serve(live_app, raw, db_url, public_url="https://mail-stats.example.org")
    for foreign in ("https://evil.example", "null", "http://127.0.0.1.evil.example"):
        status, body = _upgrade(url, {"service": "postfix"}, {"Origin": foreign})
        assert status == 403 and body["code"] == "ORIGIN_REFUSED", foreign
    assert _upgrade(url, {"service": "postfix"}, {"Origin": url})[0] == 101  # our own page
    assert _upgrade(url, {"service": "postfix"}, {"Origin": "https://mail-stats.example.org"})[0] == 101
    assert _upgrade(url, {"service": "postfix"})[0] == 101  # a script: no Origin, authentication decides


def test_bad_parameters_are_refused_before_the_upgrade(raw, db_url, live_app):
    url = _serve(live_app, raw, db_url, raw_logs_services=["postfix"])
    cases = [
        ({}, 400, "VALIDATION_FAILED"),
        ({"service": "cron"}, 404, "SERVICE_NOT_FOUND"),
        ({"service": "dovecot"}, 404, "SERVICE_DISABLED"),
        ({"service": "postfix", "level": "loud"}, 400, "VALIDATION_FAILED"),
        ({"service": "postfix", "filter": "nope"}, 400, "VALIDATION_FAILED"),
        ({"service": "postfix", "search": "x" * 201}, 400, "VALIDATION_FAILED"),
    ]
    for query, status, code in cases:
        got, body = _upgrade(url, query)
        assert (got, body["code"]) == (status, code), query
    plain = http.client.HTTPConnection(urlsplit(url).hostname, urlsplit(url).port, timeout=10)
    plain.request("GET", "/ws/raw-logs?service=postfix")  # no upgrade at all
    response = plain.getresponse()
    assert response.status == 400 and set(json.loads(response.read())) == {"error", "detail", "code"}


@pytest.fixture
def socket_url(raw, db_url, live_app) -> str:
    """One server for all of a property test's examples (fixtures are made once per test)."""
    return _serve(live_app, raw, db_url)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    query=st.fixed_dictionaries(
        {"service": st.sampled_from(["postfix", "rspamd", "watchdog"]) | VALUES},
        optional={
            name: VALUES | st.sampled_from(GOOD) for name in ("search", "level", "priority", "program", "filter")
        },
    )
)
def test_any_socket_parameter_is_an_upgrade_or_a_4xx_envelope(socket_url, query):
    status, body = _upgrade(socket_url, query)
    assert status == 101 or (400 <= status < 500 and set(body) == {"error", "detail", "code"}), (status, body)
