"""LogQL metric queries: `count_over_time`, `rate`, `bytes_over_time`, `sum`/`count by`, constants.

PostgreSQL totals the matching lines per stream (or per `by` group, when only sums follow) in buckets
whose width divides both the step and the range (exporter/store/raw_metrics.py); here each evaluation
time's window [t - range, t) adds up its buckets. A window without lines has no sample, as in Loki,
so series have gaps rather than zeros. Windows include their start and exclude their end (Loki's are
the other way round): they differ only for a line exactly on an edge.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from psycopg_pool import ConnectionPool

from exporter.parsers.logql import Constant, MetricQuery, RangeAggregation, VectorAggregation
from exporter.readmodels.loki import Scope, line_query
from exporter.store import raw_metrics, raw_search

MAX_POINTS = 11_000  # per series, as Loki's query_range refuses more

Labels = tuple[tuple[str, str], ...]
Series = dict[Labels, dict[int, float]]  # label set -> evaluation time (ms) -> value


class TooManyPoints(ValueError):
    """A range query whose step gives more than MAX_POINTS evaluation times."""


@dataclass(frozen=True)
class Steps:
    """The evaluation times: start, start + step, ... up to end, in milliseconds since the epoch."""

    start_ms: int
    end_ms: int
    step_ms: int

    def times(self) -> list[int]:
        if (self.end_ms - self.start_ms) // self.step_ms + 1 > MAX_POINTS:
            raise TooManyPoints(
                f"exceeded maximum resolution of {MAX_POINTS:,} points per timeseries; "
                "try a larger step (the step parameter) or a shorter range"
            )
        return list(range(self.start_ms, self.end_ms + 1, self.step_ms))


def _at(ms: int) -> datetime:
    return datetime(1970, 1, 1, tzinfo=UTC) + timedelta(milliseconds=ms)


def _chain(query: MetricQuery) -> tuple[list[VectorAggregation], RangeAggregation]:
    """The vector aggregations from the outermost in, and the range aggregation inside them."""
    chain: list[VectorAggregation] = []
    while isinstance(query, VectorAggregation):
        chain.append(query)
        query = query.inner
    return chain, query


def _columns(chain: list[VectorAggregation]) -> tuple[str, ...]:
    """What PostgreSQL groups by: when only sums follow, the labels every `by` keeps (sums of sums are
    sums); otherwise each stream, since `count` counts streams."""
    if not chain or any(v.op != "sum" for v in chain):
        return raw_metrics.STREAM_COLUMNS
    kept = set(raw_metrics.STREAM_COLUMNS)
    for aggregation in chain:
        kept &= set(aggregation.by)
    return tuple(c for c in raw_metrics.STREAM_COLUMNS if c in kept)


def _labels(scope: Scope, columns: tuple[str, ...], values: tuple[str, ...]) -> Labels:
    labels = dict(zip(columns, values, strict=True))
    labels["instance"] = scope.instance
    return tuple(sorted((k, v) for k, v in labels.items() if v))


def _range_series(
    pool: ConnectionPool, scope: Scope, aggregation: RangeAggregation, columns: tuple[str, ...], times: list[int]
) -> Series:
    """Each group's value at each time whose window holds lines."""
    query = line_query(scope, aggregation.query)
    if query is None or not times:
        return {}
    range_ms = max(1, round(aggregation.range_seconds * 1000))
    step_ms = times[1] - times[0] if len(times) > 1 else range_ms
    width = math.gcd(step_ms, range_ms)
    origin = times[0] - range_ms
    with pool.connection() as conn:
        raw_search.check_patterns(conn, query)
        found = raw_metrics.buckets(conn, query, _at(origin), _at(times[-1]), width, columns)
    per_group: dict[Labels, list[raw_metrics.Bucket]] = {}
    for bucket in found:
        per_group.setdefault(_labels(scope, columns, bucket.labels), []).append(bucket)
    value_of = _value_function(aggregation)
    out: Series = {}
    for labels, group in per_group.items():
        group.sort(key=lambda b: b.index)
        indexes = [b.index for b in group]
        lines = _prefix([b.lines for b in group])
        sizes = _prefix([b.bytes for b in group])
        points: dict[int, float] = {}
        for t in times:
            first = bisect.bisect_left(indexes, (t - range_ms - origin) // width)
            last = bisect.bisect_left(indexes, (t - origin) // width)
            if last > first:
                points[t] = value_of(lines[last] - lines[first], sizes[last] - sizes[first])
        if points:
            out[labels] = points
    return out


def _prefix(values: list[int]) -> list[int]:
    sums = [0]
    for value in values:
        sums.append(sums[-1] + value)
    return sums


def _value_function(aggregation: RangeAggregation) -> Callable[[int, int], float]:
    if aggregation.func == "bytes_over_time":
        return lambda _lines, size: float(size)
    if aggregation.func == "rate":
        return lambda lines, _size: lines / aggregation.range_seconds
    return lambda lines, _size: float(lines)


def _aggregate(aggregation: VectorAggregation, series: Series) -> Series:
    """`sum by` or `count by` over the series, per evaluation time."""
    out: Series = {}
    for labels, points in series.items():
        kept = tuple((k, v) for k, v in labels if k in aggregation.by)
        target = out.setdefault(kept, {})
        for t, value in points.items():
            target[t] = target.get(t, 0.0) + (value if aggregation.op == "sum" else 1.0)
    return out


def evaluate(pool: ConnectionPool, scope: Scope, query: MetricQuery | Constant, times: list[int]) -> Series:
    """The query's series at `times` (milliseconds since the epoch)."""
    if isinstance(query, Constant):
        return {(): {t: query.value for t in times}}
    chain, aggregation = _chain(query)
    series = _range_series(pool, scope, aggregation, _columns(chain), times)
    for vector in reversed(chain):
        series = _aggregate(vector, series)
    return series


def sample_value(value: float) -> str:
    """A sample as Prometheus and Loki print it: 12, 0.25, NaN, +Inf."""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return str(int(value)) if value.is_integer() and abs(value) < 1e15 else repr(value)


def _seconds(ms: int) -> int | float:
    return ms // 1000 if ms % 1000 == 0 else ms / 1000


def matrix(series: Series) -> dict[str, Any]:
    """`data` of a range metric query."""
    result = [
        {"metric": dict(labels), "values": [[_seconds(t), sample_value(v)] for t, v in sorted(points.items())]}
        for labels, points in sorted(series.items())
    ]
    return {"resultType": "matrix", "result": result, "stats": {}}


def vector(series: Series) -> dict[str, Any]:
    """`data` of an instant metric query (one evaluation time)."""
    result = [
        {"metric": dict(labels), "value": [_seconds(t), sample_value(v)]}
        for labels, points in sorted(series.items())
        for t, v in points.items()
    ]
    return {"resultType": "vector", "result": result, "stats": {}}
