"""Abuse limits per client address, shared by every process through PostgreSQL (exporter/store/limits.py):
after AUTH_MAX_FAILURES failed sign-ins within AUTH_LOCKOUT_SECONDS an address is refused, right password
or not, for AUTH_LOCKOUT_SECONDS; more than RATE_LIMIT_PER_MINUTE requests in a minute are refused until
the next. Both answer 429 with Retry-After. The address is the peer's, or X-Forwarded-For's right-most
address outside TRUSTED_PROXIES when the peer is one of them (anyone else could forge the header)."""

from __future__ import annotations

import ipaddress
import logging
import math

from flask import Flask, Response, current_app, request

from exporter.config import Config
from exporter.http.errors import error_response
from exporter.store import audit as audit_store
from exporter.store import limits as store
from exporter.store.audit import AuditEvent

log = logging.getLogger(__name__)
Address = ipaddress.IPv4Address | ipaddress.IPv6Address


def _parse(value: str | None) -> Address | None:
    try:
        address = ipaddress.ip_address((value or "").strip())
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        return address.ipv4_mapped
    return address


def client_address(config: Config) -> str:
    """The address the limits count: see the module docstring. An unreadable peer counts as `::`."""
    address = _parse(request.remote_addr)
    if address is None:
        return "::"
    proxies = [ipaddress.ip_network(n) for n in config.trusted_proxies]
    forwarded = ",".join(request.headers.getlist("X-Forwarded-For")).split(",")
    for hop in [address, *(_parse(h) for h in reversed(forwarded))]:
        if hop is None:  # a garbled entry: trust nothing left of it
            break
        address = hop
        if not any(hop in network for network in proxies):
            break
    return str(address)


def _too_many(seconds: float, detail: str) -> Response:
    response = error_response(429, "Too Many Requests", detail, "RATE_LIMITED")
    response.headers["Retry-After"] = str(max(1, math.ceil(seconds)))
    return response


def _locked_out(address: str, seconds: float) -> Response:
    return _too_many(seconds, f"too many failed sign-ins from {address}: blocked for {math.ceil(seconds)} s")


def note_failed_sign_in(config: Config) -> Response | None:
    """Count wrong credentials (a request without any is no sign-in attempt); the 429 when this failure
    blocks the address, else None (the caller answers 401)."""
    if "Authorization" not in request.headers:
        return None
    address = client_address(config)
    pool = current_app.config["MG_POOL"]
    blocked = store.add_failure(pool, address, config.auth_max_failures, config.auth_lockout_seconds)
    if blocked is None:
        return None
    log.warning("%s blocked for %d s after %d failed sign-ins", address, blocked, config.auth_max_failures)
    what = f"address {address} blocked for {math.ceil(blocked)} s"
    detail = f"{config.auth_max_failures} failed sign-ins within {config.auth_lockout_seconds} s"
    audit_store.note(pool, AuditEvent("sign_in_lockout", "system", address, what, "ok", detail))
    return _locked_out(address, blocked)


def install_limits(app: Flask, config: Config, exempt_endpoints: frozenset[str]) -> None:
    """Check both limits before auth runs (so a blocked address meets no password check); the
    `exempt_endpoints` (the health check) are never limited."""

    @app.before_request
    def _limit() -> Response | None:
        if request.endpoint in exempt_endpoints:
            return None
        address = client_address(config)
        pool = current_app.config["MG_POOL"]
        if config.auth_enabled and "Authorization" in request.headers:
            blocked = store.lockout_remaining(pool, address)
            if blocked is not None:
                return _locked_out(address, blocked)
        if config.rate_limit_per_minute:
            hits, left = store.count_request(pool, address)
            if hits > config.rate_limit_per_minute:
                detail = f"more than RATE_LIMIT_PER_MINUTE ({config.rate_limit_per_minute}) requests from {address}"
                return _too_many(left, detail + " this minute")
        return None
