"""A real Prometheus on a free loopback port, scraping its targets (replicas of the service) every second."""

from __future__ import annotations

import socket
import subprocess
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import httpx
import yaml


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def running_prometheus(
    tmp_path: Path, target_urls: str | Sequence[str], *, password: str | None = None, rule_files: Sequence[Path] = ()
) -> Iterator[str]:
    """Start `prometheus` scraping the target(s) in one job (Basic auth as admin when `password`); yield its API URL."""
    urls = [target_urls] if isinstance(target_urls, str) else target_urls
    targets = [url.removeprefix("http://") for url in urls]
    job: dict = {"job_name": "mailcow-grafana", "static_configs": [{"targets": targets}]}
    if password:
        job["basic_auth"] = {"username": "admin", "password": password}
    config = {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "rule_files": [str(f) for f in rule_files],
        "scrape_configs": [job],
    }
    (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(config))
    port = free_port()
    process = subprocess.Popen(
        [
            "prometheus",
            f"--config.file={tmp_path / 'prometheus.yml'}",
            f"--storage.tsdb.path={tmp_path / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        yield f"http://127.0.0.1:{port}/api/v1"
    finally:
        process.terminate()
        process.wait(timeout=30)


def scraped(api: str, targets: int, timeout: float = 60) -> bool:
    """Wait until Prometheus has scraped each of its `targets` successfully at least twice."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        time.sleep(0.5)
        try:
            body = httpx.get(f"{api}/query", params={"query": "sum_over_time(up[1m])"}, timeout=5).json()
        except httpx.TransportError:
            continue
        counts = [float(r["value"][1]) for r in body.get("data", {}).get("result", [])]
        if len(counts) == targets and min(counts) >= 2:
            return True
    return False
