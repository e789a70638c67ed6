"""Find the highest mail rate ingested with zero loss (real time, mailcow's caps, default settings).

Usage: .venv/bin/python bench/load.py [--server URL] [--seconds 90] [RATE ...]
Each rate runs the simulator in real time against a `mailcow-grafana worker` on a scratch database.
"""

from __future__ import annotations

import argparse
import secrets

import _paths  # noqa: F401  (first: keeps bench/ off sys.path)
import psycopg
from psycopg import sql

from tests.loadrun import run_load


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--server", default="postgresql://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--seconds", type=int, default=90)
    parser.add_argument("rates", nargs="*", type=float, default=[2000, 5000, 10000, 15000])
    args = parser.parse_args()
    best = 0.0
    for rate in args.rates:
        name = f"mg_load_{secrets.token_hex(4)}"
        with psycopg.connect(args.server, autocommit=True) as conn:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        try:
            result = run_load(psycopg.conninfo.make_conninfo(args.server, dbname=name), rate, args.seconds)
        finally:
            with psycopg.connect(args.server, autocommit=True) as conn:
                conn.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(name)))
        print(("LOSSLESS " if result.lossless else "LOSS     ") + result.summary(), flush=True)
        if result.lossless:
            best = max(best, rate)
    print(f"highest rate with zero loss: {best:,.0f} mails/min")


if __name__ == "__main__":
    main()
