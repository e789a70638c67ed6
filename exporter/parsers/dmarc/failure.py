"""DMARC failure (forensic, ruf) reports: RFC 6591 ARF `message/feedback-report` parts, and the
plain-text form some MTAs (Exim) send instead. Only what identifies the failure is kept: no body."""

from __future__ import annotations

import base64
import binascii
import ipaddress
import re
from datetime import UTC, datetime
from email.message import Message
from email.utils import parsedate_to_datetime
from typing import Any

from exporter.parsers.dmarc.containers import parse_mail
from exporter.parsers.dmarc.errors import InvalidReport, indexed_name

_EXIM_MARK = "A message claiming to be from you has failed"
_EXIM_FIELDS = {
    "Sender Domain": "reported_domain",
    "Sender IP Address": "source_ip",
    "Received date": "arrival_date",
    "SPF Alignment": "spf_alignment",
    "DKIM Alignment": "dkim_alignment",
    "DMARC Results": "dmarc_results",
}


def _date(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        parsed = parsedate_to_datetime(value.strip())
        return parsed.astimezone(UTC) if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    except (TypeError, ValueError, IndexError, OverflowError):  # OverflowError: past year 9999 in UTC
        return None


def _header(message: Message, name: str) -> str | None:
    """A header as text: one with 8-bit bytes comes back as a Header object (bytes as U+FFFD)."""
    value = message.get(name)
    return None if value is None else str(value)


def _ip(value: str | None) -> str | None:
    try:
        return str(ipaddress.ip_address((value or "").strip()))
    except ValueError:
        return None


def _fields(text: str) -> dict[str, str]:
    """RFC 822-style `Name: value` lines (continuations joined), names lower-cased."""
    out: dict[str, str] = {}
    for name, value in re.findall(r"^([A-Za-z][A-Za-z0-9-]*):[ \t]*(.*(?:\r?\n[ \t].*)*)", text, re.M):
        out.setdefault(name.lower(), re.sub(r"\s+", " ", value).strip())
    return out


def _sample_headers(message: Message) -> dict[str, str | None]:
    for part in message.walk():
        ctype = part.get_content_type()
        if ctype in ("message/rfc822", "text/rfc822-headers", "text/rfc822", "message/rfc822-headers"):
            payload = part.get_payload()
            inner = payload[0] if isinstance(payload, list) and payload else None
            if isinstance(inner, Message):
                return {name.lower(): _header(inner, name) for name in ("Subject", "From", "To")}
            text = part.get_payload(decode=True) or b""
            fields = _fields(text.decode("utf-8", errors="replace"))
            return {"subject": fields.get("subject"), "from": fields.get("from"), "to": fields.get("to")}
    return {"subject": None, "from": None, "to": None}


def _feedback_text(part: Message) -> str:
    """The report fields; some reporters base64-encode the part, which the MIME parser leaves as is."""
    payload = part.get_payload()
    text = "\n".join(p.as_string() for p in payload) if isinstance(payload, list) else str(payload)
    if (part.get("Content-Transfer-Encoding") or "").strip().lower() == "base64":
        try:
            return base64.b64decode(re.sub(r"\s+", "", text)).decode("utf-8", errors="replace")
        except (ValueError, binascii.Error):
            return text
    return text


def parse(data: bytes) -> dict[str, Any]:
    """One failure report from an e-mail; InvalidReport when the mail is not one."""
    message = parse_mail(data)
    for part in message.walk():
        if part.get_content_type() != "message/feedback-report":
            continue
        fields = _fields(_feedback_text(part))
        domain = (fields.get("reported-domain") or "").lower() or None
        if not domain:
            raise InvalidReport("the feedback report names no Reported-Domain")
        return {
            "kind": "failure",
            "format": "arf",
            "feedback_type": fields.get("feedback-type"),
            "reported_domain": indexed_name(domain, "Reported-Domain"),
            "source_ip": _ip(fields.get("source-ip")),
            "arrival_date": _date(fields.get("arrival-date") or fields.get("received-date")),
            "original_mail_from": fields.get("original-mail-from") or None,
            "original_rcpt_to": fields.get("original-rcpt-to") or None,
            "auth_failure": fields.get("auth-failure"),
            "delivery_result": fields.get("delivery-result"),
            "authentication_results": fields.get("authentication-results"),
            "reporter": _header(message, "From"),
            "sample": _sample_headers(message),
        }
    for part in message.walk():
        if part.get_content_type() != "text/plain":
            continue
        text = (part.get_payload(decode=True) or b"").decode("utf-8", errors="replace")
        if _EXIM_MARK not in text:
            continue
        values = {
            key: match.group(1).strip()
            for label, key in _EXIM_FIELDS.items()
            if (match := re.search(rf"^\s*{re.escape(label)}:\s*(.+)$", text, re.M))
        }
        if not values.get("reported_domain"):
            raise InvalidReport("the failure report names no sender domain")
        headers = _fields(text.split("------", 1)[-1])
        return {
            "kind": "failure",
            "format": "plain-text",
            "feedback_type": "auth-failure",
            "reported_domain": indexed_name(values["reported_domain"].lower(), "sender domain"),
            "source_ip": _ip(values.get("source_ip")),
            "arrival_date": _date(values.get("arrival_date")),
            "original_mail_from": None,
            "original_rcpt_to": None,
            "auth_failure": "dmarc",
            "delivery_result": values.get("dmarc_results"),
            "authentication_results": headers.get("authentication-results"),
            "reporter": _header(message, "From"),
            "sample": {"subject": headers.get("subject"), "from": headers.get("from"), "to": headers.get("to")},
        }
    raise InvalidReport("not a DMARC failure report")
