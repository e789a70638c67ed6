"""All three checks of one domain, run in parallel."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any

import dns.resolver

from exporter.services.domains import dkim, dmarc, spf


def check_domain(
    resolver: dns.resolver.Resolver, domain: str, server_ips: list[str], dkim_expected: dict[str, Any]
) -> dict[str, Any]:
    """{"domain", "spf", "dkim", "dmarc", "checked_at"} with the shapes of seed 002."""
    domain = domain.lower().rstrip(".")
    with ThreadPoolExecutor(max_workers=3) as pool:
        spf_result = pool.submit(spf.check, resolver, domain, server_ips)
        dkim_result = pool.submit(dkim.check, resolver, domain, dkim_expected)
        dmarc_result = pool.submit(dmarc.check, resolver, domain)
        return {
            "domain": domain,
            "spf": spf_result.result(),
            "dkim": dkim_result.result(),
            "dmarc": dmarc_result.result(),
            "checked_at": datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z"),
        }
