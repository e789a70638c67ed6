"""Dashboard contract tests: every panel's query runs the way Grafana would run it, no Grafana needed.

Infinity targets are fetched over HTTP from the running service (variables and time range
substituted, Basic auth applied, columns checked); PromQL targets are evaluated by a real
Prometheus that scraped the same service; links must resolve; the JSON must be what the
generator builds and pass the dashboard schema and lint rules.
"""

from __future__ import annotations

import itertools
import json
import re
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qs, quote, urlsplit

import httpx
import jsonschema
import pytest
import yaml

from dashboards.generate import BUILDERS, build_all, render
from dashboards.loki import LOKI, SERVICES, SMART_FILTERS
from exporter.app import create_app
from exporter.config_values import RAW_LOG_SERVICES
from exporter.parsers import logql
from exporter.readmodels import catalog, smart_filters
from exporter.services.actions import ACTIONS
from exporter.services.actions import parse as parse_action
from exporter.services.dmarc import import_bytes
from exporter.services.geoip import GeoIP
from exporter.simulator import reports
from exporter.simulator.state import LOCAL_DOMAINS
from exporter.worker.loop import Worker, tracked
from tests.conftest import SIM_START, LiveServer, make_config
from tests.dns_server import SIMULATED_ZONE, running_dns
from tests.mailflow import scenario
from tests.prometheus import running_prometheus, scraped

ROOT = Path(__file__).parent.parent
BOARDS = {name: json.loads((ROOT / "dashboards" / name).read_text()) for name in BUILDERS}
SCHEMA = json.loads((Path(__file__).parent / "data" / "dashboard.schema.json").read_text())
PASSWORD = "contract-pass"
GEOIP = ROOT.parent / "shared" / "data" / "geoip"
CITY, ASN = str(GEOIP / "GeoLite2-City-Test.mmdb"), str(GEOIP / "GeoLite2-ASN-Test.mmdb")


def provisioned_uids() -> set[str]:
    text = (ROOT / "provisioning/grafana/datasources/mailcow.yaml").read_text()
    return {d["uid"] for d in yaml.safe_load(text)["datasources"]} | {"-- Grafana --"}


def all_panels() -> Iterator[tuple[str, dict]]:
    for name, board in BOARDS.items():
        for panel in board["panels"]:
            yield name, panel


def all_targets() -> Iterator[tuple[str, str, dict]]:
    """(dashboard, where, target) for panels, annotations and query variables."""
    for name, panel in all_panels():
        for target in panel["targets"]:
            yield name, f"panel {panel['title']!r}", target
    for name, board in BOARDS.items():
        for annotation in board["annotations"]["list"]:
            if "target" in annotation:
                yield name, f"annotation {annotation['name']!r}", annotation["target"]
        for variable in board["templating"]["list"]:
            if variable["type"] == "query" and "infinityQuery" in variable["query"]:
                yield name, f"variable {variable['name']!r}", variable["query"]["infinityQuery"]


# --- static checks -----------------------------------------------------------------------------


def test_committed_dashboards_are_what_the_code_builds():
    built = build_all()
    for name, board in built.items():
        assert (ROOT / "dashboards" / name).read_text() == render(board), (
            f"{name} is stale: python -m dashboards.generate"
        )
    assert {p.name for p in (ROOT / "dashboards").glob("*.json")} == set(built)


@pytest.mark.parametrize("name", sorted(BOARDS))
def test_dashboard_matches_the_schema(name):
    jsonschema.validate(BOARDS[name], SCHEMA)


