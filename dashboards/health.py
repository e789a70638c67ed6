"""mailcow / Service health: this service's jobs, ingestion, gaps and mailcow API reachability."""

from __future__ import annotations

from dashboards.kit import Panel, across_replicas, dashboard, infinity, prom, series, stat, table, total


def _figures() -> list[Panel]:
    """Database, gaps, job failures and mailcow API at a glance, then lag and throughput over time."""
    return [
        stat(
            "Database",
            "1 when every scraped replica of the service can read its PostgreSQL.",
            prom("min(mailcow_grafana_database_up)", instant=True),
            "bool",
            w=6,
        ),
        stat(
            "Gaps (range)",
            "Times mailcow rotated lines away before they were read.",
            prom(total("increase(mailcow_grafana_ingest_gaps_total[$__range])"), instant=True),
            "short",
            w=6,
        ),
        stat(
            "Job failures (range)",
            "Failed background job runs.",
            prom(total("increase(mailcow_grafana_job_failures_total[$__range])"), instant=True),
            "short",
            w=6,
        ),
        stat(
            "mailcow API down",
            "Endpoint groups whose last call failed.",
            prom("count(" + across_replicas("mailcow_api_up") + " == 0) or vector(0)", instant=True),
            "short",
            w=6,
        ),
        series(
            "Ingest lag",
            "Now minus the newest stored line, per source.",
            [prom("max by (source) (mailcow_grafana_ingest_lag_seconds)", "{{source}}")],
            "s",
        ),
        series(
            "Lines ingested",
            "Lines stored per second, per source.",
            [prom(total("rate(mailcow_grafana_lines_ingested_total[$__rate_interval])", "source"), "{{source}}")],
            "short",
        ),
    ]


def _tables() -> list[Panel]:
    """The service's own state from its database: jobs, ingestion, mailcow API, gaps."""
    return [
        table(
            "Background jobs", "Last run, outcome, duration and error of every job.", infinity("jobs", params=()), w=24
        ),
        table(
            "Ingestion",
            "Per log source: lines, lag, gaps, fetch interval.",
            infinity("ingest", params=(), hide=("newest_line",)),
        ),
        table("mailcow API", "Reachability per endpoint group.", infinity("api_health", params=())),
        table("Ingestion gaps", "Spans of log lines lost before they were read.", infinity("gaps", params=()), w=24),
    ]


def build() -> dict:
    """The dashboard's JSON model."""
    return dashboard(
        "mailcow-health",
        "mailcow / Service health",
        "This service: jobs, ingestion, gaps and mailcow API reachability.",
        [*_figures(), *_tables()],
        [],
    )
