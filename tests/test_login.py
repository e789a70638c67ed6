"""AUTH_PASSWORD as an argon2/bcrypt hash, the public /login, and an /api/health that tells anonymous
callers only what a load balancer needs (issue 23, "Credentials")."""

from __future__ import annotations

import base64
import subprocess
import sys

import bcrypt
import pytest

from exporter import passwords
from exporter.app import create_app
from exporter.config import ConfigError, load_config
from exporter.store.database import create_pool
from tests.conftest import RO_KEY, make_config

PASSWORD = "correct horse battery staple"
BASE = {"MAILCOW_URL": "https://mail.example.org", "MAILCOW_API_KEY": RO_KEY}
SECRET_URL = "https://monitor:pa55-w0rd@mail.example.org"


def _basic(user: str, password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


def _client(db_url, pool, stored: str, **overrides):
    config = make_config(db_url, SECRET_URL, auth_enabled=True, auth_password=stored, **overrides)
    return create_app(config, pool).test_client()


@pytest.fixture(scope="module")
def argon2_hash() -> str:
    """Made by the command a user runs, from stdin."""
    done = subprocess.run(
        [sys.executable, "-m", "exporter.cli", "hash-password"], input=PASSWORD + "\n", capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    assert PASSWORD not in done.stdout
    return done.stdout.strip()


def test_hash_password_prints_an_argon2id_hash_the_configuration_accepts(argon2_hash):
    assert argon2_hash.startswith("$argon2id$")
    assert load_config({**BASE, "AUTH_PASSWORD": argon2_hash}).auth_enabled is True
    empty = subprocess.run([sys.executable, "-m", "exporter.cli", "hash-password"], input=b"\n", capture_output=True)
    assert empty.returncode == 2 and b"empty" in empty.stderr


@pytest.mark.parametrize("kind", ["argon2", "bcrypt", "plaintext"])
def test_a_hashed_or_plain_password_signs_in_and_a_wrong_one_does_not(db_url, pool, argon2_hash, kind):
    stored = {
        "argon2": argon2_hash,
        "bcrypt": bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(rounds=4)).decode(),
        "plaintext": PASSWORD,
    }[kind]
    client = _client(db_url, pool, stored)
    assert client.get("/api/info", headers=_basic("admin", PASSWORD)).status_code == 200
    assert client.get("/api/info", headers=_basic("admin", PASSWORD + "x")).status_code == 401
    assert client.get("/api/info", headers=_basic("root", PASSWORD)).status_code == 401
    assert client.get("/api/info", headers=_basic("admin", stored)).status_code == 401 or kind == "plaintext"
    assert client.get("/api/info").status_code == 401


def test_a_remembered_verification_never_lets_a_wrong_password_in(db_url, pool, argon2_hash):
    client = _client(db_url, pool, argon2_hash)
    for _ in range(3):  # right (then remembered), wrong, right again, wrong again
        assert client.get("/api/info", headers=_basic("admin", PASSWORD)).status_code == 200
        assert client.get("/api/info", headers=_basic("admin", PASSWORD[:-1])).status_code == 401
        assert client.get("/api/info", headers=_basic("root", PASSWORD)).status_code == 401
    # the cache keeps keyed hashes, never the password itself
    assert not any(PASSWORD.encode() in key for key in passwords._verified)


@pytest.mark.parametrize(
    "value",
    ["$argon2id$v=19$m=65536,t=3,p=4$broken", "$argon2id$", "$2b$12$tooshort", "$2b$xx$" + "a" * 53, "$2y$"],
)
def test_a_malformed_hash_is_refused_at_start(value):
    with pytest.raises(ConfigError, match=r"^AUTH_PASSWORD: looks like an? (argon2|bcrypt) hash but is malformed"):
        load_config({**BASE, "AUTH_PASSWORD": value})


def test_login_is_public_and_tells_how_to_sign_in_without_secrets(db_url, pool, argon2_hash):
    client = _client(db_url, pool, argon2_hash, auth_username="grafana-reader")
    response = client.get("/login")
    assert response.status_code == 200
    body = response.get_json()
    assert (body["auth_enabled"], body["scheme"], body["realm"]) == (True, "Basic", "mailcow-grafana actions")
    page = client.get("/login", headers={"Accept": "text/html,application/xhtml+xml,*/*;q=0.8"})
    assert page.status_code == 200 and page.mimetype == "text/html" and "Sign in" in page.get_data(as_text=True)
    for text in (response.get_data(as_text=True), page.get_data(as_text=True)):
        for secret in ("grafana-reader", "$argon2", PASSWORD, "pa55-w0rd", "mail.example.org"):
            assert secret not in text
    open_app = create_app(make_config(db_url), pool).test_client().get("/login").get_json()
    assert (open_app["auth_enabled"], open_app["scheme"]) == (False, None)


def test_anonymous_health_shows_the_verdict_only(db_url, pool):
    client = _client(db_url, pool, PASSWORD, local_domains=["example.org"])
    anonymous = client.get("/api/health")
    signed_in = client.get("/api/health", headers=_basic("admin", PASSWORD))
    wrong = client.get("/api/health", headers=_basic("admin", "nope"))
    # no worker runs here: degraded, still 200 for the load balancer, either way
    assert anonymous.status_code == signed_in.status_code == wrong.status_code == 200
    assert anonymous.get_json() == wrong.get_json() == {"status": "degraded", "database": "connected"}
    assert "mail.example.org" not in anonymous.get_data(as_text=True)
    full = signed_in.get_json()
    assert full["status"] == "degraded" and full["reasons"]
    assert full["config"]["mailcow_url"] == "https://********@mail.example.org"
    assert {"ingestion", "version", "warnings"} <= set(full)


def test_anonymous_health_keeps_the_503_of_a_dead_database(db_url):
    dead = create_pool("postgresql://nobody@127.0.0.1:1/none", 1)
    try:
        config = make_config(db_url, auth_enabled=True, auth_password=PASSWORD)
        response = create_app(config, dead).test_client().get("/api/health")
    finally:
        dead.close(timeout=0)
    assert response.status_code == 503
    assert response.get_json() == {"status": "unhealthy", "database": "disconnected"}
