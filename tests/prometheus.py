"""A real Prometheus on a free loopback port, scraping one target every second."""

from __future__ import annotations

import socket
import subprocess
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import yaml


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def running_prometheus(
    tmp_path: Path, target_url: str, *, password: str | None = None, rule_files: Sequence[Path] = ()
) -> Iterator[str]:
    """Start `prometheus` scraping `target_url` (Basic auth as admin when `password`); yield its API URL."""
    job: dict = {"job_name": "mailcow-grafana", "static_configs": [{"targets": [target_url.removeprefix("http://")]}]}
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
