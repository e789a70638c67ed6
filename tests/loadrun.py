"""A real-time load run: the simulator logging at a given rate, the real worker process ingesting."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass, field

import psycopg

from exporter.config_values import RAW_LOG_SERVICES
from exporter.simulator.app import create_simulator_app
from exporter.simulator.state import LOCAL_DOMAINS, MailcowState
from exporter.simulator.traffic import Simulation
from exporter.store.database import migrate
from tests.conftest import RO_KEY, RW_KEY, LiveServer
from tests.mailflow import expected_status


@dataclass
class LoadResult:
    rate: float
    seconds: int
    mails: int
    lines_logged: int
    lines_stored: int
    rspamd_logged: int
    rspamd_stored: int
    gaps: int
    checked: int
    wrong: Counter
    interval: float | None
    raw: dict[str, tuple[int, int]] = field(default_factory=dict)  # list -> (lines logged, raw lines stored)

    @property
    def raw_lossless(self) -> bool:
        """Every list's lines stored once; the api list also logs our own requests after its snapshot."""
        return all(
            stored == logged or (name == "api" and stored >= logged) for name, (logged, stored) in self.raw.items()
        )

    @property
    def lossless(self) -> bool:
        return (
            self.lines_stored == self.lines_logged
            and self.rspamd_stored == self.rspamd_logged
            and not self.gaps
            and not self.wrong
            and self.raw_lossless
        )

    def summary(self) -> str:
        return (
            f"{self.rate:,.0f} mails/min for {self.seconds} s: {self.mails:,} mails, postfix "
            f"{self.lines_stored:,}/{self.lines_logged:,} lines, rspamd {self.rspamd_stored:,}/{self.rspamd_logged:,}"
            f" rows, gaps {self.gaps}, statuses checked {self.checked:,}, wrong {sum(self.wrong.values())}, "
            f"adaptive interval {self.interval or 0:.1f} s; raw lines stored/logged: "
            + ", ".join(f"{name} {stored:,}/{logged:,}" for name, (logged, stored) in sorted(self.raw.items()))
        )


def _wait_for_cycle_after(url: str, moment: float, timeout: float) -> None:
    """Until the worker has fetched every source and correlated after `moment`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        done = _query(
            url,
            f"""SELECT (SELECT count(*) FROM ingest_state WHERE last_success_at > to_timestamp({moment}))
                                      + (SELECT count(*) FROM job_status WHERE name = 'complete_correlations'
                                         AND last_success_at > to_timestamp({moment}) + interval '1 second')""",
        )
        if done == _query(url, "SELECT count(*) + 1 FROM ingest_state"):  # every list fetched, then correlated
            return
        time.sleep(0.5)
    raise AssertionError("the worker did not finish a cycle after traffic stopped")


def _query(url: str, sql: str) -> object:
    with psycopg.connect(url) as conn:
        return conn.execute(sql).fetchone()[0]


def run_load(url: str, rate: float, seconds: int, settle: float = 5.0) -> LoadResult:
    """Log at `rate` mails/min for `seconds` (mailcow's caps: 10,000 lines, 1,000 rspamd rows) while the
    worker (default settings) ingests; then stop traffic, let in-flight mail settle, freeze mailcow, wait
    for one more worker cycle and compare with ground truth."""
    migrate(url)
    # mailcow was already busy when the worker starts: its lists hold recent traffic (less than they
    # can keep, so every logged line is still readable when the worker starts)
    history = min(60.0, 0.7 * 1000 / (rate / 60), 0.7 * 10_000 / (rate * 11 / 60))
    sim = Simulation(MailcowState(), seed=99, start=time.time() - history, rate_per_minute=rate)
    sim.advance()
    server = LiveServer(create_simulator_app(sim, RO_KEY, RW_KEY, advance_on_request=True))
    stop = threading.Event()

    def tick() -> None:  # mailcow logs whether or not anybody reads
        while not stop.is_set():
            sim.advance()
            time.sleep(0.2)

    ticker = threading.Thread(target=tick, daemon=True)
    ticker.start()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MAILCOW_", "AUTH_", "FETCH_"))}
    env.update(
        {
            "DATABASE_URL": url,
            "MAILCOW_URL": server.url,
            "MAILCOW_API_KEY": RO_KEY,
            "LOCAL_DOMAINS": ",".join(LOCAL_DOMAINS),
            "LOG_LEVEL": "WARNING",
        }
    )
    worker = subprocess.Popen(
        [sys.executable, "-m", "exporter.cli", "worker"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        time.sleep(seconds)
        sim.rate = 0
        time.sleep(settle)
        with sim.state.lock:  # freeze mailcow: nothing more is logged from here on
            frozen = time.time()
            sim.clock = lambda: frozen
            truth = sim.ground_truth()
            logged = dict(sim.state.pushed)
        _wait_for_cycle_after(url, frozen, timeout=120)
    finally:
        worker.send_signal(signal.SIGTERM)
        worker.wait(60)
        stop.set()
        ticker.join()
        server.stop()
    with psycopg.connect(url) as conn:
        ours = {
            row[0]: row
            for row in conn.execute("SELECT queue_id, final_status FROM messages WHERE queue_id IS NOT NULL")
        }
        interval = conn.execute("SELECT min(interval_seconds) FROM ingest_state").fetchone()[0]
        raw_stored = dict(conn.execute("SELECT service, count(*) FROM raw_lines GROUP BY service").fetchall())
    wrong: Counter = Counter()
    checked = 0
    for mail in truth:
        statuses = {expected_status(r, mail) for r in mail["recipients"]}
        if "pending" in statuses or not mail["queue_ids"]:
            continue
        if "bounced" in statuses:
            qid = mail["queue_ids"][-2]  # the original that bounced; its notification is the last queue id
        elif mail["rspamd_action"] == "reject":
            qid = mail["queue_ids"][0]
        else:
            qid = mail["queue_ids"][-1]
        checked += 1
        if qid not in ours:
            wrong["missing"] += 1
        elif len(statuses) == 1 and ours[qid][1] != next(iter(statuses)):
            wrong[f"{next(iter(statuses))}->{ours[qid][1]}"] += 1
    return LoadResult(
        rate=rate,
        seconds=seconds,
        mails=len(truth),
        lines_logged=logged.get("postfix", 0),
        lines_stored=int(_query(url, "SELECT count(*) FROM postfix_lines")),
        rspamd_logged=logged.get("rspamd-history", 0),
        rspamd_stored=int(_query(url, "SELECT count(*) FROM rspamd_rows")),
        gaps=int(_query(url, "SELECT count(*) FROM ingest_gaps")),
        checked=checked,
        wrong=wrong,
        interval=interval,
        raw={name: (count, int(raw_stored.get(name, 0))) for name, count in logged.items() if name in RAW_LOG_SERVICES},
    )
