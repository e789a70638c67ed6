"""SMTP TLS reports (RFC 8460) to plain dicts; also reads the non-RFC keys reporters use.

Safety: orjson refuses nesting deeper than 1,024 (the standard library would overflow the stack),
a field is read only as the scalar it should be (never str() of a nested structure), and what one
report may carry is bounded. Reports from real receivers are a few kilobytes: a handful of
policies, a few policy-string lines and mx-hosts, and failure details grouped by result type (a few
dozen entries). So a larger document, more policies, lines or hosts, or a longer value is refused
with the reason; failure details beyond MAX_FAILURE_DETAILS per policy are folded per result type,
keeping every session count exact while the stored report and every answer built from it stay small.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import orjson

from exporter.parsers.dmarc.errors import MAX_NAME, InvalidReport, indexed_name, quoted

MAX_BYTES = 1_000_000  # one report document (one report is the most a details answer shows per provider)
MAX_POLICIES = 100
MAX_LINES = 100  # policy-string lines and mx-hosts of one policy
MAX_DETAILS_READ = 10_000  # failure details in one report: reading more costs seconds of CPU per upload
MAX_FAILURE_DETAILS = 1_000  # kept as given per policy, the largest first
MAX_FOLDED_TYPES = 20  # result types the smaller failure details are folded into; the rest are "other"
MAX_TEXT = 10_000  # characters of a policy-string line (a TLSA record of a whole certificate is ~3,000)
MAX_URI = 2_048  # characters of a failure's additional-information URI
MAX_COUNT = 10**12  # sessions in one count: far beyond any receiver, and sums over millions fit a bigint


def _time(value: Any, what: str) -> datetime:
    text = _text(value, what)
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
        return parsed.astimezone(UTC) if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    except (ValueError, OverflowError):  # OverflowError: past year 9999 in UTC
        raise InvalidReport(f"{what} is not an RFC 3339 time: {quoted(repr(text))}") from None


def _count(value: Any, what: str) -> int:
    """A session count (a number, or one as text): missing or negative is 0, beyond what the store
    holds is refused."""
    try:
        count = max(0, int(value))
    except (TypeError, ValueError, OverflowError):
        return 0
    if count > MAX_COUNT:
        raise InvalidReport(f"{what} {quoted(f'{count:,}')} is over {MAX_COUNT:,}")
    return count


def _text(value: Any, what: str, limit: int = MAX_TEXT) -> str:
    """A string field; a number is taken as its text, a list or an object counts as missing."""
    text = str(value) if isinstance(value, str | int | float) else ""
    if len(text) > limit:
        raise InvalidReport(f"{what} has {len(text):,} characters, over the {limit:,} allowed: {quoted(repr(text))}")
    return text


def _blank(value: Any, what: str, limit: int = MAX_NAME) -> str | None:
    """An optional short field (an address, a host name, a code): at most `limit` characters."""
    text = _text(value, what, limit)
    return text if text.strip() else None


def _object(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _lines(values: list[Any], what: str, limit: int) -> list[str]:
    if len(values) > MAX_LINES:
        raise InvalidReport(f"{len(values):,} {what} entries in one policy is over the {MAX_LINES:,} allowed")
    return [text for value in values if (text := _text(value, what, limit))]


def _result_type(item: dict[str, Any]) -> str:
    return _text(item.get("result-type"), "result-type", MAX_NAME) or "unknown"


def _failure(item: dict[str, Any], count: int) -> dict[str, Any]:
    return {
        "result_type": _result_type(item),
        "failed_session_count": count,
        "sending_mta_ip": _blank(item.get("sending-mta-ip"), "sending-mta-ip"),
        "receiving_ip": _blank(item.get("receiving-ip"), "receiving-ip"),
        "receiving_mx_hostname": _blank(item.get("receiving-mx-hostname"), "receiving-mx-hostname"),
        "receiving_mx_helo": _blank(item.get("receiving-mx-helo"), "receiving-mx-helo"),
        "additional_information": _blank(
            item.get("additional-information") or item.get("additional-info-uri"), "additional-information", MAX_URI
        ),
        "failure_reason_code": _blank(item.get("failure-reason-code"), "failure-reason-code"),
    }


def _failures(values: list[Any]) -> list[dict[str, Any]]:
    """The policy's failure details, the largest first. Past MAX_FAILURE_DETAILS the smaller ones
    are folded into one entry per result type that says how many it merged (`merged_entries`), so
    the failed sessions per result type stay exact."""
    items = [item for item in values if isinstance(item, dict)]
    counts = [_count(item.get("failed-session-count"), "failed-session-count") for item in items]
    order = sorted(range(len(items)), key=counts.__getitem__, reverse=True)
    kept = [_failure(items[i], counts[i]) for i in order[:MAX_FAILURE_DETAILS]]
    folded: dict[str, dict[str, Any]] = {}
    for i in order[MAX_FAILURE_DETAILS:]:
        kind = _result_type(items[i])
        if kind not in folded and len(folded) >= MAX_FOLDED_TYPES:
            kind = "other"
        entry = folded.setdefault(kind, _failure({"result-type": kind}, 0) | {"merged_entries": 0})
        entry["failed_session_count"] += counts[i]
        entry["merged_entries"] += 1
    return kept + sorted(folded.values(), key=lambda f: f["failed_session_count"], reverse=True)


def _policy(item: dict[str, Any]) -> dict[str, Any]:
    policy = _object(item.get("policy"))
    summary = _object(item.get("summary"))
    mx = policy.get("mx-host-pattern") or policy.get("mx-host") or []
    return {
        "policy_type": (_text(policy.get("policy-type"), "policy-type", MAX_NAME) or "no-policy-found").lower(),
        "policy_domain": indexed_name(_text(policy.get("policy-domain"), "policy-domain"), "policy-domain")
        .lower()
        .rstrip("."),
        "policy_strings": _lines(_list(policy.get("policy-string")), "policy-string", MAX_TEXT),
        "mx_hosts": _lines(mx if isinstance(mx, list) else [mx], "mx-host", MAX_NAME),
        "successful_sessions": _count(summary.get("total-successful-session-count"), "total-successful-session-count"),
        "failed_sessions": _count(summary.get("total-failure-session-count"), "total-failure-session-count"),
        "failure_details": _failures(_list(item.get("failure-details"))),
    }


def parse(data: bytes) -> dict[str, Any]:
    if len(data) > MAX_BYTES:
        raise InvalidReport(f"{len(data):,} bytes is over the {MAX_BYTES:,}-byte limit for a TLS report")
    try:
        body = orjson.loads(data.decode("utf-8-sig"))
    except (UnicodeDecodeError, orjson.JSONDecodeError) as exc:
        raise InvalidReport(f"not valid JSON: {exc}") from None
    if not isinstance(body, dict) or not isinstance(body.get("policies"), list):
        raise InvalidReport('not an SMTP TLS report (no "policies" list)')
    if len(body["policies"]) > MAX_POLICIES:
        raise InvalidReport(f"{len(body['policies']):,} policies is over the {MAX_POLICIES:,}-policy limit")
    details = sum(len(_list(_object(item).get("failure-details"))) for item in body["policies"])
    if details > MAX_DETAILS_READ:
        raise InvalidReport(f"{details:,} failure details is over the {MAX_DETAILS_READ:,} a report may carry")
    out = [_policy(_object(item)) for item in body["policies"]]
    if not any(p["policy_domain"] for p in out):
        raise InvalidReport("the TLS report names no policy domain")
    dates = _object(body.get("date-range"))
    return {
        "kind": "tls",
        "organization_name": indexed_name(
            _text(body.get("organization-name"), "organization-name").strip() or "unknown", "organization-name"
        ),
        "contact_info": _blank(body.get("contact-info"), "contact-info", MAX_URI),
        "report_id": indexed_name(_text(body.get("report-id"), "report-id").strip(), "report-id"),
        "begin": _time(dates.get("start-datetime"), "date-range/start-datetime"),
        "end": _time(dates.get("end-datetime"), "date-range/end-datetime"),
        "policies": out,
    }
