"""Abuse limits per client address: failed sign-ins block an address (right password or not), too many
requests a minute are refused, both with 429 + Retry-After; X-Forwarded-For counts only from a trusted
proxy; the counts live in PostgreSQL, so two app instances (two processes' view) share them."""

from __future__ import annotations

import base64
import time

import httpx

from exporter.app import create_app
from tests.conftest import make_config

PASSWORD = "s3cret-pass"
PATH = "/api/settings/health"  # any route behind auth


def _basic(password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"admin:{password}".encode()).decode()}


def _client(db_url, pool, address: str = "127.0.0.1", **overrides):
    config = make_config(db_url, auth_enabled=True, auth_password=PASSWORD, **overrides)
    client = create_app(config, pool).test_client()
    client.environ_base["REMOTE_ADDR"] = address
    return client


def _assert_limited(response) -> int:
    assert response.status_code == 429
    assert response.get_json().keys() == {"error", "detail", "code"}
    assert response.get_json()["code"] == "RATE_LIMITED"
    return int(response.headers["Retry-After"])


def test_failed_sign_ins_block_one_address_until_the_lockout_ends(db_url, pool):
    attacker = _client(db_url, pool, "203.0.113.7", auth_max_failures=3, auth_lockout_seconds=2)
    neighbour = _client(db_url, pool, "203.0.113.8", auth_max_failures=3, auth_lockout_seconds=2)
    assert [attacker.get(PATH, headers=_basic("wrong")).status_code for _ in range(2)] == [401, 401]
    assert 1 <= _assert_limited(attacker.get(PATH, headers=_basic("wrong"))) <= 2  # the third blocks
    assert 1 <= _assert_limited(attacker.get(PATH, headers=_basic(PASSWORD))) <= 2  # right password refused too
    assert neighbour.get(PATH, headers=_basic(PASSWORD)).status_code == 200
    assert attacker.get("/api/health").status_code == 200  # the health check stays open
    time.sleep(2.2)
    assert attacker.get(PATH, headers=_basic(PASSWORD)).status_code == 200
    assert attacker.get(PATH, headers=_basic("wrong")).status_code == 401  # failures start over


def test_requests_without_credentials_are_no_sign_in_attempts(db_url, pool):
    client = _client(db_url, pool, auth_max_failures=2)
    assert {client.get(PATH).status_code for _ in range(5)} == {401}
    assert client.get(PATH, headers=_basic(PASSWORD)).status_code == 200


def test_two_app_instances_share_the_lockout(db_url, pool):
    first = _client(db_url, pool, "198.51.100.1", auth_max_failures=2)
    second = _client(db_url, pool, "198.51.100.1", auth_max_failures=2)
    assert first.get(PATH, headers=_basic("wrong")).status_code == 401
    _assert_limited(second.get(PATH, headers=_basic("wrong")))
    retry = _assert_limited(first.get(PATH, headers=_basic(PASSWORD)))
    assert 890 <= retry <= 900  # the default AUTH_LOCKOUT_SECONDS


def test_request_rate_is_limited_per_address_across_instances(db_url, pool):
    first = _client(db_url, pool, "192.0.2.10", rate_limit_per_minute=5)
    second = _client(db_url, pool, "192.0.2.10", rate_limit_per_minute=5)
    other = _client(db_url, pool, "192.0.2.11", rate_limit_per_minute=5)
    statuses = [c.get(PATH, headers=_basic(PASSWORD)).status_code for c in (first, second) * 3]
    if statuses[-1] == 200:  # a minute boundary fell in between: the count started over
        statuses = [c.get(PATH, headers=_basic(PASSWORD)).status_code for c in (first, second) * 3]
    assert statuses == [200] * 5 + [429]
    assert 1 <= _assert_limited(first.get(PATH, headers=_basic(PASSWORD))) <= 60
    assert other.get(PATH, headers=_basic(PASSWORD)).status_code == 200
    assert first.get("/api/health").status_code == 200


def test_forwarded_for_counts_only_from_a_trusted_proxy(db_url, pool):
    options = {"auth_max_failures": 1, "trusted_proxies": ["10.0.0.0/8"]}
    proxy = _client(db_url, pool, "10.1.2.3", **options)
    stranger = _client(db_url, pool, "192.0.2.50", **options)
    # behind the proxy: the right-most address outside TRUSTED_PROXIES is the client
    forwarded = {"X-Forwarded-For": "1.1.1.1, 203.0.113.99, 10.9.9.9"}
    _assert_limited(proxy.get(PATH, headers={**_basic("wrong"), **forwarded}))
    assert "203.0.113.99" in proxy.get(PATH, headers={**_basic(PASSWORD), **forwarded}).get_json()["detail"]
    assert proxy.get(PATH, headers={**_basic(PASSWORD), "X-Forwarded-For": "1.1.1.1"}).status_code == 200
    # anyone else's header is ignored: its failure blocks its own address, not the one it names
    _assert_limited(stranger.get(PATH, headers={**_basic("wrong"), "X-Forwarded-For": "198.51.100.77"}))
    assert proxy.get(PATH, headers={**_basic(PASSWORD), "X-Forwarded-For": "198.51.100.77"}).status_code == 200
    assert "192.0.2.50" in stranger.get(PATH, headers=_basic(PASSWORD)).get_json()["detail"]


def test_lockout_over_real_http(db_url, pool, live_app):
    config = make_config(db_url, auth_enabled=True, auth_password=PASSWORD, auth_max_failures=2)
    server = live_app(create_app(config, pool))
    with httpx.Client(base_url=server.url) as client:
        assert client.get(PATH, auth=("admin", "wrong")).status_code == 401
        response = client.get(PATH, auth=("admin", "wrong"))
        assert response.status_code == 429 and response.json()["code"] == "RATE_LIMITED"
        assert int(response.headers["Retry-After"]) > 0
        assert client.get(PATH, auth=("admin", PASSWORD)).status_code == 429
