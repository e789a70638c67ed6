"""Queue and quarantine: live reads, actions against the simulator, refusals, and the audit log."""

from __future__ import annotations

import copy
import json
import logging
import re

import pytest

from exporter.app import create_app
from tests.conftest import RO_KEY, RW_KEY, make_config

GRAFANA = "http://grafana.example:3000"


@pytest.fixture
def audit_pool(pool):
    with pool.connection() as conn:
        conn.execute("TRUNCATE action_audit")
    return pool


def make_client(db_url, pool, mailcow_url, **overrides):
    overrides.setdefault("live_cache_seconds", 0)
    return create_app(make_config(db_url, mailcow_url, grafana_url=GRAFANA, **overrides), pool).test_client()


@pytest.fixture
def client(db_url, audit_pool, mailcow):
    return make_client(db_url, audit_pool, mailcow.url)


def audit_entries(pool) -> list[dict]:
    with pool.connection() as conn:
        rows = conn.execute("SELECT row_to_json(a) FROM action_audit a ORDER BY id").fetchall()
    return [r[0] for r in rows]


def api_requests(sim) -> int:
    """How many API calls the simulated mailcow has logged (every call is logged, §0.6)."""
    return len(sim.state.logs["api"])


def deferred_ids(sim, n: int) -> list[str]:
    return sorted(q for q, item in sim.state.queue.items() if item["queue_name"] == "deferred")[:n]


# --- reads -------------------------------------------------------------------------------------------


def test_queue_and_quarantine_answer_what_mailcow_holds_now(client, sim):
    queue = client.get("/api/queue").get_json()
    assert queue["total"] == len(sim.state.queue) > 0
    first = queue["data"][0]
    assert set(first) == {
        "queue_name",
        "queue_id",
        "arrival_time",
        "message_size",
        "forced_expire",
        "sender",
        "recipients",
    }
    assert {i["queue_id"] for i in queue["data"]} == set(sim.state.queue)
    deferred = client.get("/api/queue?queue=deferred").get_json()
    assert deferred["total"] == sum(1 for i in sim.state.queue.values() if i["queue_name"] == "deferred")

    quarantine = client.get("/api/quarantine").get_json()
    assert quarantine["total"] == len(sim.state.quarantine) > 0
    item = quarantine["data"][0]
    row = sim.state.quarantine[item["id"]]
    assert item["recipients"] == [row["rcpt"]] and item["subject"] == row["subject"]
    assert item["created"].endswith("Z") and item["reason"]
    created = [i["created"] for i in quarantine["data"]]
    assert created == sorted(created, reverse=True)


def test_grafana_rows_carry_age_size_and_each_recipients_defer_reason(client, sim):
    rows = client.get("/grafana/infinity/queue?limit=1000").get_json()
    assert len(rows) == len(sim.state.queue)
    arrivals = [r["arrival"] for r in rows]
    assert arrivals == sorted(arrivals)  # oldest first
    deferred = [r for r in rows if r["queue_name"] == "deferred"]
    assert deferred and all(r["reasons"] and r["age_seconds"] >= 0 and r["size_bytes"] > 0 for r in deferred)
    rcpt, reason = sim.state.queue[deferred[0]["queue_id"]]["recipients"][0].split(" (", 1)
    assert f"{rcpt}: {reason[:-1]}" in deferred[0]["reasons"]
    quarantine = client.get("/grafana/infinity/quarantine?limit=1000").get_json()
    assert {r["id"] for r in quarantine} == set(sim.state.quarantine)
    assert all({"score", "action", "recipient", "sender", "subject", "age_seconds"} <= set(r) for r in quarantine)


