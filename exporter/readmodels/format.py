"""The value formats every read model shares: ISO and epoch times, rounded numbers, zero-filled series.

The REST API writes times as RFC 3339 (`iso`) or epoch seconds (`epoch`, the DMARC answers of seed
002); Grafana gets epoch milliseconds (`ms`) and floats rounded to three places (`number`).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from exporter.readmodels.args import Args


def iso(value: datetime | None) -> str | None:
    """RFC 3339 UTC with a Z suffix."""
    if value is None:
        return None
    return value.isoformat().replace("+00:00", "Z")


def epoch(value: datetime | None) -> int | None:
    """Whole epoch seconds."""
    return int(value.timestamp()) if value else None


def ms(value: datetime | None) -> int | None:
    """Epoch milliseconds, Grafana's time values."""
    return int(value.timestamp() * 1000) if value else None


def number(value: Any) -> float | int | None:
    """Integers as they are, anything else as a float rounded to three places."""
    if value is None or isinstance(value, int):
        return value
    return round(float(value), 3)


def bracketed(message_id: str | None) -> str | None:
    """A Message-ID in the angle brackets of its header (stored without them)."""
    return f"<{message_id}>" if message_id else None


def fill(rows: list[dict[str, Any]], args: Args, columns: tuple[str, ...], zero: float | None = 0) -> list[dict]:
    """One row per bucket from the range's first to last bucket; missing buckets get `zero`, so a panel
    shows quiet periods as 0 instead of interpolating across them."""
    by_time = {row["time"]: row for row in rows}
    step = timedelta(seconds=args.step)
    epoch_start = datetime(1970, 1, 1, tzinfo=UTC)
    bucket = epoch_start + step * ((args.start - epoch_start) // step)
    out = []
    while bucket <= args.end:
        row = by_time.get(bucket, {})
        out.append({"time": ms(bucket), **{c: number(row.get(c, zero)) for c in columns}})
        bucket += step
    return out


def grafana_rows(rows: list[dict[str, Any]], time_keys: tuple[str, ...] = ()) -> list[dict[str, Any]]:
    """Store rows as Grafana rows: `time_keys` as epoch milliseconds, floats rounded."""
    return [
        {k: (ms(v) if k in time_keys else number(v) if isinstance(v, float) else v) for k, v in r.items()} for r in rows
    ]


def page_body(total: int, page: int, limit: int, data: list) -> dict:
    """The paginated envelope of seed 002: total, page, limit, pages, data."""
    return {"total": total, "page": page, "limit": limit, "pages": (total + limit - 1) // limit, "data": data}
