"""The one validation path for request parameters: marshmallow schemas loaded by `load`, whose every
failure is the same 400 (`InvalidParameter`, code VALIDATION_FAILED) naming the parameter. The fields and
validators here are shared by the REST API and the Grafana datasources."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from functools import cache
from typing import Any

from flask import request
from marshmallow import EXCLUDE, Schema, ValidationError, fields, validate, validates_schema

from exporter.http.errors import InvalidParameter
from exporter.parsers import MAX_FIELD, dovecot
from exporter.parsers.raw_logs import LEVELS
from exporter.store.audit import KINDS as AUDIT_KINDS

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
DIRECTION = validate.OneOf(DIRECTIONS)
SEARCH = validate.Length(max=200)  # a search term: words and prefixes, never a dump of text
QUEUE_ID = validate.Regexp(r"^[0-9A-Za-z]{5,20}\Z", error="not a Postfix queue id")


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


class Day(fields.Field):
    """A UTC day as YYYY-MM-DD (report dates in paths)."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> datetime:
        try:
            return datetime.strptime(str(value), "%Y-%m-%d").replace(tzinfo=UTC)
        except ValueError:
            raise ValidationError(f"use YYYY-MM-DD, got {value!r}") from None


def bounded_int(default: int | None, low: int, high: int) -> fields.Integer:
    """A whole number from `low` to `high`; `default` when the parameter is absent."""
    return fields.Integer(load_default=default, validate=validate.Range(min=low, max=high))


class Params(Schema):
    """A request's parameters; names a schema does not declare are ignored."""

    class Meta:
        unknown = EXCLUDE


def _check_window(data: dict[str, Any]) -> None:
    """A date range that runs forwards, and no page deeper than a million rows (every paged list)."""
    if data.get("start_date") and data.get("end_date") and data["start_date"] > data["end_date"]:
        raise ValidationError("must not be after end_date", field_name="start_date")
    if data.get("page", 1) * data.get("limit", 50) > 1_000_000:
        raise ValidationError("page * limit may not exceed 1,000,000; narrow the filters", field_name="page")


class PageParams(Params):
    page = bounded_int(1, 1, 100_000)
    limit = bounded_int(50, 1, 500)
    search = fields.String(load_default=None, validate=SEARCH)
    start_date = Instant(load_default=None)
    end_date = Instant(load_default=None)

    @validates_schema
    def _window(self, data: dict[str, Any], **_: Any) -> None:
        _check_window(data)


class MessageParams(PageParams):
    sender = fields.String(load_default=None)
    recipient = fields.String(load_default=None)
    direction = fields.String(load_default=None, validate=DIRECTION)
    status = fields.String(load_default=None, validate=validate.OneOf(MESSAGE_STATUSES))
    user = fields.String(load_default=None)
    ip = fields.String(load_default=None)
    delivery = fields.String(load_default=None, validate=validate.OneOf(dovecot.OUTCOMES))  # any recipient's
    mailbox = fields.String(load_default=None, validate=validate.Length(max=MAX_FIELD))  # a folder, as Dovecot logs it


class PostfixParams(PageParams):
    sender = fields.String(load_default=None)
    recipient = fields.String(load_default=None)
    status = fields.String(
        load_default=None, validate=validate.OneOf(("sent", "delivered", "bounced", "deferred", "expired", "rejected"))
    )
    queue_id = fields.String(load_default=None, validate=QUEUE_ID)


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


class ReportDayParams(Params):
    report_date = Day(required=True)  # a path variable


class QueueIdParams(Params):
    queue_id = fields.String(required=True, validate=QUEUE_ID)  # a path variable


class LimitParams(Params):
    limit = bounded_int(10, 1, 100)
    hours = bounded_int(24 * 7, 1, 24 * 366)


class TimelineParams(Params):
    hours = bounded_int(24, 1, 24 * 366)
    start_date = Instant(load_default=None)
    end_date = Instant(load_default=None)
    interval_ms = bounded_int(None, 60_000, 366 * 24 * 3_600_000)


class HealthParams(Params):
    deep = fields.Boolean(load_default=False, truthy={"1", "true"}, falsy={"0", "false"})


def _first_error(exc: ValidationError) -> str:
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


