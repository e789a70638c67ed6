"""SMTP TLS reports (RFC 8460) to plain dicts; also reads the non-RFC keys reporters use.

Safety: orjson refuses nesting deeper than 1,024 (the standard library would overflow the stack),
a field is read only as the scalar it should be (never str() of a nested structure), and counts
are bounded to what the store holds.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import orjson

from exporter.dmarc.errors import InvalidReport

MAX_POLICIES = 10_000
MAX_COUNT = 2**63 - 1  # sessions: the store's bigint columns


def _time(value: Any, what: str) -> datetime:
    try:
        parsed = datetime.fromisoformat(_text(value).replace("Z", "+00:00"))
        return parsed.astimezone(UTC) if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    except (ValueError, OverflowError):  # OverflowError: past year 9999 in UTC
        raise InvalidReport(f"{what} is not an RFC 3339 time: {_text(value)!r}") from None


def _count(value: Any, what: str) -> int:
    """A session count (a number, or one as text): missing or negative is 0, beyond what the store
    holds is refused."""
    try:
        count = max(0, int(value))
    except (TypeError, ValueError, OverflowError):
        return 0
    if count > MAX_COUNT:
        raise InvalidReport(f"{what} {count:,} is over {MAX_COUNT:,}")
    return count


def _text(value: Any) -> str:
    """A string field; a number is taken as its text, a list or an object counts as missing."""
    return str(value) if isinstance(value, str | int | float) else ""


def _blank(value: Any) -> str | None:
    text = _text(value)
    return text if text.strip() else None


def _object(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def parse(data: bytes) -> dict[str, Any]:
    try:
        body = orjson.loads(data.decode("utf-8-sig"))
    except (UnicodeDecodeError, orjson.JSONDecodeError) as exc:
        raise InvalidReport(f"not valid JSON: {exc}") from None
    if not isinstance(body, dict) or not isinstance(body.get("policies"), list):
        raise InvalidReport('not an SMTP TLS report (no "policies" list)')
    dates = _object(body.get("date-range"))
    out = []
    for item in body["policies"][:MAX_POLICIES]:
        item = _object(item)
        policy = _object(item.get("policy"))
        summary = _object(item.get("summary"))
        failures = [
            {
                "result_type": _text(f.get("result-type")) or "unknown",
                "failed_session_count": _count(f.get("failed-session-count"), "failed-session-count"),
                "sending_mta_ip": _blank(f.get("sending-mta-ip")),
                "receiving_ip": _blank(f.get("receiving-ip")),
                "receiving_mx_hostname": _blank(f.get("receiving-mx-hostname")),
                "receiving_mx_helo": _blank(f.get("receiving-mx-helo")),
                "additional_information": _blank(f.get("additional-information") or f.get("additional-info-uri")),
                "failure_reason_code": _blank(f.get("failure-reason-code")),
            }
            for f in _list(item.get("failure-details"))
            if isinstance(f, dict)
        ]
        mx = policy.get("mx-host-pattern") or policy.get("mx-host") or []
        out.append(
            {
                "policy_type": (_text(policy.get("policy-type")) or "no-policy-found").lower(),
                "policy_domain": _text(policy.get("policy-domain")).lower().rstrip("."),
                "policy_strings": [text for s in _list(policy.get("policy-string")) if (text := _text(s))],
                "mx_hosts": [text for m in (mx if isinstance(mx, list) else [mx]) if (text := _text(m))],
                "successful_sessions": _count(
                    summary.get("total-successful-session-count"), "total-successful-session-count"
                ),
                "failed_sessions": _count(summary.get("total-failure-session-count"), "total-failure-session-count"),
                "failure_details": failures,
            }
        )
    if not any(p["policy_domain"] for p in out):
        raise InvalidReport("the TLS report names no policy domain")
    return {
        "kind": "tls",
        "organization_name": _text(body.get("organization-name")).strip() or "unknown",
        "contact_info": _blank(body.get("contact-info")),
        "report_id": _text(body.get("report-id")).strip(),
        "begin": _time(dates.get("start-datetime"), "date-range/start-datetime"),
        "end": _time(dates.get("end-datetime"), "date-range/end-datetime"),
        "policies": out,
    }
