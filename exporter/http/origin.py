"""Who may ask for a change from where: the Host names we serve, one cross-site guard for every
state-changing request, CORS for Grafana's origin only, the security headers, and the single-use
signed tokens that tie a confirmation page's form to the exact items it showed.

Our origins come from the configuration: PUBLIC_URL, and the request's own scheme and Host once
the Host is known to be one we serve (loopback, PUBLIC_URL's host, TRUSTED_HOSTS, the bind
address). X-Forwarded-Host is never read, so a DNS-rebinding page, which reaches us under its
own name, is refused before anything runs."""

from __future__ import annotations

import secrets
from collections.abc import Callable
from datetime import UTC, timedelta
from typing import Any
from urllib.parse import urlsplit

from flask import Flask, Response, current_app, request
from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer

from exporter.config_values import host_name
from exporter.http import context
from exporter.http.auth import PUBLIC_ENDPOINTS
from exporter.http.errors import ApiError, error_response
from exporter.store import audit as audit_store

TOKEN_MAX_AGE = 15 * 60  # seconds a confirmation page stays valid
CORS_HEADERS = "content-type, x-grafana-action, x-grafana-org-id, x-grafana-device-id, authorization"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
# Headers browsers add on their own (a page may suppress Referer, never all of them): any of them marks
# a request as sent by a web page. Scripts (curl, Grafana's server) send none; authentication decides.
BROWSER_HEADERS = (
    "Origin",
    "Referer",
    "Sec-Fetch-Site",
    "Sec-Fetch-Mode",
    "Sec-Fetch-Dest",
    "Upgrade-Insecure-Requests",
)
SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "X-Frame-Options": "DENY",
    # the confirmation pages use inline styles and post to themselves; nothing else loads anything
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    ),
}
_DEFAULT_PORTS = {"http": 80, "https": 443}
_TOKEN_FORM = "mg_checks_token"


class CrossSiteRefused(ApiError):
    """A browser request from a page that may not change anything here (403); blueprints that keep an
    audit log handle it to record the attempt."""


def origin_of(url: str | None) -> str | None:
    """scheme://host[:port] of a URL, normalised as browsers send Origin (no default port, no userinfo)."""
    if not url:
        return None
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return None
    if parts.scheme not in _DEFAULT_PORTS or not parts.hostname:
        return None  # "null" (sandboxed frames, some redirects) and anything unparsable: never ours
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    return f"{parts.scheme}://{host}" + (f":{port}" if port and port != _DEFAULT_PORTS[parts.scheme] else "")


def own_origins() -> set[str]:
    """PUBLIC_URL's origin and this request's own (its Host is one we serve: checked first)."""
    return {o for o in (origin_of(request.host_url), origin_of(context.config().public_url)) if o}


def grafana_origin() -> str | None:
    return origin_of(context.config().grafana_url)


def _served_host() -> bool:
    try:
        name = urlsplit(f"//{request.host}").hostname if request.host else None
    except ValueError:  # a malformed IPv6 literal
        return False
    return name is not None and host_name(name) in context.config().served_hosts


def install_host_check(app: Flask) -> None:
    """Answer only to Host names we serve, before authentication and every handler; a request without a
    Host header (HTTP/1.0) names none, whatever address the server fills in. /api/health is exempt: load
    balancers probe it by address, and it shows nothing secret."""

    @app.before_request
    def _check_host() -> Response | None:
        if request.endpoint in PUBLIC_ENDPOINTS:
            return None
        if "HTTP_HOST" not in request.environ:
            detail = "this service answers only requests that name it in a Host header"
        elif not _served_host():
            detail = f"this service does not answer to the host name {request.host!r}; add it to TRUSTED_HOSTS"
        else:
            return None
        return error_response(400, "Bad Request", detail, "HOST_NOT_TRUSTED")


def _caller_origin() -> str | None:
    """The page a browser request comes from: Origin, else the Referer's origin, else this service when
    the browser says the request is same-origin; None when it cannot be told."""
    if "Origin" in request.headers:
        return origin_of(request.headers["Origin"])
    if "Referer" in request.headers:
        return origin_of(request.headers["Referer"])
    if request.headers.get("Sec-Fetch-Site") == "same-origin":
        return origin_of(request.host_url)  # Grafana's data proxy drops Origin and Referer but keeps this
    return None


