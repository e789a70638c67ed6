"""mailcow's own state as Prometheus families: the queue, quarantine, containers, vmail, bans and
version, from the status snapshots the worker stores (`mailcow_…` names, base units)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import datetime

from prometheus_client.core import GaugeMetricFamily, InfoMetricFamily, Metric

from exporter.store import metrics as store

QUEUES = ("incoming", "active", "deferred", "hold", "maildrop")
_SI = {"": 1, "K": 10**3, "M": 10**6, "G": 10**9, "T": 10**12, "P": 10**15}


def mailcow_families(state: store.MetricsState) -> Iterator[Metric]:
    snapshots = state.snapshots
    yield from _queue(snapshots.get("queue"), state.now)
    quarantine = GaugeMetricFamily("mailcow_quarantine_messages", "Messages in mailcow's quarantine.")
    quarantine.add_metric([], state.quarantined)
    yield quarantine
    yield from _containers(snapshots.get("containers"))
    yield from _vmail(snapshots.get("vmail"))
    yield from _bans(snapshots.get("fail2ban"))
    if "version" in snapshots:
        version = InfoMetricFamily("mailcow_version", "The mailcow release (git tag or commit).")
        version.add_metric([], {"version": str(snapshots["version"][0].get("version", ""))})
        yield version
    fetched = GaugeMetricFamily(
        "mailcow_status_last_fetch_timestamp_seconds",
        "When each mailcow status endpoint was last read successfully (Unix time).",
        labels=["kind"],
    )
    for kind, (_, at) in sorted(snapshots.items()):
        fetched.add_metric([kind], at.timestamp())
    yield fetched


def _queue(snapshot: tuple[list, datetime] | None, now: datetime) -> Iterator[Metric]:
    size = GaugeMetricFamily("mailcow_queue_messages", "Messages in the Postfix queue, by queue.", labels=["queue"])
    oldest = GaugeMetricFamily(
        "mailcow_queue_oldest_message_age_seconds",
        "Age of the oldest message in each Postfix queue (0 when empty).",
        labels=["queue"],
    )
    if snapshot is None:
        return
    items = snapshot[0]
    counts = dict.fromkeys(QUEUES, 0)
    arrivals: dict[str, float] = {}
    for item in items if isinstance(items, list) else []:
        queue = str(item.get("queue_name", "unknown"))
        counts[queue] = counts.get(queue, 0) + 1
        try:
            arrival = float(item["arrival_time"])
        except (KeyError, TypeError, ValueError):
            continue
        arrivals[queue] = min(arrivals.get(queue, arrival), arrival)
    for queue, count in counts.items():
        size.add_metric([queue], count)
        oldest.add_metric([queue], max(0.0, now.timestamp() - arrivals[queue]) if queue in arrivals else 0)
    yield from (size, oldest)


def _containers(snapshot: tuple[dict, datetime] | None) -> Iterator[Metric]:
    if snapshot is None:
        return
    up = GaugeMetricFamily(
        "mailcow_container_up", "Whether each mailcow container is running (Docker state).", labels=["container"]
    )
    data = snapshot[0] if isinstance(snapshot[0], dict) else {}
    for service, info in sorted(data.items()):
        state = info.get("state") if isinstance(info, dict) else None
        up.add_metric([service], 1 if state == "running" else 0)
    yield up


def _si_bytes(text: object) -> float | None:
    """`df -H` sizes such as "22G" (powers of 1000) in bytes."""
    match = re.fullmatch(r"\s*([\d.]+)\s*([KMGTP]?)B?\s*", str(text), re.IGNORECASE)
    return float(match.group(1)) * _SI[match.group(2).upper()] if match else None


def _vmail(snapshot: tuple[dict, datetime] | None) -> Iterator[Metric]:
    if snapshot is None or not isinstance(snapshot[0], dict):
        return
    data = snapshot[0]
    used, total = _si_bytes(data.get("used")), _si_bytes(data.get("total"))
    if used is None or not total:  # df failed: mailcow reports all fields "0"
        return
    ratio = GaugeMetricFamily("mailcow_vmail_used_ratio", "Used share of the mail storage volume (0-1).")
    ratio.add_metric([], used / total)
    size = GaugeMetricFamily("mailcow_vmail_size_bytes", "Size of the mail storage volume.")
    size.add_metric([], total)
    used_bytes = GaugeMetricFamily("mailcow_vmail_used_bytes", "Used space on the mail storage volume.")
    used_bytes.add_metric([], used)
    yield from (ratio, size, used_bytes)


def _bans(snapshot: tuple[dict, datetime] | None) -> Iterator[Metric]:
    if snapshot is None or not isinstance(snapshot[0], dict):
        return
    bans = GaugeMetricFamily(
        "mailcow_netfilter_active_bans", "Networks netfilter currently bans, by kind.", labels=["kind"]
    )
    bans.add_metric(["temporary"], len(snapshot[0].get("active_bans") or []))
    bans.add_metric(["permanent"], len(snapshot[0].get("perm_bans") or []))
    yield bans
