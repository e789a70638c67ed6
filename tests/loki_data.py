"""Raw log lines for the Loki API tests: the reference's real mailcow items (mailcow-api.md §1), retimed to
recent minutes and stored through the real loader."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from psycopg_pool import ConnectionPool

from exporter.parsers.lines import number_window
from exporter.parsers.raw_logs import parse
from exporter.services import raw_logs
from tests.test_raw_logs_parsing import RSPAMD_ROW, SECTION_1

TEMPLATES: list[tuple[str, dict[str, Any]]] = [(service, json.loads(raw)) for service, raw, *_ in SECTION_1] + [
    ("rspamd-history", json.loads(RSPAMD_ROW))
]


def retimed(item: dict[str, Any], epoch: int, **changes: Any) -> dict[str, Any]:
    """The item at `epoch`, its time field in the type mailcow sends for that list."""
    out = {**item, **changes}
    key = "unix_time" if "unix_time" in out else "time"
    out[key] = str(epoch) if isinstance(item[key], str) else epoch
    return out


def empty(pool: ConnectionPool) -> None:
    with pool.connection() as conn:
        conn.execute("TRUNCATE raw_lines, raw_line_blocks, raw_line_counts")


def store(pool: ConnectionPool, service: str, items_oldest_first: Iterable[dict[str, Any]]) -> int:
    """Store one list's items as the ingestion does (numbered window, newest first as mailcow sends)."""
    newest_first = list(reversed(list(items_oldest_first)))
    with pool.connection() as conn, conn.transaction():
        return raw_logs.store_rows(conn, raw_logs.rows(service, number_window(service, newest_first)))


def seed(pool: ConnectionPool, now: int, copies: int = 3) -> dict[str, int]:
    """Every template `copies` times in the minutes before `now` (one per minute); lines per service."""
    stored: dict[str, int] = {}
    per_service: dict[str, list[dict[str, Any]]] = {}
    for n, (service, item) in enumerate(TEMPLATES):
        for copy in range(copies):
            epoch = now - 60 * (copy + 1) - n
            per_service.setdefault(service, []).append(retimed(item, epoch))
    for service, items in per_service.items():
        items.sort(key=lambda i: int(i.get("unix_time", i.get("time"))))
        stored[service] = store(pool, service, items)
    return stored


def stream_keys(stored: dict[str, int]) -> set[tuple[str, str, str]]:
    """(service, level, program) of the templates' lines: the streams `seed` creates."""
    keys = set()
    for service, item in TEMPLATES:
        line = parse(service, item)
        if line is not None and stored.get(service):
            keys.add((service, line.level, line.program or ""))
    return keys
