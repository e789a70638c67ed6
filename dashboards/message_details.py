"""mailcow / Message details: one message's recipients, rspamd symbols and Postfix lines."""

from __future__ import annotations

from dashboards.kit import dashboard, field_var, infinity, logs, table, textbox
from dashboards.loki import explore_link

DETAILS = "/api/message/${key}/details"


def build() -> dict:
    """The dashboard's JSON model (the Messages dashboard links here with the correlation key; the
    message's queue id and Message-ID, read from its details, fill the Explore links)."""
    key = (("key", "${key}"),)
    panels = [
        table(
            "Recipients",
            "Every recipient with its own status, relay, delay and the remote reply, and what the mailbox did "
            "(Dovecot: the folder it stored into, a Sieve discard, reject or redirect, a failure's reason).",
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
        "One message: recipients, mailbox delivery, rspamd, Postfix.",
        panels,
        [
            textbox("key", "Correlation key"),
            field_var("queue_id", "Queue id", DETAILS, "queue_id"),
            field_var("message_id", "Message-ID", DETAILS, "message_id"),
        ],
        refresh="",
        links=[
            explore_link(
                "Explore Postfix logs",
                '{service="postfix"} |= "${queue_id:percentencode}"',
                "Every Postfix line of this message's queue id in Explore.",
            ),
            explore_link(
                "Explore Dovecot delivery",
                '{service="dovecot"} |= "${message_id:percentencode}"',
                "Dovecot's LMTP and Sieve lines of this Message-ID in Explore.",
            ),
        ],
    )
