"""The simulator answers like mailcow (mailcow-api.md §0-2): statuses, bodies, ranges, types."""

from __future__ import annotations

import json

import httpx
import pytest

from tests.conftest import RO_KEY, RW_KEY


def get(server, path: str, key: str | None = RO_KEY, **headers: str) -> httpx.Response:
    if key is not None:
        headers["X-API-Key"] = key
    return httpx.get(f"{server.url}/api/v1/{path}", headers=headers)


def post(server, path: str, body, key: str | None = RW_KEY) -> httpx.Response:
    headers = {"Content-Type": "application/json"}
    if key is not None:
        headers["X-API-Key"] = key
    content = body if isinstance(body, str) else json.dumps(body)
    return httpx.post(f"{server.url}/api/v1/{path}", headers=headers, content=content)


def test_unknown_key_is_401_with_json_body_but_html_content_type(mailcow, sim):
    response = get(mailcow, "get/logs/postfix/5", key="WRONG-KEY")
    assert response.status_code == 401
    assert response.headers["content-type"].startswith("text/html")
    assert json.loads(response.text) == {"type": "error", "msg": "authentication failed"}
    # mailcow publishes the failure to netfilter (rule 1)
    newest = sim.state.logs["netfilter"][1]
    assert "matched rule id 1 (mailcow UI: Invalid password for API_USER by 127.0.0.1)" in newest["message"]


def test_repeated_bad_keys_get_the_caller_banned(mailcow, sim):
    for _ in range(10):
        get(mailcow, "get/status/version", key="BAD")
    messages = [item["message"] for item in sim.state.logs["netfilter"]]
    assert "Banning 127.0.0.1/32 for 30 minutes" in messages


def test_read_only_key_cannot_write(mailcow):
    response = post(mailcow, "edit/mailq", {"items": ["ABC"], "attr": {"action": "hold"}}, key=RO_KEY)
    assert response.status_code == 403
    assert response.json() == {"type": "error", "msg": "API read/write access denied"}


def test_no_key_get_is_200_with_empty_body(mailcow):
    response = get(mailcow, "get/logs/postfix", key=None)
    assert response.status_code == 200
    assert response.content == b""


def test_unknown_routes_and_services_are_404(mailcow):
    for path in ("get/nothing/all", "get/logs/mail", "frobnicate/x"):
        response = get(mailcow, path)
        assert response.status_code == 404, path
        assert response.json() == {"type": "error", "msg": "route not found"}


def test_wrong_method_and_bad_json(mailcow):
    response = httpx.post(f"{mailcow.url}/api/v1/get/logs/postfix", headers={"X-API-Key": RO_KEY})
    assert response.status_code == 405
    assert response.json() == {"type": "error", "msg": "only GET method is allowed"}
    response = post(mailcow, "delete/qitem", "{not json")
    assert response.status_code == 400
    assert response.json()["msg"] == "Request body doesn't contain valid json!"
    response = get(mailcow, "edit/mailq", key=RW_KEY)
    assert response.status_code == 200
    assert response.json() == {"type": "error", "msg": "Cannot find attributes in post data"}


def test_browser_navigation_is_refused(mailcow):
    response = get(mailcow, "get/logs/postfix", **{"Sec-Fetch-Dest": "document"})
    assert response.status_code == 403 and response.content == b""


def test_postfix_logs_newest_first_with_count_and_one_based_range(mailcow, sim):
    newest = get(mailcow, "get/logs/postfix/50").json()
    ranged = get(mailcow, "get/logs/postfix/1-50").json()
    assert newest == ranged and len(newest) == 50
    assert get(mailcow, "get/logs/postfix/51-60").json() == get(mailcow, "get/logs/postfix/60").json()[50:]
    times = [int(item["time"]) for item in get(mailcow, "get/logs/postfix/1000").json()]
    assert times == sorted(times, reverse=True)
    assert len(get(mailcow, "get/logs/postfix").json()) == 1000  # default $LOG_LINES


def test_rspamd_history_range_is_zero_based(mailcow):
    rows = get(mailcow, "get/logs/rspamd-history/60").json()
    assert get(mailcow, "get/logs/rspamd-history/1-50").json() == rows[1:51]


@pytest.mark.parametrize("segment", ["0", "abc", "", "50-10", "0-5"])
def test_invalid_log_segments_answer_empty_object(mailcow, segment):
    response = get(mailcow, f"get/logs/postfix/{segment}")
    assert response.status_code == 200 and response.json() == {}


def test_log_field_types_per_service(mailcow):
    postfix = get(mailcow, "get/logs/postfix/20").json()
    assert all(list(item) == ["time", "program", "priority", "message"] for item in postfix)
    assert all(isinstance(item["time"], str) and item["time"].isdigit() for item in postfix)
    netfilter = get(mailcow, "get/logs/netfilter/20").json()
    assert netfilter and all(isinstance(i["time"], int) and "program" not in i for i in netfilter)
    assert {i["priority"] for i in netfilter} <= {"info", "warn", "crit"}
    row = get(mailcow, "get/logs/rspamd-history/1").json()[0]
    assert isinstance(row["unix_time"], int) and isinstance(row["symbols"], dict)
    assert isinstance(row["rcpt_smtp"], list) and isinstance(row["is_skipped"], bool)
    api = get(mailcow, "get/logs/api/1").json()[0]
    assert api["uri"] == "/api/v1/get/logs/api/1" and isinstance(api["time"], int)


