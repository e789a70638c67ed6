"""Bad input and heavy requests: every search answers what it matched, a bad value is a 400 naming the
parameter, every error (a streamed CSV's included) is the JSON envelope, and one request's work is bounded."""

from __future__ import annotations

import csv
import io
import re
import time
from collections.abc import Callable
from typing import Any

import pytest

from exporter.web.app import create_app
from tests.conftest import make_config
from tests.mailflow import scenario


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
