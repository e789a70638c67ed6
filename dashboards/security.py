"""mailcow / Spam & security: rspamd verdicts and scores, symbols, netfilter bans, failed logins."""

from __future__ import annotations

from dashboards.kit import SEARCH_VAR, Panel, dashboard, infinity, panel, per_minute, prom, series, stat, table, total
from dashboards.loki import explore_column, explore_link

# Every line that names the clicked IP, whichever service wrote it.
IP_LINES = '{service=~".+"} |= "${__data.fields.ip:percentencode}"'


def _rspamd() -> list[Panel]:
    """Rspamd's verdicts over time, its score distribution and the symbols that scored most."""
    return [
        series(
            "Rspamd actions",
            "Scanned messages per interval by rspamd action.",
            [infinity("rspamd_actions", "timeseries", params=(), hide=("avg_score",))],
            "short",
        ),
        series(
            "Rspamd actions by direction (Prometheus)",
            "Per minute; outbound = authenticated senders.",
            [prom(per_minute("mailcow_rspamd_actions_total", "action, direction"), "{{direction}} {{action}}")],
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
        table("Top rspamd symbols", "Symbols that scored most often.", infinity("top_symbols", params=())),
    ]


def _netfilter() -> list[Panel]:
    """Failed logins and what netfilter did about them."""
    return [
        series(
            "Netfilter events",
            "Failed-login warnings, bans and unbans per interval.",
            [infinity("netfilter_events", "timeseries", params=())],
            "short",
        ),
        table(
            "Top blocked IPs",
            "Sources with the most netfilter warnings and bans; click an IP for its lines in Explore.",
            infinity("top_blocked_ips", params=()),
            overrides=[explore_column("ip", "Explore this IP's logs", IP_LINES)],
        ),
        table(
            "Auth failures by user and IP",
            "Failed logins (SMTP AUTH, IMAP/POP3, SOGo, UI); click an IP for its lines in Explore.",
            infinity("auth_failures", params=()),
            overrides=[explore_column("ip", "Explore this IP's logs", IP_LINES)],
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


def build() -> dict:
    """The dashboard's JSON model."""
    return dashboard(
        "mailcow-security",
        "mailcow / Spam & security",
        "Rspamd verdicts and scores, symbols, netfilter bans and failed logins.",
        [*_rspamd(), *_netfilter()],
        [SEARCH_VAR],
        links=[
            explore_link("Explore netfilter logs", '{service="netfilter"}', "Netfilter's bans and warnings."),
            explore_link("Explore rspamd history", '{service="rspamd-history"}', "Rspamd's scan results as log lines."),
        ],
    )
