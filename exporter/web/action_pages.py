"""Confirmation pages for actions, the target of plain Grafana data links (any Grafana version,
viewers included). `GET /actions/<target>/<action>?items=…` only shows what would happen, to
which items, with a form; the form's POST (same origin, signed single-use token bound to exactly
those items) does it and shows mailcow's answer per item. `?all=1` (queue: `&queue=<name>`) lists
everything currently there, so a bulk action still names each item and the count."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, render_template, request, url_for

from exporter.http import context, origin
from exporter.http.errors import ApiError
from exporter.mailcow.errors import MailcowError, MailcowTimeout
from exporter.readmodels import mailcow_state
from exporter.services import actions
from exporter.services.actions import ActionInputError, ActionRequest
from exporter.web.actions import error_status, refuse, run_action

bp = Blueprint("action_pages", __name__, url_prefix="/actions", template_folder="templates")

DESTRUCTIVE = frozenset({"delete", "super_delete", "learnspam"})


def _page(status: int, title: str, **values: Any) -> Response:
    response = Response(render_template("action.html", title=title, **values), status=status)
    response.headers["Cache-Control"] = "no-store"  # frames and scripts are refused on every page (origin.py)
    return response


def _back_url() -> str | None:
    grafana = context.config().grafana_url
    return f"{grafana}/d/mailcow-queue" if grafana else None


def _error_page(error: ApiError) -> Response:
    body = {"error": error.error, "detail": error.detail, "code": error.code}
    return _page(error.status, "Action not possible", error=body, back_url=_back_url())


def _mailcow_error(exc: MailcowError) -> ApiError:
    status = 504 if isinstance(exc, MailcowTimeout) else 502
    return ApiError(status, "mailcow API error", str(exc), exc.code)


def _current(target: str) -> tuple[dict[str, dict[str, Any]], float]:
    """The items now in mailcow's queue or quarantine, by id, and when they were fetched."""
    if target == "queue":
        items, fetched = context.live().queue()
        return {str(i.get("queue_id", "")).upper(): i for i in items}, fetched
    items, fetched = context.live().quarantine()
    return {str(i.get("id")): i for i in items}, fetched


def _requested_items(target: str, current: dict[str, dict[str, Any]]) -> list[str]:
    if request.args.get("all") in ("1", "true", "yes"):
        queue_name = request.args.get("queue")
        return [
            key
            for key, item in current.items()
            if target != "queue" or not queue_name or item.get("queue_name") == queue_name
        ][: actions.MAX_ITEMS]
    items: list[str] = []
    for value in request.args.getlist("items"):
        items.extend(part.strip() for part in value.split(",") if part.strip())
    return items


@bp.get("/<target>/<action>")
def confirm(target: str, action: str) -> Response:
    """Show what would happen; change nothing."""
    try:
        if action not in actions.ACTIONS.get(target, ()):
            raise ApiError(404, "Not Found", f"no action {action!r} for {target!r}", "UNKNOWN_ACTION")
        if not context.config().read_write:
            raise ApiError(
                403, "Read-only", "actions need a read-write mailcow API key (MAILCOW_API_KEY_RW)", "READ_ONLY"
            )
        current, fetched = _current(target)
        requested = _requested_items(target, current)
        if not requested and request.args.get("all") and not (target == "queue" and action in actions.WHOLE_QUEUE):
            raise ApiError(409, "Nothing to do", f"mailcow's {target} holds no such items now", "NOT_FOUND")
        parsed = actions.parse(target, action, requested or None)
        missing = [i for i in parsed.items if i not in current]
        present = tuple(i for i in parsed.items if i in current)
        if parsed.items and not present:
            raise ApiError(409, "Nothing to do", f"none of these items is in mailcow's {target} now", "NOT_FOUND")
        chosen = ActionRequest(target, parsed.action, present)
    except ActionInputError as exc:
        return _error_page(ApiError(404 if exc.code == "UNKNOWN_ACTION" else 400, "Bad Request", str(exc), exc.code))
    except ApiError as exc:
        return _error_page(exc)
    except MailcowError as exc:
        return _error_page(_mailcow_error(exc))
    headers, rows = mailcow_state.confirmation_table(target, [current[i] for i in chosen.items], fetched)
    noun = "message" if len(chosen.items) == 1 else "messages"
    summary = chosen.describe()
    if chosen.whole_queue:
        button = f"{action.replace('_', ' ').capitalize()} the whole queue ({len(current)} messages)"
    else:
        button = f"{action.capitalize()} {len(chosen.items)} {noun}"
    values = {
        "summary": summary[0].upper() + summary[1:],
        "whole_queue": chosen.whole_queue,
        "queue_size": len(current),
        "target": target,
        "headers": headers,
        "rows": rows,
        "missing": missing,
        "item_ids": list(chosen.items),
        "token": origin.issue_token(target, chosen.action, chosen.items),
        "action_url": url_for("action_pages.perform", target=target, action=action),
        "button": button,
        "destructive": action in DESTRUCTIVE,
    }
    return _page(200, f"Confirm: {action.replace('_', ' ')} ({target})", confirm=values, back_url=_back_url())


def _form_items() -> list[str]:
    return [part.strip() for part in request.form.get("items", "").split(",") if part.strip()]


@bp.errorhandler(origin.CrossSiteRefused)
def _cross_site(exc: origin.CrossSiteRefused) -> Response:
    """The app's guard refused the form (a foreign page posted it): record the attempt, explain."""
    args = request.view_args or {}
    refuse("page", str(args.get("target"))[:40], str(args.get("action")), _form_items(), exc)
    return _error_page(exc)


@bp.post("/<target>/<action>")
@origin.token_form
def perform(target: str, action: str) -> Response:
    """Do it: a form from our own page (the app's guard checks the origin) with an unused token issued
    for exactly these items."""
    items = _form_items()
    try:
        try:
            parsed = actions.parse(target, action, items or None)
            origin.check_token(request.form.get("token"), parsed.target, parsed.action, parsed.items)
        except ActionInputError as exc:
            raise ApiError(400, "Bad Request", str(exc), exc.code) from None
        except ApiError as exc:
            raise refuse("page", target, action, items, exc) from None
        result, row = run_action(parsed, "page")
    except ApiError as exc:
        return _error_page(exc)
    status = error_status(result)
    done = sum(1 for r in result.results if r["ok"])
    if status is not None:
        summary = f"mailcow could not be asked: {result.error}"
    elif parsed.whole_queue:
        summary = f"{action.replace('_', ' ').capitalize()} of the whole queue: {result.results[0]['message']}"
    else:
        summary = f"{done} of {len(result.results)} {'item' if len(result.results) == 1 else 'items'} done"
    values = {
        "success": result.outcome == "success",
        "summary": summary,
        "results": result.results,
        "audit_id": row.id,
    }
    title = f"{action.replace('_', ' ').capitalize()} ({target}): {result.outcome}"
    return _page(status[0] if status else 200, title, result=values, back_url=_back_url())
