"""mailcow's current state for the read endpoints: fetched on demand, cached a few seconds.

Grafana refreshes every panel of a dashboard at once; the cache turns that into one mailcow call
per item. The client used here fails fast (one attempt, short timeout) so a request whose answer
depends on an unreachable mailcow ends in a clear 502/504 instead of hanging.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from exporter.config import Config
from exporter.mailcow.client import MailcowClient

LIVE_TIMEOUT = 8.0  # seconds: longer than mailcow needs for a queue listing, shorter than Grafana's patience


class LiveMailcow:
    def __init__(self, client: MailcowClient, ttl: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.client = client
        self._ttl = ttl
        self._clock = clock
        self._lock = threading.Lock()
        self._cache: dict[str, tuple[float, Any]] = {}

    @classmethod
    def for_requests(cls, config: Config) -> LiveMailcow:
        """mailcow for requests: one attempt, a short timeout (a request must not hang on mailcow)."""
        client = MailcowClient(
            config.mailcow_url or "http://mailcow.invalid",
            config.mailcow_api_key,
            config.mailcow_api_key_rw,
            verify_tls=config.mailcow_verify_tls,
            timeout=min(config.mailcow_timeout, LIVE_TIMEOUT),
            retries=1,
        )
        return cls(client, config.live_cache_seconds)

    def _cached(self, key: str, fetch: Callable[[], Any]) -> tuple[Any, float]:
        """The value and the wall-clock time it was fetched."""
        now = self._clock()
        with self._lock:
            hit = self._cache.get(key)
            if hit is not None and now - hit[0] < self._ttl:
                return hit[1]
        value = (fetch(), time.time())
        with self._lock:
            self._cache[key] = (now, value)
        return value

    def invalidate(self, *keys: str) -> None:
        """Forget cached items (after an action changed them)."""
        with self._lock:
            for key in keys:
                self._cache.pop(key, None)

    def queue(self) -> tuple[list[dict], float]:
        return self._cached("queue", self.client.mail_queue)

    def quarantine(self) -> tuple[list[dict], float]:
        return self._cached("quarantine", self.client.quarantine)

    def containers(self) -> tuple[dict, float]:
        return self._cached("containers", self.client.containers)

    def vmail(self) -> tuple[dict, float]:
        return self._cached("vmail", self.client.vmail)

    def version(self) -> tuple[str, float]:
        return self._cached("version", self.client.version)

    def probe(self) -> str:
        """mailcow's version, asked now (never cached): the deep health probe's proof that mailcow answers."""
        return self.client.version()

    def accounts(self) -> tuple[dict[str, list[dict]], float]:
        """Domains, mailboxes and aliases (for the counts of /api/status/mailcow-info)."""
        return self._cached(
            "accounts",
            lambda: {
                "domains": self.client.domains(),
                "mailboxes": self.client.mailboxes(),
                "aliases": self.client.aliases(),
            },
        )
