"""What every dashboard is built from: datasources, Infinity and PromQL targets, panels, variables,
layout and the dashboard frame.

Plain Python dicts keep shared pieces in one place; each module beside this one builds one dashboard
from them and `python -m dashboards.generate` writes them all. Infinity targets take their columns
from the query catalog (`exporter.readmodels.catalog`), which declares them once.
"""

from __future__ import annotations

from typing import Any

from exporter.readmodels import catalog
from exporter.readmodels.catalog import Column

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
    """A PromQL target; `instant` for stats, which want one value rather than a range."""
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
    """Any panel at (0, 0) of size `w` x `h`; `layout` places it. `extra` holds overrides, options, links."""
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
    """One figure: the target's last value."""
    options = {
        "reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
        "colorMode": "value",
        "graphMode": "none",
        "textMode": "auto",
    }
    return panel("stat", title, description, [target], unit, w, h, options=options)


def field_stat(title: str, description: str, target: dict, field: str, unit: str) -> Panel:
    """A quarter-width stat of one field of a target that answers several (one query, many stats)."""
    result = stat(title, description, target, unit, w=6)
    result["options"]["reduceOptions"]["fields"] = f"/^{field}$/"
    return result


def series(title: str, description: str, targets: list, unit: str, w: int = 12, h: int = 8) -> Panel:
    """Lines over time, all series in the tooltip."""
    options = {
        "legend": {"displayMode": "list", "placement": "bottom", "showLegend": True},
        "tooltip": {"mode": "multi", "sort": "desc"},
    }
    return panel("timeseries", title, description, targets, unit, w, h, options=options)


def table(title: str, description: str, target: dict, w: int = 12, h: int = 8, **extra: Any) -> Panel:
    """Rows as the target answers them; `extra`: column overrides and panel links."""
    options = {"showHeader": True, "cellHeight": "sm", "footer": {"show": False, "reducer": ["sum"], "fields": ""}}
    return panel("table", title, description, [target], "none", w, h, options=options, **extra)


def logs(title: str, description: str, target: dict, w: int = 24, h: int = 12) -> Panel:
    """Log lines, newest first, wrapped, with details on click."""
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
    """Horizontal bars of each row's `count` (the top lists)."""
    options = {
        "orientation": "horizontal",
        "displayMode": "gradient",
        "showUnfilled": True,
        "reduceOptions": {"calcs": [], "fields": "/^count$/", "values": True},
    }
    return panel("bargauge", title, description, [target], unit, w, h, options=options)


def link_column(column: str, title: str, url: str) -> dict[str, Any]:
    """A table override that makes every cell of `column` a link to `url`."""
    return {
        "matcher": {"id": "byName", "options": column},
        "properties": [{"id": "links", "value": [{"title": title, "url": url, "targetBlank": False}]}],
    }


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


# --- variables and the dashboard ---------------------------------------------------------------

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


def infinity_var(source: str, label: str, **extra: Any) -> dict[str, Any]:
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


def field_var(name: str, label: str, url: str, field: str) -> dict[str, Any]:
    """A hidden variable holding one field of the JSON object our REST API answers at `url` (which may
    name other variables), e.g. a message's queue id from its details."""
    target = _target(url, [Column(field, "string")], "table", (), "variable")
    query = {"queryType": "infinity", "query": "", "infinityQuery": target}
    return {**infinity_var(name, label, hide=2), "query": query}


def domain_var() -> dict[str, Any]:
    """The mail domains (mailcow's and the configured local ones), All by default."""
    return infinity_var(
        "domains",
        "Domain",
        name="domain",
        includeAll=True,
        allValue=".*",
        sort=1,
        current={"text": "All", "value": "$__all"},
    )


def textbox(name: str, label: str) -> dict[str, Any]:
    """A free-text variable, empty by default (no filter)."""
    return {**SEARCH_VAR, "name": name, "label": label}


MAIL_VARS = [DIRECTION_VAR, domain_var(), SEARCH_VAR]


def dashboard(uid: str, title: str, description: str, panels: list[Panel], variables: list[dict], **extra: Any) -> dict:
    """The dashboard frame every one shares: tag, links to the others, the mailcow events annotation;
    `links` adds this dashboard's own (e.g. Explore)."""
    links = extra.pop("links", [])
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
            *links,
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
