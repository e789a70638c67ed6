"""Property: whatever a client sends to any route, the answer is never a 5xx, and a 4xx is the JSON envelope.

The routes come from the app's url_map, so a route added later is covered without touching this file.
Each route gets hypothesis-generated path variables (known good values and odd text), query parameters
(the names the handlers read plus random ones; values with NUL bytes, huge and infinite numbers, dates in
years 1 and 9999) and, for POST, JSON, form or raw bodies. Behind the app: real PostgreSQL holding half an
hour of ingested traffic, the mailcow simulator (so actions only ever reach the simulator) and a DNS
server on loopback for the DNS checks.
"""

from __future__ import annotations

import json
import re
import time
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote

import pytest
from flask import Flask, Request, has_request_context, request
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from psycopg_pool import ConnectionPool
from werkzeug.datastructures import ImmutableMultiDict

from datasource import jsonds
from exporter.app import create_app
from exporter.http.params import Params
from exporter.readmodels import catalog
from exporter.services.actions import ACTIONS
from exporter.simulator.state import LOCAL_DOMAINS
from tests.conftest import make_config
from tests.dns_server import SIMULATED_ZONE, running_dns
from tests.mailflow import scenario

# --- the routes ----------------------------------------------------------------------------------------


def _routes() -> list[tuple[str, str]]:
    """(method, rule) of every route; the app is built without a database only to read its url_map."""
    app = create_app(make_config("postgresql://unused@127.0.0.1:1/none"), ConnectionPool("", open=False))
    return sorted(
        (method, rule.rule)
        for rule in app.url_map.iter_rules()
        for method in rule.methods or ()
        if method in ("GET", "POST")
    )


ROUTES = _routes()


# --- what clients send ---------------------------------------------------------------------------------


def _schema_fields() -> set[str]:
    """Every parameter the REST schemas declare."""
    names: set[str] = set()
    schemas: list[type] = [Params]
    while schemas:
        schema = schemas.pop()
        schemas.extend(schema.__subclasses__())
        names.update(schema().fields)
    return names


# Grafana query options: the catalog reads them from whatever arguments are left, so no probe sees them.
OPTIONS = {"key", "sort_by", "failures_only", "sender", "recipient", "status", "ip", "user", "delivery", "mailbox"}
READ: dict[str, set[str]] = {}  # rule -> the parameter names its handler read (see _Recording)


def _note(name: object) -> None:
    if has_request_context() and request.url_rule is not None and isinstance(name, str):
        READ.setdefault(request.url_rule.rule, set()).add(name)


class _RecordingDict(dict):
    """A plain dict of parameters (what schemas load) that notes the names read from it."""

    def __getitem__(self, name: str) -> Any:
        _note(name)
        return super().__getitem__(name)

    def get(self, name: str, default: Any = None) -> Any:
        _note(name)
        return super().get(name, default)


class _RecordingArgs(ImmutableMultiDict):
    """Query and form parameters that note the names a handler reads, directly or through a schema."""

    def __getitem__(self, name: str) -> Any:
        _note(name)
        return super().__getitem__(name)

    def get(self, name: str, default: Any = None, type: Any = None) -> Any:
        _note(name)
        return super().get(name, default, type)

    def getlist(self, name: str, type: Any = None) -> list[Any]:
        _note(name)
        return super().getlist(name, type)

    def to_dict(self, flat: bool = True) -> dict[str, Any]:
        return _RecordingDict(super().to_dict(flat))


class _RecordingRequest(Request):
    parameter_storage_class = _RecordingArgs


KNOWN_NAMES = sorted(_schema_fields() | OPTIONS)

ODD = [
    "\x00",
    "a\x00b",
    "example.org\x00",
    "\x00" * 3,
    "1e309",
    "-1e309",
    "Infinity",
    "-Infinity",
    "NaN",
    "9" * 400,
    "-9223372036854775809",
    "0001-01-01",
    "0001-01-01T00:00:00Z",
    "9999-12-31T23:59:59",
    "9999-12-31T23:59:59+14:00",
    "-62135596800000",
    "253402300799999",
    "$__all",
    "${__from}",
    "%",
    "'",
    "\\",
    "..",
    " ",
    "",
]
NOW = datetime.now(UTC)
GOOD = [
    "1",
    "10",
    "500",
    "true",
    "inbound",
    "delivered",
    "warning",
    "queue",
    "dns_check",
    "queue_action,sign_in_lockout",
    "example.org",
    "30days",
    str(int((NOW - timedelta(hours=1)).timestamp() * 1000)),
    str(int(NOW.timestamp() * 1000)),
    (NOW - timedelta(days=1)).isoformat(),
]
TEXT = st.text(max_size=24)
ODD_VALUES = st.sampled_from(ODD)
VALUES = st.one_of(
    ODD_VALUES,  # listed thrice: the values that broke handlers before come up in half the draws
    ODD_VALUES,
    ODD_VALUES,
    st.sampled_from(GOOD),
    TEXT,
    st.integers(min_value=-(10**30), max_value=10**30).map(str),
    st.floats().map(str),
    st.datetimes(min_value=datetime(1, 1, 1), max_value=datetime(9999, 12, 31)).map(datetime.isoformat),
)
PARAMS = st.dictionaries(st.one_of(st.sampled_from(KNOWN_NAMES), TEXT), VALUES, max_size=6)

