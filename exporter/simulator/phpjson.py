"""JSON encoded the way mailcow's PHP does it (mailcow-api.md §0.6)."""

from __future__ import annotations

import json
from typing import Any


def _php_numbers(value: Any) -> Any:
    """PHP's json_encode prints 15.0 as 15: drop the fraction of whole floats."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, dict):
        return {k: _php_numbers(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_php_numbers(v) for v in value]
    return value


def encode(value: Any, *, pretty: bool = False, escape_slashes: bool = True, unescaped_unicode: bool = True) -> str:
    """`json_encode` with the given flags: pretty = 4-space indent, slashes as `\\/` by default."""
    text = json.dumps(
        _php_numbers(value),
        ensure_ascii=not unescaped_unicode,
        indent=4 if pretty else None,
        separators=(",", ": ") if pretty else (",", ":"),
    )
    # "/" can only occur inside JSON strings, so a plain replace is exact.
    return text.replace("/", "\\/") if escape_slashes else text
