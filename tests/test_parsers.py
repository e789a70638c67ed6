"""Parsers: every line kind of mailcow-api.md §3 and §1.13/§1.4, plus property tests."""

from __future__ import annotations

import hashlib
import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from exporter.parsers import netfilter, postfix, rspamd
from exporter.parsers.lines import canonical_json, line_key, number_window

# (program, message, expected fields) — real lines from mailcow-api.md §3.1 unless noted.
POSTFIX_CASES = [
    (
        "postfix/postscreen",
        "CONNECT from [213.79.118.83]:56283 to [172.22.1.11]:25",
        {"kind": "postscreen_connect", "client_ip": "213.79.118.83"},
    ),
    ("postfix/postscreen", "PASS NEW [213.79.118.83]:56283", {"kind": "postscreen_pass"}),
    ("postfix/postscreen", "PASS OLD [213.79.118.83]:56283", {"kind": "postscreen_pass"}),
    (
        "postfix/postscreen",
        "PREGREET 14 after 0.27 from [103.114.106.144]:55309: EHLO ylmf-pc\\r\\n",
        {"kind": "postscreen_pregreet", "client_ip": "103.114.106.144", "reject_class": "pregreet"},
    ),
    (
        "postfix/postscreen",
        "DNSBL rank 13 for [114.32.135.70]:49639",
        {"kind": "postscreen_dnsbl", "client_ip": "114.32.135.70"},
    ),
    (
        "postfix/postscreen",
        "HANGUP after 0.55 from [103.114.106.144]:55309 in tests after SMTP handshake",
        {"kind": "postscreen_hangup"},
    ),
    ("postfix/postscreen", "DISCONNECT [114.32.135.70]:49639", {"kind": "postscreen_disconnect"}),
    (
        "postfix/postscreen",
        "NOQUEUE: reject: RCPT from [203.0.113.9]:17308: 550 5.7.1 Service unavailable; client [203.0.113.9] blocked "
        "using zen.spamhaus.org; from=<my@address.snip>, to=<you@example.org>, proto=ESMTP, helo=<[SNIP]>",
        {
            "kind": "noqueue_reject",
            "reject_code": "550",
            "dsn": "5.7.1",
            "reject_class": "rbl",
            "sender": "my@address.snip",
            "recipient": "you@example.org",
            "helo": "[SNIP]",
            "client_ip": "203.0.113.9",
        },
    ),
    (
        "postfix/dnsblog",
        "addr 213.79.118.83 listed by domain zen.spamhaus.org as 127.0.0.4",
        {"kind": "dnsbl_listed", "client_ip": "213.79.118.83"},
    ),
    (
        "postfix/smtpd",
        "connect from unknown[86.47.96.237]",
        {"kind": "connect", "client_host": "unknown", "client_ip": "86.47.96.237"},
    ),
    (
        "postfix/smtpd",
        "disconnect from unknown[86.47.96.237] helo=1 auth=0/1 quit=1 commands=2/3",
        {"kind": "disconnect", "client_ip": "86.47.96.237"},
    ),
    (
        "postfix/smtpd",
        "lost connection after AUTH from unknown[92.118.38.52]",
        {"kind": "lost_connection", "client_ip": "92.118.38.52"},
    ),
    (
        "postfix/smtpd",
        "NOQUEUE: reject: RCPT from unknown[62.149.156.25]: 454 4.7.1 <bounce+c5e8a8.afb32-lorenzo.longhi=ordingbo.it@"
        "mail.ourmx.it>: Relay access denied; from=<> to=<bounce+c5e8a8.afb32-lorenzo.longhi=ordingbo.it@mail.ourmx.it> "
        "proto=ESMTP helo=<smtpcmd15.ad.aruba.it>",
        {
            "kind": "noqueue_reject",
            "reject_code": "454",
            "dsn": "4.7.1",
            "reject_class": "relay_denied",
            "sender": "",
            "recipient": "bounce+c5e8a8.afb32-lorenzo.longhi=ordingbo.it@mail.ourmx.it",
            "helo": "smtpcmd15.ad.aruba.it",
        },
    ),
    (
        "postfix/smtpd",
        "NOQUEUE: reject: RCPT from mx01.kthx.at[212.129.56.246]: 554 5.7.1 <mx01.kthx.at[212.129.56.246]>: Client host "
        "rejected: Access denied; from=<****@kthx.at> to=<*****@neuland.tech> proto=ESMTP helo=<mx01.kthx.at>",
        {
            "kind": "noqueue_reject",
            "reject_code": "554",
            "reject_class": "client_rejected",
            "client_host": "mx01.kthx.at",
        },
    ),
    (
        "postfix/submission/smtpd",
        "NOQUEUE: reject: RCPT from domain.com[198.51.100.4]: 553 5.7.1 <user1@domain.com>: Sender address rejected: "
        "not owned by user user2@domain.com; from=<user1@domain.com> to=<user@somemailhost.com> proto=ESMTP "
        "helo=<www.domain.com>",
        {"kind": "noqueue_reject", "reject_class": "sender_rejected", "sender": "user1@domain.com"},
    ),
    (
        "postfix/sogo/smtpd",
        "9CDA85A0673: reject: RCPT from mailcowdockerized_sogo-mailcow_1.mailcowdockerized_mailcow-network[172.22.1.248]: "
        "550 5.1.1 <papageienzimmer@example.org>: Recipient address rejected: User unknown in virtual mailbox table; "
        "from=<me@example.org> to=<papageienzimmer@example.org> proto=ESMTP helo=<578944bce8f6>",
        {
            "kind": "rcpt_reject",
            "queue_id": "9CDA85A0673",
            "reject_class": "unknown_recipient",
            "recipient": "papageienzimmer@example.org",
        },
    ),
    (
        "postfix/smtpd",
        "warning: unknown[193.46.255.40]: SASL LOGIN authentication failed: (reason unavailable), "
        "sasl_username=ncc@co.za",
        {"kind": "sasl_failure", "client_ip": "193.46.255.40", "sasl_method": "LOGIN", "sasl_username": "ncc@co.za"},
    ),
    (
        "postfix/smtpd",
        "warning: unknown[92.118.38.52]: SASL LOGIN authentication failed: UGFzc3dvcmQ6",
        {"kind": "sasl_failure", "sasl_username": None},
    ),
    (
        "postfix/smtpd",
        "warning: hostname ip-38-52.ZervDNS does not resolve to address 92.118.38.52: Name or service not known",
        {"kind": "warning"},
    ),
    (
        "postfix/qmgr",
        "11C9513477F0: from=<sender@domain.com>, size=3720952, nrcpt=77 (queue active)",
        {"kind": "queued", "queue_id": "11C9513477F0", "sender": "sender@domain.com", "size": 3720952, "nrcpt": 77},
    ),
    (
        "postfix/smtp",
        "11C9513477F0: to=<receiver>, relay=gmail-smtp-in.l.google.com[2a00:1450:400c:c1f::1a]:25, delay=33715, "
        "delays=33715/0.05/0.49/0.07, dsn=4.2.2, status=deferred (host gmail-smtp-in.l.google.com"
        "[2a00:1450:400c:c1f::1a] said: 452-4.2.2 The recipient's inbox is out of storage space. ... (in reply to RCPT "
        "TO command))",
        {
            "kind": "delivery",
            "recipient": "receiver",
            "status": "deferred",
            "dsn": "4.2.2",
            "delay": 33715.0,
            "relay": "gmail-smtp-in.l.google.com[2a00:1450:400c:c1f::1a]:25",
            "delays": "33715/0.05/0.49/0.07",
        },
    ),
    (
        "postfix/smtp",
        "11C9513477F0: host gmail-smtp-in.l.google.com[142.251.173.26] said: 452-4.2.2 The recipient's inbox is out of "
        "storage space. (in reply to RCPT TO command)",
        {"kind": "remote_reply", "queue_id": "11C9513477F0"},
    ),
    ("postfix/qmgr", "EF1711500458: removed", {"kind": "removed", "queue_id": "EF1711500458"}),
    (
        "postfix/smtp",
        "0C3BF1A4B81: to=<second@example.org>, relay=eop.test.local[172.22.1.7]:25, delay=0.26, "
        "delays=0.09/0.02/0.1/0.05, dsn=2.6.0, status=sent (250 2.6.0 <r17@stage.test> [InternalId=1] 1091 bytes in "
        "0.049, 21.743 KB/sec Queued mail for delivery)",
        {"kind": "delivery", "status": "delivered", "dsn": "2.6.0", "recipient": "second@example.org"},
    ),
    (
        "postfix/cleanup",
        "0C3BF1A4B81: message-id=<r17-accepted-1790933733899@stage.test>",
        {"kind": "message_id", "message_id": "r17-accepted-1790933733899@stage.test"},
    ),
    ("postfix/cleanup", "0C3BF1A4B81: message-id=<>", {"kind": "message_id", "message_id": None}),
    (
        "postfix/submission/smtpd",
        "0C3BF1A4B81: client=unknown[172.22.1.1], sasl_method=PLAIN, sasl_username=r17-delivery@stage.test",
        {
            "kind": "client",
            "client_ip": "172.22.1.1",
            "sasl_method": "PLAIN",
            "sasl_username": "r17-delivery@stage.test",
        },
    ),
    (
        "postfix/smtpd",
        "4B9C71E0E5A: client=mail-wr1-f49.google.com[209.85.221.49]",
        {
            "kind": "client",
            "client_host": "mail-wr1-f49.google.com",
            "client_ip": "209.85.221.49",
            "sasl_username": None,
        },
    ),
    (
        "postfix/lmtp",
        "61EB61A4B57: to=<r17-delivery@stage.test>, relay=dovecot[172.22.1.250]:24, delay=0.06, delays=0.01/0.01/0/0.04, "
        "dsn=2.0.0, status=sent (250 2.0.0 <r17-delivery@stage.test> WEvfGG55v2rJAAAAqAbqoQ Saved)",
        {"kind": "delivery", "status": "delivered", "relay": "dovecot[172.22.1.250]:24"},
    ),
    (
        "postfix/bounce",
        "127621A4B8F: sender non-delivery notification: 61EB61A4B57",
        {"kind": "bounce_notification", "queue_id": "127621A4B8F", "related_queue_id": "61EB61A4B57"},
    ),
    (
        "postfix/smtp",
        "127621A4B8F: to=<test@example.com>, relay=eop.test.local[172.22.1.7]:25, delay=0.34, delays=0.15/0.03/0.1/0.06, "
        "dsn=5.4.1, status=bounced (host eop.test.local[172.22.1.7] said: 550 5.4.1 Recipient address rejected: Access "
        "denied. AS(201806281) (in reply to RCPT TO command))",
        {"kind": "delivery", "status": "bounced", "dsn": "5.4.1"},
    ),
    (
        "postfix/pickup",
        "53A99193F13: uid=0 from=<someone@stage.test>",
        {"kind": "pickup", "sender": "someone@stage.test"},
    ),
    ("postfix/postsuper", "20BA719F6B6: released from hold", {"kind": "unhold"}),
    ("postfix/postsuper", "20BA719F6B6: placed on hold", {"kind": "hold"}),
    ("postfix/postsuper", "20BA719F6B6: removed", {"kind": "deleted"}),
    # stock Postfix formats mailcow emits but §3 does not quote
    (
        "postfix/cleanup",
        "4B9C71E0E5A: milter-reject: END-OF-MESSAGE from mail.example.com[198.51.100.25]: 5.7.1 Spam message rejected; "
        "from=<a@example.com> to=<b@example.org> proto=ESMTP helo=<mail.example.com>",
        {
            "kind": "milter_reject",
            "dsn": "5.7.1",
            "reject_class": "spam",
            "sender": "a@example.com",
            "recipient": "b@example.org",
            "client_ip": "198.51.100.25",
        },
    ),
    (
        "postfix/cleanup",
        "4B9C71E0E5A: milter-reject: END-OF-MESSAGE from x.example[198.51.100.25]: 4.7.1 Try again later; "
        "from=<a@example.com> to=<b@example.org> proto=ESMTP helo=<x.example>",
        {"kind": "milter_reject", "dsn": "4.7.1", "reject_class": "greylist"},
    ),
    (
        "postfix/qmgr",
        "AB12CD34EF: from=<a@b.example>, status=expired, returned to sender",
        {"kind": "expired", "sender": "a@b.example"},
    ),
    (
        "postfix/smtp",
        "4Nq8Yx0lJCz9vB8: to=<x@y.example>, orig_to=<alias@example.org>, relay=mx.y.example[2001:db8::25]:25, "
        "delay=1.2, delays=0.1/0/0.5/0.6, dsn=2.0.0, status=sent (250 OK)",
        {"kind": "delivery", "queue_id": "4Nq8Yx0lJCz9vB8", "orig_to": "alias@example.org", "status": "delivered"},
    ),
    (
        "postfix/anvil",
        "statistics: max connection rate 1/60s for (smtpd:204.152.209.101) at Dec 21 21:58:14",
        {"kind": "other"},
    ),
]


