"""Arguments of a Grafana query, from Infinity's query string or a JSON-datasource request."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from marshmallow import ValidationError

from exporter.http import context
from exporter.http.errors import ApiError
from exporter.http.params import DIRECTIONS, Instant
from exporter.readmodels.catalog import Args, step_for

# Values Grafana sends for "no filter": an empty text box, the All option, an uninterpolated variable.
_ALL = {"", "all", "$__all", "*", ".*"}
_COMMON = {"from", "to", "interval_ms", "max_points", "limit", "direction", "domain", "search"}
MAX_LIMIT = 5000


def _filter(value: Any) -> str | None:
    text = str(value).strip() if value is not None else ""
    return None if text.lower() in _ALL or text.startswith("$") else text


def _int(params: Mapping[str, Any], name: str, default: int | None, low: int, high: int) -> int | None:
    raw = params.get(name)
    if raw in (None, ""):
        return default
    try:
        value = int(float(raw))
    except (TypeError, ValueError, OverflowError):  # OverflowError: infinity, or a float beyond 1e308
        raise ApiError(400, "Bad Request", f"{name}: not a number: {str(raw)[:40]!r}", "INVALID_PARAMETER") from None
    if not low <= value <= high:
        raise ApiError(400, "Bad Request", f"{name}: must be between {low} and {high}", "INVALID_PARAMETER")
    return value


def _instant(params: Mapping[str, Any], name: str, default: datetime) -> datetime:
    raw = params.get(name)
    if raw in (None, ""):
        return default
    try:
        return Instant().deserialize(raw)
    except ValidationError as exc:
        raise ApiError(400, "Bad Request", f"{name}: {exc.messages[0]}", "INVALID_PARAMETER") from None


def parse(params: Mapping[str, Any], default_limit: int = 100) -> Args:
    """Range (`from`/`to`: epoch ms or ISO; default the last 24 hours), step, filters, options."""
    now = datetime.now(UTC)
    end = _instant(params, "to", now)
    start = _instant(params, "from", end - timedelta(hours=24))
    if start > end:
        raise ApiError(400, "Bad Request", "from: must not be after to", "INVALID_PARAMETER")
    direction = _filter(params.get("direction"))
    if direction and direction not in DIRECTIONS:
        raise ApiError(400, "Bad Request", f"direction: one of {', '.join(DIRECTIONS)}", "INVALID_PARAMETER")
    search = _filter(params.get("search"))
    if search and len(search) > 200:
        raise ApiError(400, "Bad Request", "search: at most 200 characters", "INVALID_PARAMETER")
    return Args(
        start=start,
        end=end,
        step=step_for(
            start, end, _int(params, "interval_ms", None, 1, 10**10), _int(params, "max_points", None, 1, 10**5)
        ),
        limit=_int(params, "limit", default_limit, 1, MAX_LIMIT) or default_limit,
        direction=direction,
        domain=_filter(params.get("domain")),
        search=search,
        options={k: v for k, v in ((k, _filter(v)) for k, v in params.items() if k not in _COMMON) if v},
    )


def parse_request(params: Mapping[str, Any], default_limit: int = 100) -> Args:
    """`parse`, plus this service's URLs as the browser and as Grafana's server reach it (links, actions)."""
    args = parse(params, default_limit)
    args.service_url, args.datasource_url = context.service_urls()
    return args
