"""Raw log retention cost against the size of what it drops: dropping a day's partitions should take
the same time whether the day held 100,000 lines or millions.

Usage: .venv/bin/python bench/raw_retention.py [--server URL] [SIZES ...]
For each size, stores that many lines in a day past retention through the real loader (lines of
realistic Postfix text, in windows of 5,000), then times `raw_logs.maintain` (drop + create ahead).
"""

from __future__ import annotations

import argparse
import random
import time
from datetime import UTC, datetime, timedelta

import _paths  # noqa: F401  (first: keeps bench/ off sys.path)

from bench._scratch import scratch_database
from exporter.parsers.lines import number_window
from exporter.services import raw_logs
from exporter.store.database import create_pool, migrate

WINDOW = 5000


def _items(rng: random.Random, start: int, count: int) -> list[dict]:
    out = []
    for n in range(count):
        qid = f"{rng.getrandbits(40):010X}"
        out.append(
            {
                "time": str(start + n * 86_000 // count),
                "priority": "info",
                "program": "postfix/smtp",
                "message": f"{qid}: to=<user{rng.randint(1, 5000)}@example.org>, relay=mx.example.com"
                f"[192.0.2.{rng.randint(1, 254)}]:25, delay=0.{rng.randint(1, 99)}, dsn=2.0.0, status=sent "
                f"(250 2.0.0 OK id={qid})",
            }
        )
    return out


def measure(url: str, lines: int) -> tuple[float, float]:
    """(seconds to load, seconds for maintain to drop that day)."""
    migrate(url)
    pool = create_pool(url, 2)
    day = datetime.now(UTC).date() - timedelta(days=5)
    start = int(datetime(day.year, day.month, day.day, tzinfo=UTC).timestamp())
    rng = random.Random(lines)
    items = _items(rng, start, lines)
    began = time.perf_counter()
    for first in range(0, lines, WINDOW):
        window = items[first : first + WINDOW][::-1]
        with pool.connection() as conn, conn.transaction():
            raw_logs.store_rows(conn, raw_logs.rows("postfix", number_window("postfix", window)))
    loaded = time.perf_counter() - began
    began = time.perf_counter()
    dropped = raw_logs.maintain(pool, retention_days=2)
    took = time.perf_counter() - began
    assert dropped == [day.isoformat()], dropped
    pool.close()
    return loaded, took


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--server", default="postgresql://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("sizes", nargs="*", type=int, default=[100_000, 1_000_000, 3_000_000])
    args = parser.parse_args()
    for size in args.sizes:
        with scratch_database(args.server, "mg_retention") as url:
            loaded, took = measure(url, size)
        print(f"{size:>10,} lines in the day: loaded in {loaded:6.1f} s, retention dropped it in {took * 1000:6.1f} ms")


if __name__ == "__main__":
    main()
