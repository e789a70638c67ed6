"""Run the DNS checks for mailcow's domains and keep the results: the resolver, mailcow's server
addresses and DKIM keys, domains in parallel. Shared by the `dns_check` job and the API."""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from psycopg_pool import ConnectionPool

from exporter.config import Config
from exporter.mailcow.client import MailcowClient
from exporter.mailcow.errors import MailcowError
from exporter.services.domains.domain import check_domain
from exporter.services.domains.lookup import make_resolver
from exporter.store import domains as domain_store

log = logging.getLogger(__name__)


def server_ips(config: Config, client: MailcowClient) -> list[str]:
    """MAILCOW_SERVER_IPS, else what mailcow reports (empty when it cannot say)."""
    if config.mailcow_server_ips:
        return list(config.mailcow_server_ips)
    try:
        return client.server_ips()
    except MailcowError as exc:
        log.warning("mailcow's server addresses are unknown: %s", exc)
        return []


def run(config: Config, pool: ConnectionPool, client: MailcowClient, domains: list[str], full: bool) -> dict[str, Any]:
    """Check each domain, store each result; {"results": {domain: result}, "errors": [text]}."""
    resolver = make_resolver(config.dns_resolvers)
    ips = server_ips(config, client)
    errors: list[str] = []

    def one(domain: str) -> dict[str, Any] | None:
        try:
            expected = client.dkim(domain)
        except MailcowError as exc:
            errors.append(f"{domain}: cannot read mailcow's DKIM key: {exc}")
            expected = {}
        try:
            result = check_domain(resolver, domain, ips, expected)
        except Exception as exc:  # one domain's failure never stops the others
            errors.append(f"{domain}: {exc}")
            return None
        domain_store.save_check(pool, result, full)
        return result

    with ThreadPoolExecutor(max_workers=8) as workers:
        results = {d: r for d, r in zip(domains, workers.map(one, domains), strict=True) if r is not None}
    if full:
        domain_store.mark_full_check(pool)
    return {"results": results, "errors": errors}
