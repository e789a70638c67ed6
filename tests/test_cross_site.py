"""Cross-site attacks on every state-changing route: DNS rebinding (a foreign Host), browser requests
without a provable origin, forms from web pages; and what must keep working (scripts, Grafana)."""

from __future__ import annotations

import io
import re

import pytest

from exporter.app import create_app
from tests.conftest import make_config
from tests.dmarc_reports import TABLES, aggregate_xml
from tests.dns_server import SIMULATED_ZONE, running_dns

GRAFANA = "http://grafana.example:3000"
EVIL = "http://evil.example"
REPORT = aggregate_xml(
    "google.com", "r-1", "example.org", 1_790_000_000, 1_790_086_399, [("192.0.2.1", 5, "pass", "pass", "none")]
)


@pytest.fixture
def client(db_url, pool, mailcow):
    with pool.connection() as conn:
        conn.execute(f"TRUNCATE action_audit, domain_dns_checks, app_state, {TABLES}")
    with running_dns(SIMULATED_ZONE) as dns_port:
        config = make_config(
            db_url,
            mailcow.url,
            grafana_url=GRAFANA,
            live_cache_seconds=0,
            dns_resolvers=[f"127.0.0.1:{dns_port}"],
            dmarc_imap_host="127.0.0.1",  # nothing listens on port 9: a sync that runs records an error
            dmarc_imap_port=9,
            dmarc_imap_use_ssl=False,
        )
        yield create_app(config, pool).test_client()


def state(pool, sim) -> dict:
    """Everything the state-changing routes can change: mailcow's queue and quarantine, stored reports,
    DNS check results and IMAP sync runs."""
    with pool.connection() as conn:
        counts = conn.execute(
            """SELECT (SELECT count(*) FROM dmarc_reports), (SELECT count(*) FROM domain_dns_checks),
                      (SELECT count(*) FROM dmarc_imap_syncs)"""
        ).fetchone()
    queue = {q: i["queue_name"] for q, i in sim.state.queue.items()}
    return {"queue": queue, "quarantine": set(sim.state.quarantine), "counts": counts}


def code(response) -> str:
    """Our error code, from the JSON envelope or a confirmation page's error line."""
    if response.is_json:
        return response.get_json()["code"]
    return re.search(r"<code>\((\w+)\)</code>", response.get_data(as_text=True)).group(1)


def attempts(sim) -> dict[str, dict]:
    """One request per state-changing route, as a page would send it (the headers come from the attack)."""
    qid = sorted(q for q, i in sim.state.queue.items() if i["queue_name"] == "deferred")[0]
    ident = min(sim.state.quarantine)
    return {
        "queue hold": {"path": "/api/queue/action", "json": {"action": "hold", "items": [qid]}},
        "quarantine release": {"path": "/api/quarantine/release", "json": {"items": [ident]}},
        "dmarc upload": {"path": "/api/dmarc/upload", "data": {"file": (io.BytesIO(REPORT), "r.xml")}},
        "dns check": {"path": "/api/domains/check-all-dns"},
        "imap sync": {"path": "/api/dmarc/imap/sync"},
    }


ATTACKS = {
    # DNS rebinding: evil.example resolves to us, the page is same-origin with itself
    "rebinding": ({"Host": "evil.example", "Origin": EVIL}, 400, "HOST_NOT_TRUSTED"),
    "rebinding with port": ({"Host": "evil.example:8088", "Origin": f"{EVIL}:8088"}, 400, "HOST_NOT_TRUSTED"),
    "rebinding, forwarded host ignored": (
        {"Host": "evil.example", "X-Forwarded-Host": "localhost", "Origin": EVIL},
        400,
        "HOST_NOT_TRUSTED",
    ),
    "forwarded host is not our name": (
        {"X-Forwarded-Host": "evil.example", "Origin": EVIL},
        403,
        "ORIGIN_REFUSED",
    ),
    "cross-site without Origin": ({"Sec-Fetch-Site": "cross-site"}, 403, "ORIGIN_REFUSED"),
    "navigation without Origin": (
        {"Sec-Fetch-Mode": "navigate", "Upgrade-Insecure-Requests": "1"},
        403,
        "ORIGIN_REFUSED",
    ),
    "Origin null": ({"Origin": "null"}, 403, "ORIGIN_REFUSED"),
    "Referer on another port": ({"Referer": "http://localhost:3001/page"}, 403, "ORIGIN_REFUSED"),
}


@pytest.mark.parametrize("attack", ATTACKS)
def test_attacks_change_nothing_on_any_state_changing_route(client, pool, sim, attack):
    headers, status, expected = ATTACKS[attack]
    before = state(pool, sim)
    for name, request in attempts(sim).items():
        path = request.pop("path")
        response = client.post(path, headers=headers, **request)
        assert (response.status_code, code(response)) == (status, expected), name
    assert state(pool, sim) == before


