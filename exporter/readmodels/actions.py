"""Queue and quarantine actions: the answer to an action (what was asked, mailcow's answer per item,
the audit entry) and the audit log's rows."""

from __future__ import annotations

from typing import Any

from exporter.readmodels.format import iso
from exporter.services.actions import ActionResult
from exporter.store.audit import AuditRecord


def audit_row(row: AuditRecord) -> dict[str, Any]:
    """A stored attempt, as the audit log endpoint and the service log show it."""
    return {
        "id": row.id,
        "at": iso(row.at),
        "kind": row.kind,
        "what": row.what,
        "actor": row.actor,
        "grafana_user": row.grafana_user,
        "remote_addr": row.remote_addr,
        "origin": row.origin,
        "via": row.via,
        "target": row.target,
        "action": row.action,
        "items": row.items,
        "outcome": row.outcome,
        "code": row.code,
        "detail": row.detail,
        "results": row.results,
    }


def _result(result: ActionResult) -> dict[str, Any]:
    return {
        "target": result.request.target,
        "action": result.request.action,
        "items": list(result.request.items),
        "whole_queue": result.request.whole_queue,
        "outcome": result.outcome,
        "success": result.outcome == "success",
        "results": result.results,
        "mailcow": result.mailcow,
    }


def done(result: ActionResult, audit_id: int) -> dict[str, Any]:
    """The answer when mailcow was asked (each item's outcome in `results`)."""
    return {**_result(result), "audit_id": audit_id}


def failed(result: ActionResult, audit_id: int, error: str, code: str) -> dict[str, Any]:
    """The answer when mailcow could not be asked or refused the request as a whole."""
    return {"error": error, "detail": str(result.error), "code": code, "audit_id": audit_id, **_result(result)}
