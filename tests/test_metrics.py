"""/metrics: values from PostgreSQL that match the REST API, lint-clean, persistent and monotonic."""

from __future__ import annotations

import subprocess
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from exporter.app import create_app
from exporter.services import correlation
from exporter.simulator.state import LOCAL_DOMAINS
from exporter.store import ingest as ingest_store
from exporter.store.database import create_pool
from exporter.worker.loop import Worker
from tests.conftest import SIM_START, make_config
from tests.mailflow import scenario
from tests.prometheus import running_prometheus

RULES = Path(__file__).parent.parent / "provisioning" / "prometheus" / "rules" / "mailcow-alerts.yml"
Samples = dict[tuple[str, frozenset], float]


def samples(text: str) -> Samples:
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def value(found: Samples, name: str, **labels: str) -> float | None:
    return found.get((name, frozenset(labels.items())))


def counters_of(found: Samples) -> Samples:
    return {k: v for k, v in found.items() if k[0].endswith(("_total", "_count", "_sum", "_bucket"))}


@pytest.fixture(scope="module")
def flow(databases):
    """20 simulated minutes of mixed traffic at 200 mails/min, ingested and correlated."""
    with scenario(databases, start=SIM_START, rate=200, seed=11) as (rig, pool, url):
        rig.run(1200, 30)
        worker = Worker(make_config(url), pool, rig.ingestor.client)
        worker.sync_status()
        worker.sync_quarantine()
        yield rig, pool, url, worker


@pytest.fixture
def client(flow):
    _, pool, url, _ = flow
    return create_app(make_config(url), pool).test_client()


def scrape(client) -> str:
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.content_type.startswith("text/plain; version=0.0.4")
    return response.get_data(as_text=True)


def test_promtool_finds_nothing_to_complain_about(client):
    body = scrape(client)
    result = subprocess.run(["promtool", "check", "metrics"], input=body, capture_output=True, text=True)
    assert (result.returncode, result.stdout + result.stderr) == (0, "")
    assert "mailcow_messages_total" in body and "mailcow_delivery_delay_seconds_bucket" in body


def test_message_counters_equal_the_rest_api_counts(client):
    found = samples(scrape(client))
    counted = {
        (dict(labels)["direction"], dict(labels)["status"]): v
        for (name, labels), v in found.items()
        if name == "mailcow_messages_total"
    }
    assert sum(counted.values()) > 2000
    assert {s for _, s in counted} >= {"delivered", "bounced", "rejected"}
    for direction in ("inbound", "outbound", "internal"):
        for status in ("delivered", "bounced", "rejected", "expired", "discarded"):
            total = client.get(f"/api/messages?direction={direction}&status={status}&limit=1").get_json()["total"]
            assert counted.get((direction, status), 0) == total, (direction, status)
    # deferred: only greylisted attempts are complete; the rest still wait and are not counted yet
    for direction in ("inbound", "outbound"):
        total = client.get(f"/api/messages?direction={direction}&status=deferred&limit=1").get_json()["total"]
        assert counted.get((direction, "deferred"), 0) <= total


def test_recipient_and_delivery_counters_agree_with_each_other(client):
    found = samples(scrape(client))
    delivered_rcpts = sum(
        v for (n, labels), v in found.items() if n == "mailcow_recipients_total" and ("status", "delivered") in labels
    )
    delivered_attempts = sum(
        v
        for (n, labels), v in found.items()
        if n == "mailcow_postfix_delivery_attempts_total" and ("status", "delivered") in labels
    )
    assert 0 < delivered_rcpts <= delivered_attempts
    histogram_count = sum(v for (n, _), v in found.items() if n == "mailcow_delivery_delay_seconds_count")
    assert histogram_count == delivered_attempts
    inbound_buckets = sorted(
        (float(dict(labels)["le"]), v)
        for (n, labels), v in found.items()
        if n == "mailcow_delivery_delay_seconds_bucket" and ("direction", "inbound") in labels
    )
    assert [v for _, v in inbound_buckets] == sorted(v for _, v in inbound_buckets)  # cumulative
    assert inbound_buckets[-1] == (
        float("inf"),
        value(found, "mailcow_delivery_delay_seconds_count", direction="inbound"),
    )


