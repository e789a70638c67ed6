"""Configuration validation: one clear line and exit code 2 for a bad value."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from exporter.config import VARIABLES, ConfigError, load_config
from exporter.config_values import mask_url

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
        ({"LOG_FORMAT": "xml"}, "LOG_FORMAT"),
        ({"TRUSTED_PROXIES": "10.0.0.1/8"}, "TRUSTED_PROXIES"),
        ({"RATE_LIMIT_PER_MINUTE": "-1"}, "RATE_LIMIT_PER_MINUTE"),
        ({"AUTH_MAX_FAILURES": "0"}, "AUTH_MAX_FAILURES"),
        ({"AUTH_LOCKOUT_SECONDS": "0"}, "AUTH_LOCKOUT_SECONDS"),
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
    limits = load_config(BASE)
    assert (limits.auth_max_failures, limits.auth_lockout_seconds, limits.rate_limit_per_minute) == (10, 900, 600)
    assert load_config({**BASE, "TRUSTED_PROXIES": "10.0.0.0/8, 2001:db8::1"}).trusted_proxies == [
        "10.0.0.0/8",
        "2001:db8::1/128",
    ]
    assert load_config({**BASE, "LOCAL_DOMAINS": "Example.org, example.net"}).local_domains == [
        "example.org",
        "example.net",
    ]


def test_check_config_and_bad_values_mask_url_credentials():
    shown = run_cli("check-config", env={**BASE, "MAILCOW_URL": "https://monitor:pa55-w0rd@mail.example.org"})
    assert shown.returncode == 0, shown.stderr
    assert "MAILCOW_URL=https://********@mail.example.org" in shown.stdout and "pa55-w0rd" not in shown.stdout
    bad = run_cli("check-config", env={**BASE, "MAILCOW_URL": "ftp://monitor:pa55-w0rd@mail.example.org"})
    assert bad.returncode == 2 and "MAILCOW_URL" in bad.stderr and "pa55-w0rd" not in bad.stderr


# Passwords typed unencoded end the authority early (the host lands in the path or fragment), or URLs broken
# otherwise: each must stop the service with one line that shows no part of the password.
MALFORMED_URLS = [
    "https://alice:pa#S3cretpw@mail.example.org",
    "https://alice:pa/S3cretpw@mail.example.org",
    "https://alice:pa?S3cretpw@mail.example.org",
    "http://alice:S3cretpw/x@127.0.0.1:18411",
    "https://alice:S3cretpw@mail.example.org:99999",
    "https://alice:S3cretpw@mail example.org",
    "https://alice:S3cretpw@",
    "https://alice:S3cretpw@[::1",
    "https://alice:S3cretpw",
    "https://alice:S3cretpw@1.2.3.999",
]


@pytest.mark.parametrize("url", MALFORMED_URLS)
def test_check_config_refuses_a_malformed_mailcow_url_without_showing_its_password(url):
    result = run_cli("check-config", env={**BASE, "MAILCOW_URL": url})
    assert result.returncode == 2, result.stdout
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("mailcow-grafana: MAILCOW_URL: ")
    assert "S3cretpw" not in result.stderr + result.stdout


@pytest.mark.parametrize("variable", ["MAILCOW_URL", "GRAFANA_URL", "PUBLIC_URL"])
@pytest.mark.parametrize("url", MALFORMED_URLS)
def test_every_url_setting_refuses_malformed_urls_without_quoting_them(variable, url):
    with pytest.raises(ConfigError, match=f"^{variable}: ") as refused:
        load_config({**BASE, variable: url})
    assert "S3cretpw" not in str(refused.value)


def test_an_unencoded_slash_in_the_password_is_explained_and_encoded_ones_are_accepted():
    with pytest.raises(ConfigError, match="percent-encode"):
        load_config({**BASE, "MAILCOW_URL": "https://alice:pa/ss@mail.example.org"})
    config = load_config({**BASE, "MAILCOW_URL": "https://alice:pa%2Fss%40x@mail.example.org:8443/mailcow"})
    assert config.masked()["mailcow_url"] == "https://********@mail.example.org:8443/mailcow"
    for url in ("https://[2001:db8::1]:8443", "http://mailcow-grafana:8088", "http://127.0.0.1:18411"):
        assert load_config({**BASE, "PUBLIC_URL": url}).public_url == url


@pytest.mark.parametrize("variable", ["GRAFANA_URL", "PUBLIC_URL"])
def test_urls_browsers_are_sent_to_hold_no_credentials(variable):
    """They become links in action pages and datasource answers, where a password would be shown."""
    with pytest.raises(ConfigError, match=f"^{variable}: must not hold a user name or password") as refused:
        load_config({**BASE, variable: "https://viewer:S3cretpw@stats.example.org"})
    assert "S3cretpw" not in str(refused.value)


def test_the_worker_refuses_a_malformed_mailcow_url_at_start_without_logging_its_password(db_url):
    """It crashed with httpx.InvalidURL and a traceback that showed the password, restart after restart."""
    env = {**BASE, "MAILCOW_URL": "http://alice:S3cretpw/x@127.0.0.1:18411", "DATABASE_URL": db_url}
    result = run_cli("worker", env=env)
    assert result.returncode == 2
    assert len(result.stderr.strip().splitlines()) == 1 and "MAILCOW_URL" in result.stderr
    assert "S3cretpw" not in result.stderr + result.stdout


@given(noise=st.text(alphabet="/?#@:%[]. a", max_size=12), host=st.sampled_from(["mail.example.org", "", "[::1"]))
def test_masking_never_shows_what_comes_before_the_last_at(noise, host):
    masked = mask_url(f"https://alice:S3cretpw{noise}@{host}")
    assert "alice" not in masked and "S3cretpw" not in masked
    assert masked == f"https://********@{host}"


@pytest.mark.parametrize("command", ["serve", "run", "demo"])
@pytest.mark.parametrize("bind", ["0.0.0.0", "[::]", "192.0.2.10"])
def test_an_open_service_on_a_reachable_address_refuses_to_start(command, bind):
    # DATABASE_URL points nowhere: a start that got past the check would fail differently, and fast
    env = {**BASE, "DATABASE_URL": "postgresql://nobody@127.0.0.1:9/none", "DATA_DIR": "/nonexistent"}
    result = run_cli(command, "--bind", f"{bind}:18088", env=env)
    assert result.returncode == 2, result.stderr[-2000:]
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("mailcow-grafana: AUTH_PASSWORD: ")
    assert "AUTH_ENABLED=false" in lines[0]


@pytest.mark.parametrize(
    ("host", "starts"),
    [
        ("0.0.0.0", False),
        ("::", False),
        ("192.0.2.10", False),
        ("mail.example.org", False),
        ("127.0.0.1", True),
        ("127.0.0.5", True),
        ("::1", True),
        ("localhost", True),
    ],
)
def test_only_loopback_binds_may_run_without_credentials(host, starts):
    from exporter.serve import web_config

    config = load_config(BASE)
    if starts:
        assert web_config(config, (host, 8088)).served_hosts >= {"localhost", "127.0.0.1", "::1"}
    else:
        with pytest.raises(ConfigError, match=r"^AUTH_PASSWORD: "):
            web_config(config, (host, 8088))
    with_password = web_config(load_config({**BASE, "AUTH_PASSWORD": "pw"}), (host, 8088))
    assert (host in with_password.served_hosts) == (host not in ("0.0.0.0", "::"))  # a bind address is ours


@pytest.mark.parametrize("command", ["serve", "run"])
@pytest.mark.parametrize(
    "published",
    [
        {"PUBLIC_URL": "https://stats.example.org"},
        {"TRUSTED_HOSTS": "stats.example.org"},
        {"TRUSTED_HOSTS": "localhost, 192.0.2.10"},
    ],
)
def test_an_open_service_behind_a_reverse_proxy_refuses_to_start(command, published):
    """Bound to loopback, but PUBLIC_URL or TRUSTED_HOSTS say a proxy publishes it under another name."""
    env = {**BASE, **published, "DATABASE_URL": "postgresql://nobody@127.0.0.1:9/none", "DATA_DIR": "/nonexistent"}
    result = run_cli(command, "--bind", "127.0.0.1:18088", env=env)
    assert result.returncode == 2, result.stderr[-2000:]
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("mailcow-grafana: AUTH_PASSWORD: ")
    assert "AUTH_ENABLED=false" in lines[0] and "PUBLIC_URL or TRUSTED_HOSTS" in lines[0]


@pytest.mark.parametrize(
    ("settings", "starts"),
    [
        ({}, True),  # the demo on loopback
        ({"TRUSTED_HOSTS": "localhost,127.0.0.2,::1"}, True),
        ({"PUBLIC_URL": "http://127.0.0.1:8088"}, True),
        ({"PUBLIC_URL": "https://stats.example.org"}, False),
        ({"TRUSTED_HOSTS": "mailcow-grafana"}, False),
        ({"TRUSTED_HOSTS": "mailcow-grafana", "AUTH_PASSWORD": "pw"}, True),
        ({"PUBLIC_URL": "https://stats.example.org", "AUTH_ENABLED": "false"}, True),
    ],
)
def test_a_published_loopback_service_needs_credentials_or_an_explicit_opt_out(settings, starts):
    from exporter.serve import web_config

    config = load_config({**BASE, **settings})
    if starts:
        assert "127.0.0.1" in web_config(config, ("127.0.0.1", 8088)).served_hosts
    else:
        with pytest.raises(ConfigError, match=r"^AUTH_PASSWORD: "):
            web_config(config, ("127.0.0.1", 8088))


def test_trusted_hosts_are_host_names_or_addresses():
    config = load_config({**BASE, "TRUSTED_HOSTS": "Mailcow-Grafana, [2001:db8::5], stats.example.org."})
    assert config.trusted_hosts == ["mailcow-grafana", "2001:db8::5", "stats.example.org"]
    assert load_config({**BASE, "AUTH_ENABLED": "false"}).auth_opt_out is True
    assert load_config(BASE).auth_opt_out is False
    for bad in ("http://stats.example.org", "stats.example.org:8088", "a/b", "*"):
        with pytest.raises(ConfigError, match=r"^TRUSTED_HOSTS: "):
            load_config({**BASE, "TRUSTED_HOSTS": bad})


def test_auth_switched_off_on_purpose_starts_on_any_address_and_warns(db_url):
    import time

    import httpx

    from tests.prometheus import free_port

    port = free_port()
    env = {**BASE, "AUTH_ENABLED": "false", "DATABASE_URL": db_url}
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("MAILCOW_", "AUTH_", "DATABASE_"))}
    proc = subprocess.Popen(
        [sys.executable, "-m", "exporter.cli", "serve", "--bind", f"0.0.0.0:{port}", "--workers", "1"],
        env={**clean, **env},
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline, health = time.monotonic() + 60, None
        while time.monotonic() < deadline and health is None:
            try:
                health = httpx.get(f"http://127.0.0.1:{port}/api/health", timeout=2).json()
            except httpx.HTTPError:
                time.sleep(0.3)
        assert health and "AUTH_ENABLED=false" in health["warnings"][0]
    finally:
        proc.terminate()
        stderr = proc.communicate(timeout=30)[1]
    assert "WARNING" in stderr and "authentication is off (AUTH_ENABLED=false)" in stderr


def _documented_variables() -> set[str]:
    """The variables the README's Configuration table names; `_SUFFIX` after a full name shares its prefix
    (`FETCH_COUNT_POSTFIX` / `_RSPAMD`), so every prefix of the row's first name is tried."""
    readme = (Path(__file__).parent.parent / "README.md").read_text()
    section = readme.split("\n## Configuration\n", 1)[1].split("\n## ", 1)[0]
    names: set[str] = set()
    for row in section.splitlines():
        if not row.startswith("| `"):
            continue
        first, *rest = re.findall(r"`([A-Z_]+)`", row.split("|")[1])
        names.add(first)
        for name in rest:
            cuts = [i for i, char in enumerate(first) if char == "_"]
            names |= {first[:i] + name for i in cuts} if name.startswith("_") else {name}
    return names


def test_the_readme_documents_every_variable():
    """The settings are declared once (exporter/config.py); the README's table must not lag behind."""
    assert sorted(VARIABLES - _documented_variables()) == []
