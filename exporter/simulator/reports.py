"""DMARC aggregate and TLS-RPT reports as receivers would send them about the simulated domains,
for the demo and the dashboard contract tests: a week of daily reports from a few reporters,
with legitimate senders (mailcow itself, a newsletter service) and some spoofing."""

from __future__ import annotations

import json
import random
from datetime import UTC, datetime, timedelta

# (ip, kind) kind: ours = aligned SPF+DKIM, relay = DKIM only, spoof = fails both (policy applied)
SOURCES = (
    ("81.2.69.142", "ours"),  # the GeoIP test databases know these addresses
    ("89.160.20.112", "relay"),
    ("216.160.83.56", "ours"),
    ("175.16.199.1", "spoof"),
    ("1.128.0.1", "spoof"),
)
REPORTERS = (("google.com", "noreply-dmarc-support@google.com"), ("Outlook.com", "dmarcreport@microsoft.com"))
TLS_REPORTERS = ("Google Inc.", "Microsoft Corporation")


def _record(ip: str, kind: str, count: int, domain: str) -> str:
    spf, dkim, disposition = {"ours": ("pass", "pass", "none"), "relay": ("fail", "pass", "none")}.get(
        kind, ("fail", "fail", "quarantine")
    )
    return (
        f"<record><row><source_ip>{ip}</source_ip><count>{count}</count><policy_evaluated>"
        f"<disposition>{disposition}</disposition><dkim>{dkim}</dkim><spf>{spf}</spf></policy_evaluated></row>"
        f"<identifiers><header_from>{domain}</header_from></identifiers><auth_results>"
        f"<dkim><domain>{domain}</domain><selector>dkim</selector><result>{dkim}</result></dkim>"
        f"<spf><domain>{domain}</domain><result>{spf}</result></spf></auth_results></record>"
    )


def aggregate_reports(now: float, domains: list[str], days: int = 7, seed: int = 1) -> list[bytes]:
    """One report per reporter, domain and UTC day for the `days` days before `now`."""
    rng = random.Random(seed)
    today = datetime.fromtimestamp(now, UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    out = []
    for back in range(days, 0, -1):
        begin = today - timedelta(days=back)
        for domain in domains:
            for org, email in REPORTERS:
                records = "".join(
                    _record(ip, kind, rng.randint(1, 40) if kind == "spoof" else rng.randint(20, 400), domain)
                    for ip, kind in SOURCES
                    if rng.random() < 0.9
                )
                start, end = int(begin.timestamp()), int(begin.timestamp()) + 86399
                out.append(
                    f"""<?xml version="1.0" encoding="UTF-8"?><feedback><version>1.0</version><report_metadata>
<org_name>{org}</org_name><email>{email}</email><report_id>{org}-{domain}-{start}</report_id>
<date_range><begin>{start}</begin><end>{end}</end></date_range></report_metadata><policy_published>
<domain>{domain}</domain><adkim>r</adkim><aspf>r</aspf><p>quarantine</p><sp>quarantine</sp><pct>100</pct>
</policy_published>{records}</feedback>""".encode()
                )
    return out


def tls_reports(now: float, domains: list[str], days: int = 7, seed: int = 2) -> list[bytes]:
    rng = random.Random(seed)
    today = datetime.fromtimestamp(now, UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    out = []
    for back in range(days, 0, -1):
        begin = today - timedelta(days=back)
        for org in TLS_REPORTERS:
            failed = rng.choice((0, 0, 1, 3))
            policies = [
                {
                    "policy": {"policy-type": "sts", "policy-domain": d, "mx-host-pattern": [f"mail.{d}"]},
                    "summary": {
                        "total-successful-session-count": rng.randint(50, 500),
                        "total-failure-session-count": failed,
                    },
                    "failure-details": [
                        {
                            "result-type": rng.choice(("certificate-expired", "starttls-not-supported")),
                            "sending-mta-ip": "209.85.220.69",
                            "receiving-mx-hostname": f"mail.{d}",
                            "failed-session-count": failed,
                        }
                    ]
                    if failed
                    else [],
                }
                for d in domains
            ]
            out.append(
                json.dumps(
                    {
                        "organization-name": org,
                        "date-range": {
                            "start-datetime": begin.isoformat().replace("+00:00", "Z"),
                            "end-datetime": (begin + timedelta(seconds=86399)).isoformat().replace("+00:00", "Z"),
                        },
                        "contact-info": "smtp-tls-reporting@example.net",
                        "report-id": f"{org}-{int(begin.timestamp())}",
                        "policies": policies,
                    }
                ).encode()
            )
    return out
