"""Report files and report mails built by tests, with recent dates and known counts."""

from __future__ import annotations

import gzip
import io
import json
import zipfile
from email.message import EmailMessage
from xml.sax.saxutils import escape

# every DMARC table, for fixtures that start from none stored
TABLES = "dmarc_reports, dmarc_records, dmarc_failure_reports, tls_reports, tls_policies, dmarc_imap_syncs"


def aggregate_xml(org: str, report_id: str, domain: str, begin: int, end: int, records: list[tuple]) -> bytes:
    """records: (ip, count, spf, dkim, disposition) as the reporter evaluated them."""
    rows = "".join(
        f"""<record><row><source_ip>{ip}</source_ip><count>{count}</count><policy_evaluated>
        <disposition>{disposition}</disposition><dkim>{dkim}</dkim><spf>{spf}</spf></policy_evaluated></row>
        <identifiers><header_from>{domain}</header_from></identifiers>
        <auth_results><dkim><domain>{domain}</domain><result>{dkim}</result></dkim>
        <spf><domain>{domain}</domain><result>{spf}</result></spf></auth_results></record>"""
        for ip, count, spf, dkim, disposition in records
    )
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<feedback><version>1.0</version><report_metadata><org_name>{escape(org)}</org_name>
<email>noreply-dmarc@{escape(org)}</email><report_id>{escape(report_id)}</report_id>
<date_range><begin>{begin}</begin><end>{end}</end></date_range></report_metadata>
<policy_published><domain>{domain}</domain><adkim>r</adkim><aspf>r</aspf><p>reject</p><sp>none</sp><pct>100</pct>
</policy_published>{rows}</feedback>""".encode()


def tls_json(org: str, report_id: str, domain: str, start: str, end: str, ok: int, failed: int) -> bytes:
    details = [{"result-type": "certificate-expired", "sending-mta-ip": "192.0.2.1", "failed-session-count": failed}]
    return json.dumps(
        {
            "organization-name": org,
            "date-range": {"start-datetime": start, "end-datetime": end},
            "contact-info": f"tls@{org}",
            "report-id": report_id,
            "policies": [
                {
                    "policy": {"policy-type": "sts", "policy-domain": domain, "mx-host-pattern": [f"mx.{domain}"]},
                    "summary": {"total-successful-session-count": ok, "total-failure-session-count": failed},
                    "failure-details": details if failed else [],
                }
            ],
        }
    ).encode()


def report_mail(report: bytes, name: str, subject: str, packing: str = "gzip") -> bytes:
    """A report e-mail as reporters send it: a short text and the report attached (gzip or zip)."""
    message = EmailMessage()
    message["From"] = "noreply-dmarc-support@google.com"
    message["To"] = "dmarc@example.org"
    message["Subject"] = subject
    message["Message-ID"] = f"<{abs(hash(subject))}@google.com>"
    message.set_content("This is an aggregate report from google.com.")
    if packing == "zip":
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
            archive.writestr(name, report)
        message.add_attachment(buffer.getvalue(), maintype="application", subtype="zip", filename=name + ".zip")
    else:
        message.add_attachment(gzip.compress(report), maintype="application", subtype="gzip", filename=name + ".gz")
    return message.as_bytes()


def junk_mail(subject: str) -> bytes:
    message = EmailMessage()
    message["From"] = "someone@example.net"
    message["To"] = "dmarc@example.org"
    message["Subject"] = subject
    message.set_content("Hello, this is not a report.")
    return message.as_bytes()


def nested_mail(depth: int, report: bytes, container: str = "multipart") -> bytes:
    """A mail with the report `depth` containers deep: multipart/mixed parts or message/rfc822 mails."""
    head = b"From: dmarc@example.net\r\nTo: dmarc@example.org\r\nSubject: nested report\r\n"
    if container == "multipart":
        opening = "".join(f'Content-Type: multipart/mixed; boundary="b{i}"\r\n\r\n--b{i}\r\n' for i in range(depth))
        closing = "".join(f"\r\n--b{i}--" for i in reversed(range(depth)))
    else:
        opening, closing = "Content-Type: message/rfc822\r\n\r\n" * depth, ""
    return head + opening.encode() + b"Content-Type: application/xml\r\n\r\n" + report + closing.encode() + b"\r\n"


def arf_mail(arrival: bytes = b"Sat, 1 Jun 2024 10:00:00 +0200", sample_from: bytes = b"a@example.org") -> bytes:
    """An ARF failure report for example.org whose From and sample Subject headers carry raw 8-bit bytes."""
    return (
        b"To: dmarc@example.org\r\nFrom: DMARC \xff\xfe Reporter <dmarc@example.net>\r\n"
        b'Content-Type: multipart/report; report-type=feedback-report; boundary="B"\r\n\r\n'
        b"--B\r\nContent-Type: message/feedback-report\r\n\r\n"
        b"Feedback-Type: auth-failure\r\nReported-Domain: example.org\r\nSource-IP: 192.0.2.1\r\n"
        b"Arrival-Date: " + arrival + b"\r\n\r\n"
        b"--B\r\nContent-Type: message/rfc822\r\n\r\nSubject: Rechnung \xfc\r\nFrom: " + sample_from + b"\r\n\r\n"
        b"body\r\n--B--\r\n"
    )
