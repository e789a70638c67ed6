"""`/api/mailbox-stats/{summary,all,domains}` with the shapes of seed 002."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from flask import Blueprint, Response, jsonify
from marshmallow import fields, validate

from exporter.http import context
from exporter.http.params import SEARCH, Params, bounded_int, parse
from exporter.readmodels import mailbox_stats
from exporter.store import mailbox_stats as store

bp = Blueprint("mailbox_stats", __name__, url_prefix="/api/mailbox-stats")
RANGES = {"today": 0, "7days": 7, "30days": 30, "90days": 90}


class RangeParams(Params):
    date_range = fields.String(load_default="30days", validate=validate.OneOf(tuple(RANGES)))


class StatsParams(RangeParams):
    domain = fields.String(load_default=None)
    active_only = fields.Boolean(load_default=True)
    hide_zero = fields.Boolean(load_default=False)
    search = fields.String(load_default=None, validate=SEARCH)
    sort_by = fields.String(load_default="sent_total", validate=validate.OneOf(tuple(store.SORTS)))
    sort_order = fields.String(load_default="desc", validate=validate.OneOf(("asc", "desc")))
    page = bounded_int(1, 1, 100_000)
    page_size = bounded_int(50, 10, 100)


def _window(name: str) -> tuple[datetime, datetime]:
    now = datetime.now(UTC)
    if name == "today":
        return now.replace(hour=0, minute=0, second=0, microsecond=0), now
    return now - timedelta(days=RANGES[name]), now


@bp.get("/summary")
def summary() -> Response:
    args = parse(RangeParams())
    start, end = _window(args["date_range"])
    row = store.summary(context.pool(), start, end)
    return jsonify(mailbox_stats.summary(row, args["date_range"], start, end))


@bp.get("/all")
def all_mailboxes() -> Response:
    args = parse(StatsParams())
    start, end = _window(args["date_range"])
    filters = store.Filters(
        start=start,
        end=end,
        domain=args["domain"].lower() if args["domain"] else None,
        active_only=args["active_only"],
        hide_zero=args["hide_zero"],
        search=args["search"],
        sort_by=args["sort_by"],
        sort_order=args["sort_order"],
        page=args["page"],
        page_size=args["page_size"],
    )
    total, rows = store.page(context.pool(), filters)
    return jsonify(mailbox_stats.page(total, rows, filters, args["date_range"]))


@bp.get("/domains")
def domains() -> Response:
    return jsonify(mailbox_stats.domains(store.domains(context.pool())))
