"""Queue and quarantine actions: validation, the mailcow call, and mailcow's answer per item.

No Flask and no SQL here: the web layer checks who may ask and records the audit entry. Writes
are never retried (a retried `deliver` or `release` could act twice); mailcow's answer, success
or error, goes back to the caller item by item.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from exporter.mailcow.client import MailcowClient
from exporter.mailcow.errors import MailcowError

QUEUE_ACTIONS = ("deliver", "hold", "unhold", "delete", "flush", "super_delete")
QUARANTINE_ACTIONS = ("release", "delete", "learnham", "learnspam")
ACTIONS = {"queue": QUEUE_ACTIONS, "quarantine": QUARANTINE_ACTIONS}
WHOLE_QUEUE = frozenset({"flush", "super_delete"})  # act on the whole queue; items are ignored
MAX_ITEMS = 500

_QUEUE_ID = re.compile(r"^[0-9A-Fa-f]{5,20}$")  # mailcow passes only hex ids to postsuper
_QUARANTINE_ID = re.compile(r"^[0-9]{1,18}$")

# What each action does, for confirmation pages and API answers.
EFFECTS = {
    ("queue", "deliver"): "try to deliver now",
    ("queue", "hold"): "put on hold (kept, not delivered until released)",
    ("queue", "unhold"): "release from hold (back to the deferred queue, retried)",
    ("queue", "delete"): "delete from the queue; the mail is lost",
    ("queue", "flush"): "try to deliver every message in the whole queue now",
    ("queue", "super_delete"): "delete every message in the whole queue; all of that mail is lost",
    ("quarantine", "release"): "release to the recipient's inbox (and learn as ham)",
    ("quarantine", "delete"): "delete from the quarantine; the mail is lost",
    ("quarantine", "learnham"): "release to the recipient and teach rspamd it is ham",
    ("quarantine", "learnspam"): "teach rspamd it is spam and drop it",
}

_MESSAGES = {
    "item_released": "released",
    "learned_ham": "learned as ham",
    "qlearn_spam": "learned as spam and removed",
    "item_deleted": "deleted",
    "queue_command_success": "done",
    "access_denied": "refused by mailcow (no such item?)",
}


def metric_action(target: str, action: str) -> str:
    """The action as a metric label: bounded, so a refused made-up action is `unknown`."""
    return action if action in ACTIONS.get(target, ()) else "unknown"


class ActionInputError(ValueError):
    """A request we refuse before calling mailcow; `code` is the API error code."""

    def __init__(self, detail: str, code: str = "INVALID_ACTION_REQUEST") -> None:
        super().__init__(detail)
        self.code = code


@dataclass(frozen=True)
class ActionRequest:
    target: str  # queue | quarantine
    action: str
    items: tuple[str, ...]

    @property
    def whole_queue(self) -> bool:
        return self.target == "queue" and self.action in WHOLE_QUEUE

    @property
    def effect(self) -> str:
        return EFFECTS[(self.target, self.action)]

    def describe(self) -> str:
        """One line naming what happens to how many items, e.g. for a confirmation page."""
        if self.whole_queue:
            return f"{self.action}: {self.effect}"
        noun = "message" if len(self.items) == 1 else "messages"
        where = "queued" if self.target == "queue" else "quarantined"
        return f"{self.action} {len(self.items)} {where} {noun}: {self.effect}"


@dataclass
class ActionResult:
    request: ActionRequest
    outcome: str  # success | partial | failed
    results: list[dict[str, Any]] = field(default_factory=list)  # item, ok, type, message
    mailcow: list[dict[str, Any]] = field(default_factory=list)  # mailcow's answer as sent
    error: MailcowError | None = None


def parse(target: str, action: Any, items: Any) -> ActionRequest:
    """Validate what a caller asked for; raise ActionInputError with a clear message."""
    if target not in ACTIONS:
        raise ActionInputError(f"unknown target {target!r}; use queue or quarantine")
    if not isinstance(action, str) or action not in ACTIONS[target]:
        raise ActionInputError(
            f"unknown {target} action {action!r}; use one of: {', '.join(ACTIONS[target])}", "UNKNOWN_ACTION"
        )
    if target == "queue" and action in WHOLE_QUEUE:
        return ActionRequest(target, action, ())
    if isinstance(items, (str, int)):
        items = [items]
    if not isinstance(items, list) or not items:
        raise ActionInputError('"items" must be a non-empty list of ids', "ITEMS_REQUIRED")
    if len(items) > MAX_ITEMS:
        raise ActionInputError(f"at most {MAX_ITEMS} items per request, got {len(items)}", "TOO_MANY_ITEMS")
    pattern = _QUEUE_ID if target == "queue" else _QUARANTINE_ID
    kind = "a Postfix queue id (hex)" if target == "queue" else "a quarantine id (a number)"
    clean: list[str] = []
    for item in items:
        text = str(item).strip() if isinstance(item, (str, int)) and not isinstance(item, bool) else ""
        if not pattern.match(text):
            raise ActionInputError(f"{item!r} is not {kind}", "INVALID_ITEM")
        if target == "queue":
            text = text.upper()
        if text not in clean:
            clean.append(text)
    return ActionRequest(target, action, tuple(clean))


def perform(client: MailcowClient, request: ActionRequest) -> ActionResult:
    """Send the one mailcow write call; a MailcowError becomes a failed result (never retried)."""
    try:
        if request.target == "queue":
            if request.action == "delete":
                answer = client.delete_from_queue(request.items)
            else:
                answer = client.edit_mail_queue(request.action, request.items or ("mailqitems-all",))
        elif request.action == "delete":
            answer = client.delete_from_quarantine(request.items)
        else:
            answer = client.edit_quarantine(request.action, request.items)
    except MailcowError as exc:
        results = [{"item": i, "ok": False, "type": "error", "message": str(exc)} for i in request.items or ("*",)]
        return ActionResult(request, "failed", results, [], exc)
    results = per_item(request, answer)
    ok = [r["ok"] for r in results]
    outcome = "success" if all(ok) else "partial" if any(ok) else "failed"
    return ActionResult(request, outcome, results, answer)


def _text(msg: Any) -> tuple[str, str | None]:
    """mailcow's `msg` (a key, or [key, arg]) as readable text, and the item it names if any."""
    if isinstance(msg, list) and msg:
        key = str(msg[0])
        arg = str(msg[1]) if len(msg) > 1 else None
        return _MESSAGES.get(key, key), arg
    return _MESSAGES.get(str(msg), str(msg)), None


