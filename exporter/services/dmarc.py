"""Import report files and mails: parse (pure), enrich sources with GeoIP (and optionally reverse
DNS), store each report in its own transaction. Shared by the upload endpoint, `import-dmarc` and
the IMAP auto-import. A bad file gets its reason and never stops the others."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import dns.exception
import dns.resolver
import dns.reversename
from psycopg_pool import ConnectionPool

from exporter.parsers.dmarc.errors import InvalidReport
from exporter.parsers.dmarc.reports import parse_file
from exporter.services.geoip import GeoIP
from exporter.store import dmarc as dmarc_store
from exporter.store import tls as tls_store

log = logging.getLogger(__name__)


@lru_cache(maxsize=16384)
def reverse_dns(ip: str) -> str | None:
    """PTR name of an IP (2 s timeout), cached for the life of the process."""
    try:
        answer = dns.resolver.resolve_address(ip, lifetime=2.0)
        return str(answer[0]).rstrip(".") if answer else None
    except (dns.exception.DNSException, ValueError):
        return None


@dataclass
class ImportResult:
    created: list[dict[str, Any]] = field(default_factory=list)  # kind, id, summary
    duplicates: list[dict[str, Any]] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)  # parts that were not reports


def _enrich(report: dict[str, Any], geo: GeoIP | None, rdns: Callable[[str], str | None] | None) -> None:
    """GeoIP (and reverse DNS) per source address, looked up once per distinct address."""
    found: dict[str, tuple[dict[str, Any], str | None]] = {}

    def details(ip: str) -> tuple[dict[str, Any], str | None]:
        if ip not in found:
            found[ip] = (geo.lookup(ip) if geo else {}, rdns(ip) if rdns else None)
        return found[ip]

    for record in report.get("records", []):
        record["geo"], record["reverse_dns"] = details(record["source_ip"])
    if report["kind"] == "failure" and report.get("source_ip"):
        report["geo"] = details(report["source_ip"])[0]


def summary(report: dict[str, Any]) -> dict[str, Any]:
    if report["kind"] == "aggregate":
        return {
            "kind": "aggregate",
            "domain": report["policy"]["domain"],
            "reporter": report["org_name"],
            "report_id": report["report_id"],
            "records_count": len(report["records"]),
        }
    if report["kind"] == "tls":
        domains = sorted({p["policy_domain"] for p in report["policies"]})
        return {
            "kind": "tls",
            "domain": ", ".join(domains),
            "reporter": report["organization_name"],
            "report_id": report["report_id"],
            "records_count": len(report["policies"]),
        }
    return {
        "kind": "failure",
        "domain": report["reported_domain"],
        "reporter": report["reporter"],
        "report_id": None,
        "records_count": 1,
    }


def import_bytes(
    pool: ConnectionPool,
    data: bytes,
    origin: str,
    geo: GeoIP | None = None,
    rdns: Callable[[str], str | None] | None = None,
    channel: str = "file",
) -> ImportResult:
    """Every report in `data`; raise InvalidReport (counted for /metrics) when there is none."""
    try:
        parsed = parse_file(data, origin)
    except InvalidReport:
        dmarc_store.count_invalid(pool, channel)
        raise
    result = ImportResult(problems=parsed.problems)
    for report in parsed.reports:
        _enrich(report, geo, rdns)
        if report["kind"] == "tls":
            status, pk = tls_store.save(pool, report)
        else:
            status, pk = dmarc_store.save(pool, report, data if report["kind"] == "failure" else None)
        entry = {**summary(report), "id": pk}
        (result.created if status == "created" else result.duplicates).append(entry)
    return result
