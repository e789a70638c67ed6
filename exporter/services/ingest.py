"""Lossless log ingestion from mailcow's capped log lists.

Each fetch takes a consistent snapshot of the newest lines (`/{count}` is one atomic LRANGE or
rspamd `/history` call) and doubles `count` until the snapshot reaches lines older than the
newest stored one, or the end of mailcow's list. Snapshots never shift under us the way
consecutive `/{from}-{to}` pages do while mailcow keeps logging, so nothing is skipped or read
twice between pages. Reaching the end of the list without that overlap means mailcow rotated
lines away before we read them: a gap is recorded and the fetch interval shortened.
"""

from __future__ import annotations

import gc
import json
import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from operator import attrgetter
from typing import Any

import orjson
import psycopg
from psycopg.types.json import Jsonb
from psycopg_pool import ConnectionPool

from exporter.mailcow.client import MailcowClient
from exporter.parsers import netfilter, postfix, rspamd
from exporter.parsers.lines import number_window
from exporter.services import raw_logs
from exporter.services.raw_logs import RawLogs
from exporter.store import deliveries as deliveries_store
from exporter.store import ingest as store

log = logging.getLogger(__name__)

MIN_INTERVAL = 2.0
MAX_SNAPSHOT = 200_000  # never ask mailcow for more than this in one call


@dataclass
class Source:
    """One mailcow log list we ingest."""

    name: str
    service: str
    time_key: str
    cap: int  # mailcow's list length: 10,000 for Redis logs (LOG_LINES), 1,000 rspamd history rows


SOURCES = {
    "postfix": Source("postfix", "postfix", "time", 10_000),
    "rspamd": Source("rspamd", "rspamd-history", "unix_time", 1_000),
    "netfilter": Source("netfilter", "netfilter", "time", 10_000),
}
# The lists mail flow does not parse: stored as raw lines (exporter/services/raw_logs.py), and dovecot's
# delivery lines for correlation (DELIVERIES: fetched even without raw lines). Source = the list's name.
RAW_ONLY = {
    name: Source(name, name, "time", 101 if name == "autodiscover" else 10_000)  # AUTODISCOVER_LOG keeps 101
    for name in ("dovecot", "sogo", "ratelimited", "watchdog", "acme", "api", "autodiscover")
}
ALL_SOURCES = {**SOURCES, **RAW_ONLY}
DELIVERIES = "dovecot"


def _epoch(item: Mapping[str, Any], key: str) -> int | None:
    try:
        return int(item[key])
    except (KeyError, TypeError, ValueError):
        return None


@lru_cache(maxsize=4096)  # a busy server logs hundreds of lines per second: they share one datetime
def _at(epoch: int) -> datetime:
    return datetime.fromtimestamp(epoch, tz=UTC)


# --- rows for the store ----------------------------------------------------------------


_event_values = attrgetter(*postfix.EVENT_FIELDS)  # an event's fields as a tuple, in column order


def postfix_row(item: Mapping[str, Any], key: bytes, occurrence: int) -> tuple:
    """A postfix_lines row; raises ValueError for an item that is not a Postfix log entry."""
    epoch = _epoch(item, "time")
    message = item.get("message")
    if epoch is None or not isinstance(message, str):
        raise ValueError("postfix item needs a numeric time and a message")
    program = str(item.get("program") or "")
    return (
        _at(epoch),
        program,
        str(item.get("priority") or ""),
        message,
        key,
        occurrence,
        *_event_values(postfix.parse(program, message)),
    )


_rspamd_values = attrgetter(*rspamd.ROW_FIELDS)


def _json_bytes(value: Any) -> bytes:
    """JSON for a jsonb column: orjson (a third of json.dumps' cost), json.dumps for what it refuses."""
    try:
        return orjson.dumps(value)
    except TypeError:  # orjson.JSONEncodeError: big ints, lone surrogates, non-string keys
        return json.dumps(value).encode("utf-8", "surrogatepass")


def rspamd_row(item: Mapping[str, Any], key: bytes, occurrence: int) -> tuple:
    values = _rspamd_values(rspamd.parse(dict(item)))
    return (*[Jsonb(v, _json_bytes) if isinstance(v, dict) else v for v in values], key, occurrence)


