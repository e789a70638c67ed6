"""Infinity-friendly REST: `GET /grafana/infinity/<query>` answers a JSON array of flat rows.

Query parameters: `from`, `to` (Grafana's `${__from}`/`${__to}` or `${__timeFrom}`/`${__timeTo}`),
`interval_ms` (`${__interval_ms}`), `max_points`, `limit`, `direction`, `domain`, `search`, and the
query's own options; see `GET /grafana/infinity` for the list.
"""

from __future__ import annotations

from flask import Blueprint, Response, jsonify, request

from datasource import params
from exporter.http import context
from exporter.http.errors import ApiError
from exporter.readmodels import catalog

bp = Blueprint("infinity", __name__, url_prefix="/grafana/infinity")


@bp.get("")
def index() -> Response:
    """The queries and variables on offer (also Infinity's health check target)."""
    return jsonify(
        [
            {"name": q.name, "kind": q.kind, "description": q.description, "url": f"/grafana/infinity/{q.name}"}
            for q in catalog.QUERIES.values()
        ]
        + [
            {"name": v, "kind": "variable", "description": f"values of ${v}", "url": f"/grafana/infinity/variables/{v}"}
            for v in catalog.VARIABLES
        ]
    )


@bp.get("/<name>")
def query(name: str) -> Response:
    if name not in catalog.QUERIES:
        raise ApiError(404, "Not Found", f"no query named {name!r}; GET /grafana/infinity lists them", "UNKNOWN_QUERY")
    args = params.parse_request(request.args)
    return jsonify(catalog.run(name, context.pool(), args, context.local_domains(), context.live()))


@bp.get("/variables/<name>")
def variable(name: str) -> Response:
    """`[{"__text", "__value"}]`, which Infinity's variable editor maps without configuration."""
    if name not in catalog.VARIABLES:
        raise ApiError(404, "Not Found", f"no variable named {name!r}", "UNKNOWN_VARIABLE")
    args = params.parse_request(request.args)
    values = catalog.variable(name, context.pool(), args, context.local_domains())
    return jsonify([{"__text": v, "__value": v} for v in values])
