"""mailcow / Logs: every mailcow log service through the Loki datasource, grouped by what it is about,
with smart filters and search; parsed Postfix and netfilter events below."""

from __future__ import annotations

from dashboards.kit import Panel, dashboard, infinity, link_column, logs, series, table, textbox
from dashboards.loki import (
    FILTERS,
    SERVICE_GROUPS,
    explore_column,
    explore_link,
    label_var,
    loki,
    selector,
    smart_filter_var,
)
from dashboards.messages import DETAILS_URL

# Every line of every service (LogQL refuses a selector that also matches the empty label, hence .+).
ALL_LOGS = '{service=~".+"}'


def _volume(by: str, title: str, description: str, w: int) -> Panel:
    """Lines per interval of the chosen logs, stacked bars by `by` (Loki's count_over_time)."""
    expr = f"sum by ({by}) (count_over_time({selector()} {FILTERS} [$__auto]))"
    result = series(title, description, [loki(expr, legend=f"{{{{{by}}}}}", metric=True)], "short", w=w, h=7)
    result["fieldConfig"]["defaults"]["custom"].update(
        {"drawStyle": "bars", "fillOpacity": 80, "stacking": {"mode": "normal", "group": "A"}}
    )
    return result


def _groups() -> list[Panel]:
    """One logs panel per service group; each shows only the chosen services of its group."""
    panels = []
    for (title, services), width in zip(SERVICE_GROUPS, (24, 12, 12, 24), strict=True):
        panels.append(
            logs(
                f"{title} ({', '.join(services)})",
                f"{', '.join(services)} lines, newest first, filtered by level, smart filter and search.",
                loki(f"{selector(services)} {FILTERS}"),
                w=width,
                h=12,
            )
        )
    return panels


def _parsed() -> list[Panel]:
    """What the parsers made of Postfix and netfilter lines (the REST datasource): queue ids link to
    the message, IPs to their lines in Explore."""
    search = (("search", "${search}"), ("limit", "1000"))
    return [
        table(
            "Postfix events (parsed)",
            "Postfix lines with their queue id, kind and status; click a queue id for the message.",
            infinity(
                "postfix_logs",
                params=search,
                only=("timestamp", "program", "queue_id", "kind", "status", "body", "correlation_key"),
            ),
            overrides=[
                link_column("queue_id", "Message details", DETAILS_URL),
                {
                    "matcher": {"id": "byName", "options": "correlation_key"},
                    "properties": [{"id": "custom.hidden", "value": True}],
                },
            ],
        ),
        table(
            "Netfilter events (parsed)",
            "Failed-login warnings, bans and unbans; click an IP for every line that names it.",
            infinity("netfilter_logs", params=search, only=("timestamp", "kind", "ip", "username", "body")),
            overrides=[
                explore_column(
                    "ip",
                    "Explore this IP's logs",
                    '{service=~".+"} |= "${__data.fields.ip:percentencode}"',
                )
            ],
        ),
    ]


def build() -> dict:
    """The dashboard's JSON model."""
    panels = [
        _volume("service", "Log volume by service", "Lines per interval of the chosen services and filters.", 16),
        _volume("level", "Log volume by level", "The same lines by level.", 8),
        *_groups(),
        *_parsed(),
    ]
    variables = [
        label_var("service", "Service", ".+"),
        label_var("level", "Level", ".*"),
        smart_filter_var(),
        textbox("search", "Search (regex, any case)"),
    ]
    return dashboard(
        "mailcow-logs",
        "mailcow / Logs",
        "Every mailcow log service (Loki datasource) with smart filters and search; parsed events below.",
        panels,
        variables,
        links=[explore_link("Explore logs", ALL_LOGS, "Every mailcow log line in Explore (live tail: Live).")],
    )
