"""mailcow / Overview: volume, outcomes, queue, quarantine, security and ingest health at a glance."""

from __future__ import annotations

from dashboards.kit import (
    MAIL_VARS,
    Panel,
    across_replicas,
    dashboard,
    infinity,
    per_minute,
    prom,
    series,
    stat,
    table,
    total,
)
from dashboards.loki import explore_link


def _messages(direction: str, title: str, description: str) -> Panel:
    """Messages of one direction in the range, from the Prometheus counter."""
    expr = total(f'increase(mailcow_messages_total{{direction="{direction}"}}[$__range])')
    return stat(title, description, prom(expr, instant=True), "short")


def _outcome(title: str, description: str, field: str, unit: str) -> Panel:
    """One figure of the range's summary."""
    return stat(title, description, infinity("summary", only=(field,)), unit)


def _outcomes() -> list[Panel]:
    """The first row: volume by direction and what became of it."""
    return [
        _messages("inbound", "Inbound messages", "Messages received from outside in the range (Prometheus counter)."),
        _messages("outbound", "Outbound messages", "Messages sent by authenticated users to other servers."),
        _messages("internal", "Internal messages", "Messages between mailcow's own domains."),
        _outcome(
            "Delivery success",
            "Delivered share of finished messages (delivered, bounced, expired, rejected).",
            "delivery_success_ratio",
            "percentunit",
        ),
        _outcome("Spam rate", "Share of messages rspamd or a reject marked as spam.", "spam_ratio", "percentunit"),
        _outcome("Deferred", "Messages still waiting for a retry (or greylisted) in the range.", "deferred", "short"),
        _outcome("Bounced", "Messages with a permanently refused recipient.", "bounced", "short"),
        _outcome("Rejected", "Mail refused at our door (NOQUEUE, RBL, milter).", "rejected", "short"),
    ]


def _now() -> list[Panel]:
    """The state right now: queue, quarantine, containers, ingestion."""
    return [
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
    ]


def _trends() -> list[Panel]:
    """Mail flow, auth failures and bans over time, and the ingestion table."""
    direction = '{direction=~"${direction:regex}"}'
    return [
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
            [prom(per_minute(f"mailcow_messages_total{direction}", "direction"), "{{direction}}")],
            "short",
            w=12,
        ),
        table(
            "Ingestion",
            "Per log source: lines stored, lag, gaps, last error.",
            infinity("ingest", params=(), hide=("newest_line", "interval_seconds", "lines_per_second")),
        ),
    ]


def build() -> dict:
    """The dashboard's JSON model (the first one a user opens)."""
    return dashboard(
        "mailcow-overview",
        "mailcow / Overview",
        "What happened to the mail: volume, outcomes, queue, quarantine, security and ingest health at a glance.",
        [*_outcomes(), *_now(), *_trends()],
        MAIL_VARS,
        links=[
            explore_link(
                "Explore logs",
                '{service=~".+", level=~"warning|error|critical"}',
                "Warnings and errors of every mailcow service in Explore.",
            )
        ],
    )