def require_same_site(token_form: bool) -> None:
    """Refuse a browser request that does not come from our pages (or Grafana's, for the JSON API) or that
    carries a form: a page may send only JSON (which needs a CORS preflight cross-origin), or post a
    confirmation page's form with its signed token (`token_form` views check it)."""
    if not any(name in request.headers for name in BROWSER_HEADERS):
        return  # a script: nothing cross-site to defend against; authentication decides
    caller = _caller_origin()
    allowed = own_origins()
    if not token_form and (grafana := grafana_origin()):
        allowed.add(grafana)  # fetch panel actions: Grafana's pages call the JSON API
    if caller is None or caller not in allowed:
        sender = f"requests from {caller}" if caller else "browser requests that do not say which page sent them"
        raise CrossSiteRefused(403, "Forbidden", f"{sender} may not change anything here", "ORIGIN_REFUSED")
    if not token_form and not request.is_json:
        raise CrossSiteRefused(
            403,
            "Forbidden",
            "a web page may only send JSON here (Content-Type: application/json); scripts that send no browser "
            "headers may post forms and files, e.g. curl -F file=@report.xml",
            "BROWSER_FORM_REFUSED",
        )


def token_form(view: Callable[..., Any]) -> Callable[..., Any]:
    """Mark a view that takes a browser form because it checks the form's signed token itself."""
    setattr(view, _TOKEN_FORM, True)
    return view


def install_cross_site_defence(app: Flask) -> None:
    """One guard for every state-changing request, so a route added later is covered; security headers on
    every response (JSON, HTML pages and errors alike)."""

    @app.before_request
    def _guard() -> None:
        view = app.view_functions.get(request.endpoint or "")
        if request.method not in SAFE_METHODS and view is not None:
            require_same_site(token_form=getattr(view, _TOKEN_FORM, False))

    @app.after_request
    def _headers(response: Response) -> Response:
        for name, value in SECURITY_HEADERS.items():
            response.headers.setdefault(name, value)
        return response


def add_cors(response: Response) -> Response:
    """Let Grafana's origin (GRAFANA_URL) read action answers; no other origin gets CORS headers."""
    grafana = grafana_origin()
    if grafana and origin_of(request.headers.get("Origin")) == grafana:
        response.headers["Access-Control-Allow-Origin"] = request.headers["Origin"]
        response.headers["Access-Control-Allow-Methods"] = "POST, OPTIONS"
        response.headers["Access-Control-Allow-Headers"] = CORS_HEADERS
        response.headers["Access-Control-Max-Age"] = "600"
    response.headers.add("Vary", "Origin")
    return response


def _serializer() -> URLSafeTimedSerializer:
    key = current_app.config.get("MG_TOKEN_KEY")
    if key is None:
        key = context.config().secret_key or audit_store.secret(context.pool(), "action_token_key")
        current_app.config["MG_TOKEN_KEY"] = key
    return URLSafeTimedSerializer(key, salt="mailcow-grafana/action-confirmation")


def issue_token(target: str, action: str, items: tuple[str, ...]) -> str:
    """A token for this action on these items, with a random nonce that `check_token` spends."""
    return _serializer().dumps([target, action, list(items), secrets.token_urlsafe(16)])


def check_token(token: str | None, target: str, action: str, items: tuple[str, ...]) -> None:
    """The form must carry a fresh, unused token issued for exactly this action on exactly these items.
    Using it spends it in PostgreSQL, so a replay fails in every process and replica."""
    if not token:
        raise ApiError(403, "Forbidden", "the confirmation token is missing; open the action page again", "CSRF_FAILED")
    try:
        signed, issued = _serializer().loads(token, max_age=TOKEN_MAX_AGE, return_timestamp=True)
    except SignatureExpired:
        raise ApiError(
            403, "Forbidden", "the confirmation page has expired; open the action page again", "CSRF_EXPIRED"
        ) from None
    except BadSignature:
        raise ApiError(403, "Forbidden", "the confirmation token is not valid", "CSRF_FAILED") from None
    if not isinstance(signed, list) or signed[:3] != [target, action, list(items)] or len(signed) != 4:
        raise ApiError(
            403, "Forbidden", "the confirmation token was issued for a different action or items", "CSRF_FAILED"
        )
    expires = issued.astimezone(UTC) + timedelta(seconds=TOKEN_MAX_AGE)
    if not audit_store.spend_token(context.pool(), str(signed[3]), expires):
        raise ApiError(
            403, "Forbidden", "this confirmation page was already used; open the action page again", "CSRF_REUSED"
        )
