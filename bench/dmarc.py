"""DMARC parsing throughput: records per second on the large sample, reports per second over every
shared sample (parse only, as parsedmarc's figures are; then parse + store into PostgreSQL).

Usage: .venv/bin/python bench/dmarc.py [--samples DIR] [--seconds N] [--server URL]
parsedmarc on the same machine (reference sheet): about 480 small reports/s and 8,700 records/s.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import _paths  # noqa: F401  (first: keeps bench/ off sys.path)

from bench._scratch import scratch_database
from exporter.parsers.dmarc.errors import InvalidReport
from exporter.parsers.dmarc.reports import parse_file
from exporter.services.dmarc import import_bytes
from exporter.store.database import create_pool, migrate

DEFAULT_SAMPLES = Path(__file__).resolve().parent.parent.parent / "shared" / "data" / "dmarc-samples"


def timed(seconds: float, work) -> tuple[int, float]:
    """Run `work` repeatedly for about `seconds`; return (runs, elapsed)."""
    runs, started = 0, time.perf_counter()
    while time.perf_counter() - started < seconds:
        work()
        runs += 1
    return runs, time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--samples", type=Path, default=DEFAULT_SAMPLES)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--server", default="postgresql://postgres@127.0.0.1:5432/postgres")
    args = parser.parse_args()

    large = (args.samples / "aggregate" / "!large-example.com!1711897200!1711983600.xml").read_bytes()
    records = len(parse_file(large).reports[0]["records"])
    runs, elapsed = timed(args.seconds, lambda: parse_file(large))
    print(f"large report ({records:,} records): {runs * records / elapsed:,.0f} records/s parsed")

    files = [p.read_bytes() for p in sorted(args.samples.rglob("*")) if p.is_file() and p.name != "SOURCE.md"]
    readable = []
    for data in files:
        try:
            parse_file(data)
            readable.append(data)
        except InvalidReport:
            pass
    small = [d for d in readable if d != large]

    def parse_all() -> None:
        for data in small:
            parse_file(data)

    runs, elapsed = timed(args.seconds, parse_all)
    print(f"{len(small)} other samples: {runs * len(small) / elapsed:,.0f} reports/s parsed")

    with scratch_database(args.server, "mg_bench_dmarc") as url:
        migrate(url)
        pool = create_pool(url, 2)
        pool.wait()
        started = time.perf_counter()
        for data in readable:
            import_bytes(pool, data, "bench")
        stored = time.perf_counter() - started
        print(f"parse + store of all {len(readable)} samples: {len(readable) / stored:,.0f} reports/s")
        started = time.perf_counter()
        import_bytes(pool, large.replace(b"example.com:1711897200", b"example.com:bench-2"), "bench")
        print(f"parse + store of the large report: {records / (time.perf_counter() - started):,.0f} records/s")
        pool.close()


if __name__ == "__main__":
    main()
