"""mailcow / Domains & mailboxes: DNS checks (SPF, DKIM, DMARC) per domain, mailbox activity and quota."""

from __future__ import annotations

from dashboards.kit import (
    Panel,
    across_replicas,
    dashboard,
    domain_var,
    field_stat,
    infinity,
    prom,
    series,
    stat,
    table,
)

# A check's status as a coloured cell.
STATUS_COLOURS = {
    "success": {"color": "green", "index": 0},
    "warning": {"color": "orange", "index": 1},
    "error": {"color": "red", "index": 2},
    "unknown": {"color": "text", "index": 3},
}


def _mail(title: str, description: str, field: str, unit: str) -> Panel:
    """One figure of the range's mailbox totals."""
    target = infinity("mailbox_summary", params=(), hide=("active_mailboxes", "sent_failed"))
    return field_stat(title, description, target, field, unit)


def _summary() -> list[Panel]:
    """Domains in DNS trouble and the range's mail totals."""
    return [
        stat(
            "Domains with DNS errors",
            "SPF, DKIM or DMARC checks in error (last check).",
            prom("count(" + across_replicas("mailcow_dns_check_status") + " == 2) or vector(0)", instant=True),
            "short",
            w=6,
        ),
        _mail("Mail sent", "Mail sent by mailboxes and aliases in the range.", "total_sent", "short"),
        _mail("Mail received", "Mail received by mailboxes and aliases in the range.", "total_received", "short"),
        _mail(
            "Send failure rate", "Share of sent mail that bounced, expired or was rejected.", "failure_rate", "percent"
        ),
    ]


def _dns_checks() -> Panel:
    """The last check of every domain, statuses coloured."""
    coloured = {
        "matcher": {"id": "byRegexp", "options": "^(spf|dkim|dmarc)_status$"},
        "properties": [
            {"id": "mappings", "value": [{"type": "value", "options": STATUS_COLOURS}]},
            {"id": "custom.cellOptions", "value": {"type": "color-background"}},
        ],
    }
    return table(
        "DNS checks",
        "The last SPF, DKIM and DMARC check of every domain, with its messages and warnings"
        " (re-check: POST /api/domains/<domain>/check-dns).",
        infinity("dns_checks", params=(("domain", "${domain}"),), hide=("full_check",)),
        w=24,
        h=8,
        overrides=[coloured],
    )


def _top(title: str, description: str, sort: str) -> Panel:
    """The 20 mailboxes first by `sort`."""
    target = infinity(
        "mailbox_activity", params=(("domain", "${domain}"), ("sort_by", sort), ("limit", "20")), hide=("quota_used",)
    )
    return table(title, description, target, w=12, h=8)


def _mailboxes() -> list[Panel]:
    """The busiest, most failing and fullest mailboxes."""
    return [
        _top("Top senders (mailboxes)", "Mailboxes by mail sent in the range (aliases in combined).", "sent_total"),
        _top("Top receivers (mailboxes)", "Mailboxes by mail received in the range.", "received_total"),
        _top("Highest send failure rate", "Mailboxes whose sent mail fails most.", "failure_rate"),
        _top("Quota", "Mailboxes by storage used.", "quota_used"),
    ]


def build() -> dict:
    """The dashboard's JSON model."""
    spf_lookups = series(
        "SPF DNS lookups per domain",
        "DNS-querying SPF terms through includes; 10 is the RFC 7208 limit.",
        [prom("max by (domain) (mailcow_spf_dns_lookups)", "{{domain}}")],
        "short",
        w=24,
        h=6,
    )
    return dashboard(
        "mailcow-domains",
        "mailcow / Domains & mailboxes",
        "DNS checks (SPF, DKIM, DMARC) per domain, mailbox activity and quota.",
        [*_summary(), _dns_checks(), *_mailboxes(), spf_lookups],
        [domain_var()],
    )
