"""`mailcow-grafana import-logs`: syslog files through the same parser and correlation."""

from __future__ import annotations

import gzip
import os
import subprocess
import sys
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import psycopg

from exporter.parsers.syslog import parse_line
from exporter.simulator.state import MailcowState
from exporter.simulator.traffic import Simulation

NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)


def test_line_shapes():
    tz = ZoneInfo("Europe/Berlin")
    plain = parse_line("Nov 21 10:00:00 mail postfix/smtpd[123]: connect from unknown[1.2.3.4]\n", tz, NOW)
    assert plain == {
        "time": str(int(datetime(2026, 11, 21, 9, 0, tzinfo=UTC).timestamp())),
        "program": "postfix/smtpd",
        "priority": "info",
        "message": "connect from unknown[1.2.3.4]",
    }
    compose = parse_line("postfix-mailcow-1  | Nov 21 10:00:00 5f3c postfix/submission/smtpd[9]: warning: x", tz, NOW)
    assert compose["program"] == "postfix/submission/smtpd" and compose["priority"] == "warning"
    stamped = parse_line(
        "postfix-mailcow-1  | 2026-11-21T09:00:00.5Z 2026-11-21T10:00:00+01:00 mail "
        "postfix/qmgr[7]: ABCDEF1234: removed",
        tz,
        NOW,
    )
    assert stamped["time"] == plain["time"] and stamped["message"] == "ABCDEF1234: removed"
    december = parse_line("Dec 31 23:59:59 mail postfix/qmgr[7]: x", tz, NOW)
    assert datetime.fromtimestamp(int(december["time"]), UTC).year == 2025  # no year: the past, not the future
    assert parse_line("Nov 21 10:00:00 mail dovecot[1]: imap-login: Login", tz, NOW) is None
    assert parse_line("garbage", tz, NOW) is None


def _write_syslog(path, items, gz: bool = False) -> None:
    lines = []
    for item in sorted(items, key=lambda i: int(i["time"])):
        stamp = datetime.fromtimestamp(int(item["time"]), UTC).isoformat()
        lines.append(f"postfix-mailcow-1  | {stamp} mail {item['program']}[42]: {item['message']}\n")
    data = "".join(lines).encode()
    path.write_bytes(gzip.compress(data) if gz else data)


def _import(url: str, *files) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MAILCOW_", "DATABASE_"))}
    env.update({"DATABASE_URL": url, "LOCAL_DOMAINS": "example.org,example.net"})
    return subprocess.run(
        [sys.executable, "-m", "exporter.cli", "import-logs", *map(str, files)],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_import_correlates_and_reimport_adds_nothing(tmp_path, databases):
    sim = Simulation(
        MailcowState(log_cap=1_000_000),
        seed=8,
        start=1_790_000_000,
        rate_per_minute=30,
        clock=lambda: 1_790_000_000 + 7200,
    )
    sim.advance()
    items = list(sim.state.logs["postfix"])
    _write_syslog(tmp_path / "postfix.log.1.gz", items[len(items) // 2 :], gz=True)
    _write_syslog(tmp_path / "postfix.log", items[: len(items) // 2])
    url = databases.create()
    first = _import(url, tmp_path / "postfix.log.1.gz", tmp_path / "postfix.log")
    assert first.returncode == 0, first.stderr
    assert f"stored {len(items)} new" in first.stdout
    with psycopg.connect(url) as conn:
        delivered = conn.execute("SELECT count(*) FROM messages WHERE final_status = 'delivered'").fetchone()[0]
        bounced = conn.execute("SELECT queue_id FROM messages WHERE final_status = 'bounced'").fetchall()
    truth = sim.ground_truth()
    assert delivered > 0
    assert {q for (q,) in bounced} == {
        m["queue_ids"][-2]
        for m in truth
        if any(r["status"] == "bounced" for r in m["recipients"])  # [-1]: the NDN
    }
    again = _import(url, tmp_path / "postfix.log", tmp_path / "postfix.log.1.gz")
    assert again.returncode == 0 and "stored 0 new" in again.stdout


def test_missing_file_is_a_clear_error(databases, tmp_path):
    result = _import(databases.create(), tmp_path / "nope.log")
    assert result.returncode == 2 and "no such file" in result.stderr
