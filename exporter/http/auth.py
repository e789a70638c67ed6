"""HTTP Basic auth for every route but the public ones, when AUTH_ENABLED; an address allowlist for the
routes clients reach without credentials (Loki's live tail: Grafana dials it without any)."""

from __future__ import annotations

import base64
import binascii
import ipaddress
from urllib.parse import urlsplit

from flask import Flask, Response, request

from exporter import passwords
from exporter.config import Config
from exporter.http.errors import error_response
from exporter.http.limits import note_failed_sign_in

PUBLIC_ENDPOINTS = frozenset({"api.health", "login.login"})
# Open to clients in LOKI_TAIL_ALLOWED_NETWORKS, or with valid credentials, whatever AUTH_ENABLED says.
ADDRESS_ENDPOINTS = frozenset({"loki.tail"})
REALM = "mailcow-grafana actions"  # of the Basic challenge; /login names it


def _credentials_ok(config: Config) -> bool:
    header = request.headers.get("Authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "basic" or not value:
        return False
    try:
        user, _, password = base64.b64decode(value, validate=True).decode("utf-8").partition(":")
    except (binascii.Error, UnicodeDecodeError):
        return False
    # Both parts, always: no early exit that leaks which was wrong (a hashed password: see exporter.passwords).
    return passwords.credentials_ok(user, password, config.auth_username, config.auth_password)


def signed_in(config: Config) -> bool:
    """Whether this request may see what anonymous callers may not: auth is off, or it carries valid
    credentials. A request without an Authorization header is not checked (and is no failed sign-in)."""
    if not config.auth_enabled:
        return True
    return "Authorization" in request.headers and _credentials_ok(config)


def client_allowed(config: Config) -> bool:
    """Whether the peer's address is in LOKI_TAIL_ALLOWED_NETWORKS (an IPv4-mapped IPv6 address as IPv4)."""
    try:
        address = ipaddress.ip_address(request.remote_addr or "")
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        address = address.ipv4_mapped
    return any(address in ipaddress.ip_network(n) for n in config.loki_tail_allowed_networks)


def _address_or_credentials(config: Config) -> Response | None:
    """The guard of ADDRESS_ENDPOINTS. A page of another site is refused even from an allowed address or
    with credentials: browsers open websockets cross-site and send cached Basic credentials along."""
    origin = request.headers.get("Origin")
    if origin is not None and urlsplit(origin).netloc.lower() != request.host.lower():
        return error_response(403, "Forbidden", "a page of another site may not open the live tail", "CROSS_SITE")
    if (config.auth_enabled and _credentials_ok(config)) or client_allowed(config):
        return None
    detail = (
        f"the live tail answers clients in LOKI_TAIL_ALLOWED_NETWORKS ({', '.join(config.loki_tail_allowed_networks)})"
        f" or with valid credentials; {request.remote_addr} is in none of them"
    )
    return error_response(403, "Forbidden", detail, "TAIL_NOT_ALLOWED")


def install_auth(app: Flask, config: Config, preflight_endpoints: frozenset[str]) -> None:
    """Require credentials before any handler runs (404s included, so routes are not probed); only the
    CORS preflights of `preflight_endpoints` (browsers send them without credentials) are let through.
    ADDRESS_ENDPOINTS are guarded by `_address_or_credentials` instead, even when AUTH_ENABLED is off."""

    @app.before_request
    def _require_auth() -> Response | None:
        if request.endpoint in ADDRESS_ENDPOINTS:
            return _address_or_credentials(config)
        if not config.auth_enabled:
            return None
        if request.endpoint in PUBLIC_ENDPOINTS:
            return None
        if request.method == "OPTIONS" and request.endpoint in preflight_endpoints:
            return None  # CORS preflights never carry credentials; they answer headers only
        if _credentials_ok(config):
            return None
        blocked = note_failed_sign_in(config)  # the 429 when this failure blocks the address
        if blocked is not None:
            return blocked
        if (request.endpoint or "").startswith("action_pages."):
            # a person followed a Grafana data link: let the browser ask for the password
            response = error_response(401, "Unauthorized", "valid HTTP Basic credentials are required", "AUTH_REQUIRED")
            response.headers["WWW-Authenticate"] = f'Basic realm="{REALM}", charset="UTF-8"'
            return response
        # No WWW-Authenticate header: Grafana and scripts send credentials up front, and a
        # browser login popup on a JSON API only invites password typing into the wrong place.
        return error_response(401, "Unauthorized", "valid HTTP Basic credentials are required", "AUTH_REQUIRED")