def per_item(request: ActionRequest, answer: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """mailcow's envelopes spread over the items, one result per item."""
    items = list(request.items) or ["*"]
    found: dict[str, list[tuple[bool, str, str]]] = {item: [] for item in items}
    unnamed: list[tuple[bool, str, str]] = []
    for envelope in answer:
        if not isinstance(envelope, dict):
            continue
        kind = str(envelope.get("type", "error"))
        text, named = _text(envelope.get("msg"))
        entry = (kind == "success", kind, text)
        if named is not None and named in found:
            found[named].append(entry)
        else:
            unnamed.append(entry)
    # quarantine answers name each id they handled; the unnamed ones (access_denied) belong to the
    # others, in order; queue answers name no id and cover them all
    orphans = [i for i in items if not found[i]] if request.target == "quarantine" else items
    if len(unnamed) == len(orphans) and request.target == "quarantine":
        for item, entry in zip(orphans, unnamed, strict=True):
            found[item].append(entry)
    else:
        for item in orphans:
            found[item].extend(unnamed)
    results = []
    for item in items:
        entries = found[item]
        if not entries:
            results.append({"item": item, "ok": False, "type": "unknown", "message": "mailcow said nothing about it"})
            continue
        failed = [e for e in entries if not e[0]]
        first = failed[0] if failed else entries[0]
        results.append({"item": item, "ok": not failed, "type": first[1], "message": "; ".join(e[2] for e in entries)})
    return results