@pytest.mark.parametrize(("program", "message", "expected"), POSTFIX_CASES)
def test_postfix_line_kinds(program, message, expected):
    event = postfix.parse(program, message)
    for name, value in expected.items():
        assert getattr(event, name) == value, (name, event)


@given(st.text(max_size=300), st.sampled_from(["postfix/smtpd", "postfix/postscreen", "postfix/qmgr", "x"]))
def test_postfix_parser_never_raises(message, program):
    event = postfix.parse(program, message)
    assert event.kind


_addr = st.from_regex(r"[a-z0-9._+-]{1,20}@[a-z0-9-]{1,15}\.[a-z]{2,6}", fullmatch=True)
_qid = st.one_of(
    st.from_regex(r"[0-9A-F]{10,12}", fullmatch=True),
    st.from_regex(r"[0-9B-DF-HJ-NP-TV-Zb-df-hj-np-tv-y]{12}z[0-9B-DF-HJ-NP-TV-Zb-df-hj-np-tv-y]{3}", fullmatch=True),
)
_ip = st.one_of(st.ip_addresses(v=4).map(str), st.ip_addresses(v=6).map(str))


@given(
    _qid,
    _addr,
    st.one_of(st.none(), _addr),
    _ip,
    st.sampled_from(["sent", "deferred", "bounced", "expired"]),
    st.floats(min_value=0, max_value=500000, allow_nan=False).map(lambda f: round(f, 2)),
    st.text(max_size=80),
)
def test_delivery_lines_round_trip(qid, rcpt, orig, ip, status, delay, reply):
    orig_part = f"orig_to=<{orig}>, " if orig else ""
    reply = reply.replace("\n", " ")
    message = (
        f"{qid}: to=<{rcpt}>, {orig_part}relay=mx.example[{ip}]:25, delay={delay}, delays=0.1/0/0.2/0.3, "
        f"dsn=2.0.0, status={status} ({reply})"
    )
    event = postfix.parse("postfix/smtp", message)
    assert (event.kind, event.queue_id, event.recipient, event.orig_to) == ("delivery", qid, rcpt, orig)
    assert event.status == postfix.DELIVERY_STATUS[status] and event.delay == delay
    assert event.relay == f"mx.example[{ip}]:25" and event.reply == reply


