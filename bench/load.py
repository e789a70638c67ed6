"""Find the highest mail rate ingested with zero loss (real time, mailcow's caps, default settings).

Usage: .venv/bin/python bench/load.py [--server URL] [--seconds 90] [RATE ...]
Each rate runs the simulator in real time against a `mailcow-grafana worker` on a scratch database.
"""

from __future__ import annotations

import argparse

import _paths  # noqa: F401  (first: keeps bench/ off sys.path)

from bench._scratch import scratch_database
from tests.loadrun import run_load


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--server", default="postgresql://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--seconds", type=int, default=90)
    parser.add_argument("rates", nargs="*", type=float, default=[2000, 5000, 10000, 15000])
    args = parser.parse_args()
    best = 0.0
    for rate in args.rates:
        with scratch_database(args.server, "mg_load") as url:
            result = run_load(url, rate, args.seconds)
        print(("LOSSLESS " if result.lossless else "LOSS     ") + result.summary(), flush=True)
        if result.lossless:
            best = max(best, rate)
    print(f"highest rate with zero loss: {best:,.0f} mails/min")


if __name__ == "__main__":
    main()
