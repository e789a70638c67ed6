"""The messages, logs, stats, export and settings API over correlated simulator traffic."""

from __future__ import annotations

import csv
import io
import re
import time

import pytest

from exporter.app import create_app
from exporter.store import messages as message_store
from tests.conftest import make_config
from tests.mailflow import scenario


@pytest.fixture(scope="module")
def api(databases):
    """An hour of traffic ending now, ingested and correlated; yields (test client, simulation)."""
    with scenario(databases, int(time.time()) - 3600, rate=20, seed=5) as (rig, pool, url):
        rig.run(3600, every=300)
        yield create_app(make_config(url), pool).test_client(), rig.sim


def test_messages_envelope_and_order(api):
    client, _ = api
    body = client.get("/api/messages?limit=25&page=2").get_json()
    assert set(body) == {"total", "page", "limit", "pages", "data"}
    assert body["page"] == 2 and body["limit"] == 25 and body["pages"] == -(-body["total"] // 25)
    times = [m["first_seen"] for m in body["data"]]
    assert len(times) == 25 and times == sorted(times, reverse=True)
    row = body["data"][0]
    for key in (
        "correlation_key",
        "message_id",
        "queue_id",
        "sender",
        "recipient",
        "subject",
        "direction",
        "final_status",
        "is_complete",
        "first_seen",
        "last_seen",
        "spam_score",
        "is_spam",
        "user",
        "ip",
    ):
        assert key in row


@pytest.mark.parametrize(
    ("query", "check"),
    [
        ("direction=outbound", lambda m: m["direction"] == "outbound"),
        ("status=rejected", lambda m: m["final_status"] == "rejected"),
        ("status=spam", lambda m: m["is_spam"]),
        ("status=bounced", lambda m: m["final_status"] == "bounced"),
        ("user=alice@example.org", lambda m: m["user"] == "alice@example.org"),
        ("sender=j.doe@gmail.com", lambda m: m["sender"] == "j.doe@gmail.com"),
    ],
)
def test_message_filters(api, query, check):
    client, _ = api
    data = client.get(f"/api/messages?limit=500&{query}").get_json()["data"]
    assert data and all(check(m) for m in data)


def test_recipient_filter_finds_alias_and_every_recipient(api):
    client, sim = api
    multi = next(m for m in sim.ground_truth() if len(m["recipients"]) > 1 and m["queue_ids"])
    second = multi["recipients"][1]["address"]
    found = client.get(f"/api/messages?limit=500&recipient={second}").get_json()["data"]
    assert any(m["queue_id"] == multi["queue_ids"][-1] for m in found)
    aliased = next(m for m in sim.ground_truth() if m["recipients"][0]["orig_to"] and m["queue_ids"])
    by_alias = client.get(f"/api/messages?limit=500&recipient={aliased['recipients'][0]['orig_to']}").get_json()
    assert any(m["queue_id"] == aliased["queue_ids"][-1] for m in by_alias["data"])


def test_search_and_ip_and_dates(api):
    client, sim = api
    mail = next(m for m in sim.ground_truth() if m["queue_ids"] and m["message_id"])
    for term in (mail["queue_ids"][-1], mail["message_id"].split("@")[0], mail["subject"].split()[0]):
        data = client.get(f"/api/messages?limit=500&search={term}").get_json()["data"]
        assert any(m["queue_id"] == mail["queue_ids"][-1] for m in data), term
    one = client.get("/api/messages?limit=1&direction=inbound").get_json()["data"][0]
    by_ip = client.get(f"/api/messages?limit=500&ip={one['ip']}").get_json()["data"]
    assert by_ip and all(m["ip"] == one["ip"] for m in by_ip)
    windowed = client.get(f"/api/messages?limit=500&start_date={one['first_seen']}&end_date={one['first_seen']}")
    assert all(m["first_seen"] == one["first_seen"] for m in windowed.get_json()["data"])
    epoch_ms = int(time.time() * 1000)
    assert client.get(f"/api/messages?start_date={epoch_ms - 600_000}&end_date={epoch_ms}").status_code == 200


@pytest.mark.parametrize(
    ("query", "name"),
    [
        ("limit=501", "limit"),
        ("limit=abc", "limit"),
        ("page=0", "page"),
        ("direction=sideways", "direction"),
        ("status=lost", "status"),
        ("start_date=yesterday", "start_date"),
        ("start_date=2026-01-02T00:00:00Z&end_date=2026-01-01T00:00:00Z", "start_date"),
    ],
)
def test_bad_parameters_are_400_naming_the_parameter(api, query, name):
    client, _ = api
    response = client.get(f"/api/messages?{query}")
    assert response.status_code == 400
    body = response.get_json()
    assert body["code"] == "VALIDATION_FAILED" and body["detail"].startswith(f"{name}: ")


def test_details_has_recipients_rspamd_and_lines(api):
    client, sim = api
    mail = next(
        m for m in sim.ground_truth() if len(m["recipients"]) > 1 and m["queue_ids"] and m["direction"] == "inbound"
    )
    listed = client.get(f"/api/messages?search={mail['queue_ids'][-1]}").get_json()["data"][0]
    details = client.get(f"/api/message/{listed['correlation_key']}/details").get_json()
    assert sorted(details["recipients"]) == sorted(r["address"] for r in mail["recipients"])
    assert details["recipient_count"] == len(mail["recipients"])
    assert details["rspamd"]["action"] == mail["rspamd_action"] and "symbols" in details["rspamd"]
    assert {line["queue_id"] for line in details["postfix"]} == {mail["queue_ids"][-1]}
    assert "_system" in details["postfix_by_recipient"]
    for rcpt in details["recipients"]:
        assert details["postfix_by_recipient"][rcpt][0]["status"] == "sent"
    assert client.get("/api/message/nope/details").status_code == 404


def test_postfix_logs_and_by_queue(api):
    client, _ = api
    body = client.get("/api/logs/postfix?status=sent&limit=50").get_json()
    assert body["data"] and all(line["status"] == "sent" for line in body["data"])
    assert all(line["correlation_key"] for line in body["data"])
    rejected = client.get("/api/logs/postfix?status=rejected").get_json()["data"]
    assert rejected and all("reject" in line["message"] for line in rejected)
    qid = body["data"][0]["queue_id"]
    by_queue = client.get(f"/api/logs/postfix/by-queue/{qid}").get_json()
    assert by_queue["queue_id"] == qid and all(line["queue_id"] == qid for line in by_queue["logs"])
    times = [line["time"] for line in by_queue["logs"]]
    assert times == sorted(times)
    assert client.get("/api/logs/postfix/by-queue/ABCDEF012345").status_code == 404
    searched = client.get("/api/logs/postfix?search=Relay access denied").get_json()["data"]
    assert searched and all("Relay access denied" in line["message"] for line in searched)


def test_rspamd_and_netfilter_logs(api):
    client, _ = api
    spam = client.get("/api/logs/rspamd?is_spam=true&min_score=8").get_json()["data"]
    assert spam and all(r["is_spam"] and r["score"] >= 8 for r in spam)
    outbound = client.get("/api/logs/rspamd?direction=outbound").get_json()["data"]
    assert outbound and all(r["has_auth"] for r in outbound)
    assert any(r["correlation_key"] for r in outbound)
    warnings = client.get("/api/logs/netfilter?action=warning").get_json()["data"]
    assert warnings and all(w["action"] == "warning" for w in warnings)
    ip = warnings[0]["ip"]
    assert all(w["ip"] == ip for w in client.get(f"/api/logs/netfilter?ip={ip}").get_json()["data"])


def _rspamd_text(row: dict) -> str:
    """The searchable text of an API rspamd row, as words (lower case, one space between)."""
    text = " ".join(v or "" for v in (row["subject"], row["sender_smtp"], (row["message_id"] or "").strip("<>")))
    return " ".join(re.findall(r"[a-z0-9]+", text.lower()))


def test_rspamd_search_by_subject_sender_and_message_id(api):
    client, _ = api
    rows = client.get("/api/logs/rspamd?limit=500").get_json()["data"]
    row = next(r for r in rows if r["subject"] and len(re.findall(r"[A-Za-z0-9]+", r["subject"])) >= 2)
    first, second = re.findall(r"[A-Za-z0-9]+", row["subject"])[:2]
    for term in (f"{first.upper()} {second}", f"{first} {second[:2]}", row["sender_smtp"], row["message_id"][1:-1]):
        found = client.get("/api/logs/rspamd", query_string={"search": term, "limit": 500}).get_json()["data"]
        assert row["id"] in {r["id"] for r in found}, term
        words = " ".join(re.findall(r"[a-z0-9]+", term.lower()))
        # every word in order and adjacent, the last one as a prefix
        assert all(re.search(rf"(^| ){re.escape(words)}", _rspamd_text(r)) for r in found), term
    reversed_term = f"{second} {first}"
    found = client.get("/api/logs/rspamd", query_string={"search": reversed_term, "limit": 500}).get_json()["data"]
    assert all(f"{second} {first}".lower() in _rspamd_text(r) for r in found)
    assert client.get("/api/logs/rspamd?search=zzqqnotaword").get_json()["data"] == []


def test_stats(api):
    client, _ = api
    dash = client.get("/api/stats/dashboard").get_json()
    assert dash["messages"]["24h"] > 0 and dash["messages"]["24h"] == dash["messages"]["7d"]
    assert sum(dash["direction"].values()) == dash["messages"]["24h"]
    timeline = client.get("/api/stats/timeline?hours=2").get_json()["timeline"]
    assert sum(b["total"] for b in timeline) == dash["messages"]["24h"]
    assert all(b["spam"] + b["clean"] == b["total"] for b in timeline)
    triggers = client.get("/api/stats/top-spam-triggers?limit=3").get_json()["triggers"]
    assert 0 < len(triggers) <= 3 and triggers[0]["count"] >= triggers[-1]["count"]
    assert client.get("/api/stats/top-blocked-ips").get_json()["blocked_ips"]
    activity = client.get("/api/stats/recent-activity?limit=5").get_json()["activity"]
    assert len(activity) == 5


def test_csv_exports_stream_with_headers(api):
    client, _ = api
    response = client.get("/api/export/messages/csv?direction=inbound")
    assert response.mimetype == "text/csv" and "attachment" in response.headers["Content-Disposition"]
    rows = list(csv.reader(io.StringIO(response.get_data(as_text=True))))
    assert rows[0][:3] == ["Time", "Sender", "Recipient"] and len(rows) > 10
    assert all(r[4] == "inbound" for r in rows[1:])
    for kind, first in (("postfix", "Time"), ("rspamd", "Time"), ("netfilter", "Time")):
        body = client.get(f"/api/export/{kind}/csv").get_data(as_text=True)
        assert body.startswith(first)
    app = client.application
    limited = create_app(
        make_config(app.config["MG_CONFIG"].database_url, csv_export_limit=7), app.config["MG_POOL"]
    ).test_client()
    assert len(list(csv.reader(io.StringIO(limited.get("/api/export/postfix/csv").get_data(as_text=True))))) == 8


def test_settings_info_and_health(api):
    client, _ = api
    info = client.get("/api/settings/info").get_json()
    assert set(info["import_status"]) == {"postfix", "rspamd", "netfilter", "dovecot"}  # dovecot: deliveries
    assert info["correlation_status"]["total"] > 0 and info["correlation_status"]["pending_lines"] == 0
    for name in (
        "fetch_logs",
        "complete_correlations",
        "update_final_status",
        "expire_correlations",
        "cleanup_logs",
        "sync_domains",
    ):
        job = info["background_jobs"][name]
        assert job["status"] in ("running", "success", "failed", "idle", "scheduled") and job["description"]
    assert "pending_items" in info["background_jobs"]["complete_correlations"]
    assert info["configuration"]["mailcow_api_key"] == "********" and "database_url" not in info["configuration"]
    health = client.get("/api/settings/health").get_json()
    assert health["database"]["status"] == "connected"
    assert health["recent_activity"]["last_5_minutes"]["postfix_imported"] >= 0


def test_recipient_filter_gives_the_same_answer_whichever_plan_it_gets(api, monkeypatch):
    client, _ = api
    answers = []
    for common in (0, 10**9):  # every address "common" (walk the time index), then every one "rare" (ids first)
        monkeypatch.setattr(message_store, "COMMON_TERM", common)
        answers.append(
            [
                client.get(f"/api/messages?limit=500&recipient={address}{extra}").get_json()
                for address in ("info@example.org", "contact@example.org", "nobody@example.org")
                for extra in ("", "&direction=inbound")
            ]
        )
    assert answers[0] == answers[1]
    info, info_inbound, alias, _, nobody, _ = answers[0]
    assert info["total"] == len(info["data"]) > 0 and alias["total"] > 0 and nobody["total"] == 0
    assert info_inbound["total"] == sum(1 for m in info["data"] if m["direction"] == "inbound")