def load(schema: Schema, data: Mapping[str, Any]) -> Any:
    """`data` through `schema`: the one way parameters are validated. A bad one raises InvalidParameter."""
    try:
        return schema.load(data)
    except ValidationError as exc:
        raise InvalidParameter(_first_error(exc)) from None


def parse(schema: Schema) -> dict[str, Any]:
    """The query string through `schema`."""
    return load(schema, request.args.to_dict())


@cache
def _one_int(name: str, default: int, low: int, high: int) -> type[Schema]:
    return Params.from_dict({name: bounded_int(default, low, high)}, name=f"IntParam_{name}")


def int_arg(name: str, default: int, low: int, high: int) -> int:
    """One bounded whole-number query parameter, for views that read only one or two."""
    return parse(_one_int(name, default, low, high)())[name]


class KindList(fields.Field):
    """One audit kind or several, comma-separated (`dns_check,imap_sync`)."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> tuple[str, ...]:
        words = [w.strip().lower() for w in str(value).split(",") if w.strip()]
        if not words or any(w not in AUDIT_KINDS for w in words):
            raise ValidationError(f"use one or more of {', '.join(AUDIT_KINDS)} (comma-separated), got {value!r:.60}")
        return tuple(dict.fromkeys(words))


class AuditParams(Params):
    page = bounded_int(1, 1, 100_000)
    limit = bounded_int(50, 1, 500)
    kind = KindList(load_default=None)
    target = fields.String(load_default=None, validate=validate.OneOf(("queue", "quarantine")))
    action = fields.String(load_default=None, validate=validate.Length(max=40))
    outcome = fields.String(
        load_default=None, validate=validate.OneOf(("success", "partial", "failed", "refused", "ok"))
    )
    actor = fields.String(load_default=None, validate=validate.Length(max=200))
    start_date = Instant(load_default=None)
    end_date = Instant(load_default=None)

    @validates_schema
    def _window(self, data: dict[str, Any], **_: Any) -> None:
        _check_window(data)


# The syslog words mailcow's own items use for raw log levels (exporter.parsers.raw_logs.LEVELS).
_LEVEL_WORDS = {"warn": "warning", "err": "error", "crit": "critical", "emerg": "critical", "alert": "critical"}
RAW_MAX_ROWS = 10_000  # page * limit: deeper pages of raw lines are reached by narrowing end_date


class LevelList(fields.Field):
    """One level or several, comma-separated (`error,critical`); syslog words (`err`, `warn`) are accepted."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> tuple[str, ...]:
        words = [w.strip().lower() for w in str(value).split(",") if w.strip()]
        levels = [_LEVEL_WORDS.get(w, w) for w in words]
        unknown = [w for w, level in zip(words, levels, strict=True) if level not in LEVELS]
        if not words or unknown:
            raise ValidationError(f"use one or more of {', '.join(LEVELS)} (comma-separated), got {value!r:.60}")
        return tuple(dict.fromkeys(levels))


class RawLogParams(PageParams):
    """`/api/raw-logs/<service>`: seed 002's page/limit/search/dates, levels, program, order, smart filter."""

    level = LevelList(load_default=None)
    priority = LevelList(load_default=None)  # seed 000's name for the same filter
    program = fields.String(load_default=None, validate=validate.Length(min=1, max=200))
    sort_order = fields.String(load_default="desc", validate=validate.OneOf(("desc", "asc")))
    filter = fields.String(load_default=None, validate=validate.Length(min=1, max=60))

    @validates_schema
    def _depth(self, data: dict[str, Any], **_: Any) -> None:
        if data.get("page", 1) * data.get("limit", 50) > RAW_MAX_ROWS:
            raise ValidationError(
                f"page * limit may not exceed {RAW_MAX_ROWS:,}; for older lines set end_date to the oldest time shown",
                field_name="page",
            )


class RawTailParams(Params):
    """`/ws/raw-logs`: which service to follow and, optionally, the same filters as the list."""

    service = fields.String(required=True, validate=validate.Length(min=1, max=40))
    search = fields.String(load_default=None, validate=SEARCH)
    level = LevelList(load_default=None)
    priority = LevelList(load_default=None)
    program = fields.String(load_default=None, validate=validate.Length(min=1, max=200))
    filter = fields.String(load_default=None, validate=validate.Length(min=1, max=60))
