"""The Grafana-facing API (Infinity REST rows and the JSON-datasource protocol)."""
