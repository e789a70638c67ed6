"""Raw log REST API latency over many stored lines (default 1,000,000 Postfix lines over 24 hours).

Usage: .venv/bin/python bench/raw_api.py [--server URL] [--lines N] [--runs N]
Fills a scratch database on the server (default 127.0.0.1:5432; dropped afterwards) through the
loader the ingestion uses (exporter/store/raw_logs.py: lines, gram blocks, per-minute counts) with
lines in mailcow's Postfix formats, one in 20,000 a postscreen PREGREET, then times
`/api/raw-logs/postfix` pages (their `total` included) with the filters the viewer uses.
"""

from __future__ import annotations

import argparse
import hashlib
import statistics
import time
from datetime import UTC, datetime, timedelta

import _paths  # noqa: F401  (first: keeps bench/ off sys.path)
from psycopg.types.json import Jsonb

from bench._scratch import scratch_database
from exporter.app import create_app
from exporter.config import Config
from exporter.store import raw_logs
from exporter.store.database import create_pool, migrate

TEMPLATES = (
    ("postfix/smtpd", "info", "connect from unknown[198.51.{a}.{b}]"),
    ("postfix/smtpd", "info", "disconnect from unknown[198.51.{a}.{b}] ehlo=1 mail=1 rcpt=1 data=1 quit=1 commands=5"),
    ("postfix/cleanup", "info", "{q}: message-id=<{i}.{a}@mail.example.com>"),
    ("postfix/qmgr", "info", "{q}: from=<user{a}@example.org>, size={i}, nrcpt=1 (queue active)"),
    (
        "postfix/lmtp",
        "info",
        "{q}: to=<rcpt{b}@example.net>, relay=dovecot[172.22.1.250]:24, delay=0.06, "
        "delays=0.01/0.01/0/0.04, dsn=2.0.0, status=sent (250 2.0.0 <rcpt{b}@example.net> Saved)",
    ),
    ("postfix/qmgr", "info", "{q}: removed"),
    (
        "postfix/smtpd",
        "warning",
        "warning: unknown[203.0.{a}.{b}]: SASL LOGIN authentication failed: "
        "(reason unavailable), sasl_username=user{a}@example.org",
    ),
    (
        "postfix/smtpd",
        "info",
        "NOQUEUE: reject: RCPT from unknown[192.0.{a}.{b}]: 454 4.7.1 <x{i}@example.com>: "
        "Relay access denied; from=<> to=<x{i}@example.com> proto=ESMTP helo=<h{a}>",
    ),
)
RARE = ("postfix/postscreen", "info", "PREGREET 14 after 0.27 from [103.114.{a}.{b}]:55309: EHLO ylmf-pc")


def _rows(start: int, count: int, total: int, end: datetime) -> list[tuple]:
    out = []
    for i in range(start, start + count):
        program, level, text = RARE if i % 20_000 == 7 else TEMPLATES[i % len(TEMPLATES)]
        message = text.format(a=i % 250, b=(i // 250) % 250, i=i, q=f"{i:011X}")
        at = end - timedelta(seconds=86_400 * (total - i) / total)
        item = {"time": str(int(at.timestamp())), "program": program, "priority": level, "message": message}
        key = hashlib.sha256(str(i).encode()).digest()
        out.append((at, "postfix", level, program, message, Jsonb(item), key, 0))
    return out


def fill(url: str, total: int) -> None:
    pool = create_pool(url, 2)
    end = datetime.now(UTC).replace(microsecond=0)
    started = time.perf_counter()
    batch = 50_000
    for first in range(0, total, batch):
        with pool.connection() as conn, conn.transaction():
            raw_logs.load(conn, _rows(first, min(batch, total - first), total, end))
    with pool.connection() as conn:
        conn.execute("ANALYZE")
    print(f"stored {total:,} lines in {time.perf_counter() - started:.1f} s")
    pool.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--server", default="postgresql://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--lines", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=20)
    args = parser.parse_args()
    with scratch_database(args.server, "mg_bench_raw") as url:
        migrate(url)
        fill(url, args.lines)
        pool = create_pool(url, 4)
        client = create_app(Config(mailcow_url="http://127.0.0.1:9", database_url=url), pool).test_client()
        now = datetime.now(UTC)
        start, end = (int((now - timedelta(hours=h)).timestamp() * 1000) + 30_500 for h in (3, 2))
        hour = f"start_date={start}&end_date={end}"
        cases = {
            "newest page": "",
            "page 20": "page=20&limit=500",
            "one hour (edges mid-minute)": hour,
            "level=warning": "level=warning",
            "program=postfix/postscreen (rare)": "program=postfix/postscreen",
            "search rare word (pregreet)": "search=pregreet",
            "search common (relay access)": "search=relay access",
            "smart filter noqueue_reject (|=)": "filter=noqueue_reject",
            "smart filter dnsbl_block (rare regex, no match)": "filter=dnsbl_block",
            "oldest first": "sort_order=asc",
        }
        print(f"{'request':52} {'p50 ms':>8} {'p95 ms':>8}  total")
        for name, query in cases.items():
            times, total = [], None
            for _ in range(args.runs):
                t0 = time.perf_counter()
                response = client.get(f"/api/raw-logs/postfix?{query}")
                times.append((time.perf_counter() - t0) * 1000)
                assert response.status_code == 200, response.get_json()
                total = response.get_json()["total"]
            times.sort()
            p95 = times[min(len(times) - 1, int(len(times) * 0.95))]
            print(f"{name:52} {statistics.median(times):8.1f} {p95:8.1f}  {total:,}")
        pool.close()


if __name__ == "__main__":
    main()
