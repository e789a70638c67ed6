"""Fetch mailcow's log lists and load them into the store."""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from psycopg_pool import ConnectionPool

from exporter import store
from exporter.config import Config
from exporter.mailcow_client import MailcowClient, MailcowError
from exporter.parsers.raw_lines import normalize

log = logging.getLogger(__name__)

# Our source name -> mailcow log service.
SOURCES = {"postfix": "postfix", "rspamd": "rspamd-history", "netfilter": "netfilter"}


def fetch_counts(config: Config) -> dict[str, int]:
    return {
        "postfix": config.fetch_count_postfix,
        "rspamd": config.fetch_count_rspamd,
        "netfilter": config.fetch_count_netfilter,
    }


def fetch_source(client: MailcowClient, pool: ConnectionPool, source: str, count: int) -> int:
    """Fetch the newest `count` lines of one source and store them; return how many were new."""
    started = datetime.now(UTC)
    try:
        items = client.logs(SOURCES[source], count=count)
    except MailcowError as exc:
        store.record_fetch_error(pool, source, started, str(exc))
        raise
    lines, bad = normalize(SOURCES[source], items)
    if bad:
        log.warning("%s: %d items without a usable time were skipped", source, len(bad))
    inserted = store.store_log_lines(pool, source, lines, started)
    log.info("%s: fetched %d lines, %d new", source, len(lines), inserted)
    return inserted


def fetch_all(client: MailcowClient, pool: ConnectionPool, config: Config) -> dict[str, int]:
    """Fetch every source; one failing source does not stop the others, but the run fails."""
    results: dict[str, int] = {}
    errors: list[str] = []
    for source, count in fetch_counts(config).items():
        try:
            results[source] = fetch_source(client, pool, source, count)
        except MailcowError as exc:
            errors.append(f"{source}: {exc}")
    if errors:
        raise MailcowError("; ".join(errors))
    return results