JSON = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False, allow_infinity=False), VALUES),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(TEXT, children, max_size=3),
    max_leaves=8,
)
TARGET = st.fixed_dictionaries(
    {"target": st.sampled_from(sorted(catalog.QUERIES)) | TEXT},
    optional={"refId": TEXT, "hide": st.booleans(), "payload": PARAMS | VALUES | JSON},
)
FILTER = st.fixed_dictionaries(
    {"key": st.sampled_from(jsonds.FILTER_KEYS) | TEXT, "operator": st.sampled_from(["=", "!="]), "value": VALUES}
)
BODY_FIELDS = {
    "range": st.fixed_dictionaries({"from": VALUES, "to": VALUES}) | JSON,
    "targets": st.lists(TARGET, max_size=3) | JSON,
    "filters": st.lists(FILTER, max_size=3) | JSON,
    "adhocFilters": st.lists(FILTER, max_size=3) | JSON,
    "intervalMs": VALUES | JSON,
    "maxDataPoints": VALUES | JSON,
    "payload": st.sampled_from(catalog.VARIABLES) | JSON,
    "name": st.sampled_from(["direction", "domain", "status", "service"]) | JSON,
    "key": st.sampled_from(["direction", "domain", "status", "search"]) | JSON,
    "action": st.sampled_from(sorted({a for actions in ACTIONS.values() for a in actions})) | JSON,
    "items": st.lists(VALUES, max_size=3) | JSON,
}
BODIES = st.one_of(
    st.fixed_dictionaries({}, optional=BODY_FIELDS).map(lambda body: ("json", body)),
    JSON.map(lambda body: ("json", body)),
    PARAMS.map(lambda form: ("form", form)),
    st.text(max_size=60).map(lambda raw: ("raw", raw)),
)


@pytest.fixture(scope="module")
def served(databases):
    """(app, known path values): the app over ingested traffic, the simulator and a loopback DNS server."""
    with (
        scenario(databases, int(time.time()) - 1800, rate=10, seed=3) as (rig, pool, url),
        running_dns(SIMULATED_ZONE) as port,
    ):
        rig.run(1800, every=300)
        with pool.connection() as conn:
            key, queue_id = conn.execute(
                "SELECT correlation_key, queue_id FROM messages WHERE queue_id IS NOT NULL LIMIT 1"
            ).fetchone()
        known = {
            "correlation_key": [key, "0" * 64],
            "queue_id": [queue_id, "ABCDEF012345"],
            "domain": [*LOCAL_DOMAINS, "example.com"],
            "report_date": [NOW.strftime("%Y-%m-%d"), "2026-02-30", "0001-01-01", "9999-12-31"],
            "target": sorted(ACTIONS),
            "action": sorted({a for actions in ACTIONS.values() for a in actions}),
            "name": [*catalog.QUERIES, *catalog.VARIABLES],
            "filename": ["app.css"],
            "service": ["postfix", "rspamd", "watchdog", "cron"],
        }
        config = make_config(url, rig.mailcow_url, dns_resolvers=[f"127.0.0.1:{port}"])
        app = create_app(config, pool)
        app.request_class = _RecordingRequest
        for method, rule in ROUTES:  # a first plain request per route learns the names its handler reads
            path = _VARIABLE.sub(lambda m: quote(known.get(m.group(1), ["x"])[0], safe=""), rule)
            assert _problem(rule, _send(app, method, path, {}, ("json", {}))) is None, f"{method} {path}"
        app.request_class = Request  # learnt: what the fuzzing sends must not change what it draws from
        yield app, known


# --- the property --------------------------------------------------------------------------------------

_VARIABLE = re.compile(r"<(?:[^:<>]+:)?([^<>]+)>")


def _path(rule: str, known: dict[str, list[str]], data: st.DataObject) -> str:
    def fill(match: re.Match[str]) -> str:
        name = match.group(1)
        value = data.draw(st.sampled_from(known[name]) | TEXT if name in known else TEXT, label=name)
        return quote(value, safe="")

    return _VARIABLE.sub(fill, rule)


def _send(app: Flask, method: str, path: str, params: dict[str, str], body: tuple[str, Any] | None):
    client = app.test_client()
    if method == "GET":
        return client.get(path, query_string=params)
    kind, content = body or ("raw", "")
    if kind == "json":
        return client.post(path, query_string=params, data=json.dumps(content), content_type="application/json")
    if kind == "form":
        return client.post(path, query_string=params, data=content)
    return client.post(path, query_string=params, data=content, content_type="application/json")


