"""Loki's answers over the raw log lines: streams, label names and values, series, index statistics.

A stream is one distinct label set: `service` (mailcow's list name), `level`, `program` (only where
mailcow names one) and `instance` (the configured mailcow, `Scope.instance`). Matchers on service,
level and program run in PostgreSQL (exporter/store/raw_search.py); every other label has the same
value on every line (`instance`, or "" for a label we do not have), so its matchers are decided here
once: true drops the matcher, false answers nothing.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from psycopg_pool import ConnectionPool

from exporter.parsers.logql import LogQuery, Matcher
from exporter.store import raw_logs, raw_metrics, raw_search
from exporter.store.raw_search import LabelMatch, LineQuery, RawRow, TextMatch

LABEL_NAMES = ("instance", "level", "program", "service")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class Scope:
    """What every Loki answer is about: the enabled services and the name of the mailcow instance."""

    services: tuple[str, ...]
    instance: str


def nanoseconds(at: datetime) -> int:
    """Loki's timestamps: nanoseconds since the epoch (our times have microseconds)."""
    return (at - _EPOCH) // timedelta(microseconds=1) * 1000


def _constant_matches(matcher: Matcher, value: str) -> bool:
    if matcher.op == "=":
        return value == matcher.value
    if matcher.op == "!=":
        return value != matcher.value
    found = re.fullmatch(matcher.value, value) is not None
    return found if matcher.op == "=~" else not found


def line_query(scope: Scope, query: LogQuery, **options: Any) -> LineQuery | None:
    """The store's query for a LogQL log query; None when a constant label's matcher excludes every line."""
    labels = []
    for matcher in query.matchers:
        if matcher.name in raw_search.LABELS:
            labels.append(LabelMatch(matcher.name, matcher.op, matcher.value))
        elif not _constant_matches(matcher, scope.instance if matcher.name == "instance" else ""):
            return None
    text = tuple(TextMatch(f.op, f.value) for f in query.filters)
    return LineQuery(services=scope.services, labels=tuple(labels), text=text, **options)


def stream_labels(scope: Scope, service: str, level: str, program: str | None) -> dict[str, str]:
    """A stream's labels, sorted by name as Loki prints them; an empty label is no label."""
    labels = {"instance": scope.instance, "level": level, "program": program or "", "service": service}
    return {name: value for name, value in labels.items() if value}


def _streams(scope: Scope, rows: Iterable[RawRow]) -> list[dict[str, Any]]:
    """Rows grouped by stream, each stream's values in the rows' order."""
    out: dict[tuple[str, str, str], dict[str, Any]] = {}
    for row in rows:
        key = (row.service, row.level, row.program or "")
        stream = out.get(key)
        if stream is None:
            stream = out[key] = {"stream": stream_labels(scope, *key), "values": []}
        stream["values"].append([str(nanoseconds(row.at)), row.message])
    return list(out.values())


def find_lines(pool: ConnectionPool, scope: Scope, query: LineQuery | None) -> list[RawRow]:
    """The lines of a store query (regexes checked first: a bad one raises raw_search.BadPattern)."""
    if query is None:
        return []
    with pool.connection() as conn:
        raw_search.check_patterns(conn, query)
        return raw_search.find(conn, query)


def streams(
    pool: ConnectionPool, scope: Scope, query: LogQuery, start: datetime, end: datetime, limit: int, forward: bool
) -> dict[str, Any]:
    """`data` of a log query: up to `limit` lines in [start, end), newest first unless `forward`."""
    found = find_lines(
        pool, scope, line_query(scope, query, start=start, end=end, limit=limit, newest_first=not forward)
    )
    return {"resultType": "streams", "result": _streams(scope, found), "stats": {}}


def tail_frame(scope: Scope, rows: list[RawRow]) -> dict[str, Any]:
    """One message of Loki's tail websocket."""
    return {"streams": _streams(scope, rows), "dropped_entries": None}


def _totals(
    pool: ConnectionPool, scope: Scope, selectors: Iterable[LogQuery], start: datetime, end: datetime
) -> list[raw_metrics.StreamTotal]:
    """Every stream with lines in the range that one of `selectors` (none: all) selects."""
    queries: list[LineQuery | None] = [line_query(scope, s) for s in selectors] or [LineQuery(scope.services)]
    found: dict[tuple[str, str, str], raw_metrics.StreamTotal] = {}
    with pool.connection() as conn:
        for query in queries:
            if query is None:
                continue
            raw_search.check_patterns(conn, query)
            for total in raw_metrics.streams(conn, query, start, end):
                found[(total.service, total.level, total.program)] = total
    return [found[key] for key in sorted(found)]


def series(
    pool: ConnectionPool, scope: Scope, selectors: Iterable[LogQuery], start: datetime, end: datetime
) -> list[dict[str, str]]:
    """The label sets of the streams with lines in the range (Loki's /series)."""
    return [stream_labels(scope, t.service, t.level, t.program) for t in _totals(pool, scope, selectors, start, end)]


def label_names(
    pool: ConnectionPool, scope: Scope, selectors: Iterable[LogQuery], start: datetime, end: datetime
) -> list[str]:
    """The label names of the streams with lines in the range, sorted."""
    names: set[str] = set()
    for labels in series(pool, scope, selectors, start, end):
        names.update(labels)
    return sorted(names)


def label_values(
    pool: ConnectionPool, scope: Scope, name: str, selectors: Iterable[LogQuery], start: datetime, end: datetime
) -> list[str]:
    """The values `name` has in the streams with lines in the range, sorted (none for an unknown label)."""
    if name not in LABEL_NAMES:
        return []
    values = {labels.get(name, "") for labels in series(pool, scope, selectors, start, end)}
    return sorted(v for v in values if v)


def index_stats(
    pool: ConnectionPool, scope: Scope, selectors: Iterable[LogQuery], start: datetime, end: datetime
) -> dict[str, int]:
    """Loki's index statistics from the per-minute counts: a chunk is one stream's minute."""
    totals = _totals(pool, scope, selectors, start, end)
    return {
        "streams": len(totals),
        "chunks": sum(t.minutes for t in totals),
        "entries": sum(t.lines for t in totals),
        "bytes": sum(t.bytes for t in totals),
    }


def index_volume(
    pool: ConnectionPool,
    scope: Scope,
    selectors: Iterable[LogQuery],
    start: datetime,
    end: datetime,
    target_labels: tuple[str, ...],
    limit: int,
) -> dict[str, Any]:
    """Loki's /index/volume: bytes per stream (or per `target_labels`), largest first, as a vector."""
    volumes: dict[tuple[tuple[str, str], ...], int] = {}
    for total in _totals(pool, scope, selectors, start, end):
        labels = stream_labels(scope, total.service, total.level, total.program)
        if target_labels:
            labels = {name: labels[name] for name in target_labels if name in labels}
        key = tuple(sorted(labels.items()))
        volumes[key] = volumes.get(key, 0) + total.bytes
    at = nanoseconds(end) / 1e9
    ranked = sorted(volumes.items(), key=lambda item: (-item[1], item[0]))[:limit]
    return {
        "resultType": "vector",
        "result": [{"metric": dict(key), "value": [at, str(size)]} for key, size in ranked],
    }


def newest_id(pool: ConnectionPool) -> int:
    """The newest stored line's id: a live tail sends what comes after it."""
    with pool.connection() as conn:
        return raw_logs.newest_id(conn)
