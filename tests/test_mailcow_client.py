"""The mailcow client against a live simulator and misbehaving servers on loopback."""

from __future__ import annotations

import socket
import time

import pytest
from flask import Flask, Response

from exporter.mailcow.client import MailcowClient
from exporter.mailcow.errors import (
    MailcowAuthError,
    MailcowBadResponse,
    MailcowForbidden,
    MailcowNotFound,
    MailcowReadOnly,
    MailcowServerError,
    MailcowTimeout,
    MailcowUnreachable,
)
from tests.conftest import RO_KEY, RW_KEY


def test_reads_logs_and_state(mailcow, sim):
    client = MailcowClient(mailcow.url, RO_KEY)
    lines = client.logs("postfix", count=25)
    assert len(lines) == 25 and lines[0] == sim.state.logs["postfix"][0]
    assert client.logs("postfix", span=(26, 30)) == list(sim.state.logs["postfix"])[25:30]
    assert client.version() == "2026-07a"
    assert {d["domain_name"] for d in client.domains()} == {"example.org", "example.net"}
    assert client.dkim("example.org")["dkim_selector"] == "dkim"
    assert client.dkim("nope.example") == {}


def test_empty_object_means_empty_list(mailcow, sim):
    sim.state.logs["cron"].clear()
    assert MailcowClient(mailcow.url, RO_KEY).logs("cron", count=10) == []


def test_typed_errors(mailcow):
    with pytest.raises(MailcowAuthError, match="authentication failed"):
        MailcowClient(mailcow.url, "BAD-KEY").version()
    with pytest.raises(MailcowForbidden):
        MailcowClient(mailcow.url, RO_KEY, api_key_rw=RO_KEY).edit_mail_queue("hold", ["ABC"])
    with pytest.raises(MailcowNotFound):
        MailcowClient(mailcow.url, RO_KEY).get("get/nothing/all")
    with pytest.raises(MailcowReadOnly):
        MailcowClient(mailcow.url, RO_KEY).delete_from_queue(["ABC"])
    with pytest.raises(MailcowBadResponse, match="empty body"):
        MailcowClient(mailcow.url, "").version()


def test_write_returns_mailcows_answer_per_item(mailcow, sim):
    client = MailcowClient(mailcow.url, RO_KEY, RW_KEY)
    qitem = next(iter(sim.state.quarantine))
    result = client.delete_from_quarantine([qitem, "x"])
    assert [r["type"] for r in result] == ["success", "danger"]


def _flaky_app(failures: int, calls: list[str]) -> Flask:
    app = Flask("flaky")

    @app.route("/api/v1/<path:p>", methods=["GET", "POST"])
    def any_route(p: str) -> Response:
        calls.append(p)
        if len(calls) <= failures:
            return Response("<center>dockerapi unreachable</center>", status=500, content_type="text/html")
        if p == "get/status/slow":
            time.sleep(2)
        if p == "get/status/html":
            return Response("<html>proxy login</html>", content_type="text/html")
        return Response('{"version":"2026-07a"}', content_type="application/json")

    return app


def test_gets_are_retried_with_backoff(live_app):
    calls: list[str] = []
    server = live_app(_flaky_app(2, calls))
    sleeps: list[float] = []
    client = MailcowClient(server.url, RO_KEY, retries=3, backoff=0.5, sleep=sleeps.append)
    assert client.version() == "2026-07a"
    assert len(calls) == 3 and sleeps == [0.5, 1.0]


def test_gets_give_up_with_a_typed_error(live_app):
    calls: list[str] = []
    server = live_app(_flaky_app(10, calls))
    client = MailcowClient(server.url, RO_KEY, retries=3, sleep=lambda _: None)
    with pytest.raises(MailcowServerError) as info:
        client.version()
    assert info.value.status == 500 and len(calls) == 3


def test_writes_are_never_retried(live_app):
    calls: list[str] = []
    server = live_app(_flaky_app(1, calls))
    client = MailcowClient(server.url, RO_KEY, RW_KEY, retries=3, sleep=lambda _: None)
    with pytest.raises(MailcowServerError):
        client.edit_mail_queue("flush", ["mailqitems-all"])
    assert calls == ["edit/mailq"]


def test_timeouts_non_json_and_unreachable(live_app):
    server = live_app(_flaky_app(0, []))
    with pytest.raises(MailcowTimeout):
        MailcowClient(server.url, RO_KEY, timeout=0.5, retries=1).get("get/status/slow")
    with pytest.raises(MailcowBadResponse, match="non-JSON"):
        MailcowClient(server.url, RO_KEY).get("get/status/html")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(MailcowUnreachable):
        MailcowClient(f"http://127.0.0.1:{port}", RO_KEY, retries=1).version()