def netfilter_row(item: Mapping[str, Any], key: bytes, occurrence: int) -> tuple:
    epoch = _epoch(item, "time")
    message = item.get("message")
    if epoch is None or not isinstance(message, str):
        raise ValueError("netfilter item needs a numeric time and a message")
    event = netfilter.parse(message)
    return (
        _at(epoch),
        str(item.get("priority") or ""),
        message,
        *(getattr(event, name) for name in netfilter.EVENT_FIELDS),
        key,
        occurrence,
    )


ROW_BUILDERS: dict[str, Callable[[Mapping[str, Any], bytes, int], tuple]] = {
    "postfix": postfix_row,
    "rspamd": rspamd_row,
    "netfilter": netfilter_row,
}


def build_rows(source: str, newest_first: Sequence[Any]) -> tuple[list[tuple], list[tuple]]:
    """(rows, unparsed rows) for one window, oldest first; a bad item never drops its neighbours."""
    return _parse_numbered(source, number_window(SOURCES[source].service, newest_first))


def _parse_numbered(source: str, numbered: Iterable[tuple[Any, bytes, int]]) -> tuple[list[tuple], list[tuple]]:
    rows, bad = [], []
    builder = ROW_BUILDERS[source]
    for item, key, occurrence in numbered:
        try:
            if not isinstance(item, (dict, Mapping)):
                raise ValueError("not a JSON object")
            rows.append(builder(item, key, occurrence))
        except (ValueError, TypeError) as exc:
            bad.append((source, Jsonb(_as_object(item)), str(exc), key, occurrence))
    return rows, bad


def _as_object(item: Any) -> Mapping[str, Any]:
    """What unparsed_lines keeps of an item: itself when it is a JSON object, else wrapped in one."""
    return item if isinstance(item, Mapping) else {"value": item}


def load_window(conn: psycopg.Connection, source: str, newest_first: Sequence[Any]) -> tuple[int, int]:
    """Parse and load one window in the caller's transaction; return (new lines, unparsed)."""
    return _store_rows(conn, source, *build_rows(source, newest_first))


def _store_rows(conn: psycopg.Connection, source: str, rows: list[tuple], bad: list[tuple]) -> tuple[int, int]:
    return store.load(conn, source, rows), store.load(conn, "unparsed", bad)


Group = Sequence[tuple[str, Sequence[Any]]]  # (source, window newest first), stored in one transaction


# Parsing allocates a few tuples per line, and rows hold no reference cycles: at the default threshold
# (700 allocations) the cyclic garbage collector would run every few hundred lines, for nothing. A bulk
# load raises it while it runs (parsing costs about a tenth less).
BULK_GC_THRESHOLD = 100_000


def load_groups(pool: ConnectionPool, groups: Iterable[Group], loaded: Callable[[], None] = lambda: None) -> int:
    """Bulk load (backfill): parse the next group while the previous one is written; return new lines.

    Parsing is Python's work and writing PostgreSQL's, so the two overlap on separate cores; each
    group is one transaction, committed in order, and `loaded` runs after each commit (e.g. to wake
    correlation). At most one parsed group waits, so memory stays bounded however long the input.
    The garbage collector's first threshold is raised meanwhile (BULK_GC_THRESHOLD).
    """
    inserted = 0
    thresholds = gc.get_threshold()
    gc.set_threshold(max(thresholds[0], BULK_GC_THRESHOLD), *thresholds[1:])
    try:
        with ThreadPoolExecutor(1, thread_name_prefix="loader") as loader:
            pending: Future[int] | None = None
            for group in groups:
                parsed = [(source, *build_rows(source, window)) for source, window in group]
                if pending is not None:
                    inserted += pending.result()
                pending = loader.submit(_store_group, pool, parsed, loaded)
            if pending is not None:
                inserted += pending.result()
    finally:
        gc.set_threshold(*thresholds)
    return inserted


def _store_group(
    pool: ConnectionPool, parsed: list[tuple[str, list[tuple], list[tuple]]], loaded: Callable[[], None]
) -> int:
    with pool.connection() as conn, conn.transaction():
        inserted = sum(_store_rows(conn, source, rows, bad)[0] for source, rows, bad in parsed)
    loaded()
    return inserted


# --- fetching --------------------------------------------------------------------------


