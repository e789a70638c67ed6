"""The compose stack runs next to mailcow: no port collisions, provisioning mounted, secrets required."""

from __future__ import annotations

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
