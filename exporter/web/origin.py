"""Who may ask for an action from where: CORS for Grafana's origin only, Origin/Referer checks,
and the signed tokens that tie a confirmation page's form to the exact items it showed."""

from __future__ import annotations

from urllib.parse import urlparse

from flask import Response, current_app, request
from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer

from exporter.store import audit as audit_store
from exporter.web import context
from exporter.web.errors import ApiError

TOKEN_MAX_AGE = 15 * 60  # seconds a confirmation page stays valid
CORS_HEADERS = "content-type, x-grafana-action, x-grafana-org-id, x-grafana-device-id, authorization"


def origin_of(url: str | None) -> str | None:
    if not url:
        return None
    parsed = urlparse(url)
    return f"{parsed.scheme}://{parsed.netloc}".lower() if parsed.scheme and parsed.netloc else None


def own_origin() -> str:
    return f"{request.scheme}://{request.host}".lower()


def grafana_origin() -> str | None:
    return origin_of(context.config().grafana_url)


def _caller_origin() -> str | None:
    """The page a browser request comes from: Origin, else the Referer's origin; None from scripts."""
    origin = request.headers.get("Origin")
    if origin and origin != "null":
        return origin.lower()
    if origin == "null":
        return "null"  # sandboxed frames and some redirects: never trusted
    return origin_of(request.headers.get("Referer"))


def require_same_site(allow_grafana: bool) -> None:
    """Refuse a browser request sent from a foreign page (403 ORIGIN_REFUSED)."""
    caller = _caller_origin()
    if caller is None:
        return  # not a browser (Grafana's server, curl): nothing cross-site to defend against
    allowed = {own_origin(), origin_of(context.config().public_url)}
    if allow_grafana:
        allowed.add(grafana_origin())
    if caller not in allowed:
        raise ApiError(403, "Forbidden", f"requests from {caller} may not change anything here", "ORIGIN_REFUSED")


def add_cors(response: Response) -> Response:
    """Let Grafana's origin (GRAFANA_URL) read action answers; no other origin gets CORS headers."""
    grafana = grafana_origin()
    if grafana and request.headers.get("Origin", "").lower() == grafana:
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
    return _serializer().dumps([target, action, list(items)])


def check_token(token: str | None, target: str, action: str, items: tuple[str, ...]) -> None:
    """The form must carry a fresh token issued for exactly this action on exactly these items."""
    if not token:
        raise ApiError(403, "Forbidden", "the confirmation token is missing; open the action page again", "CSRF_FAILED")
    try:
        signed = _serializer().loads(token, max_age=TOKEN_MAX_AGE)
    except SignatureExpired:
        raise ApiError(
            403, "Forbidden", "the confirmation page has expired; open the action page again", "CSRF_EXPIRED"
        ) from None
    except BadSignature:
        raise ApiError(403, "Forbidden", "the confirmation token is not valid", "CSRF_FAILED") from None
    if signed != [target, action, list(items)]:
        raise ApiError(
            403, "Forbidden", "the confirmation token was issued for a different action or items", "CSRF_FAILED"
        )
