"""Identity of log lines: a hash over the whole line plus its occurrence among identical lines."""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping, Sequence
from typing import Any

import orjson

_POSTFIX_KEYS = frozenset({"time", "program", "priority", "message"})


def line_key(source: str, item: Mapping[str, Any]) -> bytes:
    """SHA-256 over the source and every field of the item; times compare as integers.

    Postfix lines hash as source|time|program|priority|message, so a line read from a syslog
    file (import-logs) gets the same key as the same line fetched from the API.
    """
    if source == "postfix" and item.keys() <= _POSTFIX_KEYS and _is_int(item.get("time")):
        get = item.get
        time, program, priority, message = (
            int(get("time") or 0),
            get("program", ""),
            get("priority", ""),
            get("message", ""),
        )
        text = f"postfix\x1f{time}\x1f{program}\x1f{priority}\x1f{message}"
        return hashlib.sha256(text.encode("utf-8", "surrogatepass")).digest()
    normalised = {k: (int(v) if k in ("time", "unix_time") and _is_int(v) else v) for k, v in item.items()}
    return hashlib.sha256(source.encode() + b"\x1f" + canonical_json(normalised)).digest()


# Where orjson's output can differ from json.dumps': a float below 1e-4 (json writes 1e-05, orjson
# 0.00001 or 1e-5), and null, which orjson also writes for infinity and NaN. The patterns also match
# such text inside strings; those take the slow path too. Each starts with its literal, which the
# regex engine finds fast (one pattern with alternatives scanned at a fifth of the speed).
_EXPONENT = re.compile(rb"e-(?<=[0-9]e-)")
_SMALL = re.compile(rb"0\.0000(?<=[:,\[-]0\.0000)")


def canonical_json(value: Any) -> bytes:
    """`json.dumps(value, sort_keys=True, ensure_ascii=False, separators=(",", ":"))` in UTF-8: the
    text stored line keys were hashed from. orjson writes the same bytes three times faster (an
    rspamd row's key cost more than parsing it); json.dumps writes what orjson refuses (big ints,
    lone surrogates, non-string keys) or may write differently."""
    try:
        out = orjson.dumps(value, option=orjson.OPT_SORT_KEYS)
    except TypeError:  # orjson.JSONEncodeError
        out = None
    if out is None or b"null" in out or _EXPONENT.search(out) or _SMALL.search(out):
        text = json.dumps(value, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
        return text.encode("utf-8", "surrogatepass")
    return out


def _is_int(value: Any) -> bool:
    if type(value) is int:  # what mailcow sends: skip the exception machinery
        return True
    try:
        int(value)
        return True
    except (TypeError, ValueError):
        return False


def number_window(source: str, newest_first: Sequence[Mapping[str, Any]]) -> list[tuple[Mapping[str, Any], bytes, int]]:
    """(item, key, occurrence) for one fetched window, oldest first.

    Identical items are numbered from the oldest end of the window: new lines only ever arrive
    at the newest end, so an item keeps its number from one fetch to the next and loading an
    overlapping window again inserts exactly the lines that are new.
    """
    seen: dict[bytes, int] = {}
    out = []
    for item in reversed(newest_first):
        # dict first: what JSON decodes to, and a far cheaper test than the Mapping ABC's
        is_mapping = isinstance(item, (dict, Mapping))
        key = line_key(source, item) if is_mapping else hashlib.sha256(repr(item).encode()).digest()
        occurrence = seen.get(key, 0)
        seen[key] = occurrence + 1
        out.append((item, key, occurrence))
    return out