def test_dashboards_lint_clean():
    uids = provisioned_uids()
    titles, dashboard_uids = set(), set()
    for name, board in BOARDS.items():
        assert board["title"] not in titles and board["uid"] not in dashboard_uids
        titles.add(board["title"])
        dashboard_uids.add(board["uid"])
        assert "${DS_" not in json.dumps(board), name
        assert any(link["type"] == "dashboards" and "mailcow" in link["tags"] for link in board["links"]), name
        ids = [p["id"] for p in board["panels"]]
        assert len(ids) == len(set(ids)), f"{name}: duplicate panel ids"
        cells: set[tuple[int, int]] = set()
        for panel in board["panels"]:
            where = f"{name} / {panel['title']}"
            assert panel["title"] and panel.get("description"), where
            assert panel["targets"], f"{where}: no targets"
            grid = panel["gridPos"]
            assert grid["x"] + grid["w"] <= 24, f"{where}: wider than the grid"
            area = {
                (x, y) for x in range(grid["x"], grid["x"] + grid["w"]) for y in range(grid["y"], grid["y"] + grid["h"])
            }
            assert not area & cells, f"{where}: overlaps another panel"
            cells |= area
            if panel["type"] != "logs":
                assert panel["fieldConfig"]["defaults"].get("unit"), f"{where}: no unit"
            for target in [*panel["targets"], panel["datasource"]]:
                ds = target.get("datasource", target)
                assert ds["uid"] in uids, f"{where}: datasource {ds['uid']} is not provisioned"
            for target in panel["targets"]:
                if "expr" in target:
                    for counter in re.findall(r"mailcow\w+_total\b", target["expr"]):
                        assert re.search(rf"(rate|increase)\({counter}\b", target["expr"]), f"{where}: bare counter"


def test_compose_mounts_the_provisioning_grafana_reads():
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    grafana = compose["services"]["grafana"]
    plugins = grafana["environment"]["GF_INSTALL_PLUGINS"].split(",")
    assert {"yesoreyeram-infinity-datasource", "simpod-json-datasource"} <= set(plugins)
    mounts = {v.split(":")[1]: v.split(":")[0] for v in grafana["volumes"]}
    assert mounts["/etc/grafana/provisioning"] == "./provisioning/grafana"
    assert mounts["/var/lib/grafana/dashboards/mailcow"] == "./dashboards"
    provider = yaml.safe_load((ROOT / "provisioning/grafana/dashboards/mailcow.yaml").read_text())["providers"][0]
    assert provider["options"]["path"] == "/var/lib/grafana/dashboards/mailcow"
    datasources = yaml.safe_load((ROOT / "provisioning/grafana/datasources/mailcow.yaml").read_text())["datasources"]
    service_port = compose["services"]["mailcow-grafana"]["ports"][0].rsplit(":", 2)[-1]
    for ds in datasources:
        if ds["type"] != "prometheus":
            assert ds["url"].startswith(f"http://mailcow-grafana:{service_port}")
            assert ds["basicAuth"] and "basicAuthPassword" in ds["secureJsonData"]
    infinity = next(d for d in datasources if d["type"] == "yesoreyeram-infinity-datasource")
    assert infinity["jsonData"]["allowedHosts"] == [infinity["url"]]
    prometheus = compose["services"]["prometheus"]
    assert "./provisioning/prometheus:/etc/prometheus:ro" in prometheus["volumes"]


# --- the running service and its data ------------------------------------------------------------


@pytest.fixture(scope="module")
def demo(databases):
    """Demo traffic ingested, every sync job run once, and one fetch gap; the service on loopback with auth."""
    with scenario(databases, start=SIM_START, rate=200, seed=21) as (rig, pool, url):
        rig.run(1500, 30)
        rig.step(600)  # 600 s of traffic in one fetch: mailcow's list rotates past us, a gap is recorded
        with running_dns(SIMULATED_ZONE) as dns_port:
            worker = Worker(make_config(url, dns_resolvers=[f"127.0.0.1:{dns_port}"]), pool, rig.ingestor.client)
            for job, run in (
                ("sync_domains", worker.sync_domains),
                ("sync_accounts", worker.sync_accounts),
                ("sync_quarantine", worker.sync_quarantine),
                ("sync_status", worker.sync_status),
                ("update_final_status", worker.update_final_status),
                ("dns_check", worker.dns_check),
            ):
                tracked(pool, job, run)()
        config = make_config(
            url, rig.mailcow_url, auth_enabled=True, auth_password=PASSWORD, geoip_city_db=CITY, geoip_asn_db=ASN
        )
        geo = GeoIP(CITY, ASN)
        day_after = SIM_START + 86400  # a week of reports up to the end of the demo's day
        for n, data in enumerate(
            reports.aggregate_reports(day_after, list(LOCAL_DOMAINS))
            + reports.tls_reports(day_after, list(LOCAL_DOMAINS))
        ):
            import_bytes(pool, data, f"demo-{n}", geo)
        app = create_app(config, pool)
        server = LiveServer(app)
        with pool.connection() as conn:
            key = conn.execute(
                """SELECT m.correlation_key FROM messages m JOIN rspamd_rows r ON r.id = m.rspamd_row_id
                   WHERE r.symbols <> '{}' AND m.recipient_count > 0 ORDER BY m.id LIMIT 1"""
            ).fetchone()[0]
        try:
            yield {
                "server": server,
                "app": app,
                "rig": rig,
                "key": key,
                "from": (SIM_START - 3600) * 1000,
                "to": int(rig.clock.now) * 1000,
            }
        finally:
            server.stop()


