"""mailcow / DMARC & TLS: aggregate and TLS-RPT reports — pass rates, sending sources, reporters,
published policy and failures, over 30 days by default."""

from __future__ import annotations

from dashboards.kit import Panel, dashboard, field_stat, infinity, infinity_var, panel, prom, series, stat, table, total

DMARC_VARS = [
    infinity_var(
        "dmarc_domains",
        "Domain",
        name="dmarc_domain",
        includeAll=True,
        allValue=".*",
        sort=1,
        current={"text": "All", "value": "$__all"},
    ),
    {
        "type": "custom",
        "name": "failures",
        "label": "Failures only",
        "query": "false,true",
        "includeAll": False,
        "multi": False,
        "hide": 0,
        "current": {"text": "false", "value": "false"},
        "options": [],
    },
]
DMARC_FILTERS = (("domain", "${dmarc_domain}"), ("failures_only", "${failures}"))
DOMAIN_ONLY = (("domain", "${dmarc_domain}"),)  # failures and TLS: "Failures only" does not apply
RATES = ("dmarc_pass_pct", "spf_pass_pct", "dkim_pass_pct")


def _summary_stat(title: str, description: str, field: str, unit: str) -> Panel:
    """One figure of the range's DMARC totals."""
    target = infinity("dmarc_summary", params=DMARC_FILTERS, hide=("spf_pass_pct", "dkim_pass_pct", "unique_ips"))
    return field_stat(title, description, target, field, unit)


def _summary() -> list[Panel]:
    """The range's totals: messages, pass rate, failures, reporters."""
    return [
        _summary_stat(
            "Reported messages", "Messages the DMARC reports of the range counted.", "total_messages", "short"
        ),
        _summary_stat(
            "DMARC pass",
            "Share that passed DMARC (aligned SPF or DKIM), as reporters evaluated it.",
            "dmarc_pass_pct",
            "percent",
        ),
        _summary_stat(
            "Failing messages", "Messages that failed DMARC or had the policy applied.", "failing_messages", "short"
        ),
        _summary_stat("Reporters", "Organisations that sent reports.", "unique_reporters", "short"),
    ]


def _per_day() -> list[Panel]:
    """Pass rates and volumes per UTC day of the reports."""
    return [
        series(
            "DMARC pass rate by domain",
            "DMARC pass rate per UTC day, one line per policy domain.",
            [infinity("dmarc_pass_by_domain", "timeseries", params=DMARC_FILTERS)],
            "percent",
            w=24,
        ),
        series(
            "Pass rates per day",
            "DMARC, SPF and DKIM pass rates per UTC day of the reports.",
            [infinity("dmarc_daily", "timeseries", params=DMARC_FILTERS, only=("time", *RATES))],
            "percent",
        ),
        series(
            "Reported messages per day",
            "All reported messages and those failing DMARC.",
            [infinity("dmarc_daily", "timeseries", params=DMARC_FILTERS, hide=RATES)],
            "short",
        ),
    ]


def _countries() -> Panel:
    """A world map of the sending IPs' countries: size = messages, colour = failing messages."""
    return panel(
        "geomap",
        "Source countries",
        "Reported messages by the sending IP's country (GeoIP), larger = more mail.",
        [infinity("dmarc_countries", params=DMARC_FILTERS, hide=RATES)],
        "short",
        12,
        10,
        options={
            "view": {"id": "zero", "lat": 20, "lon": 0, "zoom": 1},
            "controls": {"showZoom": True, "mouseWheelZoom": False},
            "basemap": {"type": "default", "name": "Basemap"},
            "layers": [
                {
                    "type": "markers",
                    "name": "Sources",
                    "location": {
                        "mode": "lookup",
                        "lookup": "country_code",
                        "gazetteer": "public/gazetteer/countries.json",
                    },
                    "config": {
                        "size": {"field": "total_messages", "min": 3, "max": 30, "fixed": 5},
                        "color": {"field": "failing_messages", "fixed": "green"},
                        "showLegend": True,
                    },
                }
            ],
        },
    )


def _who() -> list[Panel]:
    """Who sends as our domains, what fails, what policy reporters saw, and who reports."""
    return [
        table(
            "Sending sources",
            "Sending IPs by volume with pass rates, country, ASN and reverse DNS; switch 'Failures only' to see"
            " what fails.",
            infinity("dmarc_sources", params=(*DMARC_FILTERS, ("limit", "500")), hide=("country_code",)),
            w=12,
            h=10,
        ),
        table(
            "Failures",
            "Records that failed DMARC or had the policy applied: source, identifiers, results, reporter.",
            infinity(
                "dmarc_failures", params=(*DOMAIN_ONLY, ("limit", "500")), hide=("asn", "reverse_dns", "begin_at")
            ),
            w=24,
            h=8,
        ),
        table(
            "Domains and published policy",
            "Per policy domain: volume, pass rates and the policy reporters saw (p, sp, pct, alignment).",
            infinity("dmarc_domains", params=DMARC_FILTERS, hide=("unique_ips",)),
            w=12,
        ),
        table(
            "Reporters",
            "Who sent reports, how many, and what they saw.",
            infinity("dmarc_reporters", params=DMARC_FILTERS, hide=("spf_pass_pct", "dkim_pass_pct")),
            w=12,
        ),
    ]


def _tls() -> list[Panel]:
    """TLS-RPT: sessions, failure types, reports; and the reports that could not be read."""
    return [
        series(
            "TLS sessions per day",
            "SMTP TLS sessions to our MX hosts that senders reported (TLS-RPT).",
            [infinity("tls_daily", "timeseries", params=DOMAIN_ONLY)],
            "short",
        ),
        table(
            "TLS failure types",
            "Failed TLS sessions by result type (certificate, STARTTLS, MTA-STS policy).",
            infinity("tls_failure_types", params=DOMAIN_ONLY),
            w=6,
        ),
        table(
            "TLS reports",
            "TLS-RPT reports received.",
            infinity("tls_reports", params=(*DOMAIN_ONLY, ("limit", "200")), hide=("report_id",)),
            w=6,
        ),
        stat(
            "Invalid reports (range)",
            "Uploads, files and mails that held no readable report.",
            prom(total("increase(mailcow_dmarc_invalid_reports_total[$__range])"), instant=True),
            "short",
            w=6,
        ),
    ]


def build() -> dict:
    """The dashboard's JSON model (30 days by default: reports arrive once a day)."""
    board = dashboard(
        "mailcow-dmarc",
        "mailcow / DMARC & TLS",
        "DMARC aggregate and TLS-RPT reports: pass rates, sending sources, reporters, policy, failures.",
        [*_summary(), *_per_day(), _countries(), *_who(), *_tls()],
        DMARC_VARS,
        refresh="5m",
    )
    board["time"] = {"from": "now-30d", "to": "now"}
    return board
