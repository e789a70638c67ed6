"""HTTP Basic auth for every route but the public ones, when AUTH_ENABLED."""

from __future__ import annotations

import base64
import binascii
import hmac

from flask import Flask, Response, request

from exporter.config import Config
from exporter.http.errors import error_response

PUBLIC_ENDPOINTS = frozenset({"api.health"})


def _credentials_ok(config: Config) -> bool:
    header = request.headers.get("Authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "basic" or not value:
        return False
    try:
        user, _, password = base64.b64decode(value, validate=True).decode("utf-8").partition(":")
    except (binascii.Error, UnicodeDecodeError):
        return False
    # Compare both parts, always, in constant time: no early exit that leaks which was wrong.
    user_ok = hmac.compare_digest(user.encode(), config.auth_username.encode())
    password_ok = hmac.compare_digest(password.encode(), (config.auth_password or "").encode())
    return user_ok and password_ok


def install_auth(app: Flask, config: Config, preflight_endpoints: frozenset[str]) -> None:
    """Require credentials before any handler runs (404s included, so routes are not probed); only the
    CORS preflights of `preflight_endpoints` (browsers send them without credentials) are let through."""
    if not config.auth_enabled:
        return

    @app.before_request
    def _require_auth() -> Response | None:
        if request.endpoint in PUBLIC_ENDPOINTS:
            return None
        if request.method == "OPTIONS" and request.endpoint in preflight_endpoints:
            return None  # CORS preflights never carry credentials; they answer headers only
        if _credentials_ok(config):
            return None
        if (request.endpoint or "").startswith("action_pages."):
            # a person followed a Grafana data link: let the browser ask for the password
            response = error_response(401, "Unauthorized", "valid HTTP Basic credentials are required", "AUTH_REQUIRED")
            response.headers["WWW-Authenticate"] = 'Basic realm="mailcow-grafana actions", charset="UTF-8"'
            return response
        # No WWW-Authenticate header: Grafana and scripts send credentials up front, and a
        # browser login popup on a JSON API only invites password typing into the wrong place.
        return error_response(401, "Unauthorized", "valid HTTP Basic credentials are required", "AUTH_REQUIRED")
