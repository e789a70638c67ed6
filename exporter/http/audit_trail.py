"""Audit entries for the state changes a person triggers besides queue and quarantine actions (DMARC
uploads, DNS checks, IMAP syncs): who (the HTTP Basic user), from which client address (as the abuse
limits see it, TRUSTED_PROXIES honoured), what and how it ended, written in the same request."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from flask import request

from exporter.http import context
from exporter.http.errors import ApiError
from exporter.http.limits import client_address
from exporter.parsers.dmarc.containers import printable
from exporter.store import audit as audit_store
from exporter.store.audit import AuditEvent

audit_log = logging.getLogger("mailcow_grafana.audit")


def actor() -> str:
    """The signed-in HTTP Basic user, or `anonymous` when auth is off (or no name was sent)."""
    if context.config().auth_enabled and request.authorization and request.authorization.username:
        return request.authorization.username[:200]
    return "anonymous"


def _note(kind: str, what: str, outcome: str, detail: str | None) -> None:
    """Store it (control characters, NUL among them, shown as U+FFFD) and log it as one JSON line."""
    shown = printable(detail) if detail else None
    event = AuditEvent(kind, printable(actor()), client_address(context.config()), printable(what), outcome, shown)
    row = audit_store.note(context.pool(), event)
    audit_log.info(json.dumps({"id": row.id, "kind": kind, "actor": row.actor, "what": row.what, "outcome": outcome}))


@dataclass
class Outcome:
    """What the audited block says of itself: a detail, and whether it failed without raising."""

    detail: str | None = None
    failed: bool = False


@contextmanager
def audited(kind: str, what: str) -> Iterator[Outcome]:
    """Record the block's outcome: as the block sets it, else `failed` with our error's detail when it
    raises (an unexpected exception shows only its type: its text might hold a secret)."""
    outcome = Outcome()
    try:
        yield outcome
    except ApiError as exc:
        _note(kind, what, "failed", f"{exc.code}: {exc.detail}")
        raise
    except Exception as exc:
        _note(kind, what, "failed", type(exc).__name__)
        raise
    _note(kind, what, "failed" if outcome.failed else "ok", outcome.detail)
