"""The JSON-datasource protocol (simpod-json-datasource) under `/grafana/json`.

`GET /` (save & test), `POST /metrics`, `/metric-payload-options`, `/query` (panels and
annotations), `/variable`, `/tag-keys`, `/tag-values`. A target's `target` names a catalog query;
its `payload` (object, or the JSON string code mode stores) and the ad hoc filters (`filters`, or
`adhocFilters` from plugins before 0.6.4) become the query's arguments.
"""

from __future__ import annotations

import time
from typing import Any

from flask import Blueprint, Response, jsonify, request
from marshmallow import fields, validate

from datasource import params
from exporter.http import context, inputs
from exporter.http.errors import ApiError, InvalidParameter, QueryTimeout
from exporter.http.params import Params, load
from exporter.readmodels import catalog

bp = Blueprint("jsonds", __name__, url_prefix="/grafana/json")

FILTER_KEYS = ("direction", "domain", "search", "status", "sender", "recipient", "ip", "user")
MAX_TARGETS = 20  # queries in one /query: a panel has a few; hundreds are a load attack, not a dashboard
MAX_ROWS = 50_000  # rows in one /query answer, all its targets together


class _Body(Params):
    """The parts of a request body this datasource reads (Grafana sends more; the rest is ignored)."""

    range = fields.Dict(keys=fields.String(), load_default=None, allow_none=True)
    intervalMs = fields.Raw(load_default=None, allow_none=True)  # Grafana's names
    maxDataPoints = fields.Raw(load_default=None, allow_none=True)
    targets = fields.List(
        fields.Dict(keys=fields.String()),
        load_default=None,
        allow_none=True,
        validate=validate.Length(max=MAX_TARGETS, error="at most {max} per query; split the panel"),
    )
    filters = fields.List(fields.Dict(keys=fields.String()), load_default=None, allow_none=True)
    adhocFilters = fields.List(fields.Dict(keys=fields.String()), load_default=None, allow_none=True)
    payload = fields.Raw(load_default=None, allow_none=True)  # /variable
    name = fields.Raw(load_default=None, allow_none=True)  # /metric-payload-options
    key = fields.Raw(load_default=None, allow_none=True)  # /tag-values


def _body() -> dict[str, Any]:
    """The request body checked against _Body; an empty body is `{}`, anything else not an object a 400."""
    data = request.get_data(cache=True)
    try:
        raw = inputs.loads(data) if data else {}
    except ValueError as exc:  # not JSON, nested too deep, a NUL in a string
        raise InvalidParameter(f"body: {exc}") from None
    if not isinstance(raw, dict):
        raise InvalidParameter("the body must be a JSON object")
    return load(_Body(), raw)


def _payload(target: dict[str, Any]) -> dict[str, Any]:
    payload = target.get("payload") or {}
    if isinstance(payload, str):
        try:
            payload = inputs.loads(payload) if payload.strip() else {}
        except ValueError:
            payload = {}  # what the plugin itself does with invalid JSON
    return {k: v for k, v in payload.items() if isinstance(v, (str, int, float))} if isinstance(payload, dict) else {}


def _adhoc(body: dict[str, Any]) -> dict[str, Any]:
    filters = body["filters"] or body["adhocFilters"] or []
    return {
        f["key"]: f["value"]
        for f in filters
        if f.get("key") in FILTER_KEYS and f.get("operator", "=") == "=" and "value" in f
    }


def _range(body: dict[str, Any]) -> dict[str, Any]:
    window = body["range"] or {}
    return {
        "from": window.get("from"),
        "to": window.get("to"),
        "interval_ms": body["intervalMs"],
        "max_points": body["maxDataPoints"],
    }


@bp.get("")
@bp.get("/")
def test() -> Response:
    return jsonify({"status": "ok", "message": "mailcow-grafana JSON datasource", "queries": len(catalog.QUERIES)})


def _payload_spec(name: str) -> list[dict[str, Any]]:
    kind = catalog.QUERIES[name].kind
    spec = [
        {"name": "direction", "label": "Direction", "type": "select", "options": []},
        {"name": "domain", "label": "Domain", "type": "select", "options": []},
        {"name": "search", "label": "Search", "type": "input"},
    ]
    if kind in ("table", "logs"):
        spec.append({"name": "limit", "label": "Rows", "type": "input", "placeholder": "100"})
    if name == "messages":
        spec.append({"name": "status", "label": "Status", "type": "select", "options": []})
    return spec


@bp.post("/metrics")
def metrics() -> Response:
    return jsonify(
        [{"label": q.description, "value": q.name, "payloads": _payload_spec(q.name)} for q in catalog.QUERIES.values()]
    )