def test_status_endpoints_have_the_seed_shapes(client, sim):
    containers = client.get("/api/status/containers").get_json()
    assert containers["summary"]["total"] == len(sim.state.containers) == len(containers["containers"])
    postfix = containers["containers"]["postfix-mailcow"]
    assert postfix["name"] == "postfix" and postfix["state"] == "running" and postfix["started_at"]
    storage = client.get("/api/status/storage").get_json()
    assert set(storage) == {"disk", "used", "total", "used_percent"} and storage["used_percent"].endswith("%")
    assert client.get("/api/status/version").get_json()["current_version"] == sim.state.version
    assert client.get("/api/status/mailcow-connection").get_json()["connected"] is True
    info = client.get("/api/status/mailcow-info").get_json()
    assert info["domains"]["total"] >= 2 and info["mailboxes"]["total"] >= info["mailboxes"]["active"] > 0
    summary = client.get("/api/status/summary").get_json()
    assert summary["containers"] == containers["summary"]
    assert summary["system"]["mailboxes"] == info["mailboxes"]["total"]
    assert summary["storage"]["used"] == storage["used"]


def test_reads_are_cached_for_a_few_seconds(db_url, audit_pool, mailcow, sim):
    client = make_client(db_url, audit_pool, mailcow.url, live_cache_seconds=60)
    before = api_requests(sim)
    for _ in range(5):
        client.get("/api/queue")
        client.get("/grafana/infinity/queue")
    assert api_requests(sim) == before + 1


def test_mailcow_down_answers_502_and_slow_mailcow_504_never_hanging(db_url, audit_pool, mailcow, live_app):
    down = make_client(db_url, audit_pool, "http://127.0.0.1:9")
    for path in ("/api/queue", "/api/quarantine", "/api/status/summary", "/grafana/infinity/queue"):
        response = down.get(path)
        assert response.status_code == 502, path
        assert response.get_json()["code"] == "MAILCOW_UNREACHABLE"
    assert down.get("/api/status/mailcow-connection").get_json()["connected"] is False

    import httpx

    httpx.post(f"{mailcow.url}/sim/fault", json={"mode": "slow", "delay": 3})
    slow = make_client(db_url, audit_pool, mailcow.url, mailcow_timeout=0.5)
    response = slow.get("/api/queue")
    assert response.status_code == 504 and response.get_json()["code"] == "MAILCOW_TIMEOUT"
    httpx.post(f"{mailcow.url}/sim/fault", json={"mode": None})


# --- actions -----------------------------------------------------------------------------------------


def test_hold_then_unhold_moves_the_message_between_queues(client, sim):
    qid = deferred_ids(sim, 1)[0]
    answer = client.post("/api/queue/action", json={"action": "hold", "items": [qid]}).get_json()
    assert answer["success"] and answer["results"] == [{"item": qid, "ok": True, "type": "success", "message": "done"}]
    assert answer["mailcow"][0]["msg"] == "queue_command_success"
    assert sim.state.queue[qid]["queue_name"] == "hold"
    assert client.get("/api/queue?queue=hold").get_json()["data"][0]["queue_id"] == qid  # the cache was dropped
    assert client.post("/api/queue/action", json={"action": "unhold", "items": [qid]}).get_json()["success"]
    assert sim.state.queue[qid]["queue_name"] == "deferred"


def test_deliver_retries_now_and_delete_removes(client, sim):
    deliver, delete = deferred_ids(sim, 2)
    assert client.post("/api/queue/action", json={"action": "deliver", "items": [deliver]}).status_code == 200
    response = client.post("/api/queue/delete", json={"items": [delete.lower()]})
    assert response.get_json()["items"] == [delete]
    assert delete not in sim.state.queue
    sim.clock.now += 5
    sim.advance()
    assert deliver not in sim.state.queue  # delivered on the retry
    lines = [item["message"] for item in sim.state.logs["postfix"]]
    assert f"{delete}: removed" in lines and any(line.startswith(f"{deliver}: to=<") for line in lines)


def test_whole_queue_actions_ignore_items_and_say_so(client, sim):
    assert len(sim.state.queue) > 2
    answer = client.post("/api/queue/action", json={"action": "super_delete"}).get_json()
    assert answer["whole_queue"] and answer["items"] == [] and answer["success"]
    assert sim.state.queue == {}


