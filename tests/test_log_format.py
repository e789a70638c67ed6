"""LOG_FORMAT: every process the CLI starts (`run`'s web server and worker, the simulator, `demo`) writes one
JSON object per line with `json`, with the request id of the request being served and no secret; `plain`
stays the default; a bad value stops the start with one clear line."""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import time
from datetime import datetime, timedelta
from pathlib import Path

import httpx
import psycopg
import pytest

from exporter.log_format import JsonFormatter
from tests.prometheus import free_port

CLI = [sys.executable, "-m", "exporter.cli"]
RO_KEY, RW_KEY = "ABCDEF-123456-FEDCBA-654321-A1B2C3", "FEDCBA-654321-ABCDEF-123456-C3B2A1"
AUTH_PASSWORD = "Auth-Pw-7f3a9c"
URL_PASSWORD = "Url-Pw-5e1d2b"


def _clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MAILCOW_", "DATABASE_", "AUTH_", "LOG_"))}
    return {**env, **extra}


def _url_with_password(conninfo: str) -> tuple[str, str]:
    """The database as a URL with a password in it (a made-up one where the server trusts loopback)."""
    info = psycopg.conninfo.conninfo_to_dict(conninfo)
    password = info.get("password") or "Db-Pw-9c8b7a"
    host, port = info.get("host", "127.0.0.1"), info.get("port", "5432")
    return f"postgresql://{info.get('user', 'postgres')}:{password}@{host}:{port}/{info['dbname']}", password


def _json_lines(output: str) -> list[dict]:
    """Every line of `output` as a log record; fails on the first line that is not one."""
    records = []
    for line in output.splitlines():
        if not line.strip():
            continue
        record = json.loads(line)
        assert {"time", "level", "logger", "message"} <= record.keys(), line
        assert datetime.fromisoformat(record["time"]).utcoffset() == timedelta(0), line
        records.append(record)
    return records


