"""Loki API latency over many raw log lines (issue 22's targets at 10,000,000 lines).

Usage: .venv/bin/python bench/loki.py [--server URL] [--lines N] [--runs N] [--keep]
Fills a scratch database on the server (default 127.0.0.1:5432; dropped afterwards unless --keep) with
N (default 10,000,000) varied Postfix and Dovecot lines over the last 24 hours, loaded through the real
ingestion path (mailcow-shaped items, `lines.number_window`, `services.raw_logs.rows`, `store_rows`) in
fetch-sized windows, a rare token in 20 of them. Then times, over real HTTP, what Explore sends:
`query_range` of the rare token (limit 100; target p95 ≤ 100 ms), of a common word (limit 1,000;
≤ 300 ms), and `sum by (level)(count_over_time({service="postfix"}[1m]))` over 24 h, step 60 s
(≤ 300 ms), plus the log-volume query with a line filter (counted from the lines; no target).
"""

from __future__ import annotations

import argparse
import logging
import random
import statistics
import threading
import time

import _paths  # noqa: F401  (first: keeps bench/ off sys.path)
import httpx
from werkzeug.serving import make_server

from bench._scratch import scratch_database
from exporter.app import create_app
from exporter.config import Config
from exporter.parsers.lines import number_window
from exporter.services import raw_logs
from exporter.store.database import create_pool, migrate

RARE = "qzxwv7731"
WINDOW = 10_000  # items per load: mailcow's cap per list fetch
SPAN = 86_400
HOSTS = ["mail.example.org", "mx.example.net", "smtp.example.com", "relay.example.de", "unknown"]
USERS = [f"user{n}@example{n % 9}.org" for n in range(3000)]


def _ip(rng: random.Random) -> str:
    return f"{rng.randrange(1, 224)}.{rng.randrange(256)}.{rng.randrange(256)}.{rng.randrange(1, 255)}"


def _queue_id(rng: random.Random) -> str:
    return "".join(rng.choice("0123456789ABCDEF") for _ in range(11))


def _postfix(rng: random.Random) -> tuple[str, str, str]:
    """(program, priority, message) of a typical Postfix line."""
    qid, ip, host, user = _queue_id(rng), _ip(rng), rng.choice(HOSTS), rng.choice(USERS)
    kind = rng.randrange(10)
    if kind < 3:
        return "postfix/smtpd", "info", f"connect from {host}[{ip}]"
    if kind < 5:
        return "postfix/smtpd", "info", f"disconnect from {host}[{ip}] ehlo=1 mail=1 rcpt=1 data=1 quit=1 commands=5"
    if kind < 7:
        return (
            "postfix/smtp",
            "info",
            f"{qid}: to=<{user}>, relay={host}[{ip}]:25, delay=0.{rng.randrange(99)}, dsn=2.0.0, status=sent "
            f"(250 2.0.0 Ok: queued as {_queue_id(rng)})",
        )
    if kind < 8:
        return "postfix/qmgr", "info", f"{qid}: from=<{user}>, size={rng.randrange(900, 90000)}, nrcpt=1 (queue active)"
    if kind < 9:
        return (
            "postfix/postscreen",
            "warning",
            f"NOQUEUE: reject: RCPT from [{ip}]:{rng.randrange(1024, 65535)}: 550 5.7.1 Service unavailable; "
            f"client [{ip}] blocked using zen.spamhaus.org; from=<{user}>, to=<{rng.choice(USERS)}>, proto=ESMTP",
        )
    return "postfix/cleanup", "notice", f"{qid}: message-id=<{_queue_id(rng).lower()}@{host}>"


def _dovecot(rng: random.Random) -> tuple[str, str, str]:
    user, ip = rng.choice(USERS), _ip(rng)
    kind = rng.randrange(4)
    if kind == 0:
        return "dovecot", "info", f"imap-login: Login: user=<{user}>, method=PLAIN, rip={ip}, lip=172.22.1.250, TLS"
    if kind == 1:
        return (
            "dovecot",
            "info",
            f"imap({user}): Disconnected: Logged out in={rng.randrange(999)} out={rng.randrange(99999)}",
        )
    if kind == 2:
        return "dovecot", "info", f"lmtp({user}): msgid=<{_queue_id(rng)}@example.org>: saved mail to INBOX"
    return "dovecot", "warning", f"auth: passwd-file({user},{ip}): unknown user"


