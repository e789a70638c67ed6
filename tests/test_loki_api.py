"""The Loki API as Grafana's Loki datasource uses it: the exact requests it sends (grafana pkg/tsdb/loki
api.go, healthcheck.go, streaming.go; the frontend's LanguageProvider), over real PostgreSQL holding the
reference's real mailcow items of all ten lists."""

from __future__ import annotations

import itertools
import time
from datetime import UTC, datetime

import pytest

from exporter.app import create_app
from exporter.readmodels.loki import nanoseconds
from tests import loki_data
from tests.conftest import make_config

MAILCOW_URL = "https://mail.example.org"
NOW = int(time.time()) // 60 * 60  # a whole minute, as Grafana aligns its log-volume queries
NS = 1_000_000_000


@pytest.fixture
def loki_app(pool, db_url):
    loki_data.empty(pool)
    stored = loki_data.seed(pool, NOW)
    app = create_app(make_config(db_url, MAILCOW_URL), pool)
    return app.test_client(), stored


def _ok(response) -> object:
    assert response.status_code == 200, response.get_data(as_text=True)
    body = response.get_json()
    assert body["status"] == "success"
    return body["data"]


def _window(minutes: int = 10) -> dict[str, str]:
    return {"start": str((NOW - minutes * 60) * NS), "end": str((NOW + 60) * NS)}


def test_save_and_test_runs_grafanas_health_query(loki_app):
    """healthcheck.go: instant `vector(1)+vector(1)` over 1..4 s, one frame whose value is 2."""
    client, _ = loki_app
    data = _ok(
        client.get(
            "/loki/api/v1/query",
            query_string={"query": "vector(1)+vector(1)", "direction": "backward", "time": str(4 * NS)},
        )
    )
    assert data["resultType"] == "vector"
    # ten digits are seconds for Loki too (loghttp's parseTimestamp): Grafana checks only the value
    assert data["result"] == [{"metric": {}, "value": [4_000_000_000, "2"]}]


def test_the_older_health_check_finds_labels_of_the_last_ten_minutes(loki_app):
    client, _ = loki_app
    assert {"instance", "level", "program", "service"} <= set(
        _ok(client.get("/loki/api/v1/labels", query_string=_window()))
    )


def test_label_browser_lists_values_and_series(loki_app):
    client, stored = loki_app
    services = _ok(client.get("/loki/api/v1/label/service/values", query_string=_window()))
    assert services == sorted(s for s, n in stored.items() if n)
    assert len(services) == 10
    assert _ok(client.get("/loki/api/v1/label/instance/values", query_string=_window())) == ["mail.example.org"]
    levels = _ok(client.get("/loki/api/v1/label/level/values", query_string=_window()))
    assert {"info", "warning", "critical"} <= set(levels)
    series = _ok(client.get("/loki/api/v1/series", query_string={"match[]": '{service="postfix"}', **_window()}))
    assert series == [
        {"instance": "mail.example.org", "level": "info", "program": "postfix/qmgr", "service": "postfix"}
    ]
    narrowed = _ok(client.get("/loki/api/v1/labels", query_string={"query": '{service="netfilter"}', **_window()}))
    assert narrowed == ["instance", "level", "service"]  # netfilter names no program


def test_explore_query_returns_streams_newest_first(loki_app):
    client, _ = loki_app
    params = {"query": '{service=~".+"} |= "Banning"', "direction": "backward", "limit": "1000", "step": "2000ms"}
    data = _ok(client.get("/loki/api/v1/query_range", query_string={**params, **_window()}))
    assert data["resultType"] == "streams"
    [stream] = data["result"]
    assert stream["stream"] == {"instance": "mail.example.org", "level": "critical", "service": "netfilter"}
    stamps = [int(ns) for ns, _ in stream["values"]]
    assert len(stamps) == 3 and stamps == sorted(stamps, reverse=True)
    assert all(line == "Banning 193.46.255.40/32 for 30 minutes" for _, line in stream["values"])
    forward = _ok(client.get("/loki/api/v1/query_range", query_string={**params, **_window(), "direction": "FORWARD"}))
    assert [int(ns) for ns, _ in forward["result"][0]["values"]] == sorted(stamps)


