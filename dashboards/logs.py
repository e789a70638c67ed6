"""mailcow / Logs: Postfix, rspamd and netfilter lines with search."""

from __future__ import annotations

from dashboards.kit import SEARCH_VAR, dashboard, infinity, logs


def build() -> dict:
    """The dashboard's JSON model."""
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
