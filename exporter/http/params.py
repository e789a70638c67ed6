"""Query-parameter schemas: a bad value is a 400 that names the parameter."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from flask import request
from marshmallow import EXCLUDE, Schema, ValidationError, fields, validate, validates_schema

from exporter.http.errors import ApiError

MESSAGE_STATUSES = (
    "delivered",
    "deferred",
    "bounced",
    "expired",
    "rejected",
    "spam",
    "queued",
    "discarded",
    "deleted",
    "unknown",
)
DIRECTIONS = ("inbound", "outbound", "internal")


# Dates a query may name: wide enough for any dashboard range, far enough from years 1 and 9999 that
# no date arithmetic (range defaults, bucket edges, month lists) can overflow.
EARLIEST = datetime(1900, 1, 1, tzinfo=UTC)
LATEST = datetime(2200, 1, 1, tzinfo=UTC)


class Instant(fields.Field):
    """ISO 8601 (naive = UTC) or epoch seconds / milliseconds, as Grafana's ${__from} sends."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> datetime:
        text = str(value).strip()
        try:
            if text.lstrip("-").isdigit():
                number = int(text)
                parsed = datetime.fromtimestamp(number / 1000 if abs(number) > 10**11 else number, tz=UTC)
            else:
                parsed = datetime.fromisoformat(text.replace("Z", "+00:00").replace(" ", "T", 1))
        except (ValueError, OverflowError, OSError) as exc:
            raise ValidationError(f"not a date: {text[:40]!r} (use ISO 8601 or epoch milliseconds)") from exc
        parsed = parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
        if not EARLIEST <= parsed < LATEST:
            raise ValidationError(f"must be between {EARLIEST.year} and {LATEST.year - 1}, got {text[:40]!r}")
        return parsed


class Params(Schema):
    class Meta:
        unknown = EXCLUDE


class PageParams(Params):
    page = fields.Integer(load_default=1, validate=validate.Range(min=1, max=100_000))
    limit = fields.Integer(load_default=50, validate=validate.Range(min=1, max=500))
    search = fields.String(load_default=None, validate=validate.Length(max=200))
    start_date = Instant(load_default=None)
    end_date = Instant(load_default=None)

    @validates_schema
    def _window(self, data: dict[str, Any], **_: Any) -> None:
        if data.get("start_date") and data.get("end_date") and data["start_date"] > data["end_date"]:
            raise ValidationError("must not be after end_date", field_name="start_date")
        if data.get("page", 1) * data.get("limit", 50) > 1_000_000:
            raise ValidationError("page * limit may not exceed 1,000,000; narrow the filters", field_name="page")


class MessageParams(PageParams):
    sender = fields.String(load_default=None)
    recipient = fields.String(load_default=None)
    direction = fields.String(load_default=None, validate=validate.OneOf(DIRECTIONS))
    status = fields.String(load_default=None, validate=validate.OneOf(MESSAGE_STATUSES))
    user = fields.String(load_default=None)
    ip = fields.String(load_default=None)


class PostfixParams(PageParams):
    sender = fields.String(load_default=None)
    recipient = fields.String(load_default=None)
    status = fields.String(
        load_default=None, validate=validate.OneOf(("sent", "delivered", "bounced", "deferred", "expired", "rejected"))
    )
    queue_id = fields.String(load_default=None, validate=validate.Regexp(r"^[0-9A-Za-z]{5,20}$"))


class RspamdParams(PageParams):
    sender = fields.String(load_default=None)
    direction = fields.String(load_default=None, validate=validate.OneOf((*DIRECTIONS, "unknown")))
    min_score = fields.Float(load_default=None)
    max_score = fields.Float(load_default=None)
    action = fields.String(
        load_default=None,
        validate=validate.OneOf(("no action", "greylist", "add header", "rewrite subject", "soft reject", "reject")),
    )
    is_spam = fields.Boolean(load_default=None)


class NetfilterParams(PageParams):
    ip = fields.String(load_default=None)
    username = fields.String(load_default=None)
    action = fields.String(load_default=None, validate=validate.OneOf(("warning", "banned", "unbanned")))


class LimitParams(Params):
    limit = fields.Integer(load_default=10, validate=validate.Range(min=1, max=100))
    hours = fields.Integer(load_default=24 * 7, validate=validate.Range(min=1, max=24 * 366))


class TimelineParams(Params):
    hours = fields.Integer(load_default=24, validate=validate.Range(min=1, max=24 * 366))
    start_date = Instant(load_default=None)
    end_date = Instant(load_default=None)
    interval_ms = fields.Integer(load_default=None, validate=validate.Range(min=60_000, max=366 * 24 * 3_600_000))


def first_error(exc: ValidationError) -> str:
    """`name: message` for the first bad field; nested names joined by dots (`targets.0`)."""
    path: list[str] = []
    detail: Any = exc.messages
    while isinstance(detail, (list, dict)):
        if isinstance(detail, dict):
            name = min(detail, key=str)
            path.append(str(name))
            detail = detail[name]
        else:
            detail = detail[0]
    return f"{'.'.join(path)}: {detail}"


def parse(schema: Schema) -> dict[str, Any]:
    """Validate request.args; raise a 400 naming the first bad parameter."""
    try:
        return schema.load(request.args.to_dict())
    except ValidationError as exc:
        raise ApiError(400, "Bad Request", first_error(exc), "VALIDATION_FAILED") from None


class AuditParams(Params):
    page = fields.Integer(load_default=1, validate=validate.Range(min=1, max=100_000))
    limit = fields.Integer(load_default=50, validate=validate.Range(min=1, max=500))
    target = fields.String(load_default=None, validate=validate.OneOf(("queue", "quarantine")))
    action = fields.String(load_default=None, validate=validate.Length(max=40))
    outcome = fields.String(load_default=None, validate=validate.OneOf(("success", "partial", "failed", "refused")))
    actor = fields.String(load_default=None, validate=validate.Length(max=200))
    start_date = Instant(load_default=None)
