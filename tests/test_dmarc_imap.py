"""IMAP auto-import against a real Dovecot: reports stored once, mail moved only after the commit."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from imap_tools import MailBoxUnencrypted

from exporter.app import create_app
from exporter.services import dmarc_imap
from tests.conftest import make_config
from tests.dmarc_reports import TABLES, aggregate_xml, junk_mail, nested_mail, report_mail
from tests.imap import running_dovecot

USER, PASSWORD = "dmarc@example.org", "imap-test-pass"
DAY = int(datetime.now(UTC).timestamp()) // 86400 * 86400 - 86400


@pytest.fixture
def imap_port():
    with running_dovecot(USER, PASSWORD) as port:
        yield port


@pytest.fixture
def dmarc_pool(pool):
    with pool.connection() as conn:
        conn.execute(f"TRUNCATE {TABLES}")
    return pool


def imap_config(db_url, port, **overrides):
    values = {
        "dmarc_imap_enabled": True,
        "dmarc_imap_host": "127.0.0.1",
        "dmarc_imap_port": port,
        "dmarc_imap_use_ssl": False,
        "dmarc_imap_user": USER,
        "dmarc_imap_password": PASSWORD,
        "dmarc_imap_batch_size": 7,
        **overrides,
    }
    return make_config(db_url, **values)


def fill(port: int, reports: int, junk: int, first: int = 0) -> None:
    with MailBoxUnencrypted("127.0.0.1", port).login(USER, PASSWORD) as box:
        for n in range(first, first + reports):
            records = [(f"192.0.2.{n % 250 + 1}", n + 1, "pass", "pass", "none")]
            xml = aggregate_xml("google.com", f"report-{n}", "example.org", DAY, DAY + 86399, records)
            packing = "zip" if n % 2 else "gzip"
            box.append(report_mail(xml, f"google.com!example.org!{DAY}!{n}.xml", f"Report {n}", packing), "INBOX")
        for n in range(junk):
            box.append(junk_mail(f"Lunch on Friday? {n}"), "INBOX")


def folder_counts(port: int) -> dict[str, int]:
    with MailBoxUnencrypted("127.0.0.1", port).login(USER, PASSWORD) as box:
        out = {}
        for folder in ("INBOX", "Archive/DMARC", "Archive/Invalid"):
            name = folder.replace("/", ".")  # Dovecot's maildir separator
            if box.folder.exists(name):
                box.folder.set(name)
                out[folder] = len(box.uids("ALL"))
        return out


def stored(pool) -> tuple[int, int]:
    with pool.connection() as conn:
        reports = conn.execute("SELECT count(*) FROM dmarc_reports").fetchone()[0]
        messages = conn.execute("SELECT coalesce(sum(count), 0) FROM dmarc_records").fetchone()[0]
    return reports, messages


def test_twenty_reports_and_three_junk_mails(db_url, dmarc_pool, imap_port):
    fill(imap_port, 20, 3)
    config = imap_config(db_url, imap_port)
    first = dmarc_imap.sync(config, dmarc_pool, None, "auto")
    assert first.status == "success" and first.emails_found == 23
    assert (first.emails_processed, first.reports_created, first.reports_failed) == (20, 20, 3)
    assert len(first.failed_emails) == 3 and all(f["error"] for f in first.failed_emails)
    assert {f["subject"] for f in first.failed_emails} == {f"Lunch on Friday? {n}" for n in range(3)}
    assert stored(dmarc_pool) == (20, sum(range(1, 21)))
    assert folder_counts(imap_port) == {"INBOX": 0, "Archive/DMARC": 20, "Archive/Invalid": 3}

    again = dmarc_imap.sync(config, dmarc_pool, None, "auto")
    assert (again.emails_found, again.reports_created) == (0, 0)
    assert stored(dmarc_pool) == (20, sum(range(1, 21)))


def test_hostile_mails_go_to_the_invalid_folder_and_the_good_ones_are_imported(db_url, dmarc_pool, imap_port):
    fill(imap_port, 2, 0)
    report = aggregate_xml("google.com", "deep", "example.org", DAY, DAY + 86399, [("192.0.2.9", 5, *"pp", "none")])
    dtd = report.replace(b"<feedback>", b'<!DOCTYPE feedback [<!ENTITY e "201">]><feedback>').replace(
        b"<report_id>", b"<report_id>&e;"
    )
    hostile = {
        "nested 2,000 deep": nested_mail(2000, report),
        "a DTD after 100 kB": report_mail(b"<!--" + b" " * 100_000 + b"-->" + dtd.split(b"?>", 1)[1], "dtd.xml", "x"),
        "an 8-bit message id": junk_mail("Lunch").replace(b"Subject", b"Message-ID: <\xff\x01@example.net>\r\nSubject"),
    }
    with MailBoxUnencrypted("127.0.0.1", imap_port).login(USER, PASSWORD) as box:
        for mail in hostile.values():
            box.append(mail, "INBOX")
    fill(imap_port, 2, 0, first=2)
    row = dmarc_imap.sync(imap_config(db_url, imap_port), dmarc_pool, None, "auto")
    assert row.status == "success" and (row.reports_created, row.reports_failed) == (4, 3)
    errors = " | ".join(f["error"] for f in row.failed_emails)
    assert "DTDs and entities are not allowed" in errors and "more than 100 MIME parts" in errors
    assert "<\ufffd\ufffd@example.net>" in [f["message_id"] for f in row.failed_emails]
    assert folder_counts(imap_port) == {"INBOX": 0, "Archive/DMARC": 4, "Archive/Invalid": 3}
    assert stored(dmarc_pool) == (4, sum(range(1, 5)))


def test_a_crash_between_storing_and_moving_loses_nothing(db_url, dmarc_pool, imap_port):
    fill(imap_port, 10, 0)
    config = imap_config(db_url, imap_port)

    def crash(_uids):
        raise RuntimeError("killed between the commit and the move")

    broken = dmarc_imap.sync(config, dmarc_pool, None, "auto", after_store=crash)
    assert broken.status == "error" and "killed" in broken.error_message
    assert stored(dmarc_pool)[0] == 7  # the first batch was committed...
    assert folder_counts(imap_port)["INBOX"] == 10  # ...and nothing was moved
    recovered = dmarc_imap.sync(config, dmarc_pool, None, "auto")
    assert (recovered.reports_created, recovered.reports_duplicate) == (3, 7)
    assert stored(dmarc_pool) == (10, sum(range(1, 11)))
    assert folder_counts(imap_port) == {"INBOX": 0, "Archive/DMARC": 10, "Archive/Invalid": 0}


def test_delete_after_processing_deletes_instead_of_archiving(db_url, dmarc_pool, imap_port):
    fill(imap_port, 3, 1)
    dmarc_imap.sync(imap_config(db_url, imap_port, dmarc_imap_delete_after=True), dmarc_pool, None, "auto")
    assert folder_counts(imap_port) == {"INBOX": 0, "Archive/DMARC": 0, "Archive/Invalid": 1}
    assert stored(dmarc_pool)[0] == 3


def test_manual_sync_status_and_history_endpoints(db_url, dmarc_pool, imap_port):
    fill(imap_port, 2, 1)
    client = create_app(imap_config(db_url, imap_port), dmarc_pool).test_client()
    result = client.post("/api/dmarc/imap/sync").get_json()
    assert result["sync_type"] == "manual" and result["status"] == "success" and result["reports_created"] == 2
    assert result["failed_emails"][0]["error"] and result["error_message"] == "1 emails failed to process"
    status = client.get("/api/dmarc/imap/status").get_json()
    assert status["enabled"] and status["port"] == imap_port and "password" not in str(status).lower()
    assert PASSWORD not in str(status) and status["last_sync"]["sync_id"] == result["sync_id"]
    history = client.get("/api/dmarc/imap/history").get_json()["data"]
    assert history[0]["id"] == result["sync_id"] and history[0]["duration_seconds"] is not None


def test_an_unreachable_server_is_a_recorded_error(db_url, dmarc_pool):
    row = dmarc_imap.sync(imap_config(db_url, 9), dmarc_pool, None, "manual")
    assert row.status == "error" and row.error_message and row.completed_at is not None
