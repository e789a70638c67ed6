"""What the mailbox did with a message (issue 22): Dovecot delivery lines stored once, correlated to
messages by Message-ID and recipient whichever arrives first, and shown in the REST API and /metrics."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime

import pytest

from exporter.app import create_app
from exporter.services import correlation
from exporter.services import deliveries as delivery_rows
from exporter.services.ingest import load_window
from exporter.store import deliveries
from tests.conftest import SIM_START, make_config

LOCAL = ["host.tld"]
T0 = SIM_START + 100


@dataclass(frozen=True)
class Line:
    """A Dovecot log line as the raw-log parser gives it (time and text)."""

    at: datetime
    message: str


def lmtp(rcpt: str, msgid: str, action: str, session: str = "sCLTDtVxzGIDgQgAVWC8bA") -> str:
    return f"lmtp({rcpt})<557315><{session}>: sieve: msgid=<{msgid}>: {action}"


def postfix_mail(qid: str, at: int, msgid: str, rcpts: dict[str, str]) -> list[dict]:
    """An inbound mail's Postfix lines (newest first, as mailcow lists them); rcpts: address -> status=…"""
    said = [
        ("postfix/smtpd", f"{qid}: client=mx.sender.example[203.0.113.5]"),
        ("postfix/cleanup", f"{qid}: message-id=<{msgid}>"),
        ("postfix/qmgr", f"{qid}: from=<alice@sender.example>, size=1234, nrcpt={len(rcpts)} (queue active)"),
    ]
    for rcpt, status in rcpts.items():
        dsn = {"sent": "2.0.0", "deferred": "4.2.2", "bounced": "5.2.2"}[status.split(" ")[0]]
        said.append(
            (
                "postfix/lmtp",
                f"{qid}: to=<{rcpt}>, relay=dovecot[172.22.1.250]:24, delay=0.5, delays=0.1/0.1/0.1/0.2, "
                f"dsn={dsn}, status={status}",
            )
        )
    if all(not s.startswith("deferred") for s in rcpts.values()):
        said.append(("postfix/qmgr", f"{qid}: removed"))
    lines = [{"time": str(at + n), "program": p, "priority": "info", "message": m} for n, (p, m) in enumerate(said)]
    return lines[::-1]


SENT = "sent (250 2.0.0 <x> sCLTDtVxzGIDgQgAVWC8bA Saved)"


def load_postfix(pool, items: list[dict]) -> None:
    with pool.connection() as conn, conn.transaction():
        load_window(conn, "postfix", items)


def load_dovecot(pool, lines: list[tuple[int, str]]) -> int:
    """Dovecot lines (epoch, text) through the row builder and the loader, as the ingestion does."""
    raw = [
        (Line(datetime.fromtimestamp(at, tz=UTC), text), hashlib.sha256(f"{at} {text}".encode()).digest(), 0)
        for at, text in lines
    ]
    with pool.connection() as conn, conn.transaction():
        return deliveries.load(conn, delivery_rows.rows(raw))


def correlate(pool) -> None:
    correlation.correlate(pool, LOCAL)


@pytest.fixture
def client(pool, db_url):
    return create_app(make_config(db_url, local_domains=LOCAL), pool).test_client()


def details(client, msgid: str) -> dict:
    found = client.get(f"/api/messages?search={msgid.split('@')[0]}").get_json()["data"]
    assert len(found) == 1, found
    return client.get(f"/api/message/{found[0]['correlation_key']}/details").get_json()


def recipient(body: dict, address: str) -> dict:
    return next(r for r in body["recipient_details"] if r["recipient"] == address)


def test_a_sieve_discard_after_postfix_delivered_makes_the_recipient_discarded(pool, client):
    msgid = "em6059db29-0e4e-4b0a-9b7d-8b6e1d0d7d35@dd0e2a36.com"
    load_postfix(pool, postfix_mail("4ABC123DEF", T0, msgid, {"archiv@host.tld": SENT}))
    correlate(pool)
    assert recipient(details(client, msgid), "archiv@host.tld")["status"] == "delivered"
    discard = "discard action: Marked message to be discarded if not explicitly delivered (discard action)"
    assert load_dovecot(pool, [(T0 + 3, lmtp("archiv@host.tld", msgid, discard))]) == 1
    correlate(pool)
    body = details(client, msgid)
    assert body["final_status"] == "discarded"
    row = recipient(body, "archiv@host.tld")
    assert row["status"] == "discarded"
    assert row["delivery"] == {"outcome": "discarded", "mailbox": None, "detail": None, "at": row["delivery"]["at"]}
    assert row["delivery"]["at"].startswith(datetime.fromtimestamp(T0 + 3, tz=UTC).isoformat()[:19])
    listed = client.get("/api/messages?status=discarded").get_json()
    assert [m["message_id"] for m in listed["data"]] == [f"<{msgid}>"]
    assert client.get("/api/messages?delivery=discarded").get_json()["total"] == 1
    assert client.get("/api/messages?status=delivered").get_json()["total"] == 0
