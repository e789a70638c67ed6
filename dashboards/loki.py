"""The Loki side of the dashboards: LogQL targets and variables on our Loki-compatible API, and links
that open Grafana's Explore on it (issue 22).

Grafana's built-in Loki datasource (uid `mailcow-loki`, provisioned beside the others) reads every
mailcow log service from this service, so nothing has to be installed in Grafana. Only the LogQL
subset our API serves is used here (stream selectors, line filters, count_over_time, sum by); the
contract tests parse every expression with `exporter.parsers.logql`.
"""

from __future__ import annotations

import json
import re
from typing import Any
from urllib.parse import quote

LOKI = {"type": "loki", "uid": "mailcow-loki"}

# The dashboards' panel groups: mailcow's log list names (the `service` label) by what they are about.
SERVICE_GROUPS = (
    ("Mail transport", ("postfix",)),
    ("Mailbox access", ("dovecot", "sogo")),
    ("Security", ("netfilter", "ratelimited", "rspamd-history")),
    ("System", ("watchdog", "acme", "api", "autodiscover")),
)
SERVICES = tuple(service for _, services in SERVICE_GROUPS for service in services)

# Seed 000's smart filters as line-filter regexes (RE2 and PostgreSQL alike; no commas, backslashes or
# quotes, so each survives Grafana's custom-variable syntax and a double-quoted LogQL string as it is).
SMART_FILTERS = (
    ("Any line", ".*"),
    ("Postscreen", "CONNECT from|PASS (NEW|OLD)|DNSBL rank|PREGREET|HANGUP after|COMMAND PIPELINING|WHITELISTED"),
    ("NOQUEUE Reject", "NOQUEUE: reject:"),
    ("DNSBL Block", "blocked using|DNSBL rank"),
    ("Pregreet", "PREGREET"),
    ("Sender/Recipient Restrictions", "Sender address rejected|Recipient address rejected"),
    ("Relay Denied", "Relay access denied"),
    ("Connections (Postfix)", "(dis)?connect from|lost connection after"),
    ("Dovecot auth failures", "(?i)auth(entication)? failed|password mismatch|unknown user"),
    ("SOGo logins", "(?i)login from"),
)

# The dashboard variables a Loki panel uses: the services and levels chosen, a smart filter, a search.
SELECTED = 'level=~"$level"'
FILTERS = '|~ "$filter" |~ "(?i)$search"'


def selector(services: tuple[str, ...] = ()) -> str:
    """The stream selector of `services` (all chosen in `$service` when empty) at the chosen levels.

    A group's panel keeps `service=~"$service"` beside its own services (two matchers on one label, as
    Loki allows): deselecting a service in the variable empties its panel too."""
    chosen = 'service=~"$service"'
    if services:
        return f'{{service=~"{"|".join(services)}", {chosen}, {SELECTED}}}'
    return f"{{{chosen}, {SELECTED}}}"


def loki(expr: str, ref: str = "A", legend: str = "", metric: bool = False) -> dict[str, Any]:
    """A LogQL target on the Loki datasource; `metric` for a count over time drawn as a series."""
    target: dict[str, Any] = {
        "refId": ref,
        "datasource": LOKI,
        "expr": expr,
        "queryType": "range",
        "editorMode": "code",
    }
    if metric:
        target["legendFormat"] = legend
    return target


def label_var(label: str, title: str, all_value: str) -> dict[str, Any]:
    """A multi-value variable of a stream label's values (Grafana calls our `label/<name>/values`).

    `all_value` is what "All" sends: `.+` for a label every line has (it also keeps the selector
    from matching the empty label, which LogQL refuses alone), `.*` for one a line may lack."""
    return {
        "type": "query",
        "name": label,
        "label": title,
        "datasource": LOKI,
        "query": {"type": 1, "label": label, "stream": "", "refId": "LokiVariableQueryEditor-VariableQuery"},
        "definition": f"label_values({label})",
        "refresh": 2,
        "includeAll": True,
        "allValue": all_value,
        "multi": True,
        "sort": 1,
        "hide": 0,
        "current": {"text": ["All"], "value": ["$__all"]},
        "options": [],
        "regex": "",
    }


def smart_filter_var() -> dict[str, Any]:
    """Seed 000's smart filters as one custom variable; each value is a regex line filter."""
    return {
        "type": "custom",
        "name": "filter",
        "label": "Smart filter",
        "query": ", ".join(f"{title} : {regex}" for title, regex in SMART_FILTERS),
        "includeAll": False,
        "multi": False,
        "hide": 0,
        "current": {"text": SMART_FILTERS[0][0], "value": SMART_FILTERS[0][1]},
        "options": [],
    }


# Grafana placeholders stay as they are in a link; everything around them is percent-encoded.
_PLACEHOLDER = re.compile(r"\$\{[^}]+\}")


def explore_url(expr: str) -> str:
    """The Explore URL (Grafana 10+ `schemaVersion=1&panes=` form) for `expr` on the Loki datasource,
    over the dashboard's time range. `expr` may hold `${...}` placeholders Grafana fills in when the
    link is clicked; use a `:percentencode` format for any value that is not a plain word."""
    pane = {
        "datasource": LOKI["uid"],
        "queries": [{"refId": "A", "datasource": LOKI, "expr": expr, "queryType": "range", "editorMode": "code"}],
        "range": {"from": "${__from}", "to": "${__to}"},
    }
    text = json.dumps({"logs": pane}, separators=(",", ":"))
    parts, last = [], 0
    for match in _PLACEHOLDER.finditer(text):
        parts += [quote(text[last : match.start()], safe=""), match.group()]
        last = match.end()
    parts.append(quote(text[last:], safe=""))
    return "/explore?schemaVersion=1&panes=" + "".join(parts)


def explore_link(title: str, expr: str, tooltip: str) -> dict[str, Any]:
    """A dashboard link (top bar) that opens Explore on `expr` in a new tab."""
    return {
        "title": title,
        "type": "link",
        "url": explore_url(expr),
        "icon": "doc",
        "tooltip": tooltip,
        "tags": [],
        "asDropdown": False,
        "targetBlank": True,
        "includeVars": False,
        "keepTime": False,
    }


def explore_column(column: str, title: str, expr: str) -> dict[str, Any]:
    """A table override: every cell of `column` also opens Explore on `expr` (which names the cell)."""
    return {
        "matcher": {"id": "byName", "options": column},
        "properties": [{"id": "links", "value": [{"title": title, "url": explore_url(expr), "targetBlank": True}]}],
    }
