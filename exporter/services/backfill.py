"""`import-logs`: load Postfix syslog files through the same parser, store and correlation."""

from __future__ import annotations

import gzip
import io
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, tzinfo
from pathlib import Path
from typing import IO

from psycopg_pool import ConnectionPool
from tqdm import tqdm

from exporter.parsers.syslog import parse_line
from exporter.services import correlation
from exporter.services.ingest import load_groups

CHUNK_LINES = 20_000


def _open(path: Path) -> IO[str]:
    raw = path.open("rb")
    if raw.read(2) == b"\x1f\x8b":
        raw.seek(0)
        return io.TextIOWrapper(gzip.GzipFile(fileobj=raw), encoding="utf-8", errors="replace")
    raw.seek(0)
    return io.TextIOWrapper(raw, encoding="utf-8", errors="replace")


def _chunks(items: Iterator[dict[str, str]]) -> Iterator[list[dict[str, str]]]:
    """Chunks of about CHUNK_LINES items that never split one second: identical lines in the same
    second are numbered within one window, exactly as on the first import."""
    chunk: list[dict[str, str]] = []
    for item in items:
        if len(chunk) >= CHUNK_LINES and item["time"] != chunk[-1]["time"]:
            yield chunk
            chunk = []
        chunk.append(item)
    if chunk:
        yield chunk


def import_files(
    pool: ConnectionPool, paths: Sequence[Path], tz: tzinfo, local_domains: Sequence[str], progress: bool = True
) -> dict[str, int]:
    """Load every file (plain or gzip) and correlate; re-importing a file adds nothing.

    Reading and parsing, writing, and correlating run at once (three threads, see `load_groups`
    and `correlation.Background`), so a large archive loads at the product's full ingest rate.
    """
    totals = {"lines": 0, "inserted": 0, "skipped": 0, "messages": 0}
    now = datetime.now(UTC)

    def correlate_new() -> None:
        totals["messages"] += correlation.correlate(pool, local_domains)["messages"]

    correlator = correlation.Background(correlate_new).start()
    try:
        for path in paths:
            with (
                _open(path) as handle,
                tqdm(total=path.stat().st_size, unit="B", unit_scale=True, desc=path.name, disable=not progress) as bar,
            ):

                def items() -> Iterator[dict[str, str]]:
                    for line in handle:
                        bar.update(len(line.encode("utf-8", "replace")))
                        totals["lines"] += 1
                        if "\x00" in line:  # PostgreSQL text cannot hold a NUL: one would fail its whole chunk
                            line = line.replace("\x00", "\ufffd")
                        item = parse_line(line, tz, now)
                        if item is None:
                            totals["skipped"] += 1
                        else:
                            yield item

                totals["inserted"] += load_groups(pool, _windows(items()), correlator.poke)
        correlator.poke()
        correlator.idle()
    finally:
        correlator.stop()
    if correlator.error:
        raise correlator.error
    return totals


def _windows(items: Iterator[dict[str, str]]) -> Iterator[list[tuple[str, list[dict[str, str]]]]]:
    """One Postfix window per chunk, newest first as mailcow lists them (stable: file order within a second)."""
    for chunk in _chunks(items):
        chunk.sort(key=lambda i: int(i["time"]))
        yield [("postfix", chunk[::-1])]