def substitute(text: str, demo: dict) -> str:
    values = {
        "__timeFrom": str(demo["from"]),
        "__timeTo": str(demo["to"]),
        "__interval_ms": "60000",
        "direction": ".*",
        "domain": ".*",
        "status": ".*",
        "search": "",
        "sender": "",
        "recipient": "",
        "ip": "",
        "user": "",
        "delivery": ".*",
        "mailbox": "",
        "key": demo["key"],
        "dmarc_domain": ".*",
        "failures": "false",
    }
    return re.sub(r"\$\{(\w+)(?::\w+)?\}", lambda m: values[m.group(1)], text)


def run_infinity(target: dict, demo: dict) -> list[dict]:
    """Fetch the target the way Infinity's backend does: base URL + url + params, Basic auth."""
    assert target["url"].startswith("/"), "relative to the datasource's base URL"
    params = {p["key"]: substitute(p["value"], demo) for p in target["url_options"].get("params", [])}
    url = demo["server"].url + substitute(target["url"], demo)
    response = httpx.get(url, params=params, auth=("admin", PASSWORD), timeout=30)
    assert response.status_code == 200, response.text
    rows = response.json()
    for part in filter(None, target.get("root_selector", "").split(".")):
        rows = rows[part]
    return [rows] if isinstance(rows, dict) else rows  # Infinity reads an object as one row


def test_every_infinity_query_returns_rows_with_its_columns(demo):
    checked = 0
    for name, where, target in all_targets():
        if target["datasource"]["type"] != "yesoreyeram-infinity-datasource":
            continue
        rows = run_infinity(target, demo)
        assert rows, f"{name} {where}: no rows with demo data"
        for column in target["columns"]:
            assert all(column["selector"] in row for row in rows), f"{name} {where}: no column {column['selector']}"
            if column["type"] == "timestamp_epoch":
                assert all(isinstance(row[column["selector"]], int | None) for row in rows), where
            if column["type"] == "number":
                assert all(isinstance(row[column["selector"]], int | float | None) for row in rows), where
        if target["format"] == "logs":
            assert list(rows[0])[:3] == ["timestamp", "body", "level"], where
        if target["format"] == "timeseries":
            assert [r["time"] for r in rows] == sorted(r["time"] for r in rows), where
        checked += 1
    assert checked >= 40


VALUE_TYPES = {"time": int, "number": int | float, "boolean": bool}
EPOCH_MS = range(10**12, 10**13)  # 2001 to 2286 in epoch milliseconds


def test_every_catalog_query_returns_exactly_its_declared_columns(demo):
    """The catalog declares each query's columns once (the dashboards' Infinity targets and the JSON
    datasource's time fields come from there): every row has exactly those keys, values of their kind.
    A string column may hold any value, as Infinity shows it as text (a score point is a category)."""
    for name, query in catalog.QUERIES.items():
        url = f"{demo['server'].url}/grafana/infinity/{name}"
        params = {"from": demo["from"], "to": demo["to"], "interval_ms": 60000, "key": demo["key"], "limit": 5000}
        response = httpx.get(url, params=params, auth=("admin", PASSWORD), timeout=30)
        assert response.status_code == 200, (name, response.text)
        rows = response.json()
        assert rows, f"{name}: no rows with demo data"
        declared = {c.name: c.kind for c in query.columns}
        for row in rows:
            extra = set(row) - set(declared)
            assert set(declared) <= set(row) and (not extra or query.dynamic), (name, sorted(row), sorted(declared))
            kinds = {**declared, **dict.fromkeys(extra, query.dynamic)}
            for key, value in row.items():
                expected = VALUE_TYPES.get(kinds[key])
                if expected and value is not None:
                    assert isinstance(value, expected) and (kinds[key] == "boolean") == isinstance(value, bool), (
                        f"{name}.{key} is declared {kinds[key]}: {value!r}"
                    )
                    assert kinds[key] != "time" or value in EPOCH_MS, f"{name}.{key}: {value} is not epoch ms"
        if query.dynamic:
            assert any(set(row) - set(declared) for row in rows), f"{name}: no columns named by the data"