def _values(name: str, body: dict[str, Any]) -> list[str]:
    source = {"direction": "directions", "domain": "domains", "status": "statuses", "service": "services"}.get(name)
    if source is None:
        return []
    args = params.parse_request(_range(body))
    return list(catalog.variable(source, context.pool(), args, context.local_domains()))


@bp.post("/metric-payload-options")
def payload_options() -> Response:
    body = _body()
    return jsonify([{"label": v, "value": v} for v in _values(str(body["name"] or ""), body)])


def _column_type(key: str, values: list[Any], times: frozenset[str]) -> str:
    if key in times:
        return "time"
    sample = next((v for v in values if v is not None), None)
    if isinstance(sample, bool):
        return "boolean"
    if isinstance(sample, (int, float)):
        return "number"
    return "string"


def _frames(name: str, ref: str, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    kind, times = catalog.QUERIES[name].kind, catalog.QUERIES[name].time_keys
    keys = list(rows[0]) if rows else []
    if kind == "timeseries":
        return [
            {"target": key, "refId": ref, "datapoints": [[row[key], row["time"]] for row in rows]}
            for key in keys
            if key != "time"
        ]
    if kind == "logs":
        return [
            {
                "name": name,
                "refId": ref,
                "meta": {"type": "log-lines", "preferredVisualisationType": "logs"},
                "fields": [
                    {
                        "name": key,
                        "type": _column_type(key, [r[key] for r in rows], times),
                        "values": [r[key] for r in rows],
                    }
                    for key in keys
                ],
            }
        ]
    if kind == "annotations":  # Grafana maps these names onto annotation events
        rename = {"time_end": "timeEnd"}
        keys = [k for k in keys if k in ("time", "time_end", "title", "text", "tags")]
        return [
            {
                "type": "table",
                "refId": ref,
                "columns": [{"text": rename.get(k, k), "type": _column_type(k, [], times)} for k in keys],
                "rows": [[r[k] for k in keys] for r in rows],
            }
        ]
    return [
        {
            "type": "table",
            "refId": ref,
            "columns": [{"text": key, "type": _column_type(key, [r[key] for r in rows], times)} for key in keys],
            "rows": [[r[key] for key in keys] for r in rows],
        }
    ]


@bp.post("/query")
def query() -> Response:
    """Every target's frames. Bounded: MAX_TARGETS targets, MAX_ROWS rows, and no target starts once
    the request has run longer than one statement may (QUERY_TIMEOUT)."""
    body = _body()
    targets = [t for t in body["targets"] or [] if not t.get("hide") and t.get("target")]
    shared = {**_range(body), **_adhoc(body)}
    deadline = time.monotonic() + context.config().query_timeout
    frames: list[dict[str, Any]] = []
    rows_total = 0
    for target in targets:
        name = str(target["target"])
        if name not in catalog.QUERIES:
            raise ApiError(
                400, "Bad Request", f"unknown target {name[:80]!r}; POST /metrics lists them", "UNKNOWN_QUERY"
            )
        if time.monotonic() > deadline:
            raise QueryTimeout()
        args = params.parse_request({**shared, **_payload(target)})
        rows = catalog.run(name, context.pool(), args, context.local_domains(), context.live())
        rows_total += len(rows)
        if rows_total > MAX_ROWS:
            raise ApiError(
                413,
                "Payload Too Large",
                f"the targets return more than {MAX_ROWS:,} rows together; lower their limit or split the panel",
                "TOO_MANY_ROWS",
            )
        frames.extend(_frames(name, str(target.get("refId", "A")), rows))
    return jsonify(frames)


@bp.post("/variable")
def variable() -> Response:
    body = _body()
    payload = body["payload"]
    name = payload.get("target") if isinstance(payload, dict) else payload
    if name not in catalog.VARIABLES:
        raise ApiError(
            400, "Bad Request", f"unknown variable {name!r}; one of {', '.join(catalog.VARIABLES)}", "UNKNOWN_VARIABLE"
        )
    values = catalog.variable(str(name), context.pool(), params.parse_request(_range(body)), context.local_domains())
    return jsonify([{"__text": v, "__value": v} for v in values])


@bp.post("/tag-keys")
def tag_keys() -> Response:
    return jsonify([{"type": "string", "text": key} for key in ("direction", "domain", "status", "search")])


@bp.post("/tag-values")
def tag_values() -> Response:
    body = _body()
    return jsonify([{"text": v} for v in _values(str(body["key"] or ""), body)])
