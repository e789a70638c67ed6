"""End-to-end ingest throughput (parse + load + correlate) and /api/messages latency.

Usage: .venv/bin/python bench/ingest.py [--server URL] [--lines N]
Generates N (default 1,000,000) simulated Postfix + rspamd lines (in a child process, handed over
as JSON, the form the worker receives them in from mailcow's API), loads them through the
product's bulk path (ingestion.load_groups, as import-logs: fetch-sized windows, the next one parsed
while the last is written, correlation in its own thread) into a scratch database on the server
(default 127.0.0.1:5432; dropped afterwards), then times /api/messages with and without filters, and
/api/logs/postfix and /api/logs/rspamd searches.
"""

from __future__ import annotations

import argparse
import gc
import statistics
import time
from collections import deque
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor

import _paths  # noqa: F401  (first: keeps bench/ off sys.path)
import orjson
import psycopg

from bench._scratch import scratch_database
from exporter.app import create_app
from exporter.config import Config
from exporter.services import correlation
from exporter.services.ingest import load_groups
from exporter.simulator.state import LOCAL_DOMAINS, MailcowState
from exporter.simulator.traffic import Simulation
from exporter.store.database import create_pool, migrate

WINDOW = 10_000


def generate(lines: int) -> tuple[list[dict], list[dict]]:
    """Simulated traffic until at least `lines` Postfix + rspamd lines exist (oldest first)."""
    state = MailcowState(log_cap=10**8)
    state.rspamd_history = deque(maxlen=10**8)
    clock = [0]
    sim = Simulation(state, seed=1, start=0, rate_per_minute=2000, clock=lambda: clock[0])
    while len(state.logs["postfix"]) + len(state.rspamd_history) < lines:
        clock[0] += 600
        sim.advance()
    return list(reversed(state.logs["postfix"])), list(reversed(state.rspamd_history))


def generate_json(lines: int) -> bytes:
    return orjson.dumps(generate(lines))


def received(lines: int) -> tuple[list[dict], list[dict]]:
    """The generated lines as the worker holds them: decoded from JSON, as mailcow's API sends them.

    The simulation runs in a child process: in the process that ran it (millions of short-lived
    objects), the same lines cost about a fifth more Python CPU to parse than in a fresh process,
    even after a JSON round trip, and the worker never runs a simulator.
    """
    with ProcessPoolExecutor(1) as child:
        postfix, rspamd = orjson.loads(child.submit(generate_json, lines).result())
    return postfix, rspamd


def windows(postfix: list[dict], rspamd: list[dict], window: int) -> Iterator[list[tuple[str, list[dict]]]]:
    """Fetch-sized groups, newest first like mailcow's lists: Postfix lines and the rspamd rows of
    the same time span, as one fetch round reads them."""
    p = r = 0
    while p < len(postfix) or r < len(rspamd):
        chunk = postfix[p : p + window]
        p += len(chunk)
        until = int(chunk[-1]["time"]) if chunk else 1 << 62
        r_end = r
        while r_end < len(rspamd) and rspamd[r_end]["unix_time"] <= until:
            r_end += 1
        yield [("postfix", chunk[::-1]), ("rspamd", rspamd[r:r_end][::-1])]
        r = r_end


def ingest(pool, postfix: list[dict], rspamd: list[dict], window: int = WINDOW) -> tuple[float, float]:
    """Bulk load (parsing the next window while one is written) with correlation in its own thread.

    Returns (seconds spent parsing and loading, seconds correlation still ran after the last load).
    """
    correlator = correlation.Background(lambda: correlation.correlate(pool, LOCAL_DOMAINS)).start()
    t0 = time.perf_counter()
    load_groups(pool, windows(postfix, rspamd, window), correlator.poke)
    loaded = time.perf_counter()
    correlator.idle()
    correlator.stop()
    if correlator.error:
        raise correlator.error
    return loaded - t0, time.perf_counter() - loaded


def latency(client, label: str, path: str, runs: int = 40) -> None:
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        response = client.get(path)
        times.append((time.perf_counter() - t) * 1000)
        assert response.status_code == 200, response.get_json()
    times.sort()
    print(
        f"  {label:18s} p50 {statistics.median(times):6.1f} ms   p95 {times[int(runs * 0.95) - 1]:6.1f} ms"
        f"   ({response.get_json()['total']:,} matches)"
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--server", default="postgresql://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--lines", type=int, default=1_000_000)
    parser.add_argument("--keep", action="store_true", help="keep the scratch database (prints its URL)")
    parser.add_argument("--window", type=int, default=WINDOW, help="Postfix lines per fetch window (default 10,000)")
    args = parser.parse_args()

    t0 = time.perf_counter()
    postfix, rspamd = received(args.lines)
    # The received lines stand in for mailcow's lists; the worker never holds them all. Left to the
    # cyclic garbage collector they would be scanned again and again while the product parses.
    gc.freeze()
    total = len(postfix) + len(rspamd)
    print(f"generated {len(postfix):,} postfix + {len(rspamd):,} rspamd lines in {time.perf_counter() - t0:.1f} s")

    with scratch_database(args.server, "mg_bench", args.keep) as url:
        migrate(url)
        pool = create_pool(url, 4)
        pool.wait()
        t0 = time.perf_counter()
        parse_load, correlate = ingest(pool, postfix, rspamd, args.window)
        elapsed = time.perf_counter() - t0
        with pool.connection() as conn:
            messages = conn.execute("SELECT count(*) FROM messages").fetchone()[0]
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("VACUUM ANALYZE")
        print(
            f"end to end: {total:,} lines -> {messages:,} messages in {elapsed:.1f} s = "
            f"{total / elapsed:,.0f} lines/s (parse+load {parse_load:.1f} s with correlation beside it, "
            f"then {correlate:.1f} s until correlation caught up)"
        )

        client = create_app(
            Config(mailcow_url="http://127.0.0.1:9", mailcow_api_key="x", database_url=url), pool
        ).test_client()
        sample = client.get("/api/messages?limit=1&direction=inbound&status=delivered").get_json()["data"][0]
        print("/api/messages latency (Flask test client, 40 runs each):")
        for label, path in {
            "no filter": "/api/messages",
            "direction+status": "/api/messages?direction=outbound&status=delivered",
            "sender": f"/api/messages?sender={sample['sender']}",
            "recipient": f"/api/messages?recipient={sample['recipient']}",
            "spam": "/api/messages?status=spam",
            "search word": "/api/messages?search=invoice",
            "search queue id": f"/api/messages?search={sample['queue_id']}",
            "date window": f"/api/messages?start_date={sample['first_seen']}&end_date={sample['last_seen']}",
            "page 50": "/api/messages?page=50&limit=100",
        }.items():
            latency(client, label, path)
        print("/api/logs/postfix latency:")
        for label, path in {
            "no filter": "/api/logs/postfix",
            "search rare word": f"/api/logs/postfix?search={sample['queue_id']}",
            "search address": f"/api/logs/postfix?search={sample['recipient']}",
            "search phrase": "/api/logs/postfix?search=connect from",
            "status=rejected": "/api/logs/postfix?status=rejected",
        }.items():
            latency(client, label, path)
        row = client.get("/api/logs/rspamd?limit=1").get_json()["data"][0]
        print("/api/logs/rspamd latency:")
        for label, path in {
            "no filter": "/api/logs/rspamd",
            "search sender": f"/api/logs/rspamd?search={row['sender_smtp']}",
            "search word": "/api/logs/rspamd?search=invoice",
        }.items():
            latency(client, label, path)
        pool.close()


if __name__ == "__main__":
    main()