@pytest.mark.parametrize("action", ["release", "learnham", "learnspam", "delete"])
def test_each_quarantine_action_changes_the_quarantine_as_mailcow_would(client, sim, action):
    ident = max(sim.state.quarantine)
    rcpt = sim.state.quarantine[ident]["rcpt"]
    answer = client.post(f"/api/quarantine/{action}", json={"items": [ident]}).get_json()
    assert answer["success"] and answer["results"][0]["item"] == str(ident)
    assert ident not in sim.state.quarantine
    reinjected = any(
        item["program"] == "postfix/lmtp" and f"to=<{rcpt}>" in item["message"]
        for item in list(sim.state.logs["postfix"])[:5]
    )
    assert reinjected == (action in ("release", "learnham"))


def test_mailcow_answers_come_back_item_by_item(client, sim):
    ident = min(sim.state.quarantine)
    answer = client.post("/api/quarantine/delete", json={"items": [ident, 987654]}).get_json()
    assert answer["outcome"] == "partial" and not answer["success"]
    assert [(r["item"], r["ok"]) for r in answer["results"]] == [(str(ident), True), ("987654", False)]
    assert answer["results"][1]["type"] == "danger"


@pytest.mark.parametrize(
    ("path", "body", "code"),
    [
        ("/api/queue/action", {"action": "explode", "items": ["ABCDE12345"]}, "UNKNOWN_ACTION"),
        ("/api/queue/action", {"items": ["ABCDE12345"]}, "UNKNOWN_ACTION"),
        ("/api/queue/action", {"action": "hold", "items": []}, "ITEMS_REQUIRED"),
        ("/api/queue/action", {"action": "hold", "items": ["not-hex; rm -rf"]}, "INVALID_ITEM"),
        ("/api/quarantine/release", {"items": ["12a"]}, "INVALID_ITEM"),
        ("/api/quarantine/release", {"items": list(range(501))}, "TOO_MANY_ITEMS"),
    ],
)
def test_bad_requests_are_400_and_reach_no_mailcow(client, sim, audit_pool, path, body, code):
    before, queue, quarantine = api_requests(sim), copy.deepcopy(sim.state.queue), set(sim.state.quarantine)
    response = client.post(path, json=body)
    assert response.status_code == 400 and response.get_json()["code"] == code
    assert api_requests(sim) == before and sim.state.queue == queue and set(sim.state.quarantine) == quarantine
    assert audit_entries(audit_pool)[-1]["outcome"] == "refused"


def test_without_a_read_write_key_actions_are_a_clear_403(db_url, audit_pool, mailcow, sim):
    client = make_client(db_url, audit_pool, mailcow.url, mailcow_api_key_rw=None)
    status = client.get("/api/rw-status").get_json()
    assert status["read_only"] is True and status["configured"] is False
    before = api_requests(sim)
    response = client.post("/api/quarantine/release", json={"items": [min(sim.state.quarantine)]})
    assert response.status_code == 403 and response.get_json()["code"] == "READ_ONLY"
    assert "MAILCOW_API_KEY_RW" in response.get_json()["detail"]
    assert api_requests(sim) == before
    assert audit_entries(audit_pool)[-1]["code"] == "READ_ONLY"


def test_a_read_only_key_configured_as_read_write_is_a_clear_403_from_us(db_url, audit_pool, mailcow, sim):
    client = make_client(db_url, audit_pool, mailcow.url, mailcow_api_key_rw=RO_KEY)
    qid = deferred_ids(sim, 1)[0]
    response = client.post("/api/queue/action", json={"action": "hold", "items": [qid]})
    body = response.get_json()
    assert response.status_code == 403 and body["code"] == "MAILCOW_KEY_READ_ONLY"
    assert body["error"] and "read/write access denied" in body["detail"]
    assert sim.state.queue[qid]["queue_name"] == "deferred"


def test_mailcow_down_is_a_502_with_an_audit_entry_of_the_failure(db_url, audit_pool):
    client = make_client(db_url, audit_pool, "http://127.0.0.1:9")
    response = client.post("/api/queue/delete", json={"items": ["ABCDE12345"]})
    body = response.get_json()
    assert response.status_code == 502 and body["code"] == "MAILCOW_UNREACHABLE" and body["detail"]
    entry = audit_entries(audit_pool)[-1]
    assert entry["outcome"] == "failed" and entry["code"] == "MAILCOW_UNREACHABLE" and entry["id"] == body["audit_id"]
    assert entry["items"] == ["ABCDE12345"] and entry["action"] == "delete"


