"""Grafana datasource latency: a 30-day range over a large database (default 1,000,000 messages).

Usage: .venv/bin/python bench/datasource.py [--server URL] [--messages N] [--runs N]
Fills a scratch database on the server (default 127.0.0.1:5432; dropped afterwards) with N
messages spread over 30 days (recipients with delays, rejects, spam), then times the Infinity
endpoints the dashboards use, over real HTTP, at Grafana's default ~1,000-point resolution.
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
from werkzeug.serving import make_server

from bench._scratch import scratch_database
from exporter.app import create_app
from exporter.config import Config
from exporter.store.correlation.counts import DELAY_ROLLUP_BOUNDS
from exporter.store.database import create_pool, migrate

FILL = """
INSERT INTO messages (correlation_key, queue_id, sender, first_recipient, recipient_count, direction, final_status,
                      is_complete, counted, is_spam, reject_class, sasl_username, first_seen, last_seen, search_text)
SELECT md5(i::text), upper(to_hex(i)), 'user' || (i % 5000) || '@example' || (i % 7) || '.org',
       'rcpt' || (i % 20000) || '@example' || (i % 5) || '.net', 1,
       (ARRAY['inbound', 'inbound', 'outbound', 'internal'])[1 + i % 4],
       (ARRAY['delivered', 'delivered', 'delivered', 'delivered', 'bounced', 'rejected', 'deferred'])[1 + i % 7],
       i % 7 <> 6, i % 7 <> 6, i % 11 = 0, CASE WHEN i % 7 = 5 THEN 'rbl' END,
       CASE WHEN i % 4 = 2 THEN 'user' || (i % 300) || '@example.org' END,
       now() - make_interval(secs => i * 2592000.0 / {n}), now() - make_interval(secs => i * 2592000.0 / {n}),
       'user' || (i % 5000) || ' invoice ' || i
FROM generate_series(1, {n}) AS i;

INSERT INTO message_recipients (message_pk, recipient, status, delay, reply, last_at)
SELECT id, first_recipient, final_status, (id % 600) / 10.0,
       CASE final_status WHEN 'deferred' THEN '451 4.7.1 Try again later'
                         WHEN 'bounced' THEN '550 5.1.1 User unknown' END,
       last_seen
FROM messages;

-- the hourly rollups correlation keeps for these messages (as migration 0004 builds them)
UPDATE messages SET rolled_bucket = date_trunc('hour', first_seen), rolled_direction = direction,
                    rolled_status = final_status, rolled_spam = is_spam,
                    rolled_domains = mg_rollup_domains(sender, first_recipient, ARRAY['example0.org', 'example1.net']),
                    rolled_facets = mg_message_facets(sender, first_recipient, sasl_username, reject_class,
                                                      final_status);
INSERT INTO message_facets (facet, month, name, first_day, messages, delivered, failed, spam)
SELECT split_part(entry, chr(31), 1), month, split_part(entry, chr(31), 2), min(day),
       mg_prefix(array_agg(day), array_agg(messages)), mg_prefix(array_agg(day), array_agg(delivered)),
       mg_prefix(array_agg(day), array_agg(failed)), mg_prefix(array_agg(day), array_agg(spam))
FROM (SELECT date_trunc('month', rolled_bucket) AS month, extract(day FROM rolled_bucket)::int AS day, entry,
             count(*) AS messages, count(*) FILTER (WHERE rolled_status = 'delivered') AS delivered,
             count(*) FILTER (WHERE rolled_status IN ('bounced', 'expired', 'rejected')) AS failed,
             count(*) FILTER (WHERE rolled_spam) AS spam
      FROM messages, unnest(rolled_facets) entry GROUP BY 1, 2, 3) AS daily
GROUP BY entry, month;
INSERT INTO reason_rollup (bucket, status, reason, count)
SELECT date_trunc('day', last_at), status, left(regexp_replace(reply, '[0-9]+', 'N', 'g'), 200), count(*)
FROM message_recipients WHERE status IN ('deferred', 'bounced') GROUP BY 1, 2, 3;
INSERT INTO message_rollup (bucket, domain, direction, status, spam, messages)
SELECT rolled_bucket, d, rolled_direction, rolled_status, rolled_spam, count(*)
FROM messages, unnest(rolled_domains) d GROUP BY 1, 2, 3, 4, 5;
INSERT INTO delay_rollup (bucket, direction, le, count)
SELECT date_trunc('hour', r.last_at), m.direction,
       coalesce((SELECT min(le) FROM unnest(ARRAY{bounds}::float8[]) le WHERE r.delay <= le), 'Infinity'), count(*)
FROM message_recipients r JOIN messages m ON m.id = r.message_pk WHERE r.status = 'delivered'
GROUP BY 1, 2, 3;
INSERT INTO mailcow_domains (domain) VALUES ('example0.org'), ('example1.net');
"""

QUERIES = {
    "message_flow": "",
    "direction_flow": "",
    "summary": "",
    "delivery_delay": "",
    "top_senders": "",
    "top_recipients": "",
    "top_users": "",
    "top_reject_reasons": "",
    "top_bounce_reasons": "",
    "top_recipient_domains": "",
    "top_defer_reasons": "",
    "messages": "&limit=500",
    "messages (search)": "&limit=500&search=invoice",
    "message_flow (inbound)": "&direction=inbound",
    "message_flow (domain)": "&domain=example0.org",
}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--server", default="postgresql://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--messages", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=30)
    args = parser.parse_args()
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    logging.getLogger("mailcow_grafana.http").setLevel(logging.WARNING)

    with scratch_database(args.server, "mg_bench_ds") as url:
        migrate(url)
        t0 = time.perf_counter()
        with psycopg.connect(url, autocommit=True, options="-c TimeZone=UTC") as conn:
            conn.execute(FILL.format(n=int(args.messages), bounds=list(DELAY_ROLLUP_BOUNDS)))
            conn.execute("VACUUM ANALYZE")
            stored = conn.execute("SELECT count(*) FROM messages").fetchone()[0]
        print(f"stored {stored:,} messages over 30 days in {time.perf_counter() - t0:.1f} s")

        pool = create_pool(url, 4)
        pool.wait()
        app = create_app(Config(mailcow_url="http://127.0.0.1:9", mailcow_api_key="x", database_url=url), pool)
        server = make_server("127.0.0.1", 0, app, threaded=True)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        base = f"http://127.0.0.1:{server.server_port}/grafana/infinity"
        now_ms = int(time.time() * 1000)
        window = f"from={now_ms - 30 * 86400 * 1000}&to={now_ms}&max_points=1000"
        print(f"30-day range, {args.runs} runs each, over HTTP:")
        worst = 0.0
        with httpx.Client(timeout=60) as client:
            for label, extra in QUERIES.items():
                query = label.split(" ")[0]
                url_ = f"{base}/{query}?{window}{extra}"
                client.get(url_).raise_for_status()  # warm-up
                times = []
                for _ in range(args.runs):
                    t = time.perf_counter()
                    response = client.get(url_)
                    times.append((time.perf_counter() - t) * 1000)
                    response.raise_for_status()
                times.sort()
                p95 = times[max(0, int(len(times) * 0.95) - 1)]
                worst = max(worst, p95)
                print(
                    f"  {label:24s} p50 {statistics.median(times):7.1f} ms   p95 {p95:7.1f} ms   "
                    f"({len(response.json()):,} rows)"
                )
        print(f"worst p95: {worst:.1f} ms")
        server.shutdown()
        pool.close()


if __name__ == "__main__":
    main()