def test_message_panels_show_the_demo_volume(demo):
    totals = run_infinity(BOARDS["mailcow-overview.json"]["panels"][3]["targets"][0] | {"columns": []}, demo)
    flow = run_infinity(next(p for _, p in all_panels() if p["title"] == "Messages by status")["targets"][0], demo)
    assert sum(r["total"] for r in flow) == totals[0]["total"] > 3000


def _on_service(url: str) -> str:
    """A link's path on this service once Grafana filled in the URL variables and the row's fields."""
    url = url.replace("${service_url}", "").replace("${datasource_url}", "")
    return re.sub(r"\$\{__data\.fields\.(\w+)\}", lambda m: "1" if m.group(1) == "id" else "ABCDE12345", url)


def test_every_link_and_action_resolves(demo):
    app = demo["app"]
    uids = {board["uid"] for board in BOARDS.values()}
    adapter = app.url_map.bind("localhost")
    counts = {"dashboard links": 0, "confirmation links": 0, "explore links": 0, "fetch": 0, "infinity": 0}

    def check_link(name: str, url: str) -> None:
        if url.startswith("/explore?"):
            explore_query(url)
            counts["explore links"] += 1
            return
        if url.startswith("/d/"):
            assert url.split("/")[2] in uids, f"{name}: link to unknown dashboard {url}"
            counts["dashboard links"] += 1
            return
        assert url.startswith("${service_url}/actions/"), f"{name}: {url} is not a page browsers can reach"
        path = _on_service(url).partition("?")[0]
        assert adapter.match(path, method="GET")[0] == "action_pages.confirm", url
        assert adapter.match(path, method="POST")[0] == "action_pages.perform", url
        target, action = path.split("/")[2:4]
        assert action in ACTIONS[target], url
        counts["confirmation links"] += 1

    for name, panel in all_panels():
        for link in panel.get("links", []):
            check_link(name, link["url"])
        for override in panel["fieldConfig"]["overrides"]:
            for prop in override["properties"]:
                if prop["id"] == "links":
                    for link in prop["value"]:
                        check_link(name, link["url"])
                if prop["id"] != "actions":
                    continue
                for action in prop["value"]:
                    kind = action["type"]
                    request = action[kind]
                    base = "${service_url}" if kind == "fetch" else "${datasource_url}"
                    assert request["url"].startswith(base), f"{name}: {kind} action URL {request['url']}"
                    if kind == "infinity":
                        assert request["datasourceUid"] in provisioned_uids()
                    endpoint, _ = adapter.match(_on_service(request["url"]), method=request["method"])
                    assert endpoint.startswith("actions."), request["url"]
                    # the body Grafana sends (row fields filled in) is one our API accepts
                    body = json.loads(_on_service(request["body"]))
                    target = "queue" if "/queue/" in request["url"] else "quarantine"
                    fixed = request["url"].rsplit("/", 1)[1]
                    parse_action(target, body.get("action") or fixed, body.get("items"))
                    assert ["Content-Type", "application/json"] in request["headers"]
                    counts[kind] += 1
    assert counts["dashboard links"] >= 2 and counts["confirmation links"] >= 15, counts
    assert counts["explore links"] >= 4, counts
    assert counts["fetch"] == counts["infinity"] == 8, counts


