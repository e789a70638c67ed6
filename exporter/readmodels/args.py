"""What a Grafana panel asks a query for: its range, step, filters and options.

Below the feature modules and the catalog alike, so both can name it without importing each other.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from exporter.store import grafana as store

MIN_STEP = 60  # seconds: the finest bucket a time series gets


@dataclass
class Args:
    """What a panel asks for: range, step, filters, and query-specific options."""

    start: datetime
    end: datetime
    step: int = MIN_STEP
    limit: int = 100
    direction: str | None = None
    domain: str | None = None
    search: str | None = None
    options: dict[str, str] = field(default_factory=dict)
    local: tuple[str, ...] = ()
    service_url: str = ""  # this service as the browser reaches it: confirmation pages, panel actions
    datasource_url: str = ""  # this service as Grafana's server reaches it: Infinity actions

    @property
    def scope(self) -> store.Scope:
        return store.Scope(self.start, self.end, self.direction, self.domain, self.search, self.local)
