"""The Grafana adapter: the Infinity datasource's GET routes, the JSON-datasource protocol and the Loki API."""

from __future__ import annotations

from datasource import infinity, jsonds, loki_tail

# loki_tail.bp is datasource.loki's blueprint with the tail websocket registered on it
BLUEPRINTS = (infinity.bp, jsonds.bp, loki_tail.bp)
