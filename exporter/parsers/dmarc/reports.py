"""Every report in a file or e-mail: containers unwrapped, each document parsed by its format."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from exporter.parsers.dmarc import aggregate, failure, tlsrpt
from exporter.parsers.dmarc.containers import Payload, kind_of, payloads
from exporter.parsers.dmarc.errors import InvalidReport


@dataclass
class Parsed:
    reports: list[dict[str, Any]] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)  # documents inside that were not reports


def parse_payload(payload: Payload) -> dict[str, Any]:
    try:
        if payload.kind == "failure":
            report = _storable(failure.parse(payload.data))
        elif kind_of(payload.data) == "json":
            report = _storable(tlsrpt.parse(payload.data))
        else:
            report = aggregate.parse(payload.data)  # XML cannot carry NUL: the parser drops it
    except InvalidReport as exc:
        raise InvalidReport(f"{payload.origin}: {exc}") from None
    report["source"] = payload.origin
    return report


def _storable(report: dict[str, Any]) -> dict[str, Any]:
    """The report, refused when a value has a NUL (JSON's \\u0000, a byte in a mail header):
    PostgreSQL's text and jsonb cannot hold one, so storing it would fail."""
    values: list[Any] = [report]
    while values:
        value = values.pop()
        if isinstance(value, dict):
            values.extend(value.values())
        elif isinstance(value, list):
            values.extend(value)
        elif isinstance(value, str) and "\x00" in value:
            raise InvalidReport("the report contains a NUL character, which cannot be stored")
    return report


def parse_file(data: bytes, origin: str = "file") -> Parsed:
    """All reports found; raise InvalidReport (naming the reason) when there is none."""
    parsed = Parsed()
    for payload in payloads(data, origin):
        try:
            parsed.reports.append(parse_payload(payload))
        except InvalidReport as exc:
            parsed.problems.append(str(exc))
    if not parsed.reports:
        raise InvalidReport(parsed.problems[0] if parsed.problems else f"{origin}: no report found")
    return parsed