@pytest.mark.parametrize(
    ("query", "services"),
    [
        ('{service="dovecot"} != "managesieve"', set()),
        ('{service=~"net.*"} |~ "matched rule id [0-9]+"', {"netfilter"}),
        ('{level="warning", service!="netfilter"} |= "example"', {"ratelimited"}),
        ('{instance="mail.example.org", service="acme"} |= "renewal"', {"acme"}),
        ('{instance="other", service="acme"}', set()),
        ('{program=~"sogo.*"}', {"sogo"}),
    ],
)
def test_selectors_and_line_filters(loki_app, query, services):
    client, _ = loki_app
    data = _ok(client.get("/loki/api/v1/query_range", query_string={"query": query, **_window()}))
    assert {s["stream"]["service"] for s in data["result"]} == services


def test_log_volume_counts_every_line_by_level(loki_app):
    """The supporting query Explore sends beside a log query (X-Query-Tags: Source=logvolhist)."""
    client, stored = loki_app
    query = 'sum by (level, detected_level) (count_over_time({service=~".+"} | drop __error__[1m]))'
    response = client.get(
        "/loki/api/v1/query_range",
        query_string={"query": query, "direction": "backward", "step": "60000ms", **_window()},
        headers={"X-Query-Tags": "Source=logvolhist"},
    )
    data = _ok(response)
    assert data["resultType"] == "matrix"
    total = 0
    for series in data["result"]:
        assert set(series["metric"]) == {"level"}
        for at, value in series["values"]:
            assert isinstance(at, int) and at % 60 == 0 and int(value) > 0
            total += int(value)
    assert total == sum(stored.values())
    # the same counted from the lines themselves (a line filter that keeps every line)
    filtered = query.replace("| drop __error__", '|= ""')
    again = _ok(client.get("/loki/api/v1/query_range", query_string={"query": filtered, "step": "60", **_window()}))
    assert again["result"] == data["result"]


def test_rate_bytes_and_count_by(loki_app):
    client, stored = loki_app
    window = {"start": str(NOW - 600), "end": str(NOW), "step": "10m"}  # seconds, as Loki also reads them
    rate = _ok(
        client.get("/loki/api/v1/query_range", query_string={"query": 'sum(rate({service="acme"}[10m]))', **window})
    )
    assert rate["result"][0]["values"][-1][1] == str(stored["acme"] / 600)
    count = _ok(
        client.get(
            "/loki/api/v1/query",
            query_string={"query": 'count(count_over_time({service=~".+"}[1h]))', "time": str(NOW)},
        )
    )
    assert count["resultType"] == "vector" and count["result"][0]["value"][1] == str(len(loki_data.stream_keys(stored)))
    size = _ok(
        client.get(
            "/loki/api/v1/query",
            query_string={"query": 'sum by (service) (bytes_over_time({service="acme"}[1h]))', "time": str(NOW)},
        )
    )
    assert size["result"][0]["metric"] == {"service": "acme"} and int(size["result"][0]["value"][1]) > 0


def test_index_stats_and_volume(loki_app):
    client, stored = loki_app
    response = client.get("/loki/api/v1/index/stats", query_string={"query": '{service=~".+"}', **_window()})
    stats = response.get_json()
    assert stats["entries"] == sum(stored.values()) and stats["bytes"] > 0 and stats["streams"] >= 10
    assert stats["chunks"] >= stats["streams"]
    volume = _ok(
        client.get(
            "/loki/api/v1/index/volume",
            query_string={"query": '{service=~".+"}', "targetLabels": "service", **_window()},
        )
    )
    assert volume["resultType"] == "vector" and {v["metric"]["service"] for v in volume["result"]} == set(stored)


