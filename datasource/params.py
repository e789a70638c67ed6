"""Arguments of a Grafana query, from Infinity's query string or a JSON-datasource request.

One schema of the fields the REST API uses too (`exporter.http.params`), loaded through the same path,
so a bad value is the same 400 naming it. What Grafana sends for "no value" (an empty variable, a JSON
null) counts as absent, and "no filter" values (All, `.*`, an uninterpolated `$variable`) as no filter.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from marshmallow import ValidationError, fields, post_load, pre_load

from exporter.http import context
from exporter.http.params import DIRECTION, SEARCH, Instant, Params, bounded_int, load
from exporter.readmodels.catalog import Args, step_for

# Values Grafana sends for "no filter": an empty text box, the All option, an uninterpolated variable.
_ALL = {"", "all", "$__all", "*", ".*"}
MAX_LIMIT = 5000


def _filter(value: Any) -> str | None:
    text = str(value).strip() if value is not None else ""
    return None if text.lower() in _ALL or text.startswith("$") else text


class _Filter(fields.Field):
    """A filter's text, None for "no filter"; its validators judge only a set filter."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> str | None:
        return _filter(value)

    def _validate(self, value: Any) -> None:
        if value is not None:
            super()._validate(value)


class _Given(Mapping[str, Any]):
    """The parameters without the blank ones, read through the original mapping (no copy is made)."""

    def __init__(self, params: Mapping[str, Any]) -> None:
        self._params = params

    def __getitem__(self, name: str) -> Any:
        value = self._params[name]
        if value is None or value == "":
            raise KeyError(name)
        return value

    def __iter__(self) -> Iterator[str]:
        return (name for name in self._params if name in self)

    def __len__(self) -> int:
        return sum(1 for _ in self)


class QueryParams(Params):
    """The arguments every query reads; the rest of the parameters are the query's own options."""

    start = Instant(data_key="from", load_default=None)  # default: 24 hours before `to`
    end = Instant(data_key="to", load_default=None)  # default: now
    interval_ms = bounded_int(None, 1, 10**10)
    max_points = bounded_int(None, 1, 10**5)
    limit = bounded_int(100, 1, MAX_LIMIT)
    direction = _Filter(load_default=None, validate=DIRECTION)
    domain = _Filter(load_default=None)
    search = _Filter(load_default=None, validate=SEARCH)

    @pre_load
    def _given(self, data: Mapping[str, Any], **_: Any) -> Mapping[str, Any]:
        return _Given(data)

    @post_load
    def _range(self, data: dict[str, Any], **_: Any) -> dict[str, Any]:
        data["end"] = data["end"] or datetime.now(UTC)
        data["start"] = data["start"] or data["end"] - timedelta(hours=24)
        if data["start"] > data["end"]:
            raise ValidationError("must not be after to", field_name="from")
        return data


_COMMON = {field.data_key or name for name, field in QueryParams().fields.items()}


def parse(params: Mapping[str, Any]) -> Args:
    """Range (`from`/`to`: epoch ms or ISO; default the last 24 hours), step, filters, options."""
    args = load(QueryParams(), params)
    return Args(
        start=args["start"],
        end=args["end"],
        step=step_for(args["start"], args["end"], args["interval_ms"], args["max_points"]),
        limit=args["limit"],
        direction=args["direction"],
        domain=args["domain"],
        search=args["search"],
        options={k: v for k, v in ((k, _filter(v)) for k, v in params.items() if k not in _COMMON) if v},
    )


def parse_request(params: Mapping[str, Any]) -> Args:
    """`parse`, plus this service's URLs as the browser and as Grafana's server reach it (links, actions)."""
    args = parse(params)
    args.service_url, args.datasource_url = context.service_urls()
    return args
