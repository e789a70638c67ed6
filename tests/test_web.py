"""The web skeleton: health/info shapes, JSON errors everywhere, and auth on every route."""

from __future__ import annotations

import base64
import re

import pytest

from exporter.web.app import create_app
from tests.conftest import make_config

PASSWORD = "s3cret-pass"


def _basic(user: str, password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


@pytest.fixture
def app(db_url, pool):
    return create_app(make_config(db_url), pool)


@pytest.fixture
def secured(db_url, pool):
    return create_app(make_config(db_url, auth_enabled=True, auth_password=PASSWORD), pool)


def test_health_reports_database_and_config(app):
    response = app.test_client().get("/api/health")
    assert response.status_code == 200
    body = response.get_json()
    assert body["status"] == "healthy" and body["database"] == "connected"
    assert set(body["config"]) == {
        "fetch_interval",
        "retention_days",
        "mailcow_url",
        "blacklist_enabled",
        "auth_enabled",
    }


def test_health_is_503_when_the_database_is_down(db_url):
    from exporter.database import create_pool

    dead = create_pool("postgresql://nobody@127.0.0.1:1/none", 1)
    try:
        response = create_app(make_config(db_url), dead).test_client().get("/api/health")
    finally:
        dead.close(timeout=0)
    assert response.status_code == 503
    assert response.get_json()["database"] == "disconnected"


def test_info_shape_never_leaks_secrets(app):
    body = app.test_client().get("/api/info").get_json()
    for key in (
        "name",
        "version",
        "mailcow_url",
        "local_domains",
        "fetch_interval",
        "retention_days",
        "timezone",
        "app_title",
        "app_logo_url",
        "blacklist_count",
        "auth_enabled",
    ):
        assert key in body, key
    text = str(body)
    assert "A1B2C3" not in text and "F6E5D4" not in text


@pytest.mark.parametrize(
    ("method", "path", "status", "code"),
    [
        ("GET", "/no/such/page", 404, "NOT_FOUND"),
        ("POST", "/api/health", 405, "METHOD_NOT_ALLOWED"),
    ],
)
def test_errors_are_json(app, method, path, status, code):
    response = app.test_client().open(path, method=method)
    assert response.status_code == status
    assert response.is_json and response.get_json()["code"] == code
    assert set(response.get_json()) == {"error", "detail", "code"}


def test_unexpected_exceptions_are_json_500(db_url, pool):
    app = create_app(make_config(db_url), pool)

    @app.get("/api/boom")
    def boom():
        raise RuntimeError("secret internals")

    response = app.test_client().get("/api/boom")
    assert response.status_code == 500
    body = response.get_json()
    assert body["code"] == "INTERNAL_ERROR" and "secret internals" not in body["detail"]


def _concrete(rule) -> str:
    return re.sub(r"<(?:[^:>]+:)?([^>]+)>", "x", rule.rule)


def test_every_route_but_health_needs_credentials(secured):
    client = secured.test_client()
    checked = 0
    for rule in secured.url_map.iter_rules():
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
            response = client.open(_concrete(rule), method=method)
            if rule.endpoint == "api.health":
                assert response.status_code == 200
                continue
            assert response.status_code == 401, (rule.rule, method)
            assert response.get_json()["code"] == "AUTH_REQUIRED"
            # only the confirmation pages (opened by a person from a Grafana link) ask the browser to log in
            asks = rule.endpoint.startswith("action_pages.")
            assert ("WWW-Authenticate" in response.headers) == asks, rule.rule
            checked += 1
    assert checked >= 1
    assert client.get("/not/a/route").status_code == 401


def test_credentials_are_checked(secured):
    client = secured.test_client()
    assert client.get("/api/info", headers=_basic("admin", PASSWORD)).status_code == 200
    assert client.get("/api/info", headers=_basic("admin", "wrong")).status_code == 401
    assert client.get("/api/info", headers=_basic("root", PASSWORD)).status_code == 401
    assert client.get("/api/info", headers={"Authorization": "Basic !!!"}).status_code == 401


def test_security_headers_on_json_html_and_error_responses(db_url, pool):
    client = create_app(make_config(db_url), pool).test_client()
    responses = {
        "json": client.get("/api/info"),
        "html": client.get("/"),
        "action page": client.get("/actions/queue/hold?items=ABCDE12345"),  # mailcow down: an HTML error page
        "metrics": client.get("/metrics"),
        "not found": client.get("/no/such/page"),
        "bad method": client.post("/api/health"),
        "foreign host": client.get("/api/info", headers={"Host": "evil.example"}),
    }
    assert responses["html"].mimetype == responses["action page"].mimetype == "text/html"
    assert responses["foreign host"].status_code == 400
    for name, response in responses.items():
        assert response.headers["X-Content-Type-Options"] == "nosniff", name
        assert response.headers["Referrer-Policy"] == "same-origin", name
        assert "frame-ancestors 'none'" in response.headers["Content-Security-Policy"], name


SECRET_URL = "https://monitor:pa55-w0rd@mail.example.org"


def test_mailcow_url_credentials_are_masked_everywhere(db_url, pool, caplog):
    client = create_app(make_config(db_url, SECRET_URL), pool).test_client()
    caplog.set_level("DEBUG")
    shown = {
        "health": client.get("/api/health").get_json()["config"]["mailcow_url"],
        "info": client.get("/api/info").get_json()["mailcow_url"],
        "settings": client.get("/api/settings/info").get_json()["configuration"]["mailcow_url"],
    }
    assert shown == dict.fromkeys(shown, "https://********@mail.example.org")
    assert "pa55-w0rd" not in caplog.text


def test_auth_switched_off_on_purpose_is_a_health_warning(db_url, pool):
    quiet = create_app(make_config(db_url), pool).test_client().get("/api/health").get_json()
    assert quiet["warnings"] == []
    config = make_config(db_url, auth_enabled=False, auth_opt_out=True)
    body = create_app(config, pool).test_client().get("/api/health").get_json()
    assert body["status"] == "healthy" and "AUTH_ENABLED=false" in body["warnings"][0]
