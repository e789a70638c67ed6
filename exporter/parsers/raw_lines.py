"""Normalise items of mailcow's log lists into `RawLine` records with a stable identity."""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

# Which key of an item carries its time, per log service (mailcow-api.md §1).
_TIME_KEY = {"rspamd-history": "unix_time"}
# Keys that become columns; whatever else an item carries is kept in `extra`.
_COLUMNS = ("time", "program", "priority", "message")


@dataclass(frozen=True)
class RawLine:
    """One log item as mailcow returned it, ready to store."""

    source: str
    logged_at: datetime
    program: str | None
    priority: str | None
    message: str
    extra: dict[str, Any] | None
    line_key: bytes
    occurrence: int


class BadItem(ValueError):
    """An item that is not a log entry of the expected shape."""


def line_key(source: str, item: Mapping[str, Any]) -> bytes:
    """SHA-256 over the whole item: two items differing anywhere get different keys."""
    canonical = json.dumps([source, item], sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(canonical.encode("utf-8")).digest()


def _timestamp(source: str, item: Mapping[str, Any]) -> datetime:
    raw = item.get(_TIME_KEY.get(source, "time"))
    try:
        return datetime.fromtimestamp(int(raw), tz=UTC)
    except (TypeError, ValueError, OverflowError) as exc:
        raise BadItem(f"{source} item has no usable time: {raw!r}") from exc


def _message(source: str, item: Mapping[str, Any]) -> str:
    if source == "rspamd-history":
        return (
            f"{item.get('action', '?')} score={item.get('score')} from={item.get('sender_smtp', '')} "
            f"ip={item.get('ip', '')} subject={item.get('subject', '')}"
        )
    message = item.get("message")
    return message if isinstance(message, str) else json.dumps(dict(item), ensure_ascii=False)


def normalize(source: str, items: Iterable[Mapping[str, Any]]) -> tuple[list[RawLine], list[Mapping[str, Any]]]:
    """Turn one fetched window into RawLines; return (lines, items that were not log entries).

    Identical items in the same window are numbered by their order, so repeated lines
    (several identical NOQUEUE rejects in one second) are all kept, and loading the same
    window twice yields the same keys.
    """
    seen: Counter[bytes] = Counter()
    lines: list[RawLine] = []
    bad: list[Mapping[str, Any]] = []
    for item in items:
        if not isinstance(item, Mapping):
            bad.append({"value": item})
            continue
        try:
            logged_at = _timestamp(source, item)
        except BadItem:
            bad.append(item)
            continue
        key = line_key(source, item)
        occurrence = seen[key]
        seen[key] += 1
        extra = {k: v for k, v in item.items() if k not in _COLUMNS} or None
        lines.append(
            RawLine(
                source=source,
                logged_at=logged_at,
                program=item.get("program") if isinstance(item.get("program"), str) else None,
                priority=item.get("priority") if isinstance(item.get("priority"), str) else None,
                message=_message(source, item),
                extra=extra,
                line_key=key,
                occurrence=occurrence,
            )
        )
    return lines, bad
