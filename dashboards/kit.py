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

from exporter.readmodels import catalog
from exporter.readmodels.catalog import Column

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


# How Infinity reads each kind of catalog column.
INFINITY_TYPES = {"time": "timestamp_epoch", "number": "number", "string": "string", "boolean": "boolean"}


def _target(url: str, columns: list[Column], fmt: str, params: tuple[tuple[str, str], ...], ref: str) -> dict[str, Any]:
    """An Infinity URL target on this service; `columns` become its typed selectors."""
    return {
        "refId": ref,
        "datasource": INFINITY,
        "type": "json",
        "source": "url",
        "parser": "backend",
        "format": fmt,
        "url": url,
        "url_options": {
            "method": "GET",
            "data": "",
            "params": [{"key": k, "value": v} for k, v in (*RANGE, *params)],
        },
        "root_selector": "",
        "columns": [{"selector": c.name, "text": c.name, "type": INFINITY_TYPES[c.kind]} for c in columns],
        "filters": [],
    }


def infinity(
    query: str,
    fmt: str = "table",
    params: tuple[tuple[str, str], ...] = FILTERS,
    ref: str = "A",
    only: tuple[str, ...] = (),
    hide: tuple[str, ...] = (),
) -> dict[str, Any]:
    """An Infinity target on /grafana/infinity/<query> with the columns the catalog declares for it:
    `only` some of them, or all but `hide` (in the catalog's order). A query whose columns are named
    by its data lists none, so Infinity takes every key."""
    declared = catalog.QUERIES[query]
    unknown = {*only, *hide} - {c.name for c in declared.columns}
    if unknown:
        raise ValueError(f"{query} declares no column {', '.join(sorted(unknown))}")
    columns = [c for c in declared.columns if (not only or c.name in only) and c.name not in hide]
    return _target(f"/grafana/infinity/{query}", [] if declared.dynamic else columns, fmt, params, ref)


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
    target = _target(f"/grafana/infinity/variables/{source}", [], "table", (), "variable")
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
                    "target": infinity("annotations", params=()),
                },
            ]
        },
        "templating": {"list": variables},
        "panels": layout(panels),
    }


MAIL_VARS = [DIRECTION_VAR, domain_var(), SEARCH_VAR]
DETAILS_URL = "/d/mailcow-message/mailcow-message-details?var-key=${__data.fields.correlation_key}&${__url_time_range}"