@dataclass
class FetchResult:
    source: str
    fetched: int
    inserted: int
    unparsed: int  # items of the snapshot no parser could read
    gap: tuple[datetime, datetime] | None
    requests: int
    list_length: int | None  # mailcow's list length when the snapshot reached its end
    span_rate: float | None = None  # lines per second over the snapshot's own time span


def fetch_source(
    client: MailcowClient, pool: ConnectionPool, source: str, first_count: int, raw: RawLogs | None = None
) -> FetchResult:
    """Fetch everything new from one source and store it in one transaction (its raw lines too, when
    `raw` keeps the list)."""
    spec = ALL_SOURCES[source]
    started = datetime.now(UTC)
    with pool.connection() as conn:
        newest = store.newest_stored(conn, source)
    newest_epoch = int(newest.timestamp()) if newest else None
    count, requests = max(1, first_count), 0
    while True:
        items = client.logs(spec.service, count=count)
        requests += 1
        at_end = len(items) < count or count >= MAX_SNAPSHOT
        oldest = _epoch(items[-1], spec.time_key) if items else None
        reached = newest_epoch is not None and oldest is not None and oldest < newest_epoch
        if reached or at_end:
            break
        count = min(count * 2, MAX_SNAPSHOT)
    with pool.connection() as conn, conn.transaction():
        gap = _gap(conn, source, items, newest, newest_epoch, spec) if not reached else None
        numbered = number_window(spec.service, items)
        rows, bad = _parse_numbered(source, numbered) if source in SOURCES else ([], [])
        inserted, unparsed_new = _store_rows(conn, source, rows, bad) if source in SOURCES else (0, 0)
        keep_raw = raw is not None and spec.service in raw.services
        if keep_raw or source not in SOURCES:
            lines = raw_logs.rows(spec.service, numbered, raw_logs.oldest_kept(raw) if raw else None)
            stored = raw_logs.store_rows(conn, lines) if keep_raw else 0
            delivered = deliveries_store.load(conn, lines.deliveries) if lines.deliveries else 0
            if source not in SOURCES:  # a list mail flow does not parse: its raw lines (or deliveries) are new
                bad = [(source, Jsonb(_as_object(i)), why, k, o) for i, why, k, o in lines.unparsed]
                inserted, unparsed_new = stored if keep_raw else delivered, store.load(conn, "unparsed", bad)
        epochs = [e for e in (_epoch(i, spec.time_key) for i in items if isinstance(i, Mapping)) if e is not None]
        unreadable = f"{len(bad)} of {len(items)} items could not be parsed, e.g. {bad[0][2]}" if bad else None
        store.save_state(
            conn,
            source,
            started,
            newest=_at(max(epochs)) if epochs else None,
            oldest=_at(min(epochs)) if epochs else None,
            fetched=len(items),
            inserted=inserted,
            unparsed=len(bad),
            unparsed_new=unparsed_new,
            error=unreadable,
        )
        if gap:
            store.record_gap(conn, source, *gap)
            log.warning(
                "%s: mailcow's list rotated before it was read: lines between %s and %s are lost",
                source,
                gap[0].isoformat(),
                gap[1].isoformat(),
            )
    if unparsed_new:
        log.warning("%s: %s (kept in unparsed_lines)", source, unreadable)
    span = (max(epochs) - min(epochs)) if epochs else 0
    span_rate = len(epochs) / span if span > 0 else None
    return FetchResult(source, len(items), inserted, len(bad), gap, requests, len(items) if at_end else None, span_rate)


def _gap(
    conn: psycopg.Connection,
    source: str,
    items: Sequence[Any],
    newest: datetime | None,
    newest_epoch: int | None,
    spec: Source,
) -> tuple[datetime, datetime] | None:
    """A gap exists when the whole list is newer than what we stored (nothing overlaps)."""
    if newest is None or newest_epoch is None or not items:
        return None
    oldest = _epoch(items[-1], spec.time_key)
    if oldest is None or oldest < newest_epoch:
        return None
    if oldest == newest_epoch:
        same_second = [
            (k, o)
            for i, k, o in number_window(spec.service, items)
            if isinstance(i, Mapping) and _epoch(i, spec.time_key) == newest_epoch
        ]
        if store.stored_keys(conn, source, newest, same_second):
            return None
    return newest, _at(oldest)
