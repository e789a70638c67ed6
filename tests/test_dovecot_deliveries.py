"""What the mailbox did with a message (issue 22): Dovecot delivery lines stored once, correlated to
messages by Message-ID and recipient whichever arrives first, and shown in the REST API and /metrics."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from exporter.app import create_app
from exporter.services import correlation
from exporter.services import deliveries as delivery_rows
from exporter.services.ingest import load_window
from exporter.store import deliveries
from exporter.store import ingest as ingest_store
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


def recipients_counted(client, status: str) -> float:
    """mailcow_recipients_total of inbound recipients with this status (counters outlive a test's tables)."""
    sample = f'mailcow_recipients_total{{direction="inbound",status="{status}"}} '
    for line in client.get("/metrics").get_data(as_text=True).splitlines():
        if line.startswith(sample):
            return float(line.removeprefix(sample))
    return 0.0


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


def test_stored_into_junk_shows_the_folder_and_the_mailbox_filter_finds_it(pool, client):
    msgid = "CAF3nQ1xYz@mail.sender.example"
    load_dovecot(pool, [(T0 + 3, lmtp("bob@host.tld", msgid, "fileinto action: stored mail into mailbox 'Junk'"))])
    load_postfix(pool, postfix_mail("5BCD234EF0", T0, msgid, {"bob@host.tld": SENT}))
    correlate(pool)  # the Dovecot line was stored before Postfix's lines were correlated
    row = recipient(details(client, msgid), "bob@host.tld")
    assert row["status"] == "delivered"
    assert (row["delivery"]["outcome"], row["delivery"]["mailbox"]) == ("stored", "Junk")
    assert client.get("/api/messages?mailbox=Junk").get_json()["total"] == 1
    assert client.get("/api/messages?mailbox=INBOX").get_json()["total"] == 0
    assert client.get("/api/messages?delivery=stored&status=delivered").get_json()["total"] == 1
    # Grafana: the Messages table's folder column and filter, the details dashboard's recipients
    window = {"from": str((T0 - 60) * 1000), "to": str((T0 + 60) * 1000)}
    rows = client.get("/grafana/infinity/messages", query_string={**window, "mailbox": "Junk"}).get_json()
    assert [(r["delivery"], r["mailbox"]) for r in rows] == [("stored", "Junk")]
    assert client.get("/grafana/infinity/messages", query_string={**window, "mailbox": "INBOX"}).get_json() == []
    key = rows[0]["correlation_key"]
    (rcpt,) = client.get("/grafana/infinity/message_recipients", query_string={**window, "key": key}).get_json()
    assert (rcpt["status"], rcpt["delivery"], rcpt["mailbox"]) == ("delivered", "stored", "Junk")


def test_redirect_keeps_delivered_and_records_the_target(pool, client):
    msgid = "redirect-1@mail.sender.example"
    load_postfix(pool, postfix_mail("6CDE345F01", T0, msgid, {"carol@host.tld": SENT}))
    load_dovecot(
        pool, [(T0 + 3, lmtp("carol@host.tld", msgid, "redirect action: forwarded to <carol@elsewhere.example>"))]
    )
    correlate(pool)
    row = recipient(details(client, msgid), "carol@host.tld")
    assert row["status"] == "delivered"
    assert (row["delivery"]["outcome"], row["delivery"]["detail"]) == ("redirected", "carol@elsewhere.example")


def test_a_sieve_reject_makes_the_recipient_rejected_but_not_the_other_one(pool, client):
    msgid = "reject-1@mail.sender.example"
    rcpts = {"dave@host.tld": SENT, "erin@host.tld": SENT}
    load_postfix(pool, postfix_mail("7DEF456012", T0, msgid, rcpts))
    reject = "reject action: rejected message from <alice@sender.example> (reject)"
    load_dovecot(pool, [(T0 + 3, lmtp("DAVE@host.tld", msgid, reject))])  # the address compared case-blind
    correlate(pool)
    body = details(client, msgid)
    assert recipient(body, "dave@host.tld")["status"] == "rejected"
    assert recipient(body, "dave@host.tld")["delivery"]["detail"] == reject.removeprefix("reject action: ")
    assert recipient(body, "erin@host.tld")["status"] == "delivered"
    assert recipient(body, "erin@host.tld")["delivery"] is None
    assert body["final_status"] == "delivered"  # one recipient got it


def test_a_full_quota_keeps_postfix_status_and_a_later_stored_line_wins(pool, client):
    msgid = "quota-1@mail.sender.example"
    deferred = "deferred (host dovecot[172.22.1.250] said: 452 4.2.2 <frank@host.tld> Quota exceeded)"
    load_postfix(pool, postfix_mail("8EF0567123", T0, msgid, {"frank@host.tld": deferred}))
    failed = "failed to store into mailbox 'INBOX': Quota exceeded (mailbox for user is full)"
    load_dovecot(pool, [(T0 + 3, lmtp("frank@host.tld", msgid, failed))])
    correlate(pool)
    row = recipient(details(client, msgid), "frank@host.tld")
    assert row["status"] == "deferred"
    assert row["delivery"] == {
        "outcome": "failed",
        "mailbox": "INBOX",
        "detail": "Quota exceeded (mailbox for user is full)",
        "at": row["delivery"]["at"],
    }
    # an hour later the retry is stored (the Dovecot line is loaded before Postfix's)
    load_dovecot(pool, [(T0 + 3603, lmtp("frank@host.tld", msgid, "stored mail into mailbox 'INBOX'", "retrySess"))])
    retry = (
        "8EF0567123: to=<frank@host.tld>, relay=dovecot[172.22.1.250]:24, delay=3600, "
        f"delays=0.1/3599/0.1/0.2, dsn=2.0.0, status={SENT}"
    )
    load_postfix(
        pool,
        [
            {"time": str(T0 + 3605), "program": "postfix/qmgr", "priority": "info", "message": "8EF0567123: removed"},
            {"time": str(T0 + 3604), "program": "postfix/lmtp", "priority": "info", "message": retry},
        ],
    )
    correlate(pool)
    body = details(client, msgid)
    row = recipient(body, "frank@host.tld")
    assert (body["final_status"], row["status"], row["delivery"]["outcome"]) == ("delivered", "delivered", "stored")


def test_a_quota_bounce_stays_bounced(pool, client):
    msgid = "quota-2@mail.sender.example"
    bounced = "bounced (host dovecot[172.22.1.250] said: 552 5.2.2 <gina@host.tld> Quota exceeded)"
    load_dovecot(
        pool,
        [
            (
                T0 + 3,
                f"lmtp(gina@host.tld)<1><s>: Error: msgid=<{msgid}>: save failed to INBOX: "
                "Quota exceeded (mailbox for user is full)",
            )
        ],
    )
    load_postfix(pool, postfix_mail("9F01678234", T0, msgid, {"gina@host.tld": bounced}))
    correlate(pool)
    body = details(client, msgid)
    assert body["final_status"] == "bounced"
    assert recipient(body, "gina@host.tld")["delivery"]["outcome"] == "failed"


def test_the_same_message_id_sent_again_is_matched_to_the_right_message(pool, client):
    msgid = "again@mail.sender.example"
    load_postfix(pool, postfix_mail("A012789345", T0, msgid, {"hank@host.tld": SENT}))
    load_postfix(pool, postfix_mail("B123890456", T0 + 600, msgid, {"hank@host.tld": SENT}))
    discard = "discard action: Marked message to be discarded if not explicitly delivered (discard action)"
    load_dovecot(
        pool,
        [
            (T0 + 3, lmtp("hank@host.tld", msgid, "stored mail into mailbox 'INBOX'")),
            (T0 + 603, lmtp("hank@host.tld", msgid, discard, "secondSession")),
        ],
    )
    correlate(pool)
    found = client.get("/api/messages?search=again").get_json()["data"]
    assert {m["queue_id"]: m["final_status"] for m in found} == {"A012789345": "delivered", "B123890456": "discarded"}


def test_duplicate_lines_are_stored_once_and_counted_once(pool, client):
    msgid = "dup@mail.sender.example"
    load_postfix(pool, postfix_mail("C234901567", T0, msgid, {"ivan@host.tld": SENT}))
    correlate(pool)
    delivered, discarded = recipients_counted(client, "delivered"), recipients_counted(client, "discarded")
    discard = "discard action: Marked message to be discarded if not explicitly delivered (discard action)"
    lines = [(T0 + 3, lmtp("ivan@host.tld", msgid, discard)), (T0 + 4, "lmtp(113): Connect from local")]
    assert load_dovecot(pool, lines) == 1
    assert load_dovecot(pool, lines) == 0
    correlate(pool)
    assert load_dovecot(pool, lines) == 0
    correlate(pool)
    with pool.connection() as conn:
        assert conn.execute("SELECT count(*) FROM dovecot_deliveries").fetchone()[0] == 1
    # counted delivered when the message completed, then once more under its new status
    assert recipients_counted(client, "discarded") == discarded + 1
    assert recipients_counted(client, "delivered") == delivered


def test_a_discard_known_before_the_message_completes_is_counted_as_discarded_only(pool, client):
    msgid = "early@mail.sender.example"
    delivered, discarded = recipients_counted(client, "delivered"), recipients_counted(client, "discarded")
    discard = "discard action: Marked message to be discarded if not explicitly delivered (discard action)"
    load_dovecot(pool, [(T0 + 3, lmtp("judy@host.tld", msgid, discard))])
    load_postfix(pool, postfix_mail("D345012678", T0, msgid, {"judy@host.tld": SENT}))
    correlate(pool)
    assert recipients_counted(client, "discarded") == discarded + 1
    assert recipients_counted(client, "delivered") == delivered


ANY_TEXT = st.text(max_size=40) | st.sampled_from(["stored", "discarded", "Junk", "INBOX", "x" * 600, "%", "_"])


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(delivery=ANY_TEXT, mailbox=ANY_TEXT, status=ANY_TEXT | st.just("discarded"))
def test_delivery_and_mailbox_filters_never_fail_and_refuse_bad_values_with_the_envelope(
    client, delivery, mailbox, status
):
    answer = client.get("/api/messages", query_string={"delivery": delivery, "mailbox": mailbox, "status": status})
    assert answer.status_code in (200, 400), answer.get_data(as_text=True)
    body = answer.get_json()
    if answer.status_code == 400:
        assert set(body) == {"error", "detail", "code"}
        assert body["code"] == "VALIDATION_FAILED" or "NUL" in body["detail"]
    else:
        assert set(body) == {"total", "page", "limit", "pages", "data"}
    grafana = client.get("/grafana/infinity/messages", query_string={"delivery": delivery, "mailbox": mailbox})
    assert grafana.status_code in (200, 400), grafana.get_data(as_text=True)


def test_load_stores_each_line_and_occurrence_once_in_log_order(pool):
    at = datetime.fromtimestamp(T0, tz=UTC)
    key = hashlib.sha256(b"the same text twice in one second").digest()
    row = (at, "kim@host.tld", "sess", "m@x", "stored", "INBOX", None, key, 0)
    again = (*row[:-1], 1)  # the same text logged twice in the same second: two lines
    other = (at, "kim@host.tld", None, None, "failed", None, "Quota exceeded", hashlib.sha256(b"o").digest(), 0)
    with pool.connection() as conn, conn.transaction():
        assert deliveries.load(conn, [row, again]) == 2
        assert deliveries.load(conn, [row, again, other]) == 1
        assert deliveries.load(conn, []) == 0
    with pool.connection() as conn:
        stored = conn.execute("SELECT occurrence, outcome, message_id FROM dovecot_deliveries ORDER BY id").fetchall()
    assert stored == [(0, "stored", "m@x"), (1, "stored", "m@x"), (0, "failed", None)]


def test_retention_removes_old_deliveries_and_message_ids(pool):
    msgid = "old@mail.sender.example"
    load_postfix(pool, postfix_mail("E456123789", T0, msgid, {"liz@host.tld": SENT}))
    load_dovecot(pool, [(T0 + 3, lmtp("liz@host.tld", msgid, "stored mail into mailbox 'INBOX'"))])
    correlate(pool)
    ingest_store.delete_before(pool, datetime.fromtimestamp(T0 + 3600, tz=UTC))
    with pool.connection() as conn:
        left = conn.execute("SELECT (SELECT count(*) FROM dovecot_deliveries), (SELECT count(*) FROM message_ids)")
        assert left.fetchone() == (0, 0)


def test_a_sub_address_matches_its_mailbox_whichever_arrives_first(pool, client):
    msgid = "news-1@list.example"
    load_postfix(pool, postfix_mail("F567234890", T0, msgid, {"mia+news@host.tld": SENT}))
    correlate(pool)  # Postfix first
    load_dovecot(pool, [(T0 + 3, lmtp("mia@host.tld", msgid, "fileinto action: stored mail into mailbox 'News'"))])
    correlate(pool)
    assert recipient(details(client, msgid), "mia+news@host.tld")["delivery"]["mailbox"] == "News"


def test_a_nul_in_a_line_is_stored_as_a_replacement_character(pool):
    line = lmtp("nul@host.tld", "n@x", "stored mail into mailbox 'In\x00box'")
    assert load_dovecot(pool, [(T0, line)]) == 1
    with pool.connection() as conn:
        assert conn.execute("SELECT mailbox FROM dovecot_deliveries").fetchone()[0] == "In\ufffdbox"


def no_msgid(rcpt: str, session: str, action: str) -> str:
    """Dovecot's line for a mail without a Message-ID header: only the LMTP session ties it to Postfix."""
    return f"lmtp({rcpt})<557316><{session}>: sieve: msgid=unspecified: {action}"


def by_queue_id(client, qid: str) -> dict:
    found = client.get(f"/api/messages?search={qid}").get_json()["data"]
    assert len(found) == 1, found
    return client.get(f"/api/message/{found[0]['correlation_key']}/details").get_json()


# Two recipients of one LMTP transaction: Dovecot names the second session `<transaction id>:2`, in its
# log prefix and in its reply alike (src/lmtp/lmtp-local.c).
NO_ID_RCPTS = {
    "gus+lists@host.tld": "sent (250 2.0.0 <gus+lists@host.tld> 0A1bC2dE3fG4hI5jK6lM7n Saved)",
    "hal@host.tld": "sent (250 2.0.0 <hal@host.tld> 0A1bC2dE3fG4hI5jK6lM7n:2 Saved)",
}
DISCARD = "Marked message to be discarded if not explicitly delivered (discard action)"
REJECT = "rejected message from <alice@sender.example> (reject)"
NO_ID_LINES = [
    (T0 + 3, no_msgid("gus@host.tld", "0A1bC2dE3fG4hI5jK6lM7n", f"discard action: {DISCARD}")),
    (T0 + 3, no_msgid("hal@host.tld", "0A1bC2dE3fG4hI5jK6lM7n:2", f"reject action: {REJECT}")),
    # another transaction's line for the same mailbox: its session names no reply of this mail
    (T0 + 4, no_msgid("hal@host.tld", "zZ9yY8xX7wW6vV5uU4tT3s", "fileinto action: stored mail into mailbox 'Junk'")),
]


@pytest.mark.parametrize("postfix_first", [True, False], ids=["postfix-first", "dovecot-first"])
def test_a_mail_without_message_id_is_matched_by_its_lmtp_session(pool, client, postfix_first):
    if postfix_first:
        load_postfix(pool, postfix_mail("A1B2C3D4E5", T0, "", NO_ID_RCPTS))
        correlate(pool)
        assert recipient(by_queue_id(client, "A1B2C3D4E5"), "hal@host.tld")["status"] == "delivered"
        load_dovecot(pool, NO_ID_LINES)
    else:
        load_dovecot(pool, NO_ID_LINES)
        correlate(pool)
        load_postfix(pool, postfix_mail("A1B2C3D4E5", T0, "", NO_ID_RCPTS))
    correlate(pool)
    body = by_queue_id(client, "A1B2C3D4E5")
    gus, hal = recipient(body, "gus+lists@host.tld"), recipient(body, "hal@host.tld")
    assert (gus["status"], gus["delivery"]["outcome"]) == ("discarded", "discarded")
    assert (hal["status"], hal["delivery"]["outcome"]) == ("rejected", "rejected")
    assert hal["delivery"]["mailbox"] is None  # the other session's Junk line is not this mail's
    assert body["final_status"] == "rejected"
    assert client.get("/api/messages?mailbox=Junk").get_json()["total"] == 0