@pytest.mark.parametrize("content_type", ["text/plain", "multipart/form-data", "application/x-www-form-urlencoded"])
def test_forms_from_our_own_pages_are_refused_too(client, pool, sim, content_type):
    """A page on an origin we trust still may not post a form (text/plain and multipart need no preflight)."""
    before = state(pool, sim)
    for name, request in attempts(sim).items():
        path = request.pop("path")
        for origin in ("http://localhost", GRAFANA):
            if content_type == "multipart/form-data":
                data = {"file": (io.BytesIO(REPORT), "r.xml")}
            else:
                data = '{"items": ["1"]}' if content_type == "text/plain" else {"items": "1"}
            response = client.post(path, data=data, content_type=content_type, headers={"Origin": origin})
            assert (response.status_code, code(response)) == (403, "BROWSER_FORM_REFUSED"), name
    assert state(pool, sim) == before


def test_a_refused_action_is_audited_with_the_page_it_came_from(client, pool, sim):
    qid = attempts(sim)["queue hold"]["json"]["items"][0]
    client.post("/api/queue/action", json={"action": "hold", "items": [qid]}, headers={"Sec-Fetch-Site": "cross-site"})
    with pool.connection() as conn:
        entry = conn.execute("SELECT row_to_json(a) FROM action_audit a ORDER BY id DESC LIMIT 1").fetchone()[0]
    assert (entry["outcome"], entry["code"], entry["target"]) == ("refused", "ORIGIN_REFUSED", "queue")


def test_every_post_route_is_guarded_including_routes_added_later(client):
    """The guard is one hook keyed on the method: each POST route of the app refuses a foreign page."""
    app = client.application
    checked = []
    for rule in app.url_map.iter_rules():
        if "POST" not in rule.methods:
            continue
        path = re.sub(r"<(?:[^:>]+:)?([^>]+)>", "x", rule.rule)
        foreign = client.post(path, json={}, headers={"Origin": EVIL})
        rebound = client.post(path, json={}, headers={"Host": "evil.example", "Origin": EVIL})
        assert (foreign.status_code, code(foreign)) == (403, "ORIGIN_REFUSED"), rule.rule
        assert (rebound.status_code, code(rebound)) == (400, "HOST_NOT_TRUSTED"), rule.rule
        checked.append(rule.rule)
    assert "/grafana/json/query" in checked and "/api/dmarc/upload" in checked and len(checked) >= 14


def test_scripts_grafana_and_grafanas_data_proxy_keep_working(client, pool, sim):
    qid = attempts(sim)["queue hold"]["json"]["items"][0]
    # curl -F file=@report.xml: no browser headers, a form body
    upload = client.post("/api/dmarc/upload", data={"file": (io.BytesIO(REPORT), "r.xml")})
    assert upload.status_code == 201
    # a fetch panel action from Grafana's origin
    grafana = client.post("/api/queue/action", json={"action": "hold", "items": [qid]}, headers={"Origin": GRAFANA})
    assert grafana.status_code == 200 and sim.state.queue[qid]["queue_name"] == "hold"
    # Grafana's data proxy drops Origin and Referer but forwards the browser's Sec-Fetch-Site
    proxied = client.post("/grafana/json/metrics", json={}, headers={"Sec-Fetch-Site": "same-origin"})
    assert proxied.status_code == 200 and proxied.get_json()
    # our own page's script, by Origin or by Referer
    for headers in ({"Origin": "http://localhost"}, {"Referer": "http://localhost/actions/queue/hold"}):
        response = client.post("/api/queue/action", json={"action": "unhold", "items": [qid]}, headers=headers)
        assert response.status_code == 200


@pytest.mark.parametrize(
    ("host", "settings", "served"),
    [
        ("localhost:8088", {}, True),
        ("127.0.0.1", {}, True),
        ("[::1]:8088", {}, True),
        ("LocalHost.", {}, True),
        ("192.0.2.7:8088", {}, False),
        ("mailcow-grafana:8088", {}, False),
        ("mailcow-grafana:8088", {"trusted_hosts": ["mailcow-grafana"]}, True),
        ("stats.example.org", {"public_url": "https://stats.example.org/mailcow"}, True),
        ("[2001:db8::5]:8088", {"trusted_hosts": ["2001:db8::5"]}, True),
        ("[2001:db8::6]:8088", {"trusted_hosts": ["2001:db8::5"]}, False),
    ],
)
def test_only_host_names_we_serve_are_answered(db_url, pool, host, settings, served):
    client = create_app(make_config(db_url, **settings), pool).test_client()
    response = client.get("/api/info", headers={"Host": host})
    assert response.status_code == (200 if served else 400)
    if not served:
        assert response.get_json()["code"] == "HOST_NOT_TRUSTED" and "TRUSTED_HOSTS" in response.get_json()["detail"]
    assert client.get("/api/health", headers={"Host": host}).status_code == 200  # probes by address


def test_our_origin_is_public_url_behind_a_tls_proxy(db_url, pool, mailcow, sim):
    """Behind a proxy the request is plain http, the browser's page https://PUBLIC_URL."""
    config = make_config(db_url, mailcow.url, public_url="https://stats.example.org", live_cache_seconds=0)
    client = create_app(config, pool).test_client()
    qid = attempts(sim)["queue hold"]["json"]["items"][0]
    body = {"action": "hold", "items": [qid]}
    ok = client.post(
        "/api/queue/action", json=body, headers={"Host": "stats.example.org", "Origin": "https://stats.example.org"}
    )
    assert ok.status_code == 200
    other_port = client.post(
        "/api/queue/action",
        json=body,
        headers={"Host": "stats.example.org", "Origin": "https://stats.example.org:8443"},
    )
    assert other_port.status_code == 403
