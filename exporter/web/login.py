"""`GET /login`, public (seeds 001/002): how to sign in, for a browser (HTML) or a script (JSON).

It names the scheme and the realm and whether auth is on; never the user name or anything secret."""

from __future__ import annotations

from html import escape

from flask import Blueprint, Response, jsonify, request

from exporter.http import context
from exporter.http.auth import REALM

bp = Blueprint("login", __name__)

_HOW = (
    "Send HTTP Basic credentials (AUTH_USERNAME and AUTH_PASSWORD) with every request, "
    "or open a confirmation page from a Grafana link and let the browser ask for them."
)


@bp.get("/login")
def login() -> Response:
    """JSON unless the client prefers HTML (a browser does)."""
    enabled = context.config().auth_enabled
    info = {
        "auth_enabled": enabled,
        "scheme": "Basic" if enabled else None,
        "realm": REALM if enabled else None,
        "how": _HOW if enabled else "Authentication is off: every endpoint answers without credentials.",
    }
    if request.accept_mimetypes.best_match(["application/json", "text/html"]) != "text/html":
        return jsonify(info)
    title = escape(context.config().app_title)
    body = (
        f"<!doctype html><html><head><meta charset='utf-8'><title>Sign in — {title}</title></head>"
        f"<body><h1>Sign in to {title}</h1><p>{escape(info['how'])}</p>"
        f"<p><a href='/'>Back to the start page</a></p></body></html>"
    )
    return Response(body, content_type="text/html; charset=utf-8")
