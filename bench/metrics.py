"""/metrics scrape latency with a large database (default 1,000,000 messages).

Usage: .venv/bin/python bench/metrics.py [--server URL] [--messages N] [--scrapes N]
Fills a scratch database on the server (default 127.0.0.1:5432; dropped afterwards) with N
messages and their recipients, the counters correlation would have kept for them, and mailcow
status snapshots, then times scrapes over real HTTP and prints p50/p95.
"""

from __future__ import annotations

import argparse
import logging
import statistics
import threading
import time

import _paths  # noqa: F401  (first: keeps bench/ off sys.path)
import httpx
import psycopg
from psycopg.types.json import Jsonb
from werkzeug.serving import make_server

from bench._scratch import scratch_database
from exporter.app import create_app
from exporter.config import Config
from exporter.store.database import create_pool, migrate

FILL = """
INSERT INTO messages (correlation_key, queue_id, sender, first_recipient, recipient_count, direction, final_status,
                      is_complete, counted, first_seen, last_seen)
SELECT md5(i::text), upper(to_hex(i)), 'user' || (i % 5000) || '@example.org', 'rcpt' || (i % 20000) || '@example.net',
       1 + (i % 3 = 0)::int, (ARRAY['inbound', 'outbound', 'internal'])[1 + i % 3],
       (ARRAY['delivered', 'delivered', 'delivered', 'bounced', 'rejected', 'deferred'])[1 + i % 6],
       i % 6 <> 5, i % 6 <> 5, now() - make_interval(secs => i), now() - make_interval(secs => i)
FROM generate_series(1, {n}) AS i;

INSERT INTO message_recipients (message_pk, recipient, status, last_at)
SELECT id, first_recipient, final_status, last_seen FROM messages;

INSERT INTO metric_counters (name, labels, value)
SELECT 'messages', jsonb_build_object('direction', direction, 'status', final_status), count(*)
FROM messages WHERE counted GROUP BY direction, final_status;
INSERT INTO metric_counters (name, labels, value)
SELECT 'delivery_delay_seconds_bucket', jsonb_build_object('direction', d, 'le', le::text), 1000 * le
FROM unnest(ARRAY['inbound', 'outbound', 'internal']) d,
     unnest(ARRAY[0.5, 1, 2, 5, 10, 30, 60, 300, 900, 3600, 14400, 86400, 432000]::float8[]) le;
INSERT INTO metric_counters (name, labels, value)
SELECT 'delivery_delay_seconds_' || part, jsonb_build_object('direction', d), 1000
FROM unnest(ARRAY['inbound', 'outbound', 'internal']) d, unnest(ARRAY['sum', 'count']) part;

INSERT INTO ingest_state (source, newest_line_at, last_success_at, lines_total)
SELECT s, now(), now(), 10000000 FROM unnest(ARRAY['postfix', 'rspamd', 'netfilter']) s;
INSERT INTO job_status (name, status, last_success_at, last_duration_seconds, runs)
SELECT j, 'success', now(), 0.1, 1000 FROM unnest(ARRAY['fetch_logs', 'sync_status', 'cleanup_logs']) j;
INSERT INTO quarantine_items (qitem_id, queue_id) SELECT i, upper(to_hex(i)) FROM generate_series(1, 1000) i;
"""


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--server", default="postgresql://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--messages", type=int, default=1_000_000)
    parser.add_argument("--scrapes", type=int, default=200)
    args = parser.parse_args()
    logging.getLogger("werkzeug").setLevel(logging.WARNING)

    with scratch_database(args.server, "mg_bench_metrics") as url:
        migrate(url)
        t0 = time.perf_counter()
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(FILL.format(n=int(args.messages)))
            queue = [
                {"queue_name": "deferred", "queue_id": f"{i:X}", "arrival_time": int(time.time()) - i, "sender": ""}
                for i in range(500)
            ]
            containers = {f"c{i}-mailcow": {"state": "running"} for i in range(18)}
            for kind, data in {"queue": queue, "containers": containers, "version": {"version": "2026-07a"}}.items():
                conn.execute("INSERT INTO mailcow_snapshots VALUES (%s, %s, now())", (kind, Jsonb(data)))
            conn.execute("VACUUM ANALYZE")
            stored = conn.execute("SELECT count(*) FROM messages").fetchone()[0]
        print(f"stored {stored:,} messages (+ recipients, counters, snapshots) in {time.perf_counter() - t0:.1f} s")

        pool = create_pool(url, 4)
        pool.wait()
        app = create_app(Config(mailcow_url="http://127.0.0.1:9", mailcow_api_key="x", database_url=url), pool)
        server = make_server("127.0.0.1", 0, app, threaded=True)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        endpoint = f"http://127.0.0.1:{server.server_port}/metrics"
        times = []
        with httpx.Client() as client:
            size = len(client.get(endpoint).content)  # warm-up
            for _ in range(args.scrapes):
                t = time.perf_counter()
                response = client.get(endpoint)
                times.append((time.perf_counter() - t) * 1000)
                response.raise_for_status()
        times.sort()
        p95 = times[max(0, int(len(times) * 0.95) - 1)]
        print(
            f"/metrics over HTTP, {args.scrapes} scrapes, {size:,} bytes each: "
            f"p50 {statistics.median(times):.1f} ms, p95 {p95:.1f} ms, max {times[-1]:.1f} ms"
        )
        server.shutdown()
        pool.close()


if __name__ == "__main__":
    main()