def _wait_healthy(base: str, process: subprocess.Popen, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and process.poll() is None:
        try:
            if httpx.get(f"{base}/api/health", timeout=2).json().get("status") == "healthy":
                return
        except (httpx.HTTPError, ValueError):
            pass
        time.sleep(0.5)
    raise AssertionError("the service did not become healthy")


def _start(args: list[str], env: dict[str, str], tmp_path: Path, name: str) -> subprocess.Popen:
    """The command with its stdout and stderr in files (a pipe nobody reads would stall a chatty process)."""
    out, err = (tmp_path / f"{name}.out").open("w"), (tmp_path / f"{name}.err").open("w")
    process = subprocess.Popen([*CLI, *args], env=env, stdout=out, stderr=err, text=True)
    process.logs = (tmp_path / f"{name}.out", tmp_path / f"{name}.err")  # type: ignore[attr-defined]
    return process


def _stop(process: subprocess.Popen) -> tuple[str, str]:
    """SIGTERM, then what it wrote to stdout and stderr."""
    process.send_signal(signal.SIGTERM)
    process.wait(timeout=60)
    out, err = process.logs  # type: ignore[attr-defined]
    return out.read_text(), err.read_text()


def test_run_and_simulator_log_json_with_request_ids_and_no_secrets(databases, tmp_path):
    db_url, db_password = _url_with_password(databases.create())
    sim_port, port = free_port(), free_port()
    sim_args = ["simulate", "--bind", f"127.0.0.1:{sim_port}", "--ro-key", RO_KEY, "--rw-key", RW_KEY]
    sim = _start(sim_args, _clean_env(LOG_FORMAT="json"), tmp_path, "simulate")
    env = _clean_env(
        LOG_FORMAT="json",
        MAILCOW_URL=f"http://reader:{URL_PASSWORD}@127.0.0.1:{sim_port}",
        MAILCOW_API_KEY=RO_KEY,
        AUTH_PASSWORD=AUTH_PASSWORD,
        DATABASE_URL=db_url,
        FETCH_INTERVAL="5",
    )
    run = _start(["run", "--bind", f"127.0.0.1:{port}"], env, tmp_path, "run")
    base = f"http://127.0.0.1:{port}"
    try:
        _wait_healthy(base, run)
        given = httpx.get(f"{base}/api/health", headers={"X-Request-ID": "req-test-42"}, timeout=5)
        forged = httpx.get(
            f"{base}/api/info", headers={"X-Request-ID": 'x" injected'}, auth=("admin", AUTH_PASSWORD), timeout=5
        )
        refused = httpx.get(f"{base}/api/info", auth=("admin", "wrong-" + AUTH_PASSWORD), timeout=5)
        time.sleep(1)
    finally:
        run_out, run_err = _stop(run)
        _, sim_err = _stop(sim)
    assert given.headers["X-Request-ID"] == "req-test-42"
    generated = forged.headers["X-Request-ID"]
    assert forged.status_code == 200 and generated != 'x" injected' and len(generated) == 32
    assert refused.status_code == 401 and refused.headers["X-Request-ID"]

    records = _json_lines(run_out) + _json_lines(run_err)
    loggers = {r["logger"] for r in records}
    assert {"gunicorn.error", "mailcow_grafana.http", "exporter.worker.loop"} <= loggers, loggers
    requests = {r.get("request_id"): r["message"] for r in records if r["logger"] == "mailcow_grafana.http"}
    assert requests["req-test-42"].startswith("GET /api/health 200")
    assert requests[generated].startswith("GET /api/info 200")
    assert requests[refused.headers["X-Request-ID"]].startswith("GET /api/info 401")
    assert all("request_id" not in r for r in records if r["logger"] == "exporter.worker.loop")
    assert "werkzeug" in {r["logger"] for r in _json_lines(sim_err)}, "the simulator's request log"
    everything = run_out + run_err + sim_err
    for secret in (RO_KEY, AUTH_PASSWORD, URL_PASSWORD, db_password):
        assert secret not in everything


def test_demo_logs_json_from_every_process(databases, tmp_path):
    db_url, _ = _url_with_password(databases.create())
    port = free_port()
    env = _clean_env(LOG_FORMAT="json", DATABASE_URL=db_url, DATA_DIR=str(tmp_path / "data"), FETCH_INTERVAL="5")
    demo = _start(["demo", "--bind", f"127.0.0.1:{port}"], env, tmp_path, "demo")
    try:
        _wait_healthy(f"http://127.0.0.1:{port}", demo)
    finally:
        out, err = _stop(demo)
    assert demo.returncode == 0, err[-3000:]
    loggers = {r["logger"] for r in _json_lines(err)}  # stdout: the demo's and the simulator's banners
    assert {"werkzeug", "gunicorn.error", "mailcow_grafana.http", "exporter.worker.loop"} <= loggers, loggers
    assert "demo" in out


def test_plain_is_the_default_and_json_the_alternative(databases):
    env = _clean_env(DATABASE_URL=databases.create())
    plain = subprocess.run([*CLI, "migrate"], env=env, capture_output=True, text=True, timeout=120)
    assert plain.returncode == 0, plain.stderr
    lines = plain.stderr.splitlines()
    assert lines and all(
        datetime.strptime(line[:23], "%Y-%m-%d %H:%M:%S,%f") and " INFO exporter.store.database: applied " in line
        for line in lines
    ), lines
    again = subprocess.run([*CLI, "migrate"], env={**env, "LOG_FORMAT": "json"}, capture_output=True, text=True)
    assert again.returncode == 0 and again.stdout.strip() == "applied 0 migration(s)", again.stderr


@pytest.mark.parametrize("command", ["serve", "worker", "run", "demo", "simulate"])
def test_a_bad_log_format_is_refused_at_start(command):
    env = _clean_env(LOG_FORMAT="xml", MAILCOW_URL="http://127.0.0.1:9", MAILCOW_API_KEY="k")
    result = subprocess.run([*CLI, command], env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert result.stderr.strip() == "mailcow-grafana: LOG_FORMAT: Must be one of: plain, json."


def test_an_exception_is_one_json_line_with_its_traceback():
    try:
        raise ValueError("boom")
    except ValueError:
        exc_info = sys.exc_info()
    record = logging.getLogger("t").makeRecord("t", logging.ERROR, __file__, 1, "failed: %s", ("x",), exc_info)
    line = JsonFormatter().format(record)
    assert "\n" not in line
    entry = json.loads(line)
    assert entry["message"] == "failed: x" and "ValueError: boom" in entry["exception"]