# --- cross-site defence ------------------------------------------------------------------------------


def test_cross_origin_and_form_posts_change_nothing(client, sim, audit_pool):
    ident = min(sim.state.quarantine)
    evil = client.post("/api/quarantine/delete", json={"items": [ident]}, headers={"Origin": "https://evil.example"})
    assert evil.status_code == 403 and evil.get_json()["code"] == "ORIGIN_REFUSED"
    form = client.post("/api/quarantine/delete", data={"items": str(ident)})
    assert form.status_code == 415 and form.get_json()["code"] == "JSON_BODY_REQUIRED"
    assert client.get("/api/quarantine/delete").status_code == 405
    assert ident in sim.state.quarantine
    entries = audit_entries(audit_pool)
    assert [(e["outcome"], e["code"]) for e in entries] == [
        ("refused", "ORIGIN_REFUSED"),
        ("refused", "JSON_BODY_REQUIRED"),
    ]
    assert entries[0]["origin"] == "https://evil.example"


def test_cors_is_granted_to_the_grafana_origin_only(client, sim):
    preflight = {"Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "content-type"}
    granted = client.options("/api/queue/action", headers={"Origin": GRAFANA, **preflight})
    assert granted.headers["Access-Control-Allow-Origin"] == GRAFANA
    assert "x-grafana-action" in granted.headers["Access-Control-Allow-Headers"]
    refused = client.options("/api/queue/action", headers={"Origin": "https://evil.example", **preflight})
    assert "Access-Control-Allow-Origin" not in refused.headers
    qid = deferred_ids(sim, 1)[0]
    response = client.post(
        "/api/queue/action",
        json={"action": "hold", "items": [qid]},
        headers={"Origin": GRAFANA, "X-Grafana-Action": "1", "X-Grafana-User": "alice"},
    )
    assert response.status_code == 200 and response.headers["Access-Control-Allow-Origin"] == GRAFANA


def test_with_auth_actions_without_credentials_are_401_and_leave_no_trace(db_url, audit_pool, mailcow, sim):
    client = make_client(db_url, audit_pool, mailcow.url, auth_enabled=True, auth_password="s3cret-pass")
    before, ident = api_requests(sim), min(sim.state.quarantine)
    for path, body in (("/api/quarantine/delete", {"items": [ident]}), ("/api/queue/action", {"action": "flush"})):
        response = client.post(path, json=body)
        assert response.status_code == 401 and response.get_json()["code"] == "AUTH_REQUIRED"
    page = client.get(f"/actions/quarantine/delete?items={ident}")
    assert page.status_code == 401 and page.headers["WWW-Authenticate"].startswith("Basic")
    assert api_requests(sim) == before and ident in sim.state.quarantine
    import base64

    auth = {"Authorization": "Basic " + base64.b64encode(b"admin:s3cret-pass").decode()}
    assert client.post("/api/quarantine/delete", json={"items": [ident]}, headers=auth).get_json()["success"]
    assert audit_entries(audit_pool)[-1]["actor"] == "admin"


# --- audit log ---------------------------------------------------------------------------------------


def test_audit_log_records_every_attempt_paginated_and_as_a_json_log_line(client, sim, audit_pool, caplog):
    caplog.set_level(logging.INFO, logger="mailcow_grafana.audit")
    with audit_pool.connection() as conn:  # counters persist across tests: compare with before
        before_hold = conn.execute(
            """SELECT coalesce(sum(value), 0) FROM metric_counters
               WHERE name = 'actions' AND labels = '{"target": "queue", "action": "hold", "outcome": "success"}'"""
        ).fetchone()[0]
    before_hold = float(before_hold)
    qid = deferred_ids(sim, 1)[0]
    client.post(
        "/api/queue/action",
        json={"action": "hold", "items": [qid]},
        headers={"X-Grafana-Action": "1", "X-Grafana-User": "alice", "Origin": GRAFANA},
    )
    client.post("/api/queue/action", json={"action": "nonsense", "items": [qid]})
    client.post(
        "/api/quarantine/learnspam",
        json={"items": [min(sim.state.quarantine)]},
        headers={"User-Agent": "Grafana/12.2.0"},
    )
    page = client.get("/api/audit-log?limit=2").get_json()
    assert page["total"] == 3 and page["pages"] == 2 and len(page["data"]) == 2
    newest = page["data"][0]
    assert newest["target"] == "quarantine" and newest["via"] == "grafana-server" and newest["outcome"] == "success"
    oldest = client.get("/api/audit-log?limit=2&page=2").get_json()["data"][0]
    assert oldest["via"] == "grafana-action" and oldest["grafana_user"] == "alice" and oldest["origin"] == GRAFANA
    assert oldest["items"] == [qid] and oldest["results"][0]["ok"] is True and oldest["remote_addr"] == "127.0.0.1"
    assert oldest["at"].endswith("Z")
    refused = client.get("/api/audit-log?outcome=refused").get_json()
    assert refused["total"] == 1 and refused["data"][0]["code"] == "UNKNOWN_ACTION"
    assert client.get("/api/audit-log?outcome=maybe").status_code == 400
    lines = [json.loads(r.getMessage()) for r in caplog.records if r.name == "mailcow_grafana.audit"]
    assert [line["action"] for line in lines] == ["hold", "nonsense", "learnspam"]
    dumped = json.dumps(page) + json.dumps(lines)
    assert RW_KEY not in dumped and RO_KEY not in dumped
    metrics = client.get("/metrics").get_data(as_text=True)
    counted = dict(re.findall(r"^mailcow_grafana_actions_total\{(.*)\} (\S+)$", metrics, re.M))
    assert counted['action="hold",outcome="success",target="queue"'] == str(before_hold + 1)
    assert 'action="unknown",outcome="refused",target="queue"' in counted and "nonsense" not in metrics


# --- confirmation pages ------------------------------------------------------------------------------


def _token(html: str) -> str:
    return re.search(r'name="token" value="([^"]+)"', html).group(1)


def test_a_confirmation_page_names_the_items_and_changes_nothing(client, sim, audit_pool):
    ident = min(sim.state.quarantine)
    row = sim.state.quarantine[ident]
    page = client.get(f"/actions/quarantine/release?items={ident}")
    html = page.get_data(as_text=True)
    assert page.status_code == 200 and page.headers["X-Frame-Options"] == "DENY"
    assert "Release 1 quarantined message" in html and row["subject"] in html and row["rcpt"] in html
    assert ident in sim.state.quarantine and audit_entries(audit_pool) == []
    done = client.post("/actions/quarantine/release", data={"items": str(ident), "token": _token(html)})
    assert done.status_code == 200 and "1 of 1 item done" in done.get_data(as_text=True)
    assert ident not in sim.state.quarantine
    assert audit_entries(audit_pool)[-1]["via"] == "page"


def test_bulk_pages_name_the_count_and_whole_queue_pages_say_so(client, sim):
    deferred = [q for q, i in sim.state.queue.items() if i["queue_name"] == "deferred"]
    html = client.get("/actions/queue/hold?all=1&queue=deferred").get_data(as_text=True)
    assert f"Hold {len(deferred)} messages" in html and all(q in html for q in deferred)
    flush = client.get("/actions/queue/flush").get_data(as_text=True)
    assert "whole queue" in flush and f"({len(sim.state.queue)} messages" in flush
    missing = client.get("/actions/queue/delete?items=ABCDE12345")
    assert missing.status_code == 409


def test_page_posts_need_a_token_for_exactly_those_items_from_our_own_origin(client, sim):
    first, second = sorted(sim.state.quarantine)[:2]
    token = _token(client.get(f"/actions/quarantine/delete?items={first}").get_data(as_text=True))
    no_token = client.post("/actions/quarantine/delete", data={"items": str(first)})
    other_items = client.post("/actions/quarantine/delete", data={"items": str(second), "token": token})
    other_action = client.post("/actions/quarantine/release", data={"items": str(first), "token": token})
    foreign = client.post(
        "/actions/quarantine/delete",
        data={"items": str(first), "token": token},
        headers={"Origin": "https://evil.example"},
    )
    for response in (no_token, other_items, other_action, foreign):
        assert response.status_code == 403
    assert "CSRF_FAILED" in no_token.get_data(as_text=True) and "ORIGIN_REFUSED" in foreign.get_data(as_text=True)
    assert first in sim.state.quarantine and second in sim.state.quarantine


def test_read_only_pages_explain_instead_of_offering_a_button(db_url, audit_pool, mailcow, sim):
    client = make_client(db_url, audit_pool, mailcow.url, mailcow_api_key_rw=None)
    page = client.get(f"/actions/quarantine/release?items={min(sim.state.quarantine)}")
    assert page.status_code == 403 and "READ_ONLY" in page.get_data(as_text=True)
    assert 'id="confirm"' not in page.get_data(as_text=True)
    assert client.get("/actions/quarantine/explode?items=1").status_code == 404


def writes(sim) -> list[str]:
    """The write calls mailcow received, oldest first."""
    return [entry["uri"] for entry in reversed(sim.state.logs["api"]) if entry["method"] == "POST"]


def test_a_confirmation_token_acts_once(client, sim, audit_pool):
    """Three flushes from one page were possible for 15 minutes: the second post of a form is refused."""
    token = _token(client.get("/actions/queue/flush").get_data(as_text=True))
    before = writes(sim)
    answers = [client.post("/actions/queue/flush", data={"token": token}) for _ in range(3)]
    assert [a.status_code for a in answers] == [200, 403, 403]
    assert all("CSRF_REUSED" in a.get_data(as_text=True) for a in answers[1:])
    assert len(writes(sim)) == len(before) + 1
    assert [(e["outcome"], e["code"]) for e in audit_entries(audit_pool)] == [
        ("success", None),
        ("refused", "CSRF_REUSED"),
        ("refused", "CSRF_REUSED"),
    ]
    fresh = _token(client.get("/actions/queue/flush").get_data(as_text=True))  # a new page acts again
    assert client.post("/actions/queue/flush", data={"token": fresh}).status_code == 200


def test_a_token_is_spent_for_every_process_and_replica_at_once(db_url, audit_pool, mailcow, sim, live_app):
    """Two replicas (own pools, own HTTP servers) share only PostgreSQL; racing posts act exactly once."""
    import threading

    import httpx

    from exporter.store.database import create_pool

    pools = [create_pool(db_url, 4) for _ in range(2)]
    try:
        servers = [
            live_app(create_app(make_config(db_url, mailcow.url, live_cache_seconds=0, secret_key="k" * 32), p))
            for p in pools
        ]
        qid = deferred_ids(sim, 1)[0]
        page = httpx.get(f"{servers[0].url}/actions/queue/hold?items={qid}")
        token, answers = _token(page.text), []
        start = threading.Barrier(6)

        def post(url: str) -> None:
            start.wait()
            answers.append(httpx.post(f"{url}/actions/queue/hold", data={"items": qid, "token": token}).status_code)

        threads = [threading.Thread(target=post, args=(s.url,)) for s in servers for _ in range(3)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert sorted(answers) == [200, 403, 403, 403, 403, 403]
        assert writes(sim).count("/api/v1/edit/mailq") == 1
    finally:
        for p in pools:
            p.close()


def test_preflights_pass_without_credentials_only_on_the_action_routes(db_url, audit_pool, mailcow):
    client = make_client(db_url, audit_pool, mailcow.url, auth_enabled=True, auth_password="s3cret-pass")
    preflight = {"Origin": GRAFANA, "Access-Control-Request-Method": "POST"}
    action = client.options("/api/queue/action", headers=preflight)
    assert action.status_code == 204 and action.headers["Access-Control-Allow-Origin"] == GRAFANA
    for path in ("/api/audit-log", "/actions/queue/hold", "/api/dmarc/upload"):
        response = client.options(path, headers=preflight)
        assert response.status_code == 401 and "Access-Control-Allow-Origin" not in response.headers, path
