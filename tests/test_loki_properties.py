"""Property: whatever a client sends to the Loki API (LogQL pieces in any order, times, steps, limits,
directions, match[], label names), the answer is never a 5xx, and a 4xx is the house envelope with
Loki's `message` beside it. tests/test_properties.py covers every route with generic values too."""

from __future__ import annotations

import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from exporter.app import create_app
from exporter.store.database import create_pool
from tests import loki_data
from tests.conftest import make_config

NOW = int(time.time())
NS = 1_000_000_000

PIECES = [
    "{",
    "}",
    'service="postfix"',
    'service=~".+"',
    'level!~"debug|info"',
    'program=""',
    'instance="mail.example.org"',
    'job=~"(?i)x"',
    ",",
    ' |= "reject"',
    ' != "a"',
    ' |~ "[0-9]+ (more)?"',
    ' !~ "("',
    ' |= ""',
    " | json",
    " | drop __error__",
    ' | level="x"',
    "count_over_time(",
    "rate(",
    "bytes_over_time(",
    "sum by (level) (",
    "count(",
    "topk(2, ",
    ")",
    "[1m]",
    "[0s]",
    "[5m30s]",
    "[1ns]",
    "[99999y]",
    "vector(1)",
    " + ",
    " / ",
    "vector(0)",
    "\x00",
    "`raw`",
    '"\\xff"',
]
SELECTORS = [
    '{service="postfix"}',
    '{service=~".+"} |= "x"',
    '{level="warning"}',
    "{}",
    "not logql",
    'rate({a="b"}[1m])',
]
QUERY = st.one_of(
    st.lists(st.sampled_from(PIECES), max_size=8).map("".join),
    st.sampled_from(SELECTORS),
    st.text(max_size=30),
)
TIME = st.one_of(
    st.integers(min_value=-(10**20), max_value=10**20).map(str),
    st.integers(min_value=NOW - 86400, max_value=NOW).map(str),
    st.integers(min_value=(NOW - 86400) * NS, max_value=NOW * NS).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(str),
    st.sampled_from(["2026-01-01T00:00:00Z", "0001-01-01T00:00:00Z", "9999-12-31T23:59:59Z", "now", "", "\x00"]),
)
STEP = st.one_of(
    st.sampled_from(["60000ms", "1m", "15s", "0", "-1", "1ms", "1y", "1.5", "NaN", "inf", "1e309", "5m30s", "ms"]),
    st.integers(min_value=-(10**12), max_value=10**12).map(str),
    st.text(max_size=8),
)
PARAMS = st.fixed_dictionaries(
    {},
    optional={
        "query": QUERY,
        "start": TIME,
        "end": TIME,
        "time": TIME,
        "since": STEP,
        "step": STEP,
        "limit": st.one_of(st.integers(min_value=-10, max_value=10**7).map(str), st.text(max_size=6)),
        "direction": st.sampled_from(["backward", "forward", "BACKWARD", "Forward", "sideways", "", "\x00"]),
        "match[]": st.one_of(QUERY, st.sampled_from(SELECTORS)),
        "targetLabels": st.sampled_from(["service", "level,program", "", "nope", "\x00"]),
        "delay_for": st.sampled_from(["0", "5", "6", "-1", "x"]),
    },
)
PATHS = [
    "/loki/api/v1/labels",
    "/loki/api/v1/label/{name}/values",
    "/loki/api/v1/series",
    "/loki/api/v1/query_range",
    "/loki/api/v1/query",
    "/loki/api/v1/index/stats",
    "/loki/api/v1/index/volume",
    "/loki/api/v1/tail",
    "/loki/api/v1/status/buildinfo",
    "/ready",
]
NAMES = st.one_of(
    st.sampled_from(["service", "level", "program", "instance", "nope", "__name__"]), st.text(max_size=10)
)


@pytest.fixture(scope="module")
def client(db_url):
    pool = create_pool(db_url, 4)
    pool.wait()
    loki_data.empty(pool)
    loki_data.seed(pool, NOW)
    yield create_app(make_config(db_url, "https://mail.example.org"), pool).test_client()
    pool.close()


@settings(max_examples=400, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
@given(path=st.sampled_from(PATHS), name=NAMES, params=PARAMS)
def test_no_loki_request_answers_5xx_and_every_4xx_is_the_envelope_with_a_message(client, path, name, params):
    from urllib.parse import quote

    response = client.get(path.replace("{name}", quote(name, safe="")), query_string=params)
    text = response.get_data(as_text=True)
    assert response.status_code < 500, f"{path} {params!r} -> {response.status_code}: {text[:300]}"
    if response.status_code >= 400:
        body = response.get_json(silent=True)
        assert isinstance(body, dict), f"{path} {params!r} -> {text[:300]}"
        assert all(isinstance(body.get(k), str) for k in ("error", "detail", "code")), body
        assert body["message"] == body["detail"], body