@given(_qid, _ip, st.one_of(st.none(), _addr))
def test_client_lines_round_trip(qid, ip, user):
    sasl = f", sasl_method=PLAIN, sasl_username={user}" if user else ""
    event = postfix.parse("postfix/submission/smtpd", f"{qid}: client=unknown[{ip}]{sasl}")
    assert (event.kind, event.client_ip, event.sasl_username) == ("client", ip, user)


def test_rspamd_row_fields():
    row = rspamd.parse(
        {
            "is_skipped": False,
            "score": -2.7,
            "required_score": 15,
            "action": "no action",
            "thresholds": {"reject": 15},
            "symbols": {"R_SPF_ALLOW": {"name": "R_SPF_ALLOW", "score": -0.2}},
            "message-id": "CAF3nQ1xYz@mail.example.com",
            "time_real": 0.489551,
            "sender_smtp": "alice@example.com",
            "sender_mime": "alice@example.com",
            "rcpt_smtp": ["bob@example.org"],
            "rcpt_mime": ["bob@example.org"],
            "user": "unknown",
            "unix_time": 1722852500,
            "subject": "Re: meeting",
            "size": 5432,
            "ip": "198.51.100.25",
        }
    )
    assert row.message_id == "CAF3nQ1xYz@mail.example.com" and row.user is None and not row.is_spam
    assert row.symbols["R_SPF_ALLOW"]["score"] == -0.2 and row.extra == {"thresholds": {"reject": 15}}
    assert row.logged_at.timestamp() == 1722852500 and row.rcpt_smtp == ["bob@example.org"]


