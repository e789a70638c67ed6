"""The compose stack runs next to mailcow: no port collisions, provisioning mounted, secrets required."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
MAILCOW_PORTS = {"25", "80", "110", "143", "443", "465", "587", "993", "995", "4190", "8080", "8443"}


def _compose() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def test_stack_has_database_service_prometheus_and_grafana():
    assert {"postgres", "mailcow-grafana", "prometheus", "grafana"} <= set(_compose()["services"])


def test_published_ports_avoid_mailcows_ports_and_stay_on_localhost():
    for name, service in _compose()["services"].items():
        for mapping in service.get("ports", []):
            host_ip, host_port, _ = mapping.split(":")
            assert host_port not in MAILCOW_PORTS, (name, mapping)
            assert host_ip == "127.0.0.1", (name, mapping)


def test_grafana_gets_infinity_and_the_provisioning_folders():
    grafana = _compose()["services"]["grafana"]
    assert "yesoreyeram-infinity-datasource" in grafana["environment"]["GF_INSTALL_PLUGINS"]
    mounts = {m.split(":")[1] for m in grafana["volumes"]}
    assert "/etc/grafana/provisioning" in mounts and "/var/lib/grafana/dashboards/mailcow" in mounts
    datasources = yaml.safe_load((ROOT / "provisioning/grafana/datasources/mailcow.yaml").read_text())
    infinity = next(d for d in datasources["datasources"] if d["type"] == "yesoreyeram-infinity-datasource")
    assert infinity["uid"] == "mailcow-infinity" and infinity["url"].endswith(":8088")


def test_service_refuses_to_start_without_its_secrets():
    env = _compose()["services"]["mailcow-grafana"]["environment"]
    for variable in ("MAILCOW_URL", "MAILCOW_API_KEY", "AUTH_PASSWORD"):
        assert ":?" in env[variable], variable


def test_grafana_and_prometheus_reach_the_service_under_a_host_name_it_answers(db_url, pool):
    """The service refuses Host names it does not serve: the compose stack trusts its service name."""
    from urllib.parse import urlsplit

    from exporter.app import create_app
    from exporter.config import load_config

    env = _compose()["services"]["mailcow-grafana"]["environment"]
    trusted = re.sub(r"\$\{[^}]*\}", "", env["TRUSTED_HOSTS"])  # .env leaves TRUSTED_HOSTS empty
    config = load_config({"MAILCOW_URL": "https://mail.example.org", "MAILCOW_API_KEY": "x", "TRUSTED_HOSTS": trusted})
    datasources = yaml.safe_load((ROOT / "provisioning/grafana/datasources/mailcow.yaml").read_text())
    prometheus = yaml.safe_load((ROOT / "provisioning/prometheus/prometheus.yml").read_text())
    hosts = [urlsplit(d["url"]).netloc for d in datasources["datasources"] if "mailcow-grafana" in d["url"]]
    hosts += [t for job in prometheus["scrape_configs"] for c in job["static_configs"] for t in c["targets"]]
    client = create_app(dataclasses.replace(config, database_url=db_url), pool).test_client()
    assert len(hosts) == 4  # Infinity, JSON, Loki and Prometheus's target
    for host in hosts:
        assert client.get("/api/info", headers={"Host": host}).status_code == 200, host
    assert client.get("/api/info", headers={"Host": "evil.example"}).status_code == 400