def test_log_bodies_are_pretty_printed_with_escaped_slashes(mailcow):
    body = get(mailcow, "get/logs/postfix/3").text
    assert body.startswith('[\n    {\n        "time": ')
    assert "postfix\\/" in body


def test_status_endpoints_shapes(mailcow):
    containers = get(mailcow, "get/status/containers")
    assert "\\/" not in containers.text and "\n" not in containers.text
    postfix = containers.json()["postfix-mailcow"]
    assert postfix["state"] == "running" and postfix["image"].startswith("ghcr.io/mailcow/")
    vmail = get(mailcow, "get/status/vmail").json()
    assert all(isinstance(v, str) for v in vmail.values()) and vmail["used_percent"].endswith("%")
    assert get(mailcow, "get/status/version").json() == {"version": "2026-07a"}


def test_queue_quarantine_and_account_types(mailcow):
    queue = get(mailcow, "get/mailq/all")
    assert "\n" not in queue.text
    for item in queue.json():
        assert isinstance(item["arrival_time"], int) and isinstance(item["message_size"], int)
        assert isinstance(item["forced_expire"], bool) and all(isinstance(r, str) for r in item["recipients"])
    quarantine = get(mailcow, "get/quarantine/all").json()
    assert quarantine, "an hour of traffic quarantines some spam"
    assert all(
        isinstance(q["id"], int) and isinstance(q["score"], float) and isinstance(q["created"], int) for q in quarantine
    )
    domain = get(mailcow, "get/domain/all").json()[0]
    assert isinstance(domain["quota_used_in_domain"], str) and domain["active"] == 1 and domain["relayhost"] == "0"
    boxes = get(mailcow, "get/mailbox/all").json()
    assert any(b["percent_in_use"] == "- " and b["percent_class"] == "info" for b in boxes)
    assert all(isinstance(b["attributes"]["imap_access"], str) for b in boxes)
    assert get(mailcow, "get/domain/unknown.example").json() == {}
    assert get(mailcow, "get/dkim/example.org").json()["length"] == "2048"


def test_write_envelopes(mailcow, sim):
    qid = next(iter(sim.state.queue))
    response = post(mailcow, "edit/mailq", {"items": [qid], "attr": {"action": "hold"}})
    assert response.json() == [
        {
            "type": "success",
            "log": ["process_mailq_output", "edit", {"qid": [qid], "action": "hold"}],
            "msg": "queue_command_success",
        }
    ]
    assert sim.state.queue[qid]["queue_name"] == "hold"
    assert post(mailcow, "edit/mailq", {"items": [qid], "attr": {}}).json() == {
        "type": "success",
        "msg": "Task completed",
    }
    qitem = next(iter(sim.state.quarantine))
    released = post(mailcow, "edit/qitem", {"items": [str(qitem)], "attr": {"action": "release"}}).json()
    assert [r["msg"] for r in released] == [["item_released", str(qitem)], ["learned_ham", str(qitem)]]
    assert qitem not in sim.state.quarantine
    denied = post(mailcow, "delete/qitem", ["abc"]).json()
    assert denied == [{"type": "danger", "log": ["quarantine", "delete", {"id": ["abc"]}], "msg": "access_denied"}]


def test_log_lists_are_capped(live_app):
    from exporter.simulator.app import create_simulator_app
    from exporter.simulator.state import MailcowState
    from exporter.simulator.traffic import Simulation

    state = MailcowState(log_cap=500)
    simulation = Simulation(state, seed=3, start=0, rate_per_minute=30, clock=lambda: 3600)
    simulation.advance()
    server = live_app(create_simulator_app(simulation, RO_KEY, RW_KEY, advance_on_request=False))
    assert len(get(server, "get/logs/postfix/10000").json()) == 500
    assert len(get(server, "get/logs/rspamd-history/5000").json()) <= 1000


def test_search_is_allowed_with_a_read_only_key(mailcow):
    response = post(mailcow, "search/mailbox", {"draw": 3, "search": {"value": "alice"}}, key=RO_KEY)
    body = response.json()
    assert body["draw"] == 3 and body["recordsTotal"] == 6 and body["recordsFiltered"] == 1
    assert body["data"][0]["username"] == "alice@example.org"
    assert post(mailcow, "search/alias", {}, key=RO_KEY).json() == {"type": "error", "msg": "Invalid search category"}


def test_ground_truth_export_matches_the_simulation(mailcow, sim):
    exported = httpx.get(f"{mailcow.url}/sim/ground-truth").json()
    assert exported == sim.ground_truth() and len(exported) > 100
    assert {"direction", "sender", "message_id", "queue_ids", "recipients", "complete"} <= set(exported[0])


def test_fault_modes_make_mailcow_fail_like_the_real_one(mailcow):
    from exporter.mailcow.client import MailcowClient
    from exporter.mailcow.errors import MailcowServerError, MailcowTimeout

    client = MailcowClient(mailcow.url, RO_KEY, timeout=0.5, retries=1)
    httpx.post(f"{mailcow.url}/sim/fault", json={"mode": "server_error"})
    response = get(mailcow, "get/status/version")
    assert response.status_code == 500 and response.text.startswith("<center>")
    with pytest.raises(MailcowServerError):
        client.version()
    httpx.post(f"{mailcow.url}/sim/fault", json={"mode": "slow", "delay": 1.5})
    with pytest.raises(MailcowTimeout):
        client.version()
    httpx.post(f"{mailcow.url}/sim/fault", json={"mode": None})
    assert client.version() == "2026-07a"