def test_json_datasource_answers_every_catalog_query(demo):
    client = demo["app"].test_client()
    auth = {"Authorization": "Basic " + __import__("base64").b64encode(f"admin:{PASSWORD}".encode()).decode()}
    assert client.get("/grafana/json/", headers=auth).status_code == 200
    names = [m["value"] for m in client.post("/grafana/json/metrics", json={}, headers=auth).get_json()]
    assert set(names) == set(catalog.QUERIES)
    window = {"from": "2026-09-01T00:00:00Z", "to": "2030-01-01T00:00:00Z"}
    for name in names:
        body = {
            "range": window,
            "intervalMs": 60000,
            "maxDataPoints": 500,
            "targets": [
                {"refId": "A", "target": name, "payload": json.dumps({"key": demo["key"]})},
                {"refId": "B", "target": name, "hide": True},
            ],
            "filters": [{"key": "direction", "operator": "=", "value": "inbound"}],
        }
        response = client.post("/grafana/json/query", json=body, headers=auth)
        assert response.status_code == 200, (name, response.get_json())
        frames = response.get_json()
        kind = catalog.QUERIES[name].kind
        for frame in frames:
            assert frame["refId"] == "A"
            if kind == "timeseries":
                assert all(isinstance(t, int) for _, t in frame["datapoints"])
            elif kind == "logs":
                assert frame["meta"]["type"] == "log-lines"
                lengths = {len(f["values"]) for f in frame["fields"]}
                assert len(lengths) <= 1 and frame["fields"][0]["name"] == "timestamp"
            else:
                assert all(len(row) == len(frame["columns"]) for row in frame["rows"])
                assert all(c["type"] in ("time", "number", "string", "boolean") for c in frame["columns"])
        if name in ("message_flow", "postfix_logs", "messages", "annotations"):
            assert frames, name
    variable = client.post(
        "/grafana/json/variable", json={"payload": {"target": "domains"}, "range": window}, headers=auth
    ).get_json()
    assert {"__text": "example.org", "__value": "example.org"} in variable
    assert client.post("/grafana/json/tag-keys", json={}, headers=auth).get_json()
    assert {"text": "outbound"} in client.post(
        "/grafana/json/tag-values", json={"key": "direction"}, headers=auth
    ).get_json()
    bad = client.post("/grafana/json/query", json={"targets": [{"refId": "A", "target": "nope"}]}, headers=auth)
    assert bad.status_code == 400 and bad.get_json()["code"] == "UNKNOWN_QUERY"


def test_infinity_rejects_bad_parameters_clearly(demo):
    auth = ("admin", PASSWORD)
    url = demo["server"].url + "/grafana/infinity/message_flow"
    bad = httpx.get(url, params={"from": "yesterday"}, auth=auth)
    assert bad.status_code == 400 and "from" in bad.json()["detail"]
    assert httpx.get(url, params={"direction": "sideways"}, auth=auth).status_code == 400
    assert httpx.get(url).status_code == 401
    assert httpx.get(demo["server"].url + "/grafana/infinity/nope", auth=auth).json()["code"] == "UNKNOWN_QUERY"


def promql(expr: str) -> str:
    return expr.replace("$__rate_interval", "1m").replace("$__range", "1h").replace("${direction:regex}", ".*")


def test_every_promql_target_evaluates_in_real_prometheus(demo, tmp_path):
    with running_prometheus(tmp_path, demo["server"].url, password=PASSWORD) as api:
        assert scraped(api, 1), "Prometheus did not scrape the service"
        names = httpx.get(f"{api}/label/__name__/values", timeout=5).json()["data"]
        assert "mailcow_messages_total" in names
        evaluated = 0
        for name, where, target in all_targets():
            if target["datasource"]["type"] != "prometheus":
                continue
            expr = promql(target["expr"])
            for metric in re.findall(r"\b(mailcow\w*)", expr):
                assert metric in names, f"{name} {where}: {metric} is not exposed"
            result = httpx.get(f"{api}/query", params={"query": expr}, timeout=10).json()
            assert result["status"] == "success", (where, result)
            evaluated += 1
        assert evaluated >= 20


def test_contract_suite_covers_every_panel():
    """Every panel's targets are Infinity (run above), PromQL (evaluated above) or LogQL (parsed by the
    Loki API's parser below): nothing is skipped."""
    panels = list(all_panels())
    kinds = ("yesoreyeram-infinity-datasource", "prometheus", "loki")
    covered = [p for _, p in panels if all(t["datasource"]["type"] in kinds for t in p["targets"])]
    print(f"contract tests cover {len(covered)}/{len(panels)} panels in {len(BOARDS)} dashboards")
    assert len(covered) == len(panels) >= 50


# --- the Loki datasource: LogQL targets, variables, Explore links ---------------------------------