def test_rspamd_placeholders_and_terminal_rows():
    row = rspamd.parse(
        {
            "unix_time": 1,
            "action": "reject",
            "score": 30,
            "message-id": "undef",
            "subject": "unknown",
            "sender_mime": None,
            "rcpt_mime": None,
            "required_score": None,
            "ip": "unknown",
        }
    )
    assert (row.message_id, row.subject, row.ip, row.rcpt_mime, row.is_spam) == (None, None, None, [], True)
    with pytest.raises(rspamd.BadRow):
        rspamd.parse({"action": "reject"})


@pytest.mark.parametrize(
    ("message", "expected"),
    [
        (
            "193.46.255.40 matched rule id 3 (warning: unknown[193.46.255.40]: SASL LOGIN authentication failed: "
            "(reason unavailable), sasl_username=ncc@co.za)",
            {
                "kind": "warning",
                "ip": "193.46.255.40",
                "rule_id": 3,
                "username": "ncc@co.za",
                "auth_method": "SASL LOGIN",
            },
        ),
        (
            "9 more attempts in the next 1800 seconds until 193.46.255.40/32 is banned",
            {"kind": "attempts", "attempts_left": 9, "network": "193.46.255.40/32"},
        ),
        ("Banning 193.46.255.40/32 for 30 minutes", {"kind": "ban", "ban_minutes": 30, "ip": "193.46.255.40"}),
        ("Banning 123.123.123.123/24", {"kind": "ban", "ban_minutes": None}),
        ("Unbanning 2001:db8::1/128", {"kind": "unban", "ip": "2001:db8::1"}),
        (
            "2001:db8::7 matched rule id 1 (mailcow UI: Invalid password for API_USER by 2001:db8::7)",
            {"kind": "warning", "ip": "2001:db8::7", "rule_id": 1},
        ),
        ("86.147.72.1 matched rule id 2", {"kind": "warning", "rule_id": 2, "username": None}),
        (
            "10.0.0.1 matched rule id 6 (auth-worker(1055): lua(userx@example.org,10.0.0.1,<abc>): Password mismatch "
            "(SHA1 of given password: 1a2b3c))",
            {"kind": "warning", "rule_id": 6, "username": "userx@example.org"},
        ),
        ("Added host/network 81.30.107.0/24 to denylist", {"kind": "denylist_add", "network": "81.30.107.0/24"}),
        ("Clearing all bans", {"kind": "info"}),
    ],
)
def test_netfilter_events(message, expected):
    event = netfilter.parse(message)
    for name, value in expected.items():
        assert getattr(event, name) == value, (name, event)