def _problem(rule: str, response) -> str | None:
    """What is wrong with an answer: a 5xx, or a 4xx that is not the JSON envelope; None when fine."""
    text = response.get_data(as_text=True)  # a streamed body runs to its end here
    status = response.status_code
    if status >= 500:
        return f"{status}: {text[:300]}"
    if status < 400:
        return None
    if rule.startswith("/actions/") and response.mimetype == "text/html":
        # confirmation pages are for people following a Grafana link: their errors are pages naming the code
        return None if 'id="error"' in text and "<code>(" in text else f"{status} page without the error: {text[:300]}"
    if response.mimetype != "application/json":
        return f"{status} as {response.mimetype}: {text[:300]}"
    envelope = response.get_json()
    if not isinstance(envelope, dict) or not all(isinstance(envelope.get(k), str) for k in ("error", "detail", "code")):
        return f"{status} without the envelope: {text[:300]}"
    return None


# The values that broke handlers before (issue 20): each, alone, in every parameter a handler reads.
BROKE_BEFORE = ["a\x00b", "1e309", "-Infinity", "NaN", "9" * 400, "0001-01-01", "9999-12-31T23:59:59"]


# Shapes a JSON body field may arrive in; each handler accepts its own and answers 400 to the rest.
WRONG_SHAPES = [
    "text",
    "a\x00b",
    1,
    1.5,
    True,
    None,
    [1],
    [{"x": None}],
    {"x": 1},
    {"from": "0001-01-01", "to": "9999-12-31T23:59:59"},
    [{"target": "messages", "payload": {"limit": "1e309", "sender": "a\x00b"}}],
]


@pytest.mark.parametrize(("method", "rule"), ROUTES, ids=[f"{m} {r}" for m, r in ROUTES])
def test_every_parameter_a_route_reads_survives_the_values_that_broke_handlers(served, method, rule):
    app, known = served
    variables = _VARIABLE.findall(rule)
    first = {name: known.get(name, ["x"])[0] for name in variables}
    names = READ.get(rule, set()) | (OPTIONS if rule.startswith("/grafana/") else set())
    empty = ("json", {})
    cases = [(first, {name: value}, empty) for name in sorted(names) for value in BROKE_BEFORE]
    cases += [({**first, name: value}, {}, empty) for name in variables for value in BROKE_BEFORE]
    if method == "POST":  # every body field a handler may read, in shapes good and bad
        cases += [(first, {}, ("json", {field: shape})) for field in BODY_FIELDS for shape in WRONG_SHAPES]
    problems = []
    for path_values, params, body in cases:
        path = _VARIABLE.sub(lambda m, values=path_values: quote(values[m.group(1)], safe=""), rule)
        problem = _problem(rule, _send(app, method, path, params, body))
        if problem:
            problems.append(f"{method} {path} {params!r} {body!r} -> {problem}")
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize(("method", "rule"), ROUTES, ids=[f"{m} {r}" for m, r in ROUTES])
@settings(
    max_examples=12,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(data=st.data())
def test_no_route_answers_5xx_and_every_4xx_is_the_json_envelope(served, method, rule, data):
    app, known = served
    path = _path(rule, known, data)
    own = st.sampled_from(sorted(READ.get(rule, set()) | OPTIONS))  # mostly the names this handler reads
    params = data.draw(st.dictionaries(st.one_of(own, own, st.sampled_from(KNOWN_NAMES)), VALUES, max_size=3))
    params |= data.draw(st.dictionaries(TEXT, VALUES, max_size=2), label="random names")
    body = data.draw(BODIES, label="body") if method == "POST" else None
    problem = _problem(rule, _send(app, method, path, params, body))
    assert problem is None, f"{method} {path} {params!r} {body!r} -> {problem}"


def test_the_probe_learned_what_handlers_read(served):
    """The recording works: schema-validated, directly read and path-routed handlers all report names."""
    assert {"search", "start_date", "limit"} <= READ["/api/messages"]
    assert {"days", "limit"} <= READ["/api/dmarc/domains/<string:domain>/sources"]
    assert {"from", "to", "search"} <= READ["/grafana/infinity/<name>"]
    raw = {"page", "limit", "search", "start_date", "end_date", "level", "priority", "program", "sort_order", "filter"}
    assert raw <= READ["/api/raw-logs/<service>"]
    assert {"kind", "actor", "start_date", "end_date", "page", "limit"} <= READ["/api/audit-log"]
    tls = "/api/dmarc/domains/<string:domain>/tls-reports"
    assert {"page", "page_size"} <= READ[tls] and "limit" in READ[f"{tls}/<report_date>/details"]
