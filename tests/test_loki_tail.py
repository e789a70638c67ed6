"""Loki's live tail over a real socket, dialled as Grafana's server dials it (no credentials, no Origin),
against real PostgreSQL: allowed addresses, refused ones, credentials, and a new line within 2 s."""

from __future__ import annotations

import base64
import json
import time

import pytest
import websocket

from exporter.app import create_app
from tests import loki_data
from tests.conftest import make_config

PASSWORD = "tail-test-password-123"
QUERY = '{service="netfilter"} |= "Banning"'


def _url(server, query: str = QUERY, **params: str) -> str:
    from urllib.parse import urlencode

    return f"ws://127.0.0.1:{server.server.server_port}/loki/api/v1/tail?" + urlencode({"query": query, **params})


@pytest.fixture
def seeded(pool):
    loki_data.empty(pool)
    now = int(time.time())
    loki_data.seed(pool, now)
    return now


def _serve(live_app, pool, db_url, **config):
    return live_app(create_app(make_config(db_url, "https://mail.example.org", **config), pool))


def _frame(ws) -> dict:
    message = json.loads(ws.recv())
    assert set(message) == {"streams", "dropped_entries"} and message["dropped_entries"] is None
    return message


def _banning(pool, epoch: int, address: str) -> None:
    item = {"time": epoch, "priority": "crit", "message": f"Banning {address}/32 for 30 minutes"}
    assert loki_data.store(pool, "netfilter", [item]) == 1


def test_an_allowed_client_gets_the_recent_lines_then_a_new_one_within_two_seconds(live_app, pool, db_url, seeded):
    server = _serve(live_app, pool, db_url)
    ws = websocket.create_connection(_url(server, limit="2"), timeout=5)
    try:
        first = _frame(ws)
        [stream] = first["streams"]
        assert stream["stream"] == {"instance": "mail.example.org", "level": "critical", "service": "netfilter"}
        assert len(stream["values"]) == 2  # the newest `limit` lines, oldest first
        assert int(stream["values"][0][0]) < int(stream["values"][1][0])
        _banning(pool, int(time.time()), "203.0.113.77")  # not this one: another service's line first
        acme = next(item for service, item in loki_data.TEMPLATES if service == "acme")
        assert loki_data.store(pool, "acme", [loki_data.retimed(acme, int(time.time()))]) == 1
        stored_at = time.monotonic()
        new = _frame(ws)
        assert time.monotonic() - stored_at < 2.0
        assert [line for _, line in new["streams"][0]["values"]] == ["Banning 203.0.113.77/32 for 30 minutes"]
    finally:
        ws.close()


def test_a_client_outside_the_allowed_networks_is_refused_before_the_upgrade(live_app, pool, db_url, seeded):
    server = _serve(live_app, pool, db_url, loki_tail_allowed_networks=["10.9.9.0/24"])
    with pytest.raises(websocket.WebSocketBadStatusException) as refused:
        websocket.create_connection(_url(server), timeout=5)
    assert refused.value.status_code == 403
    assert json.loads(refused.value.resp_body)["code"] == "TAIL_NOT_ALLOWED"


def test_credentials_open_the_tail_from_anywhere(live_app, pool, db_url, seeded):
    server = _serve(
        live_app, pool, db_url, loki_tail_allowed_networks=["10.9.9.0/24"], auth_enabled=True, auth_password=PASSWORD
    )
    wrong = "Basic " + base64.b64encode(b"admin:wrong").decode()
    with pytest.raises(websocket.WebSocketBadStatusException) as refused:
        websocket.create_connection(_url(server), timeout=5, header=[f"Authorization: {wrong}"])
    assert refused.value.status_code == 403
    right = "Basic " + base64.b64encode(f"admin:{PASSWORD}".encode()).decode()
    ws = websocket.create_connection(_url(server), timeout=5, header=[f"Authorization: {right}"])
    try:
        assert _frame(ws)["streams"]
    finally:
        ws.close()


def test_with_auth_on_grafana_still_tails_from_an_allowed_address_without_credentials(live_app, pool, db_url, seeded):
    server = _serve(live_app, pool, db_url, auth_enabled=True, auth_password=PASSWORD)
    ws = websocket.create_connection(_url(server), timeout=5)
    try:
        assert _frame(ws)["streams"]
    finally:
        ws.close()


def test_a_page_of_another_site_cannot_open_the_tail_even_from_loopback(live_app, pool, db_url, seeded):
    server = _serve(live_app, pool, db_url)
    with pytest.raises(websocket.WebSocketBadStatusException) as refused:
        websocket.create_connection(_url(server), timeout=5, origin="https://evil.example")
    assert refused.value.status_code == 403


def test_a_bad_tail_query_is_a_400_before_the_upgrade(live_app, pool, db_url, seeded):
    server = _serve(live_app, pool, db_url)
    for query in ('{service="postfix"} | json', 'count_over_time({service="postfix"}[1m])'):
        with pytest.raises(websocket.WebSocketBadStatusException) as refused:
            websocket.create_connection(_url(server, query), timeout=5)
        assert refused.value.status_code == 400
        assert "message" in json.loads(refused.value.resp_body)


def test_twenty_idle_tails_cost_under_five_percent_of_a_cpu(live_app, pool, db_url, seeded):
    """Each idle tail is a thread in a timed wait on the hub; measured as this process's CPU time."""
    server = _serve(live_app, pool, db_url)
    sockets = [websocket.create_connection(_url(server), timeout=5) for _ in range(20)]
    try:
        for ws in sockets:
            _frame(ws)
        time.sleep(0.5)
        cpu, wall = time.process_time(), time.monotonic()
        time.sleep(4)
        share = (time.process_time() - cpu) / (time.monotonic() - wall)
        assert share < 0.05, f"20 idle tails used {share:.1%} of a CPU"
    finally:
        for ws in sockets:
            ws.close()