def _window(rng: random.Random, service: str, first: int, seconds: int, count: int) -> list[dict]:
    """`count` items of one list at random times in [first, first + seconds), oldest first."""
    make = _postfix if service == "postfix" else _dovecot
    items = []
    for _ in range(count):
        program, priority, message = make(rng)
        at = first + rng.randrange(max(1, seconds))
        items.append({"time": str(at), "program": program, "priority": priority, "message": message})
    items.sort(key=lambda i: int(i["time"]))
    return items


def fill(url: str, lines: int) -> float:
    """Load `lines` lines over the last 24 h, a third of the windows Dovecot's; return the seconds taken."""
    rng = random.Random(22)
    pool = create_pool(url, 2)
    now = int(time.time())
    windows = max(1, -(-lines // WINDOW))
    rare = set(rng.sample(range(lines), min(20, lines)))
    started, done = time.perf_counter(), 0
    for w in range(windows):
        service = "postfix" if w % 3 else "dovecot"
        count = min(WINDOW, lines - done)
        items = _window(rng, service, now - SPAN + w * SPAN // windows, SPAN // windows, count)
        for position in range(done, done + count):
            if position in rare:
                items[position - done]["message"] += f" ({RARE})"
        with pool.connection() as conn, conn.transaction():
            raw_logs.store_rows(conn, raw_logs.rows(service, number_window(service, list(reversed(items)))))
        done += count
        if w % 50 == 0:
            print(f"  {done:,} lines, {done / (time.perf_counter() - started):,.0f}/s", flush=True)
    with pool.connection() as conn:
        for table in ("raw_lines", "raw_line_blocks", "raw_line_counts"):
            conn.execute(f"ANALYZE {table}")
    pool.close()
    return time.perf_counter() - started


def _p95(client: httpx.Client, base: str, params: dict[str, str], runs: int) -> tuple[float, float, int]:
    times = []
    found = 0
    for _ in range(runs):
        t0 = time.perf_counter()
        response = client.get(f"{base}/loki/api/v1/query_range", params=params)
        times.append((time.perf_counter() - t0) * 1000)
        response.raise_for_status()
        data = response.json()["data"]
        found = sum(len(r.get("values", [])) for r in data["result"])
    times.sort()
    return statistics.median(times), times[max(0, round(0.95 * len(times)) - 1)], found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--server", default="postgresql://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--lines", type=int, default=10_000_000)
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--keep", action="store_true", help="keep the scratch database (reuse with --url)")
    parser.add_argument("--url", help="an already filled database: skip the fill")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    for name in ("werkzeug", "mailcow_grafana"):
        logging.getLogger(name).setLevel(logging.WARNING)
    if args.url:
        measure(args.url, args.runs)
        return
    with scratch_database(args.server, "mg_bench_loki", keep=args.keep) as url:
        migrate(url)
        seconds = fill(url, args.lines)
        print(f"loaded {args.lines:,} lines in {seconds:.0f} s ({args.lines / seconds:,.0f} lines/s)")
        measure(url, args.runs)


def measure(url: str, runs: int) -> None:
    pool = create_pool(url, 4)
    app = create_app(Config(mailcow_url="https://mail.example.org", database_url=url), pool)
    server = make_server("127.0.0.1", 0, app, threaded=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_port}"
    end = int(time.time()) // 60 * 60 + 60
    day = {"start": str((end - SPAN) * 10**9), "end": str(end * 10**9), "step": "60000ms"}
    cases = [
        ("rare word, limit 100", {"query": f'{{service=~".+"}} |= "{RARE}"', "limit": "100"}, 100),
        ("common word, limit 1000", {"query": '{service=~".+"} |= "connect"', "limit": "1000"}, 300),
        (
            "sum by (level)(count_over_time([1m])), 24 h",
            {"query": 'sum by (level) (count_over_time({service="postfix"}[1m]))'},
            300,
        ),
        (
            'same with |= "reject" (from the lines)',
            {"query": 'sum by (level) (count_over_time({service="postfix"} |= "reject" [1m]))'},
            None,
        ),
    ]
    with httpx.Client(timeout=120) as client:
        for name, params, target in cases:
            p50, p95, found = _p95(client, base, {**day, "direction": "backward", **params}, runs)
            verdict = "" if target is None else (" ok" if p95 <= target else f" OVER the {target} ms target")
            print(f"{name:48s} p50 {p50:7.1f} ms  p95 {p95:7.1f} ms  ({found:,} values){verdict}", flush=True)
    server.shutdown()
    pool.close()


if __name__ == "__main__":
    main()