def test_delay_buckets_count_every_delivery_up_to_their_bound(flow, client):
    """Each `le` bucket holds exactly the delivered attempts whose delay is at most `le`."""
    _, pool, _, _ = flow
    found = samples(scrape(client))
    buckets: dict[float, float] = {}
    for (name, labels), v in found.items():
        if name == "mailcow_delivery_delay_seconds_bucket":
            le = float(dict(labels)["le"])
            buckets[le] = buckets.get(le, 0) + v
    with pool.connection() as conn:
        for le, counted in buckets.items():
            delivered = conn.execute(
                "SELECT count(*) FROM postfix_lines WHERE kind = 'delivery' AND status = 'delivered' AND delay <= %s",
                (le,),
            ).fetchone()[0]
            assert counted == delivered, le
    assert 0 < buckets[1.0] < buckets[float("inf")]  # the bounds split the simulated delays


def test_rejects_spam_auth_and_netfilter_are_counted(client):
    found = samples(scrape(client))
    reasons = {dict(labels)["reason"] for (n, labels) in found if n == "mailcow_postfix_rejects_total"}
    assert reasons >= {"relay_denied", "rbl", "unknown_recipient", "pregreet", "spam"}
    assert value(found, "mailcow_rspamd_actions_total", action="reject", direction="inbound") > 0
    assert value(found, "mailcow_rspamd_actions_total", action="no action", direction="outbound") > 0
    assert value(found, "mailcow_postfix_sasl_auth_failures_total") > 0
    assert value(found, "mailcow_netfilter_warnings_total", rule="3") > 0
    assert value(found, "mailcow_netfilter_bans_total") > 0


def test_status_gauges_come_from_the_sync_job(flow, client):
    rig, *_ = flow
    found = samples(scrape(client))
    with rig.sim.state.lock:
        queued = len(rig.sim.state.queue)
    assert sum(v for (n, _), v in found.items() if n == "mailcow_queue_messages") == queued
    assert value(found, "mailcow_container_up", container="postfix-mailcow") == 1
    assert value(found, "mailcow_version_info", version="2026-07a") == 1
    assert 0 < value(found, "mailcow_vmail_used_ratio") < 1
    assert value(found, "mailcow_api_up", endpoint="status") == 1
    assert value(found, "mailcow_api_up", endpoint="logs") == 1
    assert value(found, "mailcow_quarantine_messages") > 0
    assert value(found, "mailcow_grafana_database_up") == 1
    assert value(found, "mailcow_grafana_lines_ingested_total", source="postfix") > 10_000


def test_mailcow_api_failure_shows_as_api_down(flow, client):
    rig, _, _, worker = flow
    rig.sim.state.fault = "server_error"
    try:
        with pytest.raises(RuntimeError):
            worker.sync_status()
    finally:
        rig.sim.state.fault = None
    found = samples(scrape(client))
    assert value(found, "mailcow_api_up", endpoint="status") == 0
    assert value(found, "mailcow_api_up", endpoint="queue") == 0
    assert value(found, "mailcow_container_up", container="postfix-mailcow") == 1  # last known state kept
    worker.sync_status()
    assert value(samples(scrape(client)), "mailcow_api_up", endpoint="status") == 1


def test_openmetrics_on_request(client):
    response = client.get("/metrics", headers={"Accept": "application/openmetrics-text; version=1.0.0"})
    assert response.content_type.startswith("application/openmetrics-text")
    body = response.get_data(as_text=True)
    assert body.rstrip().endswith("# EOF")
    assert "mailcow_messages_total{" in body


def test_refetching_and_recorrelating_counts_nothing_twice(flow, client):
    rig, pool, _, _ = flow
    before = counters_of(samples(scrape(client)))
    for source in ("postfix", "rspamd", "netfilter"):  # the same windows again, from scratch
        rig.ingestor.state[source].first_count = 10_000
    rig.ingestor.fetch_all()
    correlation.correlate(pool, LOCAL_DOMAINS)
    correlation.refresh_incomplete(pool, LOCAL_DOMAINS)
    after = counters_of(samples(scrape(client)))
    assert after == before