# What Grafana sends for each variable in a Loki target: its Loki datasource joins several chosen values
# as (a|b), "All" sends the variable's allValue, a textbox or custom value goes in as it is.
LOGQL_SAMPLES = {
    "service": ["(postfix|rspamd-history)", ".+", "dovecot"],
    "level": ["(error|warning)", ".*"],
    "filter": [regex for _, regex in SMART_FILTERS],
    "search": ["", "1.2.3.4", "user@example.org", "status=(bounced|deferred)"],
    "__auto": ["1m"],
}
# What Grafana fills into an Explore link: the time range and a row's or a variable's value.
LINK_SAMPLES = {
    "__from": "1785721604354",
    "__to": "1785725204354",
    "queue_id": "4Xk9Ls2Fq7zM1vN",
    "message_id": "<20261204.a+b@mail.example.org>",
    "__data.fields.queue_id": "3F1C2A0123",
    "__data.fields.ip": "2001:db8::1",
}
PLACEHOLDER = re.compile(r"\$\{([\w.]+)(?::(\w+))?\}|\$(\w+)")


def fill(text: str, values: dict[str, str], encode: bool = False) -> str:
    """`text` with Grafana's `$var`, `${var}` and `${var:format}` replaced; `:percentencode` (when
    `encode`) as encodeURIComponent does it."""

    def one(match: re.Match[str]) -> str:
        value = values[match.group(1) or match.group(3)]
        return quote(value, safe="") if encode and match.group(2) == "percentencode" else value

    return PLACEHOLDER.sub(one, text)


def loki_panels() -> Iterator[tuple[str, dict, dict]]:
    for name, panel in all_panels():
        for target in panel["targets"]:
            if target["datasource"]["type"] == "loki":
                yield name, panel, target


def test_every_loki_target_is_logql_the_api_parses_whatever_the_variables_hold():
    checked = 0
    for name, panel, target in loki_panels():
        assert target["datasource"] == LOKI and target["queryType"] == "range", panel["title"]
        used = sorted({m.group(1) or m.group(3) for m in PLACEHOLDER.finditer(target["expr"])})
        variables = {v["name"] for v in BOARDS[name]["templating"]["list"]}
        assert set(used) - {"__auto"} <= variables, f"{panel['title']}: {used}"
        kind = logql.LogQuery if panel["type"] == "logs" else logql.VectorAggregation
        for combo in itertools.product(*(LOGQL_SAMPLES[v] for v in used)):
            assert isinstance(logql.parse(fill(target["expr"], dict(zip(used, combo, strict=True)))), kind)
        checked += 1
    assert checked >= 6


def test_logs_dashboard_shows_every_service_once_and_its_variables_read_the_apis_labels():
    board = BOARDS["mailcow-logs.json"]
    variables = {v["name"]: v for v in board["templating"]["list"]}
    for label in ("service", "level"):
        variable = variables[label]
        assert variable["datasource"] == LOKI and variable["definition"] == f"label_values({label})"
        assert variable["query"]["type"] == 1 and variable["query"]["label"] == label  # Loki: label values
        assert variable["multi"] and variable["includeAll"]
    assert variables["search"]["type"] == "textbox"
    shown = []
    for _, panel, target in loki_panels():
        if panel["type"] == "logs":
            own = logql.parse(fill(target["expr"], dict.fromkeys(LOGQL_SAMPLES, ".+"))).matchers[0]
            assert own.name == "service" and own.op == "=~"
            shown += own.value.split("|")
    assert sorted(shown) == sorted(SERVICES) == sorted(RAW_LOG_SERVICES)


def test_smart_filters_survive_grafanas_custom_variable_and_are_the_apis_own():
    """The filter variable offers every line-pattern smart filter of the REST API (whose patterns
    tests/test_smart_filters.py checks against real lines), each as Grafana's custom variable reads it."""
    board = BOARDS["mailcow-logs.json"]
    query = next(v for v in board["templating"]["list"] if v["name"] == "filter")["query"]
    # Grafana's custom variable: unescaped commas separate the options, "text : value" names one
    options = [re.match(r"^\s*(.+)\s:\s(.+)$", part).groups() for part in re.findall(r"(?:\\,|[^,])+", query)]
    assert [(text.strip(), value.strip()) for text, value in options] == list(SMART_FILTERS)
    patterns = {f.pattern for filters in smart_filters.FILTERS.values() for f in filters if not f.levels}
    assert {regex for _, regex in SMART_FILTERS[1:]} == patterns - {None}
    for _, regex in SMART_FILTERS:
        assert '"' not in regex and "\\" not in regex  # it goes into a double-quoted LogQL string as it is


