"""Helpers to drive the simulator and our ingestion together in simulated time."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from exporter.mailcow.client import MailcowClient
from exporter.services import correlation
from exporter.services.ingestor import Ingestor
from exporter.services.raw_logs import RawLogs
from exporter.simulator.app import create_simulator_app
from exporter.simulator.state import LOCAL_DOMAINS, MailcowState
from exporter.simulator.traffic import Simulation
from tests.conftest import RO_KEY, RW_KEY, ManualClock

COUNTS = {"postfix": 2000, "rspamd": 500, "netfilter": 500}


@dataclass
class Rig:
    """A simulated mailcow on loopback and an ingestor reading it, sharing one manual clock."""

    sim: Simulation
    clock: ManualClock
    ingestor: Ingestor
    pool: Any
    mailcow_url: str

    def step(self, seconds: int) -> None:
        """Let `seconds` of traffic happen, then fetch and correlate like the worker does."""
        self.clock.now += seconds
        self.sim.advance()
        self.ingestor.fetch_all()
        correlation.correlate(self.pool, LOCAL_DOMAINS)

    def run(self, seconds: int, every: int) -> None:
        for _ in range(seconds // every):
            self.step(every)


def make_rig(
    pool, live_app, start: int, rate: float, seed: int = 7, log_cap: int = 10_000, raw: RawLogs | None = None
) -> Rig:
    clock = ManualClock(start)
    sim = Simulation(MailcowState(log_cap=log_cap), seed=seed, start=start, rate_per_minute=rate, clock=clock)
    server = live_app(create_simulator_app(sim, RO_KEY, RW_KEY, advance_on_request=False))
    client = MailcowClient(server.url, RO_KEY, timeout=30)
    ingestor = Ingestor(client, pool, COUNTS, max_interval=60, clock=clock, raw=raw)
    return Rig(sim, clock, ingestor, pool, server.url)


def expected_status(recipient: dict[str, Any], mail: dict[str, Any]) -> str:
    """The status a simulated recipient should show: Postfix's, unless the mailbox discarded it or Sieve
    rejected it (matched by Message-ID, or by the LMTP session for a mail without one)."""
    return {"discarded": "discarded", "rejected": "rejected"}.get(recipient.get("delivery"), recipient["status"])


def all_messages(client) -> Iterator[dict[str, Any]]:
    """Every message through the paginated /api/messages."""
    page = 1
    while True:
        body = client.get(f"/api/messages?limit=500&page={page}").get_json()
        yield from body["data"]
        if page >= body["pages"]:
            return
        page += 1


@contextmanager
def scenario(databases, start: int, rate: float, seed: int = 7) -> Iterator[tuple[Rig, Any, str]]:
    """A rig on its own fresh database, for module-scoped fixtures: yields (rig, pool, url)."""
    from exporter.store.database import create_pool, migrate
    from tests.conftest import LiveServer

    url = databases.create()
    migrate(url)
    pool = create_pool(url, 4)
    pool.wait()
    servers: list[LiveServer] = []

    def live_app(app):
        servers.append(LiveServer(app))
        return servers[-1]

    try:
        yield make_rig(pool, live_app, start=start, rate=rate, seed=seed), pool, url
    finally:
        for server in servers:
            server.stop()
        pool.close()
