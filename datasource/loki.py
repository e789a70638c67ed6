"""The Loki HTTP API subset Grafana's built-in Loki datasource uses, over the raw log lines (issue 22).

Point a Loki datasource at this service's root URL (basic auth as for the other datasources). Routes:
`/ready`, `/loki/api/v1/status/buildinfo`, `labels`, `label/<name>/values`, `series`, `query_range`,
`query`, `index/stats`, `index/volume`, and the `tail` websocket (datasource/loki_tail.py). What
Grafana only probes for (`/loki/api/v2alpha/tail`, `detected_*`, `patterns`, `index/volume_range`)
answers 404, which makes it use the v1 tail and the classic label endpoints.

Errors are the house envelope {"error", "detail", "code"} plus Loki's `message` (the same text as
`detail`): Grafana shows `message` of a JSON error body, so a LogQL outside the subset reads in
Explore as "parse error at line 1, col 9: pipeline stage '| json' ... is not supported".
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit

from flask import Blueprint, Response, jsonify, request

from datasource import loki_params as lp
from exporter.http import context
from exporter.http.errors import ApiError, InvalidParameter, error_response
from exporter.parsers.logql import LogQuery
from exporter.readmodels import loki, loki_metrics
from exporter.store.raw_search import BadPattern

bp = Blueprint("loki", __name__)
API = "/loki/api/v1"
BUILD_VERSION = "3.5.0"  # what Grafana's Loki features check for; no Loki code runs here
_MS = timedelta(milliseconds=1)


def scope() -> loki.Scope:
    """The enabled services and the instance label: MAILCOW_URL's host name."""
    config = context.config()
    services = tuple(config.raw_logs_services) if config.raw_logs_enabled else ()
    return loki.Scope(services, urlsplit(config.mailcow_url or "").hostname or "mailcow")


def _success(data: object) -> Response:
    return jsonify({"status": "success", "data": data})


def _is_loki(path: str) -> bool:
    return path.startswith("/loki/") or path == "/ready"


@bp.after_app_request
def _loki_message(response: Response) -> Response:
    """Loki's `message` beside the envelope's `detail` (what Grafana displays) on every error under /loki/,
    those of routing (404) and authentication (401) included."""
    if response.status_code >= 400 and response.is_json and _is_loki(request.path):
        body = response.get_json(silent=True)
        if isinstance(body, dict) and isinstance(body.get("detail"), str):
            body["message"] = body["detail"]
            response.set_data(json.dumps(body))
    return response


@bp.errorhandler(BadPattern)
def _bad_pattern(exc: BadPattern) -> Response:
    return error_response(400, "Bad Request", f"query: {exc}", "VALIDATION_FAILED")


@bp.errorhandler(loki_metrics.TooManyPoints)
def _too_many_points(exc: loki_metrics.TooManyPoints) -> Response:
    return error_response(400, "Bad Request", f"step: {exc}", "VALIDATION_FAILED")


@bp.get("/ready")
def ready() -> Response:
    return Response("ready\n", mimetype="text/plain")


@bp.get(f"{API}/status/buildinfo")
def buildinfo() -> Response:
    return jsonify(
        {"version": BUILD_VERSION, "revision": "", "branch": "", "buildUser": "", "buildDate": "", "goVersion": ""}
    )


def _selectors(name: str = "query") -> list[LogQuery]:
    texts = [t for t in request.values.getlist(name) if t.strip()]
    return lp.selectors(texts, name)


@bp.route(f"{API}/labels", methods=["GET", "POST"])
def labels() -> Response:
    args = lp.load_args(lp.MetadataParams(), request.values)
    return _success(loki.label_names(context.pool(), scope(), _selectors(), args["start"], args["end"]))


@bp.route(f"{API}/label/<name>/values", methods=["GET", "POST"])
def label_values(name: str) -> Response:
    args = lp.load_args(lp.MetadataParams(), request.values)
    found = loki.label_values(context.pool(), scope(), name, _selectors(), args["start"], args["end"])
    return _success(found)


@bp.route(f"{API}/series", methods=["GET", "POST"])
def series() -> Response:
    args = lp.load_args(lp.MetadataParams(), request.values)
    selectors = _selectors("match[]") or _selectors("match")
    if not selectors:
        raise InvalidParameter('match[]: at least one stream selector is required, e.g. {service="postfix"}')
    return _success(loki.series(context.pool(), scope(), selectors, args["start"], args["end"]))


@bp.get(f"{API}/index/stats")
def index_stats() -> Response:
    args = lp.load_args(lp.MetadataParams(), request.values)
    return jsonify(loki.index_stats(context.pool(), scope(), _selectors(), args["start"], args["end"]))


@bp.get(f"{API}/index/volume")
def index_volume() -> Response:
    args = lp.load_args(lp.VolumeParams(), request.values)
    targets = tuple(t.strip() for t in args["targetLabels"].split(",") if t.strip())
    volume = loki.index_volume(
        context.pool(), scope(), _selectors(), args["start"], args["end"], targets, args["limit"]
    )
    return _success(volume)


def _ms(at: datetime) -> int:
    return (at - datetime(1970, 1, 1, tzinfo=at.tzinfo)) // _MS


@bp.get(f"{API}/query_range")
def query_range() -> Response:
    args = lp.load_args(lp.RangeParams(), request.args)
    parsed = lp.logql(args["query"])
    if isinstance(parsed, LogQuery):
        forward = args["direction"] == "forward"
        found = loki.streams(context.pool(), scope(), parsed, args["start"], args["end"], args["limit"], forward)
        return _success(found)
    times = loki_metrics.Steps(_ms(args["start"]), _ms(args["end"]), args["step"]).times()
    return _success(loki_metrics.matrix(loki_metrics.evaluate(context.pool(), scope(), parsed, times)))


@bp.get(f"{API}/query")
def query() -> Response:
    args = lp.load_args(lp.InstantParams(), request.args)
    at = args["time"] or datetime.now(UTC)
    parsed = lp.logql(args["query"])
    if isinstance(parsed, LogQuery):
        forward = args["direction"] == "forward"
        end = at + timedelta(microseconds=1)  # the instant itself is included
        start = end - timedelta(hours=1)
        return _success(loki.streams(context.pool(), scope(), parsed, start, end, args["limit"], forward))
    return _success(loki_metrics.vector(loki_metrics.evaluate(context.pool(), scope(), parsed, [_ms(at)])))


@bp.get(f"{API}/tail")
def tail_without_upgrade() -> Response:
    """The tail (datasource/loki_tail.py) is a websocket; a plain request gets Loki's answer in words."""
    raise InvalidParameter("the live tail is a websocket: connect with ws:// or wss:// (Upgrade: websocket)")


@bp.get("/loki/api/v2alpha/tail")
@bp.get(f"{API}/index/volume_range")
@bp.get(f"{API}/detected_labels")
@bp.get(f"{API}/detected_fields")
@bp.get(f"{API}/detected_field/<name>/values")
@bp.get(f"{API}/patterns")
def not_served(name: str | None = None) -> Response:
    """Endpoints Grafana probes for and does without: a 404 makes it use the v1 tail and plain labels."""
    raise ApiError(404, "Not Found", f"{request.path} is not served by this Loki API subset", "NOT_SUPPORTED")