def explore_query(url: str) -> logql.LogQuery:
    """The LogQL query an Explore link opens once Grafana filled in its placeholders; the link must be
    the `schemaVersion=1&panes=` form on the Loki datasource over the dashboard's time range."""
    for match in PLACEHOLDER.finditer(url):
        assert match.group(1) in ("__from", "__to") or match.group(2) == "percentencode", f"unencoded {match[0]}"
    parts = urlsplit(fill(url, LINK_SAMPLES, encode=True))
    params = parse_qs(parts.query, strict_parsing=True)  # as URLSearchParams reads it: a bare + is a space
    assert parts.path == "/explore" and params["schemaVersion"] == ["1"], url
    (pane,) = json.loads(params["panes"][0]).values()
    assert pane["datasource"] == LOKI["uid"] and pane["range"] == {"from": "1785721604354", "to": "1785725204354"}
    (query,) = pane["queries"]
    assert query["datasource"] == LOKI and query["refId"] == "A"
    parsed = logql.parse(query["expr"])
    assert isinstance(parsed, logql.LogQuery), query["expr"]
    for match in PLACEHOLDER.finditer(url):
        if match.group(2):  # a row's or a variable's value: searched for exactly as it is
            assert logql.LineFilter("|=", LINK_SAMPLES[match.group(1)]) in parsed.filters, query["expr"]
    return parsed


def test_explore_links_open_loki_queries_from_every_dashboard_that_has_logs():
    linked = {}
    for name, board in BOARDS.items():
        variables = {v["name"] for v in board["templating"]["list"]}
        urls = [link["url"] for link in board["links"] if link["type"] == "link"]
        urls += [
            link["url"]
            for panel in board["panels"]
            for override in panel["fieldConfig"]["overrides"]
            for prop in override["properties"]
            if prop["id"] == "links"
            for link in prop["value"]
        ]
        for url in (u for u in urls if u.startswith("/explore")):
            assert {m.group(1) for m in PLACEHOLDER.finditer(url) if "." not in m.group(1)} - {"__from", "__to"} <= (
                variables
            ), url
            linked.setdefault(name, []).append(explore_query(url))
    assert set(linked) >= {
        "mailcow-overview.json",
        "mailcow-messages.json",
        "mailcow-message-details.json",
        "mailcow-security.json",
        "mailcow-logs.json",
    }
    details = linked["mailcow-message-details.json"]
    assert logql.LogQuery(
        (logql.Matcher("service", "=", "postfix"),), (logql.LineFilter("|=", "4Xk9Ls2Fq7zM1vN"),)
    ) in (details)


def test_loki_datasource_is_provisioned_like_the_others():
    datasources = yaml.safe_load((ROOT / "provisioning/grafana/datasources/mailcow.yaml").read_text())["datasources"]
    loki = next(d for d in datasources if d["uid"] == LOKI["uid"])
    infinity = next(d for d in datasources if d["uid"] == "mailcow-infinity")
    assert loki["type"] == "loki" and loki["url"] == infinity["url"]  # the base URL: Grafana adds /loki/api/v1
    assert loki["basicAuthUser"] == infinity["basicAuthUser"] and loki["secureJsonData"] == infinity["secureJsonData"]
    assert loki["jsonData"]["maxLines"] == 1000
    (derived,) = loki["jsonData"]["derivedFields"]
    assert derived["datasourceUid"] == LOKI["uid"]
    assert re.sub(r"\$\$\{", "", derived["url"]).count("$") == 0, "provisioning would expand an unescaped $"
    query = derived["url"].replace("$$", "$")
    matcher = re.compile(derived["matcherRegex"])
    for queue_id in ("3F1C2A0123", "4Xk9Ls2Fq7zM1vN"):
        assert matcher.match(f"{queue_id}: to=<a@example.org>, status=sent").group(1) == queue_id
        parsed = logql.parse(query.replace("${__value.raw}", queue_id))
        assert parsed.filters == (logql.LineFilter("|=", queue_id),)
    for line in ("NOQUEUE: reject: RCPT from x[192.0.2.1]", "warning: hostname x does not resolve", "connect from x"):
        assert not matcher.match(line), line
