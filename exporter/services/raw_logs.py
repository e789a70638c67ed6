"""Raw lines of every mailcow log list: rows for the store, and what the ingestion stores per window.

The ingestion (exporter/services/ingest.py) numbers each fetched window once (lines.number_window);
this module turns the numbered items into raw_lines rows (the item kept as mailcow sent it, plus the
columns a query needs) and, for dovecot, into delivery rows. An item no parser can read goes to the
unparsed lines, never dropping its neighbours.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import psycopg
from psycopg.types.json import Jsonb
from psycopg_pool import ConnectionPool

from exporter.config import Config
from exporter.config_values import RAW_LOG_SERVICES
from exporter.parsers import raw_logs
from exporter.services import deliveries
from exporter.store import raw_logs as store

_NUL_JSON = b"\\u0000"


@dataclass(frozen=True)
class RawLogs:
    """Which lists are kept as raw lines, how many lines a first fetch asks for, how often at most."""

    services: frozenset[str] = frozenset(RAW_LOG_SERVICES)
    count: int = 1000
    interval: float = 20.0
    retention_days: int = 2


@dataclass
class RawRows:
    """One window's rows for raw_lines, its unreadable items and dovecot's delivery rows."""

    lines: list[tuple] = field(default_factory=list)
    unparsed: list[tuple[Any, str, bytes, int]] = field(default_factory=list)  # (item, reason, key, occurrence)
    deliveries: list[tuple] = field(default_factory=list)


def _item_json(item: Mapping[str, Any]) -> bytes:
    """The item as jsonb text; PostgreSQL's jsonb has no NUL character, so an escaped NUL becomes U+FFFD."""
    try:
        out = orjson.dumps(item)
    except TypeError:  # big ints, lone surrogates, non-string keys
        out = json.dumps(item).encode("utf-8", "surrogatepass")
    return out.replace(_NUL_JSON, b"\\ufffd") if _NUL_JSON in out else out


def rows(service: str, numbered: Iterable[tuple[Any, bytes, int]], oldest: datetime | None = None) -> RawRows:
    """Rows of one numbered window (oldest first); raw lines before `oldest` (past their retention) are left
    out, delivery rows never are."""
    out = RawRows()
    read: list[tuple[raw_logs.RawLine, bytes, int]] = []
    for item, key, occurrence in numbered:
        line = raw_logs.parse(service, item)
        if line is None:
            out.unparsed.append((item, f"not a readable {service} log item", key, occurrence))
            continue
        read.append((line, key, occurrence))
        if oldest is not None and line.at < oldest:
            continue
        message = line.message.replace("\x00", "\ufffd")
        program = line.program.replace("\x00", "\ufffd") if line.program else line.program
        out.lines.append(
            (line.at, service, line.level, program, message, Jsonb(line.item, _item_json), key, occurrence)
        )
    if service == "dovecot":  # what the mailbox did, kept as long as the messages (RETENTION_DAYS)
        out.deliveries = deliveries.rows(read)
    return out


def raw_settings(config: Config) -> RawLogs | None:
    """The configured raw log collection; None when RAW_LOGS_ENABLED is off."""
    if not config.raw_logs_enabled:
        return None
    return RawLogs(
        frozenset(config.raw_logs_services),
        config.raw_logs_fetch_count,
        float(config.raw_logs_fetch_interval),
        config.raw_logs_retention_days,
    )


def oldest_kept(settings: RawLogs, now: datetime | None = None) -> datetime:
    """The start of the oldest UTC day retention keeps: older lines are not stored at all."""
    day = (now or datetime.now(UTC)).date() - timedelta(days=settings.retention_days)
    return datetime(day.year, day.month, day.day, tzinfo=UTC)


def maintain(pool: ConnectionPool, retention_days: int, ahead: int = 2) -> list[str]:
    """Drop the days retention no longer keeps and create the next `ahead` days' partitions, so a load
    at midnight never has to (creating one locks the parent table for a moment)."""
    today = datetime.now(UTC).date()
    with pool.connection() as conn, conn.transaction():
        conn.execute("SET LOCAL lock_timeout = '5s'")
        dropped = store.drop_days_before(conn, today - timedelta(days=retention_days))
        store.ensure_days(conn, [today + timedelta(days=n) for n in range(ahead + 1)])
    return dropped


def store_rows(conn: psycopg.Connection, raw: RawRows) -> int:
    """Store a window's raw lines in the caller's transaction; return how many were new."""
    return store.load(conn, raw.lines)
