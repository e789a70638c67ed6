"""The JSON-datasource protocol (simpod-json-datasource) under `/grafana/json`.

`GET /` (save & test), `POST /metrics`, `/metric-payload-options`, `/query` (panels and
annotations), `/variable`, `/tag-keys`, `/tag-values`. A target's `target` names a catalog query;
its `payload` (object, or the JSON string code mode stores) and the ad hoc filters (`filters`, or
`adhocFilters` from plugins before 0.6.4) become the query's arguments.
"""

from __future__ import annotations

import json
from typing import Any

from flask import Blueprint, Response, jsonify, request

from datasource import catalog, params
from exporter.web import context
from exporter.web.errors import ApiError

bp = Blueprint("jsonds", __name__, url_prefix="/grafana/json")

FILTER_KEYS = ("direction", "domain", "search", "status", "sender", "recipient", "ip", "user")


def _body() -> dict[str, Any]:
    body = request.get_json(silent=True)
    return body if isinstance(body, dict) else {}


def _payload(target: dict[str, Any]) -> dict[str, Any]:
    payload = target.get("payload") or {}
    if isinstance(payload, str):
        try:
            payload = json.loads(payload) if payload.strip() else {}
        except ValueError:
            payload = {}  # what the plugin itself does with invalid JSON
    return {k: v for k, v in payload.items() if isinstance(v, (str, int, float))} if isinstance(payload, dict) else {}


def _adhoc(body: dict[str, Any]) -> dict[str, Any]:
    filters = body.get("filters") or body.get("adhocFilters") or []
    return {
        f["key"]: f["value"]
        for f in filters
        if isinstance(f, dict) and f.get("key") in FILTER_KEYS and f.get("operator", "=") == "=" and "value" in f
    }


def _range(body: dict[str, Any]) -> dict[str, Any]:
    window = body.get("range") or {}
    return {
        "from": window.get("from"),
        "to": window.get("to"),
        "interval_ms": body.get("intervalMs"),
        "max_points": body.get("maxDataPoints"),
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
    return jsonify([{"label": v, "value": v} for v in _values(str(body.get("name", "")), body)])


def _column_type(key: str, values: list[Any]) -> str:
    if key in catalog.TIME_KEYS:
        return "time"
    sample = next((v for v in values if v is not None), None)
    if isinstance(sample, bool):
        return "boolean"
    if isinstance(sample, (int, float)):
        return "number"
    return "string"


def _frames(name: str, ref: str, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    kind = catalog.QUERIES[name].kind
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
                    {"name": key, "type": _column_type(key, [r[key] for r in rows]), "values": [r[key] for r in rows]}
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
                "columns": [{"text": rename.get(k, k), "type": _column_type(k, [])} for k in keys],
                "rows": [[r[k] for k in keys] for r in rows],
            }
        ]
    return [
        {
            "type": "table",
            "refId": ref,
            "columns": [{"text": key, "type": _column_type(key, [r[key] for r in rows])} for key in keys],
            "rows": [[r[key] for key in keys] for r in rows],
        }
    ]


@bp.post("/query")
def query() -> Response:
    body = _body()
    targets = [t for t in body.get("targets") or [] if isinstance(t, dict) and not t.get("hide") and t.get("target")]
    shared = {**_range(body), **_adhoc(body)}
    frames: list[dict[str, Any]] = []
    for target in targets:
        name = str(target["target"])
        if name not in catalog.QUERIES:
            raise ApiError(400, "Bad Request", f"unknown target {name!r}; POST /metrics lists them", "UNKNOWN_QUERY")
        args = params.parse_request({**shared, **_payload(target)})
        rows = catalog.run(name, context.pool(), args, context.local_domains(), context.live())
        frames.extend(_frames(name, str(target.get("refId", "A")), rows))
    return jsonify(frames)


@bp.post("/variable")
def variable() -> Response:
    body = _body()
    payload = body.get("payload")
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
    return jsonify([{"text": v} for v in _values(str(body.get("key", "")), body)])
