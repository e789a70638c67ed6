"""mailcow / Delivery: outcomes over time, delays, reasons, top senders, recipients and domains."""

from __future__ import annotations

from dashboards.kit import MAIL_VARS, Panel, bars, dashboard, infinity, per_minute, prom, series, table, total


def _over_time() -> list[Panel]:
    """Messages by status and by direction, and delivery delays, per interval."""
    p95 = (
        "histogram_quantile(0.95, "
        + total("rate(mailcow_delivery_delay_seconds_bucket[$__rate_interval])", "le, direction")
        + ")"
    )
    return [
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
            [prom(p95, "{{direction}}")],
            "s",
        ),
    ]


def _reasons_and_tops() -> list[Panel]:
    """Why mail waits or fails, who sends and receives the most, and failures by provider."""
    return [
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
                prom(per_minute("mailcow_postfix_deferrals_total", "remote"), "deferred {{remote}}"),
                prom(per_minute("mailcow_postfix_bounces_total", "remote"), "bounced {{remote}}", "B"),
            ],
            "short",
        ),
    ]


def build() -> dict:
    """The dashboard's JSON model."""
    return dashboard(
        "mailcow-delivery",
        "mailcow / Delivery",
        "Delivery outcomes over time, delays, reasons and top senders, recipients and domains.",
        [*_over_time(), *_reasons_and_tops()],
        MAIL_VARS,
    )
