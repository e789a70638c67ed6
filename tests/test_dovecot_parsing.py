"""Dovecot LMTP delivery lines to Delivery records: every Dovecot/Pigeonhole format the parser knows, lines
that are no delivery outcome, and arbitrary text (never raises, fields stay within MAX_FIELD)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from exporter.parsers import MAX_FIELD
from exporter.parsers.dovecot import Delivery, parse

P = "lmtp(bob@example.org)<28231><CUeLOy0xv1xHbgAASDkM0A>: "
MSGID = "msgid=<CAF3nQ1xYz@mail.example.com>: "


def _d(outcome: str, mailbox: str | None = None, detail: str | None = None, **kw: str | None) -> Delivery:
    fields = {
        "recipient": "bob@example.org",
        "session_id": "CUeLOy0xv1xHbgAASDkM0A",
        "message_id": "CAF3nQ1xYz@mail.example.com",
    } | kw
    return Delivery(outcome=outcome, mailbox=mailbox, detail=detail, **fields)


def test_real_lines_from_mailcow_issue_4675() -> None:
    stored = (
        "lmtp(archiv@host.tld)<557315><sCLTDtVxzGIDgQgAVWC8bA>: sieve: "
        "msgid=<em6059db29-0e4e-4b0a-9b7d-8b6e1d0d7d35@dd0e2a36.com>: stored mail into mailbox 'INBOX'"
    )
    discarded = (
        "lmtp(archiv@host.tld)<557354><NvGiEdVxzGIqgQgAVWC8bA>: sieve: "
        "msgid=<em6059db29-0e4e-4b0a-9b7d-8b6e1d0d7d35@dd0e2a36.com>: discard action: "
        "Marked message to be discarded if not explicitly delivered (discard action)"
    )
    mid = "em6059db29-0e4e-4b0a-9b7d-8b6e1d0d7d35@dd0e2a36.com"
    assert parse(stored) == Delivery("archiv@host.tld", "sCLTDtVxzGIDgQgAVWC8bA", mid, "stored", "INBOX", None)
    assert parse(discarded) == Delivery("archiv@host.tld", "NvGiEdVxzGIqgQgAVWC8bA", mid, "discarded", None, None)


@pytest.mark.parametrize(
    ("action", "expected"),
    [
        # pigeonhole src/lib-sieve/sieve-actions.c (keep / fileinto)
        ("fileinto action: stored mail into mailbox 'Junk'", _d("stored", "Junk")),
        ("stored mail into mailbox 'Junk'", _d("stored", "Junk")),  # explicit keep: no lead-in
        ("stored mail into mailbox 'Lists/dovecot users'", _d("stored", "Lists/dovecot users")),
        ("stored mail into mailbox 'Entw&APw-rfe'", _d("stored", "Entw&APw-rfe")),
        ("stored mail into mailbox 'Bob's \"best\" mail'", _d("stored", 'Bob\'s "best" mail')),
        ("stored mail into mailbox 'spam' (Junk)", _d("stored", "Junk")),
        ("stored mail into mailbox 'Archiv (2024)'", _d("stored", "Archiv (2024)")),
        # pigeonhole src/lib-sieve/cmd-discard.c, also without the sieve-result.c lead-in
        ("Marked message to be discarded if not explicitly delivered (discard action)", _d("discarded")),
        # pigeonhole src/lib-sieve/cmd-redirect.c
        ("redirect action: forwarded to <alice@elsewhere.example>", _d("redirected", detail="alice@elsewhere.example")),
        # pigeonhole src/lib-sieve/ext-reject.c
        (
            "reject action: rejected message from <spammer@bad.example> (reject)",
            _d("rejected", detail="rejected message from <spammer@bad.example> (reject)"),
        ),
        (
            "ereject action: rejected message from <> (ereject)",
            _d("rejected", detail="rejected message from <> (ereject)"),
        ),
        # pigeonhole sieve-actions.c failure + dovecot quota.c / mail-error.h texts
        (
            "failed to store into mailbox 'INBOX': Quota exceeded (mailbox for user is full)",
            _d("failed", "INBOX", "Quota exceeded (mailbox for user is full)"),
        ),
        (
            "failed to store into mailbox 'Old: stuff': Mailbox doesn't exist: Old: stuff",
            _d("failed", "Old: stuff", "Mailbox doesn't exist: Old: stuff"),
        ),
        (
            "fileinto action: failed to store into mailbox 'INBOX': Not enough disk quota",
            _d("failed", "INBOX", "Not enough disk quota"),
        ),
    ],
)
def test_sieve_formats(action: str, expected: Delivery) -> None:
    assert parse(P + "sieve: " + MSGID + action) == expected


def test_sieve_error_level_line() -> None:
    line = P + "Error: sieve: " + MSGID + "failed to store into mailbox 'Foo': Mailbox doesn't exist: Foo"
    assert parse(line) == _d("failed", "Foo", "Mailbox doesn't exist: Foo")


@pytest.mark.parametrize(
    ("action", "expected"),
    [
        # dovecot/core src/lib-lda/mail-deliver.c, LMTP without a Sieve script
        ("saved mail to INBOX", _d("stored", "INBOX")),
        ("saved mail to Sent Items", _d("stored", "Sent Items")),
        (
            "save failed to INBOX: Quota exceeded (mailbox for user is full)",
            _d("failed", "INBOX", "Quota exceeded (mailbox for user is full)"),
        ),
        (
            "save failed to open mailbox Foo: Mailbox doesn't exist: Foo",
            _d("failed", "Foo", "Mailbox doesn't exist: Foo"),
        ),
        ("save failed to INBOX: Temporary internal error", _d("failed", "INBOX", "Temporary internal error")),
        # dovecot/core src/lda/main.c (dovecot-lda, the same deliver_log_format)
        (
            "rejected: Quota exceeded (mailbox for user is full)",
            _d("failed", detail="Quota exceeded (mailbox for user is full)"),
        ),
    ],
)
def test_lmtp_formats_without_sieve(action: str, expected: Delivery) -> None:
    assert parse(P + MSGID + action) == expected


def test_message_id_forms() -> None:
    assert parse(P + "msgid=unspecified: saved mail to INBOX") == _d("stored", "INBOX", message_id=None)
    bare = parse(P + "sieve: msgid=abc123@host.example: stored mail into mailbox 'INBOX'")
    assert bare is not None and bare.message_id == "abc123@host.example"
    cut = parse(P + "msgid=<" + "x" * 197 + "...: saved mail to INBOX")  # str_sanitize(…, 200)
    assert cut is not None and cut.message_id == "x" * 197 + "..." and cut.mailbox == "INBOX"


def test_prefix_forms() -> None:
    short = parse("lmtp(carol@example.net): msgid=<a@b>: saved mail to INBOX")
    assert short == Delivery("carol@example.net", None, "a@b", "stored", "INBOX", None)
    old = parse("lmtp(31218, dave@example.net): 7SIJMCkSVFXydQAAhnuNsg: msgid=<a@b>: saved mail to INBOX")
    assert old == Delivery("dave@example.net", "7SIJMCkSVFXydQAAhnuNsg", "a@b", "stored", "INBOX", None)


def test_failures_without_delivery_sentence() -> None:
    quota = parse(P + "Error: " + MSGID + "Quota exceeded (mailbox for user is full)")
    assert quota == _d("failed", detail="Quota exceeded (mailbox for user is full)")
    user = parse(P + "Error: User doesn't exist: bob@example.org")
    assert user == _d("failed", detail="User doesn't exist: bob@example.org", message_id=None)


@pytest.mark.parametrize(
    "line",
    [
        "lmtp(113): Connect from 172.22.1.6",
        "lmtp(113): Disconnect from 172.22.1.6: Client has quit the connection (state=MAIL FROM)",
        "imap(o@mail.mail)<353632><Mx+khAPtwsKsFgH4>: Disconnected: Logged out in=185 out=1889",
        "imap(me@domain.de)<147><Ic7pPuqD+tW5dxAp>:  expunge: box=INBOX, uid=2934,  msgid=<5891@tempr.email>, size=25",
        "imap-login: Login: user=<o@mail.mail>, method=PLAIN, rip=172.22.1.248, lip=172.22.1.250, mpid=353632",
        P + "sieve: " + MSGID + "store into mailbox 'INBOX' aborted",
        P + "sieve: " + MSGID + "sent vacation response to <x@y.example>",
        P + "Warning: sieve: script binary is outdated",
        "",
        "lmtp(",
    ],
)
def test_not_a_delivery(line: str) -> None:
    assert parse(line) is None


def test_fields_capped() -> None:
    long = "f" * 5000
    got = parse(P + "sieve: msgid=<" + long + ">: stored mail into mailbox '" + long + "'")
    assert got is not None and len(got.message_id or "") == MAX_FIELD and len(got.mailbox or "") == MAX_FIELD


@given(st.text(max_size=300), st.sampled_from(["", P, P + "sieve: ", P + MSGID, P + "sieve: " + MSGID, "lmtp("]))
def test_arbitrary_text_never_raises(tail: str, head: str) -> None:
    got = parse(head + tail)
    assert got is None or (
        isinstance(got, Delivery)
        and got.outcome in {"stored", "discarded", "redirected", "rejected", "failed"}
        and all(
            len(v) <= MAX_FIELD
            for v in (got.recipient, got.session_id, got.message_id, got.mailbox, got.detail)
            if v is not None
        )
    )
