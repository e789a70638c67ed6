"""Every smart filter against mailcow's real lines: one it must find and one it must not, run where
filters run (PostgreSQL, through the REST list), and its LogQL form readable by Grafana's Loki."""

from __future__ import annotations

import re
from datetime import datetime

import pytest

from exporter.app import create_app
from exporter.config_values import RAW_LOG_SERVICES
from exporter.readmodels import smart_filters
from exporter.store import raw_search
from exporter.store.raw_search import LineQuery
from tests import raw_log_items as items
from tests.conftest import make_config

# (service, filter id, the item it must find, the item it must not find), names from tests/raw_log_items.py
CASES = [
    ("postfix", "postscreen", "connect_ps", "connect"),
    ("postfix", "postscreen", "pregreet", "qmgr"),
    ("postfix", "noqueue_reject", "relay", "queued_reject"),
    ("postfix", "noqueue_reject", "sender_rejected", "sasl_failed"),
    ("postfix", "dnsbl_block", "dnsblog", "pass_new"),
    ("postfix", "pregreet", "pregreet", "hangup"),
    ("postfix", "sender_recipient_restrictions", "sender_rejected", "relay"),
    ("postfix", "sender_recipient_restrictions", "queued_reject", "client_rejected"),
    ("postfix", "relay_denied", "relay", "client_rejected"),
    ("postfix", "connections", "connect", "qmgr"),
    ("postfix", "connections", "connect_ps", "pass_new"),
    ("dovecot", "auth_failures", "auth_failed", "login"),
    ("dovecot", "logins", "login", "aborted"),
    ("dovecot", "lmtp_deliveries", "sieve_stored", "lmtp_connect"),
    ("dovecot", "lmtp_deliveries", "quota", "expunge"),
    ("dovecot", "quota", "quota", "sieve_stored"),
    ("sogo", "logins", "login_ok", "request"),
    ("sogo", "logins", "login_failed", "request"),
    ("sogo", "failed_logins", "login_failed", "login_ok"),
    ("netfilter", "bans", "ban", "unban"),
    ("netfilter", "unbans", "unban", "not_banned"),
    ("netfilter", "attempts", "matched", "ban"),
    ("rspamd-history", "rejects", "reject", "clean"),
    ("rspamd-history", "spam", "add_header", "greylist"),
    ("rspamd-history", "spam", "reject", "clean"),
    ("watchdog", "unhealthy", "degraded", "healthy"),
    ("watchdog", "unhealthy", "error_limit", "healthy"),
    ("acme", "errors", "retrying", "validated"),
    ("api", "write_requests", "post", "get"),
    ("autodiscover", "errors", "error", "ok"),
]
SEED_000_POSTFIX = {
    "Postscreen",
    "NOQUEUE Reject",
    "DNSBL Block",
    "Pregreet",
    "Sender/Recipient Restrictions",
    "Relay Denied",
    "Connections",
}


@pytest.fixture(scope="module")
def stored(databases):
    from exporter.store.database import create_pool, migrate

    url = databases.create()
    migrate(url)
    pool = create_pool(url, 2)
    pool.wait()
    at = items.store_all(pool)
    yield pool, url, at
    pool.close()


@pytest.fixture(scope="module")
def client(stored):
    pool, url, _ = stored
    return create_app(make_config(url), pool).test_client()


def _ids(client, service: str, filter_id: str) -> set[int]:
    response = client.get(f"/api/raw-logs/{service}", query_string={"filter": filter_id, "limit": 500})
    assert response.status_code == 200, response.get_json()
    assert response.get_json()["total"] == len(response.get_json()["data"])
    return {int(datetime.fromisoformat(row["time"]).timestamp()) for row in response.get_json()["data"]}


@pytest.mark.parametrize(("service", "filter_id", "hit", "miss"), CASES, ids=[f"{c[0]}:{c[1]}:{c[2]}" for c in CASES])
def test_a_smart_filter_finds_its_real_line_and_not_the_other(stored, client, service, filter_id, hit, miss):
    _, _, at = stored
    found = _ids(client, service, filter_id)
    assert at[service, hit] in found
    assert at[service, miss] not in found


def test_every_filter_is_tested_and_seed_000_names_the_postfix_ones():
    tested = {(service, filter_id) for service, filter_id, _, _ in CASES}
    declared = {(service, f.id) for service, filters in smart_filters.FILTERS.items() for f in filters}
    assert declared == tested
    assert {f.label for f in smart_filters.of("postfix")} == SEED_000_POSTFIX
    assert set(smart_filters.FILTERS) <= set(RAW_LOG_SERVICES)


@pytest.mark.parametrize("service", sorted(smart_filters.FILTERS))
def test_patterns_survive_grafana_variables_and_logql_strings(service):
    for smart in smart_filters.of(service):
        assert smart.pattern or smart.levels
        if smart.pattern:
            assert not set(smart.pattern) & set(",\\\"'`"), smart.pattern
            assert smart.pattern == smart.pattern.strip(), "Grafana trims a custom variable's values"
            re.compile(smart.pattern)  # RE2's syntax for these constructs is Python's
        assert smart.logql(service).startswith(f'{{service="{service}"')


def test_the_smart_filter_list_names_each_filter_with_its_logql(client):
    body = client.get("/api/raw-logs/postfix/smart-filters").get_json()
    assert body["service"] == "postfix" and body["total"] == 7
    noqueue = next(f for f in body["filters"] if f["id"] == "noqueue_reject")
    assert noqueue == {
        "id": "noqueue_reject",
        "label": "NOQUEUE Reject",
        "description": "Mail refused before it was queued",
        "pattern": "NOQUEUE: reject:",
        "operator": "|=",  # plain text: the gram index finds its lines
        "levels": [],
        "logql": '{service="postfix"} |= "NOQUEUE: reject:"',
        "rest": "/api/raw-logs/postfix?filter=noqueue_reject",
    }
    watchdog = client.get("/api/raw-logs/watchdog/smart-filters").get_json()["filters"]
    assert watchdog[0]["logql"] == '{service="watchdog", level=~"warning|error|critical"}'
    postscreen = next(f for f in body["filters"] if f["id"] == "postscreen")
    assert postscreen["operator"] == "|~" and postscreen["logql"].startswith('{service="postfix"} |~ "CONNECT from|')
    assert client.get("/api/raw-logs/ratelimited/smart-filters").get_json() == {
        "service": "ratelimited",
        "total": 0,
        "filters": [],
    }
    assert client.get("/api/raw-logs/rspamd/smart-filters").get_json()["service"] == "rspamd-history"


def test_an_unknown_filter_is_a_400_naming_the_service_filters(client):
    response = client.get("/api/raw-logs/postfix?filter=nope")
    assert response.status_code == 400
    body = response.get_json()
    assert body["code"] == "VALIDATION_FAILED" and "postscreen" in body["detail"]


def test_the_gram_index_finds_the_lines_of_every_pattern_but_one():
    """Plain texts and plain alternatives narrow the search to the blocks that can hold them; only
    `lmtp_deliveries` (a real regex) reads its service line by line."""
    unindexed = [
        (service, f.id)
        for service, filters in smart_filters.FILTERS.items()
        for f in filters
        if f.pattern and raw_search.gram_query(LineQuery((service,), text=f.text())) is None
    ]
    assert unindexed == [("dovecot", "lmtp_deliveries")]
