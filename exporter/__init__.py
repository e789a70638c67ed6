"""mailcow-grafana: mailcow's mail flow, logs and state in PostgreSQL, Prometheus and Grafana."""

__version__ = "0.1.0"
