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

from exporter import correlation
from exporter.ingestion import load_window
from exporter.parsers.syslog import parse_line

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
    """Load every file (plain or gzip), then correlate; re-importing a file adds nothing."""
    totals = {"lines": 0, "inserted": 0, "skipped": 0}
    now = datetime.now(UTC)
    for path in paths:
        with (
            _open(path) as handle,
            tqdm(total=path.stat().st_size, unit="B", unit_scale=True, desc=path.name, disable=not progress) as bar,
        ):

            def items() -> Iterator[dict[str, str]]:
                for line in handle:
                    bar.update(len(line.encode("utf-8", "replace")))
                    totals["lines"] += 1
                    item = parse_line(line, tz, now)
                    if item is None:
                        totals["skipped"] += 1
                    else:
                        yield item

            for chunk in _chunks(items()):
                chunk.sort(key=lambda i: int(i["time"]))  # stable: file order within a second
                with pool.connection() as conn, conn.transaction():
                    inserted, _ = load_window(conn, "postfix", chunk[::-1])
                totals["inserted"] += inserted
    totals.update(correlation.correlate(pool, local_domains))
    return totals
