"""Parameters of the Loki HTTP API as Loki reads them, through the one validation path (`params.load`).

Times (`start`, `end`, `time`): nanoseconds since the epoch (what Grafana sends), seconds (ten digits or
fewer, or with a fraction) or RFC 3339. `step`: a Prometheus duration (`60000ms`, `1m`) or seconds.
`limit` above MAX_LIMIT is lowered to it (Loki refuses; Grafana's "line limit" is a wish, not a contract).
Every bad value is the house 400 naming the parameter; the Loki blueprint adds Loki's `message` field.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from marshmallow import ValidationError, fields, post_load, validate
from werkzeug.datastructures import MultiDict

from exporter.http.errors import InvalidParameter
from exporter.http.params import EARLIEST, LATEST, Params, load
from exporter.parsers.logql import Constant, LogQLError, LogQuery, MetricQuery, parse

MAX_LIMIT = 5000
_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d|w|y)")
_UNIT_MS = {"ms": 1, "s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000, "w": 604_800_000, "y": 31_536_000_000}
MAX_STEP_MS = 366 * 86_400_000


class LokiTime(fields.Field):
    """A point in time as Loki accepts it."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> datetime:
        text = str(value).strip()
        try:
            if re.fullmatch(r"-?\d+", text):
                number = int(text)
                span = (
                    timedelta(seconds=number) if len(text.lstrip("-")) <= 10 else timedelta(microseconds=number // 1000)
                )
                at = datetime(1970, 1, 1, tzinfo=UTC) + span
            elif re.fullmatch(r"-?\d+\.\d*|-?\.\d+", text):
                at = datetime(1970, 1, 1, tzinfo=UTC) + timedelta(seconds=float(text))
            else:
                at = datetime.fromisoformat(text.replace("Z", "+00:00"))
        except (ValueError, OverflowError) as exc:
            raise ValidationError(
                f"cannot parse {text[:40]!r} as a timestamp (nanoseconds, seconds or RFC 3339)"
            ) from exc
        at = at if at.tzinfo else at.replace(tzinfo=UTC)
        if not EARLIEST <= at < LATEST:
            raise ValidationError(f"must be between {EARLIEST.year} and {LATEST.year - 1}, got {text[:40]!r}")
        return at


class LokiStep(fields.Field):
    """A query resolution: a duration (`60000ms`, `1m30s`) or seconds; whole milliseconds, at least one."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> int:
        text = str(value).strip()
        parts = _DURATION.findall(text)
        try:
            if parts and "".join(n + u for n, u in parts) == text:
                step = sum(float(n) * _UNIT_MS[u] for n, u in parts)
            else:
                step = float(text) * 1000
        except (ValueError, OverflowError):
            raise ValidationError(f"cannot parse {text[:40]!r} as a duration (e.g. 60000ms, 1m, or 60)") from None
        if not 1 <= step <= MAX_STEP_MS:  # NaN fails too
            raise ValidationError("zero or negative query resolution step widths are not accepted; use a positive one")
        return round(step)


class _Limit(fields.Integer):
    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> int:
        return min(super()._deserialize(value, attr, data, **kwargs), MAX_LIMIT)


class _Window(Params):
    start = LokiTime(load_default=None)
    end = LokiTime(load_default=None)
    since = LokiStep(load_default=None)
    default_hours = 6  # Loki's metadata endpoints look back six hours

    @post_load
    def _range(self, data: dict[str, Any], **_: Any) -> dict[str, Any]:
        data["end"] = data["end"] or datetime.now(UTC)
        if data["start"] is None:
            back = timedelta(milliseconds=data["since"]) if data["since"] else timedelta(hours=self.default_hours)
            data["start"] = max(data["end"] - back, EARLIEST)
        if data["start"] > data["end"]:
            raise ValidationError("the start time must not be after the end time", field_name="start")
        return data


class MetadataParams(_Window):
    query = fields.String(load_default=None, validate=validate.Length(max=5000))


class RangeParams(_Window):
    default_hours = 1  # Loki's query_range looks back one hour
    query = fields.String(required=True, validate=validate.Length(max=5000))
    limit = _Limit(load_default=100, validate=validate.Range(min=1))
    direction = fields.String(
        load_default="backward",
        validate=validate.OneOf(("backward", "forward")),
    )
    step = LokiStep(load_default=None)

    @post_load
    def _step(self, data: dict[str, Any], **_: Any) -> dict[str, Any]:
        if data["step"] is None:  # Loki's default: a 250th of the range, at least a second
            span_ms = (data["end"] - data["start"]) // timedelta(milliseconds=1)
            data["step"] = max(1000, span_ms // 250 // 1000 * 1000)
        return data


class InstantParams(Params):
    query = fields.String(required=True, validate=validate.Length(max=5000))
    limit = _Limit(load_default=100, validate=validate.Range(min=1))
    direction = fields.String(load_default="backward", validate=validate.OneOf(("backward", "forward")))
    time = LokiTime(load_default=None)


class TailParams(MetadataParams):
    default_hours = 1
    query = fields.String(required=True, validate=validate.Length(max=5000))
    limit = _Limit(load_default=100, validate=validate.Range(min=1))
    delay_for = fields.Integer(load_default=0, validate=validate.Range(min=0, max=5))


class VolumeParams(MetadataParams):
    limit = fields.Integer(load_default=100, validate=validate.Range(min=1, max=MAX_LIMIT))
    targetLabels = fields.String(load_default="", validate=validate.Length(max=500))


def _lowered(args: Mapping[str, Any], names: tuple[str, ...]) -> dict[str, Any]:
    """The parameters as a plain dict, `names` lower-cased (Loki reads BACKWARD as backward)."""
    data = args.to_dict() if isinstance(args, MultiDict) else dict(args)
    for name in names:
        if isinstance(data.get(name), str):
            data[name] = data[name].lower()
    return data


def load_args(schema: Params, args: Mapping[str, Any]) -> dict[str, Any]:
    """`args` through `schema`: the house 400 for a bad one."""
    return load(schema, _lowered(args, ("direction",)))


def logql(text: str, name: str = "query") -> LogQuery | MetricQuery | Constant:
    """Parse a LogQL query; a query outside the subset is a 400 naming what is not supported."""
    try:
        return parse(text)
    except LogQLError as exc:
        raise InvalidParameter(f"{name}: {exc}") from None


def selectors(texts: list[str], name: str) -> list[LogQuery]:
    """Stream selectors (match[] of /series, query of the metadata endpoints): log queries only."""
    out = []
    for text in texts:
        parsed = logql(text, name)
        if not isinstance(parsed, LogQuery):
            raise InvalidParameter(f'{name}: a stream selector such as {{service="postfix"}} is required here')
        out.append(parsed)
    return out
