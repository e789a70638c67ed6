"""Build the provisioned Grafana dashboards from code and write them as JSON.

Usage: .venv/bin/python -m dashboards.generate [--check]
Plain Python dicts keep shared pieces (datasources, variables, links, Infinity targets) in one
place; `--check` exits 1 when a committed file differs from what this code builds (the test
suite runs the same comparison).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from exporter.readmodels.catalog import TIME_KEYS

HERE = Path(__file__).parent
SCHEMA_VERSION = 41
PROM = {"type": "prometheus", "uid": "prometheus"}
INFINITY = {"type": "yesoreyeram-infinity-datasource", "uid": "mailcow-infinity"}
TAG = "mailcow"
FILTERS = (("direction", "${direction}"), ("domain", "${domain}"), ("search", "${search}"))
RANGE = (("from", "${__timeFrom}"), ("to", "${__timeTo}"), ("interval_ms", "${__interval_ms}"))
Panel = dict[str, Any]
# Target labels Prometheus gives each scraped replica of the service (`pod`: Kubernetes).
REPLICA_LABELS = ("instance", "pod")


# --- targets -----------------------------------------------------------------------------------


def infinity(
    query: str,
    columns: dict[str, str],
    fmt: str = "table",
    params: tuple[tuple[str, str], ...] = FILTERS,
    ref: str = "A",
) -> dict[str, Any]:
    """An Infinity target on /grafana/infinity/<query>; `columns` maps selector -> number|string."""

    def col_type(name: str, kind: str) -> str:
        return "timestamp_epoch" if name in TIME_KEYS else kind

    return {
        "refId": ref,
        "datasource": INFINITY,
        "type": "json",
        "source": "url",
        "parser": "backend",
        "format": fmt,
        "url": f"/grafana/infinity/{query}",
        "url_options": {
            "method": "GET",
            "data": "",
            "params": [{"key": k, "value": v} for k, v in (*RANGE, *params)],
        },
        "root_selector": "",
        "columns": [{"selector": c, "text": c, "type": col_type(c, kind)} for c, kind in columns.items()],
        "filters": [],
    }


def across_replicas(expr: str) -> str:
    """`expr` (one replica's gauge, or its rate/increase of a counter) taken once for any number of replicas.

    Every replica reads the same PostgreSQL, so each scraped one reports the same figures under its
    own `instance` (and `pod`) label: summing them would count every figure once per replica. The
    max across replicas is taken of each replica's own rate or increase, never of raw counters: a max
    of counters dips when the replica with the freshest sample goes away, which rate() reads as a reset.
    """
    return f"max without ({', '.join(REPLICA_LABELS)}) ({expr})"


def total(expr: str, by: str = "") -> str:
    """The sum (by `by`) of `expr`'s series, each counted once however many replicas report it."""
    grouping = f" by ({by}) " if by else ""
    return f"sum{grouping}({across_replicas(expr)})"


def per_minute(counter: str, by: str = "") -> str:
    """Events per minute of `counter` (a selector), summed by `by`."""
    return total(f"rate({counter}[$__rate_interval])", by) + " * 60"


def prom(expr: str, legend: str = "__auto", ref: str = "A", instant: bool = False) -> dict[str, Any]:
    return {
        "refId": ref,
        "datasource": PROM,
        "expr": expr,
        "legendFormat": legend,
        "range": not instant,
        "instant": instant,
        "editorMode": "code",
    }


def cols(spec: str) -> dict[str, str]:
    """ "time, sender:s, count" -> {time: number, sender: string, count: number} (":s" = string)."""
    out = {}
    for item in spec.split(","):
        name, _, kind = item.strip().partition(":")
        out[name] = "string" if kind == "s" else "number"
    return out


# --- panels ------------------------------------------------------------------------------------


def panel(
    kind: str, title: str, description: str, targets: list, unit: str | None, w: int, h: int, **extra: Any
) -> Panel:
    defaults: dict[str, Any] = {"links": []}
    if unit:
        defaults["unit"] = unit
    if kind == "timeseries":
        defaults["custom"] = {"drawStyle": "line", "lineWidth": 1, "fillOpacity": 10, "spanNulls": False}
    result: Panel = {
        "type": kind,
        "title": title,
        "description": description,
        "datasource": targets[0]["datasource"],
        "targets": targets,
        "fieldConfig": {"defaults": defaults, "overrides": extra.pop("overrides", [])},
        "options": extra.pop("options", {}),
        "gridPos": {"h": h, "w": w, "x": 0, "y": 0},
    }
    result.update(extra)
    return result


def stat(title: str, description: str, target: dict, unit: str, w: int = 4, h: int = 4) -> Panel:
    options = {
        "reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
        "colorMode": "value",
        "graphMode": "none",
        "textMode": "auto",
    }
    return panel("stat", title, description, [target], unit, w, h, options=options)


def series(title: str, description: str, targets: list, unit: str, w: int = 12, h: int = 8) -> Panel:
    options = {
        "legend": {"displayMode": "list", "placement": "bottom", "showLegend": True},
        "tooltip": {"mode": "multi", "sort": "desc"},
    }
    return panel("timeseries", title, description, targets, unit, w, h, options=options)


def table(title: str, description: str, target: dict, w: int = 12, h: int = 8, **extra: Any) -> Panel:
    options = {"showHeader": True, "cellHeight": "sm", "footer": {"show": False, "reducer": ["sum"], "fields": ""}}
    return panel("table", title, description, [target], "none", w, h, options=options, **extra)


def logs(title: str, description: str, target: dict, w: int = 24, h: int = 12) -> Panel:
    options = {
        "showTime": True,
        "wrapLogMessage": True,
        "sortOrder": "Descending",
        "enableLogDetails": True,
        "dedupStrategy": "none",
        "prettifyLogMessage": False,
        "showLabels": False,
        "showCommonLabels": False,
    }
    return panel("logs", title, description, [target], None, w, h, options=options)


def bars(title: str, description: str, target: dict, unit: str = "short", w: int = 12, h: int = 8) -> Panel:
    options = {
        "orientation": "horizontal",
        "displayMode": "gradient",
        "showUnfilled": True,
        "reduceOptions": {"calcs": [], "fields": "/^count$/", "values": True},
    }
    return panel("bargauge", title, description, [target], unit, w, h, options=options)


def link_column(column: str, title: str, url: str) -> dict[str, Any]:
    return {
        "matcher": {"id": "byName", "options": column},
        "properties": [{"id": "links", "value": [{"title": title, "url": url, "targetBlank": False}]}],
    }


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


def layout(panels: list[Panel]) -> list[Panel]:
    """Flow panels left to right in 24-column rows; number them."""
    x = y = row_h = 0
    for number, p in enumerate(panels, start=1):
        w, h = p["gridPos"]["w"], p["gridPos"]["h"]
        if x + w > 24:
            x, y, row_h = 0, y + row_h, 0
        p["gridPos"] = {"h": h, "w": w, "x": x, "y": y}
        p["id"] = number
        x += w
        row_h = max(row_h, h)
    return panels


# --- dashboards --------------------------------------------------------------------------------

DIRECTION_VAR = {
    "type": "custom",
    "name": "direction",
    "label": "Direction",
    "query": "inbound,outbound,internal",
    "includeAll": True,
    "allValue": ".*",
    "multi": False,
    "hide": 0,
    "current": {"text": "All", "value": "$__all"},
    "options": [],
}
SEARCH_VAR = {
    "type": "textbox",
    "name": "search",
    "label": "Search",
    "query": "",
    "hide": 0,
    "current": {"text": "", "value": ""},
    "options": [],
}


def _infinity_var(source: str, label: str, **extra: Any) -> dict[str, Any]:
    """A query variable filled from /grafana/infinity/variables/<source>."""
    target = infinity(source, {}, params=())
    target["url"] = f"/grafana/infinity/variables/{source}"
    target["refId"] = "variable"
    return {
        "type": "query",
        "name": source,
        "label": label,
        "datasource": INFINITY,
        "query": {"queryType": "infinity", "query": "", "infinityQuery": target},
        "refresh": 1,
        "includeAll": False,
        "multi": False,
        "sort": 0,
        "hide": 0,
        "current": {},
        "options": [],
        "regex": "",
        **extra,
    }


def domain_var() -> dict[str, Any]:
    return _infinity_var(
        "domains",
        "Domain",
        name="domain",
        includeAll=True,
        allValue=".*",
        sort=1,
        current={"text": "All", "value": "$__all"},
    )


# This service's base URLs, as the service reports them (hidden): `service_url` as browsers reach
# it (PUBLIC_URL) for confirmation pages and panel actions, `datasource_url` as Grafana's server
# reaches it (the Infinity datasource URL) for Infinity actions.
SERVICE_URL_VARS = [
    _infinity_var("service_url", "mailcow-grafana URL", hide=2),
    _infinity_var("datasource_url", "mailcow-grafana URL for Grafana's server", hide=2),
]


def textbox(name: str, label: str) -> dict[str, Any]:
    return {**SEARCH_VAR, "name": name, "label": label}


def dashboard(uid: str, title: str, description: str, panels: list[Panel], variables: list[dict], **extra: Any) -> dict:
    return {
        "uid": uid,
        "title": title,
        "description": description,
        "tags": [TAG],
        "timezone": "browser",
        "editable": True,
        "graphTooltip": 1,
        "schemaVersion": SCHEMA_VERSION,
        "version": 1,
        "time": {"from": "now-24h", "to": "now"},
        "timepicker": {"refresh_intervals": ["30s", "1m", "5m", "15m", "1h"]},
        "refresh": extra.pop("refresh", "1m"),
        "fiscalYearStartMonth": 0,
        "liveNow": False,
        "links": [
            {
                "title": "mailcow dashboards",
                "type": "dashboards",
                "tags": [TAG],
                "asDropdown": False,
                "includeVars": True,
                "keepTime": True,
                "icon": "external link",
                "tooltip": "",
                "targetBlank": False,
                "url": "",
            },
        ],
        "annotations": {
            "list": [
                {
                    "builtIn": 1,
                    "datasource": {"type": "grafana", "uid": "-- Grafana --"},
                    "enable": True,
                    "hide": True,
                    "iconColor": "rgba(0, 211, 255, 1)",
                    "name": "Annotations & Alerts",
                    "type": "dashboard",
                },
                {
                    "datasource": INFINITY,
                    "enable": True,
                    "hide": False,
                    "iconColor": "orange",
                    "name": "mailcow events (bans, gaps, container starts)",
                    "target": infinity("annotations", cols("time, time_end, title:s, text:s, tags:s"), params=()),
                },
            ]
        },
        "templating": {"list": variables},
        "panels": layout(panels),
    }


MAIL_VARS = [DIRECTION_VAR, domain_var(), SEARCH_VAR]
STATUS_COLS = cols("time, delivered, deferred, bounced, rejected, expired, discarded, queued, spam, total")
DETAILS_URL = "/d/mailcow-message/mailcow-message-details?var-key=${__data.fields.correlation_key}&${__url_time_range}"


def overview() -> dict:
    d = '{direction=~"${direction:regex}"}'
    summary = cols(
        "total, inbound, outbound, internal, delivered, deferred, bounced, rejected, spam, "
        "delivery_success_ratio, spam_ratio"
    )

    def from_summary(field: str) -> dict:
        target = infinity("summary", summary)
        target["columns"] = [c for c in target["columns"] if c["selector"] == field]
        return target

    panels = [
        stat(
            "Inbound messages",
            "Messages received from outside in the range (Prometheus counter).",
            prom(total('increase(mailcow_messages_total{direction="inbound"}[$__range])'), instant=True),
            "short",
        ),
        stat(
            "Outbound messages",
            "Messages sent by authenticated users to other servers.",
            prom(total('increase(mailcow_messages_total{direction="outbound"}[$__range])'), instant=True),
            "short",
        ),
        stat(
            "Internal messages",
            "Messages between mailcow's own domains.",
            prom(total('increase(mailcow_messages_total{direction="internal"}[$__range])'), instant=True),
            "short",
        ),
        stat(
            "Delivery success",
            "Delivered share of finished messages (delivered, bounced, expired, rejected).",
            from_summary("delivery_success_ratio"),
            "percentunit",
        ),
        stat(
            "Spam rate",
            "Share of messages rspamd or a reject marked as spam.",
            from_summary("spam_ratio"),
            "percentunit",
        ),
        stat(
            "Deferred",
            "Messages still waiting for a retry (or greylisted) in the range.",
            from_summary("deferred"),
            "short",
        ),
        stat("Bounced", "Messages with a permanently refused recipient.", from_summary("bounced"), "short"),
        stat("Rejected", "Mail refused at our door (NOQUEUE, RBL, milter).", from_summary("rejected"), "short"),
        stat(
            "Mail queue",
            "Messages in Postfix's queues now.",
            prom(total("mailcow_queue_messages"), instant=True),
            "short",
        ),
        stat(
            "Quarantine",
            "Messages held in mailcow's quarantine now.",
            prom(total("mailcow_quarantine_messages"), instant=True),
            "short",
        ),
        stat(
            "Containers down",
            "mailcow containers not running.",
            prom("count(" + across_replicas("mailcow_container_up") + " == 0) or vector(0)", instant=True),
            "short",
        ),
        stat(
            "Ingest lag",
            "Age of the newest stored Postfix line.",
            prom('max(mailcow_grafana_ingest_lag_seconds{source="postfix"})', instant=True),
            "s",
        ),
        series(
            "Mail flow by status",
            "Messages per interval by final status.",
            [infinity("message_flow", STATUS_COLS, "timeseries")],
            "short",
            w=16,
        ),
        series(
            "Auth failures and bans",
            "Failed logins and netfilter bans per minute.",
            [
                prom(per_minute("mailcow_postfix_sasl_auth_failures_total"), "SASL failures"),
                prom(per_minute("mailcow_netfilter_warnings_total"), "netfilter warnings", "B"),
                prom(per_minute("mailcow_netfilter_bans_total"), "bans", "C"),
            ],
            "short",
            w=8,
        ),
        series(
            "Messages by direction (Prometheus)",
            "Completed messages per minute by direction.",
            [prom(per_minute(f"mailcow_messages_total{d}", "direction"), "{{direction}}")],
            "short",
            w=12,
        ),
        table(
            "Ingestion",
            "Per log source: lines stored, lag, gaps, last error.",
            infinity(
                "ingest", cols("source:s, lines_total, lag_seconds, gaps_total, last_success, last_error:s"), params=()
            ),
        ),
    ]
    return dashboard(
        "mailcow-overview",
        "mailcow / Overview",
        "What happened to the mail: volume, outcomes, queue, quarantine, security and ingest health at a glance.",
        panels,
        MAIL_VARS,
    )


def messages() -> dict:
    params = (
        *FILTERS,
        ("sender", "${sender}"),
        ("recipient", "${recipient}"),
        ("status", "${status}"),
        ("ip", "${ip}"),
        ("user", "${user}"),
        ("limit", "500"),
    )
    columns = cols(
        "time, sender:s, recipient:s, recipient_count, subject:s, status:s, direction:s, spam_score, "
        "rspamd_action:s, client_ip:s, user:s, queue_id:s, correlation_key:s"
    )
    status_var = {
        **DIRECTION_VAR,
        "name": "status",
        "label": "Status",
        "query": "delivered,deferred,bounced,rejected,expired,discarded,queued,spam",
    }
    panels = [
        table(
            "Messages",
            "Newest first; click a sender or the key for the message's details.",
            infinity("messages", columns, params=params),
            w=24,
            h=20,
            overrides=[
                link_column("correlation_key", "Message details", DETAILS_URL),
                link_column("sender", "Message details", DETAILS_URL),
            ],
        ),
    ]
    variables = [
        *MAIL_VARS,
        status_var,
        textbox("sender", "Sender"),
        textbox("recipient", "Recipient"),
        textbox("ip", "Client IP"),
        textbox("user", "User"),
    ]
    return dashboard("mailcow-messages", "mailcow / Messages", "Search and filter every message.", panels, variables)


def message_details() -> dict:
    key = (("key", "${key}"),)
    panels = [
        table(
            "Recipients",
            "Every recipient with its own status, relay, delay and the remote reply.",
            infinity(
                "message_recipients",
                cols("last_update, recipient:s, orig_to:s, status:s, dsn:s, relay:s, delay, attempts, reply:s"),
                params=key,
            ),
            w=24,
            h=8,
        ),
        table(
            "Rspamd symbols",
            "The symbols rspamd matched, highest score first.",
            infinity("message_symbols", cols("symbol:s, score, description:s, options:s"), params=key),
            w=24,
            h=8,
        ),
        logs(
            "Postfix lines",
            "Every Postfix line of this queue id.",
            infinity(
                "message_lines",
                cols("timestamp, body:s, level:s, program:s, kind:s, recipient:s, status:s"),
                "logs",
                params=key,
            ),
            h=10,
        ),
    ]
    return dashboard(
        "mailcow-message",
        "mailcow / Message details",
        "One message: recipients, rspamd, Postfix.",
        panels,
        [textbox("key", "Correlation key")],
        refresh="",
    )


def delivery() -> dict:
    top = cols("name:s, count, delivered, failed, spam")
    panels = [
        series(
            "Messages by status",
            "Messages per interval by final status.",
            [infinity("message_flow", STATUS_COLS, "timeseries")],
            "short",
        ),
        series(
            "Messages by direction",
            "Messages per interval by direction.",
            [infinity("direction_flow", cols("time, inbound, outbound, internal"), "timeseries")],
            "short",
        ),
        series(
            "Delivery delay percentiles",
            "Postfix delay= of delivered recipients: p50, p90, p99.",
            [infinity("delivery_delay", cols("time, p50, p90, p99"), "timeseries")],
            "s",
        ),
        series(
            "Delivery delay p95 (Prometheus)",
            "95th percentile of delivery delay by direction.",
            [
                prom(
                    "histogram_quantile(0.95, "
                    + total("rate(mailcow_delivery_delay_seconds_bucket[$__rate_interval])", "le, direction")
                    + ")",
                    "{{direction}}",
                )
            ],
            "s",
        ),
        table(
            "Top defer reasons",
            "Most frequent replies of deferred attempts, all directions (numbers masked).",
            infinity("top_defer_reasons", cols("reason:s, count"), params=()),
        ),
        table(
            "Top bounce reasons",
            "Most frequent replies of bounced attempts, all directions (numbers masked).",
            infinity("top_bounce_reasons", cols("reason:s, count"), params=()),
        ),
        bars("Top senders", "Senders with the most messages.", infinity("top_senders", top), w=6),
        bars("Top recipients", "Recipients with the most messages.", infinity("top_recipients", top), w=6),
        bars("Top sender domains", "Sender domains with the most messages.", infinity("top_sender_domains", top), w=6),
        bars(
            "Top recipient domains",
            "Recipient domains with the most messages.",
            infinity("top_recipient_domains", top),
            w=6,
        ),
        table("Rejects by reason", "Mail refused at our door, by reason class.", infinity("top_reject_reasons", top)),
        series(
            "Deferrals and bounces by provider",
            "Per minute, by remote provider class.",
            [
                prom(
                    per_minute("mailcow_postfix_deferrals_total", "remote"),
                    "deferred {{remote}}",
                ),
                prom(
                    per_minute("mailcow_postfix_bounces_total", "remote"),
                    "bounced {{remote}}",
                    "B",
                ),
            ],
            "short",
        ),
    ]
    return dashboard(
        "mailcow-delivery",
        "mailcow / Delivery",
        "Delivery outcomes over time, delays, reasons and top senders, recipients and domains.",
        panels,
        MAIL_VARS,
    )


def security() -> dict:
    actions = cols("time, no_action, greylist, add_header, rewrite_subject, soft_reject, reject")
    panels = [
        series(
            "Rspamd actions",
            "Scanned messages per interval by rspamd action.",
            [infinity("rspamd_actions", actions, "timeseries", params=())],
            "short",
        ),
        series(
            "Rspamd actions by direction (Prometheus)",
            "Per minute; outbound = authenticated senders.",
            [
                prom(
                    per_minute("mailcow_rspamd_actions_total", "action, direction"),
                    "{{direction}} {{action}}",
                )
            ],
            "short",
        ),
        panel(
            "barchart",
            "Rspamd score distribution",
            "Messages per whole score point.",
            [infinity("rspamd_scores", cols("score:s, count, spam"), params=())],
            "short",
            12,
            8,
            options={
                "orientation": "vertical",
                "xField": "score",
                "showValue": "never",
                "legend": {"displayMode": "list", "placement": "bottom", "showLegend": True},
            },
        ),
        table(
            "Top rspamd symbols",
            "Symbols that scored most often.",
            infinity("top_symbols", cols("symbol:s, count, avg_score"), params=()),
        ),
        series(
            "Netfilter events",
            "Failed-login warnings, bans and unbans per interval.",
            [infinity("netfilter_events", cols("time, warnings, bans, unbans"), "timeseries", params=())],
            "short",
        ),
        table(
            "Top blocked IPs",
            "Sources with the most netfilter warnings and bans.",
            infinity("top_blocked_ips", cols("ip:s, warnings, bans, last_seen"), params=()),
        ),
        table(
            "Auth failures by user and IP",
            "Failed logins (SMTP AUTH, IMAP/POP3, SOGo, UI).",
            infinity("auth_failures", cols("username:s, ip:s, service:s, count, last_seen"), params=()),
            w=16,
        ),
        stat(
            "Active bans",
            "Networks netfilter bans now.",
            prom(total("mailcow_netfilter_active_bans"), instant=True),
            "short",
            w=8,
            h=8,
        ),
    ]
    return dashboard(
        "mailcow-security",
        "mailcow / Spam & security",
        "Rspamd verdicts and scores, symbols, netfilter bans and failed logins.",
        panels,
        [SEARCH_VAR],
    )


def log_views() -> dict:
    search = (("search", "${search}"), ("limit", "1000"))
    panels = [
        logs(
            "Postfix",
            "Postfix lines, newest first (search matches words and prefixes).",
            infinity(
                "postfix_logs",
                cols("timestamp, body:s, level:s, program:s, queue_id:s, kind:s, status:s, correlation_key:s"),
                "logs",
                params=search,
            ),
        ),
        logs(
            "Rspamd",
            "Rspamd results as log lines.",
            infinity(
                "rspamd_logs",
                cols("timestamp, body:s, level:s, action:s, score, direction:s, message_id:s"),
                "logs",
                params=search,
            ),
        ),
        logs(
            "Netfilter",
            "Netfilter (fail2ban-like) lines.",
            infinity(
                "netfilter_logs", cols("timestamp, body:s, level:s, kind:s, ip:s, username:s"), "logs", params=search
            ),
        ),
    ]
    return dashboard(
        "mailcow-logs", "mailcow / Logs", "Postfix, rspamd and netfilter logs with search.", panels, [SEARCH_VAR]
    )


def queue_quarantine() -> dict:
    panels = [
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
        table(
            "Mail queue",
            "Live from mailcow, oldest first, with each recipient's defer reason. Queue id links open a"
            " confirmation page; the action buttons need Grafana 11.6+ (and edit rights).",
            infinity(
                "queue",
                cols(
                    "arrival, queue_name:s, queue_id:s, age_seconds, size_bytes, sender:s, recipients:s, reasons:s,"
                    " actions:s, server_actions:s"
                ),
                params=(("limit", "1000"),),
            ),
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
        ),
        table(
            "Quarantine",
            "Live from mailcow, newest first: score, rspamd action, recipient, sender, subject. Id links open a"
            " confirmation page; the action buttons need Grafana 11.6+ (and edit rights).",
            infinity(
                "quarantine",
                cols(
                    "created, id, qid:s, score, action:s, recipient:s, sender:s, subject:s, age_seconds, actions:s,"
                    " server_actions:s"
                ),
                params=(("limit", "1000"),),
            ),
            w=24,
            h=10,
            overrides=row_actions("quarantine", "id", QUARANTINE_ROW_ACTIONS),
            links=bulk_links(
                "quarantine",
                (("Release everything shown…", "release?all=1"), ("Delete everything shown…", "delete?all=1")),
            ),
        ),
    ]
    return dashboard(
        "mailcow-queue",
        "mailcow / Queue & quarantine",
        "Postfix queue and quarantine, live, with release / deliver / hold / delete actions.",
        panels,
        SERVICE_URL_VARS,
        refresh="30s",
    )


DMARC_VARS = [
    _infinity_var(
        "dmarc_domains",
        "Domain",
        name="dmarc_domain",
        includeAll=True,
        allValue=".*",
        sort=1,
        current={"text": "All", "value": "$__all"},
    ),
    {
        "type": "custom",
        "name": "failures",
        "label": "Failures only",
        "query": "false,true",
        "includeAll": False,
        "multi": False,
        "hide": 0,
        "current": {"text": "false", "value": "false"},
        "options": [],
    },
]
DMARC_FILTERS = (("domain", "${dmarc_domain}"), ("failures_only", "${failures}"))


def dmarc() -> dict:
    rates = "time, dmarc_pass_pct, spf_pass_pct, dkim_pass_pct"
    summary = cols("total_messages, dmarc_pass_pct, failing_messages, unique_reporters")

    def summary_stat(title: str, description: str, field: str, unit: str) -> Panel:
        target = infinity("dmarc_summary", summary, params=DMARC_FILTERS)
        panel_ = stat(title, description, target, unit, w=6)
        panel_["options"]["reduceOptions"]["fields"] = f"/^{field}$/"
        return panel_

    geomap = panel(
        "geomap",
        "Source countries",
        "Reported messages by the sending IP's country (GeoIP), larger = more mail.",
        [
            infinity(
                "dmarc_countries",
                cols("country_code:s, country_name:s, total_messages, failing_messages"),
                params=DMARC_FILTERS,
            )
        ],
        "short",
        12,
        10,
        options={
            "view": {"id": "zero", "lat": 20, "lon": 0, "zoom": 1},
            "controls": {"showZoom": True, "mouseWheelZoom": False},
            "basemap": {"type": "default", "name": "Basemap"},
            "layers": [
                {
                    "type": "markers",
                    "name": "Sources",
                    "location": {
                        "mode": "lookup",
                        "lookup": "country_code",
                        "gazetteer": "public/gazetteer/countries.json",
                    },
                    "config": {
                        "size": {"field": "total_messages", "min": 3, "max": 30, "fixed": 5},
                        "color": {"field": "failing_messages", "fixed": "green"},
                        "showLegend": True,
                    },
                }
            ],
        },
    )
    panels = [
        summary_stat(
            "Reported messages", "Messages the DMARC reports of the range counted.", "total_messages", "short"
        ),
        summary_stat(
            "DMARC pass",
            "Share that passed DMARC (aligned SPF or DKIM), as reporters evaluated it.",
            "dmarc_pass_pct",
            "percent",
        ),
        summary_stat(
            "Failing messages", "Messages that failed DMARC or had the policy applied.", "failing_messages", "short"
        ),
        summary_stat("Reporters", "Organisations that sent reports.", "unique_reporters", "short"),
        series(
            "DMARC pass rate by domain",
            "DMARC pass rate per UTC day, one line per policy domain.",
            [infinity("dmarc_pass_by_domain", {}, "timeseries", params=DMARC_FILTERS)],
            "percent",
            w=24,
        ),
        series(
            "Pass rates per day",
            "DMARC, SPF and DKIM pass rates per UTC day of the reports.",
            [infinity("dmarc_daily", cols(rates), "timeseries", params=DMARC_FILTERS)],
            "percent",
        ),
        series(
            "Reported messages per day",
            "All reported messages and those failing DMARC.",
            [
                infinity(
                    "dmarc_daily", cols("time, total_messages, failing_messages"), "timeseries", params=DMARC_FILTERS
                )
            ],
            "short",
        ),
        geomap,
        table(
            "Sending sources",
            "Sending IPs by volume with pass rates, country, ASN and reverse DNS; switch 'Failures only' to see"
            " what fails.",
            infinity(
                "dmarc_sources",
                cols(
                    "source_ip:s, total_messages, dmarc_pass_pct, spf_pass_pct, dkim_pass_pct, country:s, city:s,"
                    " asn:s, asn_org:s, reverse_dns:s, reporters, first_seen, last_seen"
                ),
                params=(*DMARC_FILTERS, ("limit", "500")),
            ),
            w=12,
            h=10,
        ),
        table(
            "Failures",
            "Records that failed DMARC or had the policy applied: source, identifiers, results, reporter.",
            infinity(
                "dmarc_failures",
                cols(
                    "begin, domain:s, reporter:s, source_ip:s, count, disposition:s, spf:s, dkim:s, header_from:s,"
                    " envelope_from:s, country_code:s, asn_org:s"
                ),
                params=(("domain", "${dmarc_domain}"), ("limit", "500")),
            ),
            w=24,
            h=8,
        ),
        table(
            "Domains and published policy",
            "Per policy domain: volume, pass rates and the policy reporters saw (p, sp, pct, alignment).",
            infinity(
                "dmarc_domains",
                cols(
                    "domain:s, total_messages, dmarc_pass_pct, spf_pass_pct, dkim_pass_pct, policy_p:s, policy_sp:s,"
                    " policy_pct, adkim:s, aspf:s, last_report"
                ),
                params=DMARC_FILTERS,
            ),
            w=12,
        ),
        table(
            "Reporters",
            "Who sent reports, how many, and what they saw.",
            infinity(
                "dmarc_reporters",
                cols("reporter:s, reports, total_messages, dmarc_pass_pct, last_report"),
                params=DMARC_FILTERS,
            ),
            w=12,
        ),
        series(
            "TLS sessions per day",
            "SMTP TLS sessions to our MX hosts that senders reported (TLS-RPT).",
            [
                infinity(
                    "tls_daily",
                    cols("time, successful_sessions, failed_sessions"),
                    "timeseries",
                    params=(("domain", "${dmarc_domain}"),),
                )
            ],
            "short",
        ),
        table(
            "TLS failure types",
            "Failed TLS sessions by result type (certificate, STARTTLS, MTA-STS policy).",
            infinity(
                "tls_failure_types", cols("result_type:s, sessions, mx_hosts"), params=(("domain", "${dmarc_domain}"),)
            ),
            w=6,
        ),
        table(
            "TLS reports",
            "TLS-RPT reports received.",
            infinity(
                "tls_reports",
                cols("begin, organization_name:s, policy_domains:s, successful_sessions, failed_sessions"),
                params=(("domain", "${dmarc_domain}"), ("limit", "200")),
            ),
            w=6,
        ),
        stat(
            "Invalid reports (range)",
            "Uploads, files and mails that held no readable report.",
            prom(total("increase(mailcow_dmarc_invalid_reports_total[$__range])"), instant=True),
            "short",
            w=6,
        ),
    ]
    board = dashboard(
        "mailcow-dmarc",
        "mailcow / DMARC & TLS",
        "DMARC aggregate and TLS-RPT reports: pass rates, sending sources, reporters, policy, failures.",
        panels,
        DMARC_VARS,
        refresh="5m",
    )
    board["time"] = {"from": "now-30d", "to": "now"}
    return board


def domains_mailboxes() -> dict:
    status_colors = {
        "success": {"color": "green", "index": 0},
        "warning": {"color": "orange", "index": 1},
        "error": {"color": "red", "index": 2},
        "unknown": {"color": "text", "index": 3},
    }
    colored = [
        {
            "matcher": {"id": "byRegexp", "options": "^(spf|dkim|dmarc)_status$"},
            "properties": [
                {"id": "mappings", "value": [{"type": "value", "options": status_colors}]},
                {"id": "custom.cellOptions", "value": {"type": "color-background"}},
            ],
        }
    ]
    summary = cols("total_mailboxes, total_sent, total_received, failure_rate")

    def summary_stat(title: str, description: str, field: str, unit: str) -> Panel:
        panel_ = stat(title, description, infinity("mailbox_summary", summary, params=()), unit, w=6)
        panel_["options"]["reduceOptions"]["fields"] = f"/^{field}$/"
        return panel_

    activity = cols(
        "mailbox:s, name:s, sent, received, failed, failure_rate, combined_sent, combined_received, aliases,"
        " quota_used_pct, messages"
    )

    def top(title: str, description: str, sort: str) -> Panel:
        return table(
            title,
            description,
            infinity(
                "mailbox_activity", activity, params=(("domain", "${domain}"), ("sort_by", sort), ("limit", "20"))
            ),
            w=12,
            h=8,
        )

    panels = [
        stat(
            "Domains with DNS errors",
            "SPF, DKIM or DMARC checks in error (last check).",
            prom("count(" + across_replicas("mailcow_dns_check_status") + " == 2) or vector(0)", instant=True),
            "short",
            w=6,
        ),
        summary_stat("Mail sent", "Mail sent by mailboxes and aliases in the range.", "total_sent", "short"),
        summary_stat(
            "Mail received", "Mail received by mailboxes and aliases in the range.", "total_received", "short"
        ),
        summary_stat(
            "Send failure rate", "Share of sent mail that bounced, expired or was rejected.", "failure_rate", "percent"
        ),
        table(
            "DNS checks",
            "The last SPF, DKIM and DMARC check of every domain, with its messages and warnings"
            " (re-check: POST /api/domains/<domain>/check-dns).",
            infinity(
                "dns_checks",
                cols(
                    "domain:s, spf_status:s, spf_message:s, spf_lookups, dkim_status:s, dkim_message:s,"
                    " dmarc_status:s, dmarc_policy:s, dmarc_message:s, warnings:s, checked"
                ),
                params=(("domain", "${domain}"),),
            ),
            w=24,
            h=8,
            overrides=colored,
        ),
        top("Top senders (mailboxes)", "Mailboxes by mail sent in the range (aliases in combined).", "sent_total"),
        top("Top receivers (mailboxes)", "Mailboxes by mail received in the range.", "received_total"),
        top("Highest send failure rate", "Mailboxes whose sent mail fails most.", "failure_rate"),
        top("Quota", "Mailboxes by storage used.", "quota_used"),
        series(
            "SPF DNS lookups per domain",
            "DNS-querying SPF terms through includes; 10 is the RFC 7208 limit.",
            [prom("max by (domain) (mailcow_spf_dns_lookups)", "{{domain}}")],
            "short",
            w=24,
            h=6,
        ),
    ]
    return dashboard(
        "mailcow-domains",
        "mailcow / Domains & mailboxes",
        "DNS checks (SPF, DKIM, DMARC) per domain, mailbox activity and quota.",
        panels,
        [domain_var()],
    )


def service_health() -> dict:
    panels = [
        stat(
            "Database",
            "1 when every scraped replica of the service can read its PostgreSQL.",
            prom("min(mailcow_grafana_database_up)", instant=True),
            "bool",
            w=6,
        ),
        stat(
            "Gaps (range)",
            "Times mailcow rotated lines away before they were read.",
            prom(total("increase(mailcow_grafana_ingest_gaps_total[$__range])"), instant=True),
            "short",
            w=6,
        ),
        stat(
            "Job failures (range)",
            "Failed background job runs.",
            prom(total("increase(mailcow_grafana_job_failures_total[$__range])"), instant=True),
            "short",
            w=6,
        ),
        stat(
            "mailcow API down",
            "Endpoint groups whose last call failed.",
            prom("count(" + across_replicas("mailcow_api_up") + " == 0) or vector(0)", instant=True),
            "short",
            w=6,
        ),
        series(
            "Ingest lag",
            "Now minus the newest stored line, per source.",
            [prom("max by (source) (mailcow_grafana_ingest_lag_seconds)", "{{source}}")],
            "s",
        ),
        series(
            "Lines ingested",
            "Lines stored per second, per source.",
            [prom(total("rate(mailcow_grafana_lines_ingested_total[$__rate_interval])", "source"), "{{source}}")],
            "short",
        ),
        table(
            "Background jobs",
            "Last run, outcome, duration and error of every job.",
            infinity(
                "jobs",
                cols(
                    "name:s, status:s, last_run_at, last_success_at, last_duration_seconds, runs, "
                    "failures, last_error:s"
                ),
                params=(),
            ),
            w=24,
        ),
        table(
            "Ingestion",
            "Per log source: lines, lag, gaps, fetch interval.",
            infinity(
                "ingest",
                cols(
                    "source:s, lines_total, lag_seconds, gaps_total, interval_seconds, "
                    "lines_per_second, last_success, last_error:s"
                ),
                params=(),
            ),
        ),
        table(
            "mailcow API",
            "Reachability per endpoint group.",
            infinity("api_health", cols("endpoint:s, up, checked, last_success, last_error:s"), params=()),
        ),
        table(
            "Ingestion gaps",
            "Spans of log lines lost before they were read.",
            infinity("gaps", cols("source:s, gap_start, gap_end, detected_at"), params=()),
            w=24,
        ),
    ]
    return dashboard(
        "mailcow-health",
        "mailcow / Service health",
        "This service: jobs, ingestion, gaps and mailcow API reachability.",
        panels,
        [],
    )


BUILDERS = {
    "mailcow-overview.json": overview,
    "mailcow-messages.json": messages,
    "mailcow-message-details.json": message_details,
    "mailcow-delivery.json": delivery,
    "mailcow-security.json": security,
    "mailcow-logs.json": log_views,
    "mailcow-queue.json": queue_quarantine,
    "mailcow-dmarc.json": dmarc,
    "mailcow-domains.json": domains_mailboxes,
    "mailcow-health.json": service_health,
}


def build_all() -> dict[str, dict]:
    return {name: build() for name, build in BUILDERS.items()}


def render(board: dict) -> str:
    return json.dumps(board, indent=2, ensure_ascii=False) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--check", action="store_true", help="exit 1 if a committed file differs")
    args = parser.parse_args()
    stale = []
    for name, board in build_all().items():
        path = HERE / name
        text = render(board)
        if args.check:
            if not path.exists() or path.read_text() != text:
                stale.append(name)
        else:
            path.write_text(text)
    if stale:
        print("out of date (run python -m dashboards.generate):", ", ".join(stale))
        sys.exit(1)


if __name__ == "__main__":
    main()
