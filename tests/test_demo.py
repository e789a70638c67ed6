"""The README's run command: `mailcow-grafana demo` with the embedded PostgreSQL and simulator."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import httpx

from exporter.config_values import RAW_LOG_SERVICES
from tests.prometheus import free_port


def _all_ten_services_in_explore(base: str, deadline: float) -> None:
    """What Grafana's Explore shows through the provisioned Loki datasource: the label browser lists
    every service, and each service's stream has lines."""
    services: list[str] = []
    while time.monotonic() < deadline and sorted(services) != sorted(RAW_LOG_SERVICES):
        time.sleep(1)
        end = time.time_ns()
        answer = httpx.get(
            f"{base}/loki/api/v1/label/service/values", params={"start": end - 3600 * 10**9, "end": end}, timeout=5
        )
        services = answer.json()["data"]
    assert sorted(services) == sorted(RAW_LOG_SERVICES)
    for service in RAW_LOG_SERVICES:
        end = time.time_ns()
        query = {"query": f'{{service="{service}"}}', "start": end - 3600 * 10**9, "end": end, "limit": 5}
        body = httpx.get(f"{base}/loki/api/v1/query_range", params=query, timeout=5).json()
        assert body["status"] == "success" and body["data"]["resultType"] == "streams"
        assert any(stream["values"] for stream in body["data"]["result"]), service


def test_demo_comes_up_healthy_and_fetches_traffic(tmp_path):
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MAILCOW_", "DATABASE_", "AUTH_"))}
    env.update({"DATA_DIR": str(tmp_path / "data"), "FETCH_INTERVAL": "5"})
    proc = subprocess.Popen(
        [sys.executable, "-m", "exporter.cli", "demo", "--bind", f"127.0.0.1:{port}"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        health = info = None
        while time.monotonic() < deadline:
            try:
                health = httpx.get(f"{base}/api/health", timeout=2).json()
                info = httpx.get(f"{base}/api/info", timeout=2).json()
                fetched = info["import_status"].get("postfix", {}).get("total_entries", 0) > 0
                if fetched and health["status"] == "healthy":  # healthy: every source fetched and correlated
                    break
            except (httpx.HTTPError, ValueError):
                pass
            time.sleep(0.5)
        assert health and health["status"] == "healthy" and health["database"] == "connected"
        assert info["import_status"]["postfix"]["total_entries"] > 0
        assert info["background_jobs"]["fetch_logs"]["status"] in ("success", "running")
        assert info["read_write"] is True
        assert (tmp_path / "data" / "pgdata" / "PG_VERSION").exists(), "embedded PostgreSQL lives in DATA_DIR"
        scrape = ""
        wanted = ("mailcow_messages_total{", "mailcow_container_up{")  # correlation and sync_status have run
        while time.monotonic() < deadline + 60 and not all(w in scrape for w in wanted):
            time.sleep(1)
            scrape = httpx.get(f"{base}/metrics", timeout=5).text
        assert all(w in scrape for w in wanted)
        lint = subprocess.run(["promtool", "check", "metrics"], input=scrape, capture_output=True, text=True)
        assert (lint.returncode, lint.stdout + lint.stderr) == (0, ""), "promtool check metrics on the demo"
        _all_ten_services_in_explore(base, deadline + 120)
    finally:
        proc.send_signal(signal.SIGTERM)
        output = proc.communicate(timeout=60)[0]
    assert proc.returncode == 0, output[-3000:]
    assert f"{base}/api/health" in output