@pytest.mark.parametrize(
    ("query", "named"),
    [
        ('{service="postfix"} | json', "| json"),
        ('{service="postfix"} | logfmt', "| logfmt"),
        ('topk(3, count_over_time({service="postfix"}[1m]))', "topk"),
        ('quantile_over_time(0.9, {service="postfix"} | unwrap size [1m])', "quantile_over_time"),
        ('sum(count_over_time({service="postfix"} | unwrap size [1m]))', "unwrap"),
        ('{service="postfix"} |~ "(?=x)"', "lookaround"),
        ('{service=~"["}', "regex"),
    ],
)
def test_unsupported_logql_is_a_400_naming_it(loki_app, query, named):
    client, _ = loki_app
    response = client.get("/loki/api/v1/query_range", query_string={"query": query, **_window()})
    assert response.status_code == 400
    body = response.get_json()
    assert body["code"] == "VALIDATION_FAILED" and body["error"] == "Bad Request"
    assert named in body["message"] and body["message"] == body["detail"]  # Grafana shows `message`


def test_probed_endpoints_answer_404_so_grafana_falls_back(loki_app):
    client, _ = loki_app
    for path in ("/loki/api/v2alpha/tail", "/loki/api/v1/detected_labels", "/loki/api/v1/patterns"):
        response = client.get(path)
        assert response.status_code == 404 and "message" in response.get_json()
    assert client.get("/ready").get_data(as_text=True).strip() == "ready"
    assert client.get("/loki/api/v1/status/buildinfo").get_json()["version"].startswith("3.")


def test_limit_is_capped_and_bad_parameters_are_named(loki_app):
    client, _ = loki_app
    big = client.get(
        "/loki/api/v1/query_range", query_string={"query": '{service=~".+"}', "limit": "100000", **_window()}
    )
    assert big.status_code == 200
    for params, name in [
        ({"query": '{service="acme"}', "start": "yesterday"}, "start"),
        ({"query": '{service="acme"}', "step": "0"}, "step"),
        ({"query": '{service="acme"}', "direction": "sideways"}, "direction"),
        ({"query": 'count_over_time({service="acme"}[1m])', "start": "0", "end": str(NOW), "step": "1"}, "step"),
        ({}, "query"),
    ]:
        response = client.get("/loki/api/v1/query_range", query_string=params)
        assert response.status_code == 400, params
        assert response.get_json()["message"].startswith(name), response.get_json()


def test_times_in_every_form_loki_accepts(loki_app):
    client, _ = loki_app
    query = {"query": '{service="acme"}'}
    forms = [
        {"start": str((NOW - 600) * NS), "end": str(NOW * NS)},
        {"start": str(NOW - 600), "end": str(NOW)},
        {"start": f"{NOW - 600}.5", "end": f"{NOW}.0"},
        {
            "start": datetime.fromtimestamp(NOW - 600, UTC).isoformat().replace("+00:00", "Z"),
            "end": datetime.fromtimestamp(NOW, UTC).isoformat(),
        },
    ]
    answers = [_ok(client.get("/loki/api/v1/query_range", query_string={**query, **f}))["result"] for f in forms]
    assert answers[0] and all(a == answers[0] for a in answers)


def test_nanoseconds_are_exact():
    assert nanoseconds(datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=UTC)) == 1767323045678901000


def test_every_loki_panel_of_the_dashboards_answers_with_its_shape(loki_app):
    """The provisioned dashboards' LogQL, every variable combination the dashboard tests sample, over HTTP."""
    from tests.test_dashboards import LOGQL_SAMPLES, PLACEHOLDER, fill, loki_panels

    client, _ = loki_app
    answered = 0
    for _, panel, target in loki_panels():
        used = sorted({m.group(1) or m.group(3) for m in PLACEHOLDER.finditer(target["expr"])})
        for combo in itertools.product(*(LOGQL_SAMPLES[v] for v in used)):
            expr = fill(target["expr"], dict(zip(used, combo, strict=True)))
            params = {"query": expr, "direction": "backward", "limit": "1000", "step": "60000ms", **_window(60)}
            data = _ok(client.get("/loki/api/v1/query_range", query_string=params))
            assert data["resultType"] == ("streams" if panel["type"] == "logs" else "matrix"), expr
            answered += 1
    assert answered >= 6
