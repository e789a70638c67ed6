"""mailcow / Messages: search and filter every message; each links to its details."""

from __future__ import annotations

from dashboards.kit import DIRECTION_VAR, FILTERS, MAIL_VARS, dashboard, infinity, link_column, table, textbox
from dashboards.loki import explore_column, explore_link
from exporter.parsers import dovecot

DETAILS_URL = "/d/mailcow-message/mailcow-message-details?var-key=${__data.fields.correlation_key}&${__url_time_range}"


def build() -> dict:
    """The dashboard's JSON model."""
    params = (
        *FILTERS,
        ("sender", "${sender}"),
        ("recipient", "${recipient}"),
        ("status", "${status}"),
        ("ip", "${ip}"),
        ("user", "${user}"),
        ("delivery", "${delivery}"),
        ("mailbox", "${mailbox}"),
        ("limit", "500"),
    )
    status_var = {
        **DIRECTION_VAR,
        "name": "status",
        "label": "Status",
        "query": "delivered,deferred,bounced,rejected,expired,discarded,queued,spam",
    }
    # what the mailbox did for a recipient (Dovecot's delivery line: a Sieve discard, the folder it chose)
    delivery_var = {
        **DIRECTION_VAR,
        "name": "delivery",
        "label": "Mailbox did",
        "query": ",".join(dovecot.OUTCOMES),
    }
    panels = [
        table(
            "Messages",
            "Newest first; click a sender or the key for the message's details, a queue id for its logs. "
            "Delivery and mailbox: what the mailbox did for its recipients (Dovecot: stored into a folder, "
            "discarded or rejected by Sieve, redirected, failed).",
            infinity("messages", params=params, hide=("details_url",)),
            w=24,
            h=20,
            overrides=[
                link_column("correlation_key", "Message details", DETAILS_URL),
                link_column("sender", "Message details", DETAILS_URL),
                explore_column(
                    "queue_id",
                    "Explore this queue id's Postfix logs",
                    '{service="postfix"} |= "${__data.fields.queue_id:percentencode}"',
                ),
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
        delivery_var,
        textbox("mailbox", "Folder"),
    ]
    return dashboard(
        "mailcow-messages",
        "mailcow / Messages",
        "Search and filter every message.",
        panels,
        variables,
        links=[explore_link("Explore Postfix logs", '{service="postfix"}', "Postfix's lines in Explore.")],
    )
