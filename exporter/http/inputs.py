"""Checks on every request's input before a handler sees it: no NUL in any text, strict JSON bodies.

PostgreSQL text cannot hold a NUL byte, so one in any parameter would otherwise fail deep inside a
query as a 500. The standard library's JSON parser recurses without bound (a deeply nested body was a
RecursionError) and accepts NaN, Infinity and lone surrogates; request bodies are parsed by orjson
instead, and nesting deeper than any Grafana or API body is refused.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import orjson
from flask import Flask, request
from flask.json.provider import DefaultJSONProvider

from exporter.http.errors import InvalidParameter

MAX_JSON_DEPTH = 32  # Grafana's bodies are about 5 levels deep


def _nodes(value: Any) -> Iterator[tuple[Any, int]]:
    """Every value, key and string of a parsed JSON document with its depth, without recursion."""
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        yield item, depth
        if isinstance(item, dict):
            stack.extend((part, depth + 1) for pair in item.items() for part in pair)
        elif isinstance(item, list):
            stack.extend((part, depth + 1) for part in item)


def loads(data: str | bytes) -> Any:
    """Parse standard JSON; raise ValueError for a NUL in a string or nesting deeper than MAX_JSON_DEPTH."""
    value = orjson.loads(data)  # orjson.JSONDecodeError is a ValueError
    for item, depth in _nodes(value):
        if depth > MAX_JSON_DEPTH:
            raise ValueError(f"nested deeper than {MAX_JSON_DEPTH} levels")
        if isinstance(item, str) and "\x00" in item:
            raise ValueError("a string contains a NUL character (\\u0000)")
    return value


class StrictJSONProvider(DefaultJSONProvider):
    """Flask's JSON provider with `loads` for request bodies (`request.get_json`)."""

    def loads(self, s: str | bytes, **kwargs: Any) -> Any:
        return loads(s)


def _reject_nul() -> None:
    """A 400 naming the first path, query or form parameter (name or value) that holds a NUL byte."""
    pairs = [*(request.view_args or {}).items(), *request.args.items(multi=True)]
    if request.method == "POST":
        pairs += request.form.items(multi=True)
    for name, value in pairs:
        if "\x00" in name or "\x00" in str(value):
            shown = name.replace("\x00", "\\x00")
            raise InvalidParameter(f"{shown}: must not contain NUL bytes")


def install(app: Flask) -> None:
    """Parse request bodies strictly and refuse NUL bytes, for every route (those added later included)."""
    provider = StrictJSONProvider(app)
    provider.sort_keys = app.json.sort_keys
    app.json = provider
    app.before_request(_reject_nul)
