"""/api/domains against the simulated mailcow and a real DNS server on loopback serving its zones."""

from __future__ import annotations

import pytest

from exporter.app import create_app
from exporter.simulator.app import SERVER_IPV6
from tests.conftest import make_config
from tests.dns_server import SIMULATED_ZONE as ZONE
from tests.dns_server import running_dns


@pytest.fixture
def client(db_url, pool, mailcow):
    with pool.connection() as conn:
        conn.execute("TRUNCATE domain_dns_checks, app_state")
    with running_dns(ZONE) as port:
        config = make_config(db_url, mailcow.url, dns_resolvers=[f"127.0.0.1:{port}"], live_cache_seconds=0)
        yield create_app(config, pool).test_client()


def test_before_any_check_the_statuses_are_unknown(client):
    body = client.get("/api/domains/all").get_json()
    assert body["total"] == 2 and body["active"] == 2 and body["last_dns_check"] is None
    domain = body["domains"][0]
    assert domain["dns_checks"]["spf"]["status"] == "unknown" and domain["mboxes_in_domain"] > 0
    assert isinstance(domain["bytes_total"], int) and isinstance(domain["quota_used_in_domain"], str)


def test_check_all_then_one_domain(client):
    result = client.post("/api/domains/check-all-dns").get_json()
    assert result == {"status": "success", "message": "Checked 2 domains", "domains_checked": 2, "errors": []}
    body = client.get("/api/domains/all").get_json()
    checks = {d["domain_name"]: d["dns_checks"] for d in body["domains"]}
    org, net = checks["example.org"], checks["example.net"]
    assert [org[k]["status"] for k in ("spf", "dkim", "dmarc")] == ["success", "success", "success"]
    assert org["dkim"]["info"] == ["DKIM uses strict subdomain mode (t=s)"] and org["is_full_check"] is True
    assert "mx" in org["spf"]["message"] and org["spf"]["dns_lookups"] == 1
    assert net["spf"]["status"] == "error" and f"Server IP {SERVER_IPV6} is NOT authorized" in net["spf"]["message"]
    assert net["dkim"]["status"] == "error" and net["dmarc"]["status"] == "warning"
    last = body["last_dns_check"]
    assert last and last.endswith("Z")

    single = client.post("/api/domains/example.net/check-dns").get_json()
    assert single["status"] == "success" and single["data"]["domain"] == "example.net"
    after = client.get("/api/domains/all").get_json()
    assert after["last_dns_check"] == last  # a single-domain check is not a full check
    assert {d["domain_name"]: d["dns_checks"]["is_full_check"] for d in after["domains"]} == {
        "example.org": True,
        "example.net": False,
    }


def test_unknown_domain_and_foreign_origin_are_refused(client):
    assert client.post("/api/domains/nope.example/check-dns").status_code == 404
    refused = client.post("/api/domains/check-all-dns", headers={"Origin": "https://evil.example"})
    assert refused.status_code == 403 and refused.get_json()["code"] == "ORIGIN_REFUSED"
    assert client.get("/api/domains/check-all-dns").status_code == 405


def test_dns_check_metrics(client):
    client.post("/api/domains/check-all-dns")
    text = client.get("/metrics").get_data(as_text=True)
    assert 'mailcow_dns_check_status{check="spf",domain="example.net"} 2.0' in text
    assert 'mailcow_dns_check_status{check="dkim",domain="example.org"} 0.0' in text
    assert 'mailcow_dns_check_status{check="dmarc",domain="example.net"} 1.0' in text
    assert 'mailcow_spf_dns_lookups{domain="example.org"} 1.0' in text