def overview() -> dict:
    d = '{direction=~"${direction:regex}"}'

    def from_summary(field: str) -> dict:
        return infinity("summary", only=(field,))

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
            [infinity("message_flow", "timeseries")],
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
            infinity("ingest", params=(), hide=("newest_line", "interval_seconds", "lines_per_second")),
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
            infinity("messages", params=params, hide=("details_url",)),
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
            infinity("message_recipients", params=key),
            w=24,
            h=8,
        ),
        table(
            "Rspamd symbols",
            "The symbols rspamd matched, highest score first.",
            infinity("message_symbols", params=key),
            w=24,
            h=8,
        ),
        logs(
            "Postfix lines",
            "Every Postfix line of this queue id.",
            infinity("message_lines", "logs", params=key),
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
    panels = [
        series(
            "Messages by status",
            "Messages per interval by final status.",
            [infinity("message_flow", "timeseries")],
            "short",
        ),
        series(
            "Messages by direction",
            "Messages per interval by direction.",
            [infinity("direction_flow", "timeseries")],
            "short",
        ),
        series(
            "Delivery delay percentiles",
            "Postfix delay= of delivered recipients: p50, p90, p99.",
            [infinity("delivery_delay", "timeseries")],
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
            infinity("top_defer_reasons", params=()),
        ),
        table(
            "Top bounce reasons",
            "Most frequent replies of bounced attempts, all directions (numbers masked).",
            infinity("top_bounce_reasons", params=()),
        ),
        bars("Top senders", "Senders with the most messages.", infinity("top_senders"), w=6),
        bars("Top recipients", "Recipients with the most messages.", infinity("top_recipients"), w=6),
        bars("Top sender domains", "Sender domains with the most messages.", infinity("top_sender_domains"), w=6),
        bars(
            "Top recipient domains",
            "Recipient domains with the most messages.",
            infinity("top_recipient_domains"),
            w=6,
        ),
        table("Rejects by reason", "Mail refused at our door, by reason class.", infinity("top_reject_reasons")),
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
    panels = [
        series(
            "Rspamd actions",
            "Scanned messages per interval by rspamd action.",
            [infinity("rspamd_actions", "timeseries", params=(), hide=("avg_score",))],
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
            [infinity("rspamd_scores", params=())],
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
            infinity("top_symbols", params=()),
        ),
        series(
            "Netfilter events",
            "Failed-login warnings, bans and unbans per interval.",
            [infinity("netfilter_events", "timeseries", params=())],
            "short",
        ),
        table(
            "Top blocked IPs",
            "Sources with the most netfilter warnings and bans.",
            infinity("top_blocked_ips", params=()),
        ),
        table(
            "Auth failures by user and IP",
            "Failed logins (SMTP AUTH, IMAP/POP3, SOGo, UI).",
            infinity("auth_failures", params=()),
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
            infinity("postfix_logs", "logs", params=search),
        ),
        logs(
            "Rspamd",
            "Rspamd results as log lines.",
            infinity("rspamd_logs", "logs", params=search, hide=("correlation_key",)),
        ),
        logs(
            "Netfilter",
            "Netfilter (fail2ban-like) lines.",
            infinity("netfilter_logs", "logs", params=search),
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
        ),
        table(
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
RATES = ("dmarc_pass_pct", "spf_pass_pct", "dkim_pass_pct")


def dmarc() -> dict:
    def summary_stat(title: str, description: str, field: str, unit: str) -> Panel:
        target = infinity("dmarc_summary", params=DMARC_FILTERS, hide=("spf_pass_pct", "dkim_pass_pct", "unique_ips"))
        panel_ = stat(title, description, target, unit, w=6)
        panel_["options"]["reduceOptions"]["fields"] = f"/^{field}$/"
        return panel_

    geomap = panel(
        "geomap",
        "Source countries",
        "Reported messages by the sending IP's country (GeoIP), larger = more mail.",
        [infinity("dmarc_countries", params=DMARC_FILTERS, hide=RATES)],
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
            [infinity("dmarc_pass_by_domain", "timeseries", params=DMARC_FILTERS)],
            "percent",
            w=24,
        ),
        series(
            "Pass rates per day",
            "DMARC, SPF and DKIM pass rates per UTC day of the reports.",
            [infinity("dmarc_daily", "timeseries", params=DMARC_FILTERS, only=("time", *RATES))],
            "percent",
        ),
        series(
            "Reported messages per day",
            "All reported messages and those failing DMARC.",
            [infinity("dmarc_daily", "timeseries", params=DMARC_FILTERS, hide=RATES)],
            "short",
        ),
        geomap,
        table(
            "Sending sources",
            "Sending IPs by volume with pass rates, country, ASN and reverse DNS; switch 'Failures only' to see"
            " what fails.",
            infinity("dmarc_sources", params=(*DMARC_FILTERS, ("limit", "500")), hide=("country_code",)),
            w=12,
            h=10,
        ),
        table(
            "Failures",
            "Records that failed DMARC or had the policy applied: source, identifiers, results, reporter.",
            infinity(
                "dmarc_failures",
                params=(("domain", "${dmarc_domain}"), ("limit", "500")),
                hide=("asn", "reverse_dns", "begin_at"),
            ),
            w=24,
            h=8,
        ),
        table(
            "Domains and published policy",
            "Per policy domain: volume, pass rates and the policy reporters saw (p, sp, pct, alignment).",
            infinity("dmarc_domains", params=DMARC_FILTERS, hide=("unique_ips",)),
            w=12,
        ),
        table(
            "Reporters",
            "Who sent reports, how many, and what they saw.",
            infinity("dmarc_reporters", params=DMARC_FILTERS, hide=("spf_pass_pct", "dkim_pass_pct")),
            w=12,
        ),
        series(
            "TLS sessions per day",
            "SMTP TLS sessions to our MX hosts that senders reported (TLS-RPT).",
            [infinity("tls_daily", "timeseries", params=(("domain", "${dmarc_domain}"),))],
            "short",
        ),
        table(
            "TLS failure types",
            "Failed TLS sessions by result type (certificate, STARTTLS, MTA-STS policy).",
            infinity("tls_failure_types", params=(("domain", "${dmarc_domain}"),)),
            w=6,
        ),
        table(
            "TLS reports",
            "TLS-RPT reports received.",
            infinity("tls_reports", params=(("domain", "${dmarc_domain}"), ("limit", "200")), hide=("report_id",)),
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

    def summary_stat(title: str, description: str, field: str, unit: str) -> Panel:
        panel_ = stat(
            title,
            description,
            infinity("mailbox_summary", params=(), hide=("active_mailboxes", "sent_failed")),
            unit,
            w=6,
        )
        panel_["options"]["reduceOptions"]["fields"] = f"/^{field}$/"
        return panel_

    def top(title: str, description: str, sort: str) -> Panel:
        return table(
            title,
            description,
            infinity(
                "mailbox_activity",
                params=(("domain", "${domain}"), ("sort_by", sort), ("limit", "20")),
                hide=("quota_used",),
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
            infinity("dns_checks", params=(("domain", "${domain}"),), hide=("full_check",)),
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
            infinity("jobs", params=()),
            w=24,
        ),
        table(
            "Ingestion",
            "Per log source: lines, lag, gaps, fetch interval.",
            infinity("ingest", params=(), hide=("newest_line",)),
        ),
        table(
            "mailcow API",
            "Reachability per endpoint group.",
            infinity("api_health", params=()),
        ),
        table(
            "Ingestion gaps",
            "Spans of log lines lost before they were read.",
            infinity("gaps", params=()),
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
