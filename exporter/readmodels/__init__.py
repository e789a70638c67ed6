"""Every shape the service serves, one module per feature: the REST JSON (seed 002), the Grafana
catalog's rows and the Prometheus families. Pure shaping over store rows and live mailcow items."""