@given(st.lists(st.sampled_from(["a", "b", "c"]), max_size=30))
def test_window_numbering_is_stable_as_new_lines_arrive(messages):
    items = [{"time": "1", "program": "p", "priority": "info", "message": m} for m in messages]
    first = {(k, o) for _, k, o in number_window("postfix", items)}
    newer = [{"time": "1", "program": "p", "priority": "info", "message": "a"}, *items]  # one more at the head
    second = {(k, o) for _, k, o in number_window("postfix", newer)}
    assert first <= second and len(second - first) == 1


def test_line_key_covers_every_field_and_ignores_time_type():
    base = {"time": "1790000000", "program": "postfix/smtpd", "priority": "info", "message": "m"}
    assert line_key("postfix", base) == line_key("postfix", {**base, "time": 1790000000})
    for field in base:
        assert line_key("postfix", base) != line_key("postfix", {**base, field: base[field] + "1"})


_JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4),
    max_leaves=12,
)


@given(_JSON_VALUES)
def test_rspamd_keys_hash_the_text_earlier_versions_hashed(value):
    """Keys of stored rows came from json.dumps; a row fetched again must get the same key (or it
    would be stored twice), whichever encoder writes the text now."""
    reference = json.dumps(value, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    assert canonical_json(value) == reference.encode("utf-8", "surrogatepass")
    row = {"unix_time": 1722852500, "score": 1e-05, "symbols": {"X": {"score": value}}}
    old = "rspamd-history\x1f" + json.dumps(row, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    assert line_key("rspamd-history", row) == hashlib.sha256(old.encode("utf-8", "surrogatepass")).digest()


def test_discard_lines_carry_the_envelope():
    event = postfix.parse(
        "postfix/cleanup",
        "A1B2C3D4E5: discard: header Subject: lottery from x.example[198.51.100.1]; "
        "from=<a@x.example> to=<bob@example.org> proto=ESMTP helo=<x.example>",
    )
    assert (event.kind, event.sender, event.recipient) == ("discard", "a@x.example", "bob@example.org")
