"""Queue and quarantine actions as a JSON API (bodies as the existing viewer takes them), the
audit log, and `run_action`, which the confirmation pages share.

Cross-site defence: a JSON body is required (an HTML form cannot send one, and a cross-origin
script must pass a CORS preflight that only GRAFANA_URL's origin gets), and the app's cross-site
guard (`origin.require_same_site`) refuses browser requests from any other origin; refusals are
audited here. HTTP Basic auth applies when enabled (Grafana's Infinity datasource sends it
server-side for Infinity actions).
"""

from __future__ import annotations

import json
import logging
from typing import Any

from flask import Blueprint, Response, jsonify, request

from exporter.http import context, origin
from exporter.http.audit_trail import actor
from exporter.http.errors import ApiError, error_response
from exporter.http.limits import client_address
from exporter.http.params import AuditParams, parse
from exporter.mailcow.errors import MailcowForbidden, MailcowTimeout
from exporter.readmodels import actions as answers
from exporter.readmodels.format import page_body
from exporter.services import actions
from exporter.services.actions import ActionInputError, ActionRequest, ActionResult
from exporter.store import audit as audit_store
from exporter.store.audit import AuditEntry, AuditFilter, AuditRecord

bp = Blueprint("actions", __name__, url_prefix="/api")
audit_log = logging.getLogger("mailcow_grafana.audit")

ROUTES = {  # JSON API path -> (target, fixed action or None when the body names it)
    "/quarantine/release": ("quarantine", "release"),
    "/quarantine/delete": ("quarantine", "delete"),
    "/quarantine/learnham": ("quarantine", "learnham"),
    "/quarantine/learnspam": ("quarantine", "learnspam"),
    "/queue/action": ("queue", None),
    "/queue/delete": ("queue", "delete"),
}


def _endpoint(path: str) -> str:
    return path.strip("/").replace("/", "_")


# the routes whose CORS preflights auth lets through (browsers send them without credentials)
PREFLIGHT_ENDPOINTS = frozenset(f"{bp.name}.{_endpoint(path)}" for path in ROUTES)


def _via() -> str:
    if request.headers.get("X-Grafana-Action"):
        return "grafana-action"  # a panel action sent by the browser
    if request.user_agent.string.startswith("Grafana"):
        return "grafana-server"  # an Infinity action: Grafana's server with the datasource's credentials
    return "api"


def _audit(via: str, target: str, action: str, items: list[str], outcome: str, **extra: Any) -> AuditRecord:
    """Store the attempt and write it as one JSON line to the service log."""
    entry = AuditEntry(
        actor=actor(),
        via=via,
        target=target,
        action=action,
        metric_action=actions.metric_action(target, action),
        items=items,
        outcome=outcome,
        remote_addr=client_address(context.config()),
        origin=request.headers.get("Origin"),
        grafana_user=request.headers.get("X-Grafana-User"),
        **extra,
    )
    row = audit_store.record(context.pool(), entry)
    audit_log.info(json.dumps(answers.audit_row(row), separators=(",", ":")))
    return row


def refuse(via: str, target: str, action: str, items: Any, error: ApiError) -> ApiError:
    """Record a refused attempt; return the error to raise."""
    shown = [str(i)[:64] for i in items[: actions.MAX_ITEMS]] if isinstance(items, list) else []
    _audit(via, target, str(action)[:40], shown, "refused", code=error.code, detail=error.detail)
    return error


def run_action(request_: ActionRequest, via: str) -> tuple[ActionResult, AuditRecord]:
    """Do it against mailcow (read-write key required), audit it, and drop the cached lists."""
    if not context.config().read_write:
        raise refuse(
            via,
            request_.target,
            request_.action,
            list(request_.items),
            ApiError(
                403,
                "Read-only",
                "actions need a read-write mailcow API key; set MAILCOW_API_KEY_RW (GET /api/rw-status)",
                "READ_ONLY",
            ),
        )
    live = context.live()
    result = actions.perform(live.client, request_)
    live.invalidate("queue", "quarantine")
    error = result.error
    row = _audit(
        via,
        request_.target,
        request_.action,
        list(request_.items),
        result.outcome,
        code=error.code if error else None,
        detail=str(error) if error else None,
        results=result.results,
    )
    return result, row


def error_status(result: ActionResult) -> tuple[int, str, str] | None:
    """HTTP status, error and code when mailcow could not be asked or refused us as a whole."""
    error = result.error
    if error is None:
        return None
    if isinstance(error, MailcowForbidden):
        return 403, "mailcow refused the write", "MAILCOW_KEY_READ_ONLY"
    if isinstance(error, MailcowTimeout):
        return 504, "mailcow API timeout", error.code
    return 502, "mailcow API error", error.code


def _json_action(target: str, fixed: str | None) -> Response:
    via = _via()
    body = request.get_json(silent=True) if request.is_json else None
    if not isinstance(body, dict):
        raise refuse(
            via,
            target,
            fixed or "?",
            [],
            ApiError(
                400 if request.is_json else 415,
                "Bad Request" if request.is_json else "Unsupported Media Type",
                'send a JSON object body with Content-Type: application/json, e.g. {"items": ["…"]}',
                "JSON_BODY_REQUIRED",
            ),
        )
    action = fixed or body.get("action")
    try:
        action_request = actions.parse(target, action, body.get("items"))
    except ActionInputError as exc:
        raise refuse(
            via, target, str(action), body.get("items"), ApiError(400, "Bad Request", str(exc), exc.code)
        ) from None
    result, row = run_action(action_request, via)
    status = error_status(result)
    if status is not None:
        code, error, error_code = status
        response = jsonify(answers.failed(result, row.id, error, error_code))
        response.status_code = code
        return response
    return jsonify(answers.done(result, row.id))


def _register(path: str, target: str, fixed: str | None) -> None:
    def view() -> Response:
        if request.method == "OPTIONS":
            return Response(status=204)  # the CORS preflight; add_cors decides what it allows
        return _json_action(target, fixed)

    bp.add_url_rule(path, _endpoint(path), view, methods=["POST", "OPTIONS"])


for _path, (_target, _fixed) in ROUTES.items():
    _register(_path, _target, _fixed)


@bp.errorhandler(origin.CrossSiteRefused)
def _cross_site(exc: origin.CrossSiteRefused) -> Response:
    """The app's guard refused a browser request: record the attempt like any other refusal."""
    target, fixed = ROUTES[request.path.removeprefix("/api")]
    refuse(_via(), target, fixed or "?", [], exc)
    return error_response(exc.status, exc.error, exc.detail, exc.code)


@bp.after_request
def _cors(response: Response) -> Response:
    if request.path.removeprefix("/api") in ROUTES:
        return origin.add_cors(response)
    return response


@bp.get("/audit-log")
def audit() -> Response:
    """Audited changes, newest first; filters kind (one or several), actor, start_date/end_date, and for
    actions target, action, outcome."""
    args = parse(AuditParams())
    wanted = AuditFilter(
        {k: args[k] for k in ("target", "action", "outcome", "actor") if args.get(k)},
        args["kind"] or (),
        args["start_date"],
        args["end_date"],
    )
    total, rows = audit_store.page(context.pool(), wanted, (args["page"] - 1) * args["limit"], args["limit"])
    return jsonify(page_body(total, args["page"], args["limit"], [answers.audit_row(r) for r in rows]))
