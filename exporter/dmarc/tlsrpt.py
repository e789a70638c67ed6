"""SMTP TLS reports (RFC 8460) to plain dicts; also reads the non-RFC keys reporters use."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from exporter.dmarc.errors import InvalidReport

MAX_POLICIES = 10_000


def _time(value: Any, what: str) -> datetime:
    try:
        parsed = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        raise InvalidReport(f"{what} is not an RFC 3339 time: {value!r}") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _count(value: Any) -> int:
    try:
        return max(0, int(value))
    except (TypeError, ValueError):
        return 0


def _blank(value: Any) -> Any:
    return None if isinstance(value, str) and not value.strip() else value


def parse(data: bytes) -> dict[str, Any]:
    try:
        body = json.loads(data.decode("utf-8-sig"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InvalidReport(f"not valid JSON: {exc}") from None
    if not isinstance(body, dict) or not isinstance(body.get("policies"), list):
        raise InvalidReport('not an SMTP TLS report (no "policies" list)')
    dates = body.get("date-range") or {}
    policies = body["policies"][:MAX_POLICIES]
    out = []
    for item in policies:
        policy = item.get("policy") or {}
        summary = item.get("summary") or {}
        failures = [
            {
                "result_type": str(f.get("result-type") or "unknown"),
                "failed_session_count": _count(f.get("failed-session-count")),
                "sending_mta_ip": _blank(f.get("sending-mta-ip")),
                "receiving_ip": _blank(f.get("receiving-ip")),
                "receiving_mx_hostname": _blank(f.get("receiving-mx-hostname")),
                "receiving_mx_helo": _blank(f.get("receiving-mx-helo")),
                "additional_information": _blank(f.get("additional-information") or f.get("additional-info-uri")),
                "failure_reason_code": _blank(f.get("failure-reason-code")),
            }
            for f in item.get("failure-details") or []
            if isinstance(f, dict)
        ]
        mx = policy.get("mx-host-pattern") or policy.get("mx-host") or []
        out.append(
            {
                "policy_type": str(policy.get("policy-type") or "no-policy-found").lower(),
                "policy_domain": str(policy.get("policy-domain") or "").lower().rstrip("."),
                "policy_strings": [str(s) for s in policy.get("policy-string") or []],
                "mx_hosts": [str(m) for m in (mx if isinstance(mx, list) else [mx])],
                "successful_sessions": _count(summary.get("total-successful-session-count")),
                "failed_sessions": _count(summary.get("total-failure-session-count")),
                "failure_details": failures,
            }
        )
    if not any(p["policy_domain"] for p in out):
        raise InvalidReport("the TLS report names no policy domain")
    return {
        "kind": "tls",
        "organization_name": str(body.get("organization-name") or "").strip() or "unknown",
        "contact_info": _blank(body.get("contact-info")),
        "report_id": str(body.get("report-id") or "").strip(),
        "begin": _time(dates.get("start-datetime"), "date-range/start-datetime"),
        "end": _time(dates.get("end-datetime"), "date-range/end-datetime"),
        "policies": out,
    }
