"""The Grafana adapter: the Infinity datasource's GET routes and the JSON-datasource protocol."""

from __future__ import annotations

from datasource import infinity, jsonds

BLUEPRINTS = (infinity.bp, jsonds.bp)