def test_counters_survive_restart_and_retention_and_keep_rising(databases):
    with scenario(databases, start=SIM_START, rate=150, seed=5) as (rig, pool, url):
        rig.run(600, 30)
        before = counters_of(samples(scrape(create_app(make_config(url), pool).test_client())))
        deleted = ingest_store.delete_before(pool, datetime.now(UTC) + timedelta(days=1))  # everything goes
        assert deleted["postfix_lines"] > 0 and deleted["messages"] > 0
        with pool.connection() as conn:  # a deleted message's recipients, and its lines' search words, go too
            assert conn.execute("SELECT count(*) FROM message_recipients").fetchone()[0] == 0
            assert conn.execute("SELECT count(*) FROM postfix_line_words").fetchone()[0] == 0
        assert deleted["postfix_line_words"] > 0
        fresh_pool = create_pool(url, 2)  # a restarted service: new process, new pool, new registry
        try:
            restarted = counters_of(samples(scrape(create_app(make_config(url), fresh_pool).test_client())))
            assert restarted == before
            rig.run(300, 30)
            later = counters_of(samples(scrape(create_app(make_config(url), fresh_pool).test_client())))
        finally:
            fresh_pool.close()
    assert all(later.get(key, 0) >= v for key, v in before.items()), "a counter went down"
    key = ("mailcow_messages_total", frozenset({"direction": "inbound", "status": "delivered"}.items()))
    assert later[key] > before[key]


def test_database_down_still_answers_with_database_up_zero(db_url):
    app = create_app(make_config(db_url), create_pool("postgresql://nobody@127.0.0.1:9/none", 1)).test_client()
    response = app.get("/metrics")
    assert response.status_code == 200
    assert value(samples(response.get_data(as_text=True)), "mailcow_grafana_database_up") == 0


def test_per_domain_labels_only_when_enabled(databases):
    with scenario(databases, start=SIM_START, rate=100, seed=3) as (rig, pool, url):
        rig.clock.now += 600
        rig.sim.advance()
        rig.ingestor.fetch_all()
        correlation.correlate(pool, LOCAL_DOMAINS, domain_labels=True)
        found = samples(scrape(create_app(make_config(url), pool).test_client()))
    domains = {
        dict(labels).get("domain")
        for (n, labels) in found
        if n in ("mailcow_messages_total", "mailcow_recipients_total")
    }
    assert None not in domains
    assert domains <= {*LOCAL_DOMAINS, "other"} and domains & set(LOCAL_DOMAINS)


def test_metrics_require_credentials_when_auth_is_on(flow):
    _, pool, url, _ = flow
    app = create_app(make_config(url, auth_enabled=True, auth_password="s3cret-pass"), pool).test_client()
    assert app.get("/metrics").status_code == 401
    assert app.get("/metrics", auth=("admin", "s3cret-pass")).status_code == 200


def test_real_prometheus_scrapes_the_service_and_sees_the_rest_counts(flow, live_app, tmp_path):
    _, pool, url, _ = flow
    app = create_app(make_config(url), pool)
    service = live_app(app)
    with running_prometheus(tmp_path, service.url, rule_files=[RULES]) as api:
        result: list = []
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not result:
            time.sleep(0.5)
            try:
                body = httpx.get(f"{api}/query", params={"query": "mailcow_messages_total"}, timeout=5).json()
            except httpx.TransportError:
                continue
            result = body.get("data", {}).get("result", [])
        assert result, "Prometheus never scraped mailcow_messages_total"
        rest = app.test_client()
        for series in result:
            labels = series["metric"]
            assert labels["job"] == "mailcow-grafana"
            if labels["status"] == "deferred":
                continue
            query = f"/api/messages?direction={labels['direction']}&status={labels['status']}&limit=1"
            assert float(series["value"][1]) == rest.get(query).get_json()["total"], labels
        rules = httpx.get(f"{api}/rules", timeout=5).json()["data"]["groups"]
        loaded = {rule["name"] for group in rules for rule in group["rules"]}
        assert {"MailcowQueueGrowing", "MailcowOutboundSpam", "MailcowGrafanaIngestStalled"} <= loaded
        assert all(rule["health"] != "err" for group in rules for rule in group["rules"])


def test_landing_page_links_the_metrics(client):
    response = client.get("/")
    assert response.status_code == 200 and response.content_type.startswith("text/html")
    assert '<a href="/metrics">' in response.get_data(as_text=True)
