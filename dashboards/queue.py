"""mailcow / Queue & quarantine: both live from mailcow, with release / deliver / hold / delete actions.

Every row can be acted on three ways (confirmation-page links, browser `fetch` actions, server-side
Infinity actions); panel links act on many items through confirmation pages that name the count.
"""

from __future__ import annotations

import json
from typing import Any

from dashboards.kit import INFINITY, Panel, dashboard, infinity, infinity_var, prom, series, stat, table, total

# Actions on one queue or quarantine row: (action, button title, colour).
QUEUE_ROW_ACTIONS = (
    ("deliver", "Deliver now", "green"),
    ("hold", "Hold", "orange"),
    ("unhold", "Unhold", "blue"),
    ("delete", "Delete", "red"),
)


QUARANTINE_ROW_ACTIONS = (
    ("release", "Release", "green"),
    ("learnham", "Learn as ham", "blue"),
    ("learnspam", "Learn as spam", "orange"),
    ("delete", "Delete", "red"),
)


def _action_call(target: str, action: str, id_field: str) -> tuple[str, str]:
    """The JSON API path and body for one row's action (bodies as the existing viewer takes them)."""
    items = [f"${{__data.fields.{id_field}}}"]
    if target == "quarantine":
        return f"/api/quarantine/{action}", json.dumps({"items": items})
    if action == "delete":
        return "/api/queue/delete", json.dumps({"items": items})
    return "/api/queue/action", json.dumps({"action": action, "items": items})


def row_actions(target: str, id_field: str, choices: tuple[tuple[str, str, str], ...]) -> list[dict[str, Any]]:
    """All three ways to act on a row: data links to our confirmation pages on the id column (every
    Grafana version, viewers too), browser `fetch` actions (Grafana >= 11.6, editors) and server-side
    `infinity` actions with the datasource's credentials (Grafana >= 12.2 with vizActionsAuth)."""
    links = [
        {
            "title": f"{title}…",
            "url": f"${{service_url}}/actions/{target}/{action}?items=${{__data.fields.{id_field}}}",
            "targetBlank": True,
        }
        for action, title, _ in choices
    ]

    def action_list(kind: str, base: str) -> list[dict[str, Any]]:
        out = []
        for action, title, colour in choices:
            path, body = _action_call(target, action, id_field)
            request: dict[str, Any] = {
                "method": "POST",
                "url": base + path,
                "body": body,
                "headers": [["Content-Type", "application/json"]],
                "queryParams": [],
            }
            if kind == "infinity":
                request = {"datasourceUid": INFINITY["uid"], **request}
            out.append(
                {
                    "type": kind,
                    "title": title,
                    "confirmation": f"{title}: {target} item ${{__data.fields.{id_field}}}?",
                    "oneClick": False,
                    kind: request,
                    "style": {"backgroundColor": colour},
                }
            )
        return out

    def host(column: str, display: str, kind: str, base: str) -> dict[str, Any]:
        return {
            "matcher": {"id": "byName", "options": column},
            "properties": [
                {"id": "displayName", "value": display},
                {"id": "custom.cellOptions", "value": {"type": "actions"}},
                {"id": "custom.width", "value": 320},
                {"id": "actions", "value": action_list(kind, base)},
            ],
        }

    return [
        {"matcher": {"id": "byName", "options": id_field}, "properties": [{"id": "links", "value": links}]},
        host("actions", "Actions", "fetch", "${service_url}"),
        host("server_actions", "Actions (via Grafana server)", "infinity", "${datasource_url}"),
    ]


def bulk_links(target: str, links: tuple[tuple[str, str], ...]) -> list[dict[str, Any]]:
    """Panel links to confirmation pages that list every item they would touch and name the count."""
    return [
        {"title": title, "url": f"${{service_url}}/actions/{target}/{query}", "targetBlank": True}
        for title, query in links
    ]


# This service's base URLs, as the service reports them (hidden): `service_url` as browsers reach
# it (PUBLIC_URL) for confirmation pages and panel actions, `datasource_url` as Grafana's server
# reaches it (the Infinity datasource URL) for Infinity actions.
SERVICE_URL_VARS = [
    infinity_var("service_url", "mailcow-grafana URL", hide=2),
    infinity_var("datasource_url", "mailcow-grafana URL for Grafana's server", hide=2),
]


def _now() -> list[Panel]:
    """Queue and quarantine sizes now, and the queues over time."""
    return [
        stat(
            "Queued",
            "Messages in Postfix's queues now.",
            prom(total("mailcow_queue_messages"), instant=True),
            "short",
            w=6,
        ),
        stat(
            "Oldest queued",
            "Age of the oldest message outside the hold queue.",
            prom('max(mailcow_queue_oldest_message_age_seconds{queue!="hold"})', instant=True),
            "s",
            w=6,
        ),
        stat(
            "Quarantined",
            "Messages in mailcow's quarantine.",
            prom(total("mailcow_quarantine_messages"), instant=True),
            "short",
            w=6,
        ),
        stat(
            "Deferred queue",
            "Messages waiting for a retry.",
            prom(total('mailcow_queue_messages{queue="deferred"}'), instant=True),
            "short",
            w=6,
        ),
        series(
            "Queue size by queue",
            "Postfix queue sizes over time.",
            [prom(total("mailcow_queue_messages", "queue"), "{{queue}}")],
            "short",
            w=24,
            h=6,
        ),
    ]


def _queue() -> Panel:
    """The live queue with actions on each row and on all deferred or held mail."""
    return table(
        "Mail queue",
        "Live from mailcow, oldest first, with each recipient's defer reason. Queue id links open a"
        " confirmation page; the action buttons need Grafana 11.6+ (and edit rights).",
        infinity("queue", params=(("limit", "1000"),), hide=("held", "fetched_at")),
        w=24,
        h=10,
        overrides=row_actions("queue", "queue_id", QUEUE_ROW_ACTIONS),
        links=bulk_links(
            "queue",
            (
                ("Deliver all deferred now…", "deliver?all=1&queue=deferred"),
                ("Hold all deferred…", "hold?all=1&queue=deferred"),
                ("Release everything on hold…", "unhold?all=1&queue=hold"),
                ("Flush the whole queue…", "flush"),
                ("Delete the whole queue…", "super_delete"),
            ),
        ),
    )


def _quarantine() -> Panel:
    """The live quarantine with actions on each row and on everything shown."""
    return table(
        "Quarantine",
        "Live from mailcow, newest first: score, rspamd action, recipient, sender, subject. Id links open a"
        " confirmation page; the action buttons need Grafana 11.6+ (and edit rights).",
        infinity("quarantine", params=(("limit", "1000"),), hide=("virus", "fetched_at")),
        w=24,
        h=10,
        overrides=row_actions("quarantine", "id", QUARANTINE_ROW_ACTIONS),
        links=bulk_links(
            "quarantine",
            (("Release everything shown…", "release?all=1"), ("Delete everything shown…", "delete?all=1")),
        ),
    )


def build() -> dict:
    """The dashboard's JSON model (refreshed every 30 s: it shows mailcow live)."""
    return dashboard(
        "mailcow-queue",
        "mailcow / Queue & quarantine",
        "Postfix queue and quarantine, live, with release / deliver / hold / delete actions.",
        [*_now(), _queue(), _quarantine()],
        SERVICE_URL_VARS,
        refresh="30s",
    )
