"""Configuration validation: one clear line and exit code 2 for a bad value."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from exporter.config import ConfigError, load_config

BASE = {"MAILCOW_URL": "https://mail.example.org", "MAILCOW_API_KEY": "A1B2C3-D4E5F6"}


def run_cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("MAILCOW_", "AUTH_", "DATABASE_"))}
    return subprocess.run(
        [sys.executable, "-m", "exporter.cli", *args], env={**clean, **env}, capture_output=True, text=True, timeout=60
    )


def test_bad_url_exits_2_with_one_line_naming_the_variable():
    result = run_cli("check-config", env={"MAILCOW_URL": "not-a-url", "MAILCOW_API_KEY": "x"})
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "MAILCOW_URL" in lines[0] and "Traceback" not in result.stderr


def test_check_config_masks_secrets():
    env = {**BASE, "MAILCOW_API_KEY_RW": "RWKEY-123456", "AUTH_PASSWORD": "hunter2"}
    result = run_cli("check-config", env=env)
    assert result.returncode == 0, result.stderr
    assert "A1B2C3-D4E5F6" not in result.stdout and "RWKEY-123456" not in result.stdout
    assert "hunter2" not in result.stdout
    assert "MAILCOW_API_KEY=********" in result.stdout and "AUTH_ENABLED=true" in result.stdout


@pytest.mark.parametrize(
    ("env", "variable"),
    [
        ({"FETCH_INTERVAL": "soon"}, "FETCH_INTERVAL"),
        ({"FETCH_INTERVAL": "1"}, "FETCH_INTERVAL"),
        ({"TZ": "Mars/Olympus"}, "TZ"),
        ({"LOCAL_DOMAINS": "example.org,not a domain"}, "LOCAL_DOMAINS"),
        ({"AUTH_ENABLED": "true"}, "AUTH_PASSWORD"),
        ({"MAILCOW_VERIFY_TLS": "perhaps"}, "MAILCOW_VERIFY_TLS"),
        ({"DATABASE_URL": "mysql://x"}, "DATABASE_URL"),
        ({"LOG_LEVEL": "LOUD"}, "LOG_LEVEL"),
    ],
)
def test_invalid_values_name_their_variable(env, variable):
    with pytest.raises(ConfigError, match=f"^{variable}: "):
        load_config({**BASE, **env})


def test_missing_mailcow_settings_are_reported():
    with pytest.raises(ConfigError, match=r"^MAILCOW_API_KEY: is required"):
        load_config({"MAILCOW_URL": "https://mail.example.org"})


def test_defaults_and_auth_follows_the_password():
    config = load_config(BASE)
    assert (config.fetch_interval, config.retention_days, config.timezone) == (15, 7, "UTC")
    assert config.auth_enabled is False and config.read_write is False
    assert load_config({**BASE, "AUTH_PASSWORD": "pw"}).auth_enabled is True
    assert load_config({**BASE, "LOCAL_DOMAINS": "Example.org, example.net"}).local_domains == [
        "example.org",
        "example.net",
    ]
