"""What the simulated mailcow holds: capped log lists, queue, quarantine, accounts, status."""

from __future__ import annotations

import threading
from collections import deque
from datetime import UTC, datetime
from typing import Any

# Redis-backed log lists (mailcow-api.md §1.1); rspamd-history is rspamd's own list.
REDIS_LOGS = (
    "postfix",
    "dovecot",
    "sogo",
    "netfilter",
    "ratelimited",
    "watchdog",
    "acme",
    "api",
    "autodiscover",
    "cron",
)
RSPAMD_HISTORY_ROWS = 1000  # history_redis.conf nrows
AUTODISCOVER_ROWS = 101

LOCAL_DOMAINS = ("example.org", "example.net")
MAILBOXES = (
    ("info@example.org", "Info Desk"),
    ("alice@example.org", "Alice Adams"),
    ("bob@example.org", "Bob Brown"),
    ("ops@example.org", "Operations"),
    ("carol@example.net", "Carol Clark"),
    ("dave@example.net", "Dave Davis"),
)
# address -> targets; one alias forwards to an outside mailbox (a forward).
ALIASES = {
    "contact@example.org": ("info@example.org", "ops@example.org"),
    "team@example.org": ("alice@example.org", "bob@example.org"),
    "sales@example.net": ("carol@example.net",),
    "fwd@example.org": ("alice.private@gmail.com",),
}
CONTAINERS = (
    ("unbound-mailcow", "unbound:1.24"),
    ("mysql-mailcow", "mariadb:10.11"),
    ("redis-mailcow", "redis:7.4.6-alpine"),
    ("clamd-mailcow", "clamd:1.71"),
    ("rspamd-mailcow", "rspamd:2.4"),
    ("php-fpm-mailcow", "phpfpm:1.94"),
    ("sogo-mailcow", "sogo:1.136"),
    ("dovecot-mailcow", "dovecot:2.3.21.1-2"),
    ("postfix-mailcow", "postfix:3.10.12-1"),
    ("postfix-tlspol-mailcow", "postfix-tlspol:1.8"),
    ("memcached-mailcow", "memcached:alpine"),
    ("nginx-mailcow", "nginx:1.05"),
    ("acme-mailcow", "acme:1.98"),
    ("netfilter-mailcow", "netfilter:1.63"),
    ("watchdog-mailcow", "watchdog:2.08"),
    ("dockerapi-mailcow", "dockerapi:2.11"),
    ("olefy-mailcow", "olefy:1.15"),
    ("ofelia-mailcow", "mcuadros/ofelia:latest"),
)
DKIM_PUBKEY = (
    "MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEAyLq3m1vFq2uGd0dXbq7Xk9xJ0b6bZk3m0rj2y8c4l1v1s0x2n3i8t0xq"
    "Yw0m6a9pQ2o2uXk3m8bV7c9n0QIDAQAB"
)


class MailcowState:
    """Mutable state of the simulated server; every access holds `lock`."""

    def __init__(self, log_cap: int = 10000, version: str = "2026-07a") -> None:
        self.lock = threading.RLock()
        self.log_cap = log_cap
        self.version = version
        self.logs: dict[str, deque] = {name: deque(maxlen=log_cap) for name in REDIS_LOGS}
        self.logs["autodiscover"] = deque(maxlen=AUTODISCOVER_ROWS)
        self.rspamd_history: deque = deque(maxlen=RSPAMD_HISTORY_ROWS)
        self.ui_log: deque = deque(maxlen=log_cap)
        self.sasl_log: deque = deque(maxlen=log_cap)
        self.queue: dict[str, dict[str, Any]] = {}
        self.quarantine: dict[int, dict[str, Any]] = {}
        self.next_quarantine_id = 1
        self.containers: dict[str, dict[str, Any]] = {}
        self.vmail_used_bytes = 22_000_000_000
        self.vmail_total_bytes = 85_000_000_000
        self.active_bans: dict[str, int] = {}  # network -> banned until (epoch)
        self.fail_counts: dict[str, list[int]] = {}
        self.pushed: dict[str, int] = {}  # entries ever logged per list (ground truth for loss checks)
        self.fault: str | None = None  # "server_error" | "slow": see the simulator's /sim/fault
        self.fault_delay = 5.0
        self.missing_logs: set[str] = set()  # lists an older mailcow lacks: their path is "route not found"
        self.mailbox_usage: dict[str, dict[str, int]] = {
            addr: {
                "quota_used": 50_000_000 * (i + 1),
                "messages": 400 * (i + 1),
                "last_imap_login": 0,
                "last_smtp_login": 0,
            }
            for i, (addr, _) in enumerate(MAILBOXES)
        }

    def push(self, service: str, item: dict[str, Any]) -> None:
        """LPUSH: the newest entry first, the list capped like mailcow's trimmed Redis lists."""
        self.pushed[service] = self.pushed.get(service, 0) + 1
        if service == "rspamd-history":
            self.rspamd_history.appendleft(item)
        else:
            self.logs[service].appendleft(item)

    def start_containers(self, at: int) -> None:
        for name, image in CONTAINERS:
            self.containers[name] = {
                "type": "info",
                "container": name,
                "state": "running",
                "started_at": docker_time(at - 86400 * 3),
                "image": image if "/" in image else f"ghcr.io/mailcow/{image}",
            }


def docker_time(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, tz=UTC).strftime("%Y-%m-%dT%H:%M:%S.%f") + "123Z"
