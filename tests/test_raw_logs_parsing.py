"""exporter.parsers.raw_logs against the real items of mailcow-api.md §1 (and lines of §3) for all ten services."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from exporter.config_values import RAW_LOG_SERVICES
from exporter.parsers import MAX_FIELD
from exporter.parsers.lines import number_window
from exporter.parsers.raw_logs import LEVELS, SERVICES, RawLine, parse


def _at(epoch: int) -> datetime:
    return datetime.fromtimestamp(epoch, UTC)


def _one(service: str, raw: str) -> RawLine:
    """Parse one item given as the JSON text mailcow sends (escaped slashes and all)."""
    item = json.loads(raw)
    line = parse(service, item)
    assert line is not None, raw
    assert line.item is item and line.service == service and line.level in LEVELS
    assert line.at.tzinfo is UTC
    return line


# (service, item JSON verbatim from mailcow-api.md §1, epoch, level, program, message)
SECTION_1 = [
    (
        "postfix",
        '{"time": "1722850212", "program": "postfix\\/qmgr", "priority": "info", "message": "EF1711500458: removed"}',
        1722850212,
        "info",
        "postfix/qmgr",
        "EF1711500458: removed",
    ),
    (
        "dovecot",
        '{"message": "managesieve-login: Disconnected (no auth attempts in 0 secs): user=<>, rip=172.22.1.3, '
        'lip=172.22.1.250", "priority": "info", "program": "dovecot", "time": "1569938740"}',
        1569938740,
        "info",
        "dovecot",
        "managesieve-login: Disconnected (no auth attempts in 0 secs): user=<>, rip=172.22.1.3, lip=172.22.1.250",
    ),
    (
        "sogo",
        '{"message": "[109]: mailcowdockerized_watchdog-mailcow_1.mailcowdockerized_mailcow-network \\"GET '
        '/SOGo.index/ HTTP/1.1\\" 200 2531/0 0.005 - - 0", "priority": "notice", "program": "sogod", "time": '
        '"1569938874"}',
        1569938874,
        "notice",
        "sogod",
        '[109]: mailcowdockerized_watchdog-mailcow_1.mailcowdockerized_mailcow-network "GET /SOGo.index/ HTTP/1.1"'
        " 200 2531/0 0.005 - - 0",
    ),
    (
        "netfilter",
        '{"time": 1722850400, "priority": "crit", "message": "Banning 193.46.255.40/32 for 30 minutes"}',
        1722850400,
        "critical",
        None,
        "Banning 193.46.255.40/32 for 30 minutes",
    ),
    (
        "netfilter",
        '{"time": 1722850399, "priority": "warn", "message": "193.46.255.40 matched rule id 3 (warning: '
        'unknown[193.46.255.40]: SASL LOGIN authentication failed: (reason unavailable), sasl_username=ncc@co.za)"}',
        1722850399,
        "warning",
        None,
        "193.46.255.40 matched rule id 3 (warning: unknown[193.46.255.40]: SASL LOGIN authentication failed: "
        "(reason unavailable), sasl_username=ncc@co.za)",
    ),
    (
        "netfilter",
        '{"time": 1722850399, "priority": "warn", "message": "1 more attempts in the next 600 seconds until '
        '193.46.255.40/32 is banned"}',
        1722850399,
        "warning",
        None,
        "1 more attempts in the next 600 seconds until 193.46.255.40/32 is banned",
    ),
    (
        "ratelimited",
        """{
        "time": 1722851003,
        "rcpt": "hello@example.net, second@example.net",
        "from": "awesome@example.org",
        "user": "awesome@example.org",
        "rl_info": "mailcow(RLsdz3tuabozgd4oacbdh8kc78)",
        "rl_name": "mailcow",
        "rl_hash": "RLsdz3tuabozgd4oacbdh8kc78",
        "qid": "E3CF91500458",
        "ip": "172.22.1.248",
        "message_id": "6a-5d892500-7-240abd80@90879116",
        "header_subject": "Mailcow is amazing",
        "header_from": "\\"Awesome\\" <awesome@example.org>"
        }""",
        1722851003,
        "warning",
        None,
        "ratelimit mailcow(RLsdz3tuabozgd4oacbdh8kc78) hit by user awesome@example.org from 172.22.1.248:"
        " qid=E3CF91500458 from=<awesome@example.org> rcpt=<hello@example.net, second@example.net>"
        ' message-id=<6a-5d892500-7-240abd80@90879116> header_from="Awesome" <awesome@example.org>'
        ' subject="Mailcow is amazing"',
    ),
    (
        "watchdog",
        '{"time": "1722851290", "service": "Postfix", "lvl": "100", "hpnow": "8", "hptotal": "8", "hpdiff": "0"}',
        1722851290,
        "info",
        None,
        "Postfix: health 8/8 (100%), trend 0",
    ),
    (
        "watchdog",
        '{"time": "1722851281", "service": "Dovecot", "lvl": "92", "hpnow": "11", "hptotal": "12", "hpdiff": "-1"}',
        1722851281,
        "warning",
        None,
        "Dovecot: health 11/12 (92%), trend -1",
    ),
    (
        "watchdog",
        '{"time": "1722851270", "message": "PHP FPM hit error limit"}',
        1722851270,
        "error",
        None,
        "PHP FPM hit error limit",
    ),
    (
        "acme",
        '{"time": "1722852001", "message": "mail.example.org - Certificate \\/var\\/lib\\/acme\\/mail.example.org'
        '\\/cert.pem validation done, neither changed nor due for renewal."}',
        1722852001,
        "info",
        None,
        "mail.example.org - Certificate /var/lib/acme/mail.example.org/cert.pem validation done, neither changed"
        " nor due for renewal.",
    ),
    (
        "acme",
        '{"time": "1722852001", "message": "mail.example.org - Certificates were successfully validated, no changes'
        ' or renewals required, sleeping for another day."}',
        1722852001,
        "info",
        None,
        "mail.example.org - Certificates were successfully validated, no changes or renewals required, sleeping"
        " for another day.",
    ),
    (
        "acme",
        '{"message": "Certificate validation done, neither changed nor due for renewal, sleeping for another day.",'
        ' "time": "1569927728"}',
        1569927728,
        "info",
        None,
        "Certificate validation done, neither changed nor due for renewal, sleeping for another day.",
    ),
    (
        "autodiscover",
        '{"time": 1722852100, "ua": "Microsoft Office\\/16.0 (Windows NT 10.0; Microsoft Outlook 16.0.17928; Pro)",'
        ' "user": "awesome@example.org", "ip": "203.0.113.20", "service": "activesync"}',
        1722852100,
        "info",
        None,
        "activesync for awesome@example.org from 203.0.113.20 (user agent: Microsoft Office/16.0 (Windows NT 10.0;"
        " Microsoft Outlook 16.0.17928; Pro))",
    ),
    (
        "autodiscover",
        '{"time": 1722852050, "ua": "Microsoft Office\\/16.0", "user": "none", "ip": "198.51.100.9", "service": '
        '"Error: invalid or missing request data"}',
        1722852050,
        "warning",
        None,
        "Error: invalid or missing request data for none from 198.51.100.9 (user agent: Microsoft Office/16.0)",
    ),
    (
        "api",
        '{"time": 1722852300, "uri": "\\/api\\/v1\\/get\\/logs\\/api\\/2", "method": "GET", "remote": '
        '"203.0.113.5", "data": ""}',
        1722852300,
        "info",
        None,
        "GET /api/v1/get/logs/api/2 from 203.0.113.5",
    ),
    (
        "api",
        '{"time": 1722852290, "uri": "\\/api\\/v1\\/edit\\/qitem", "method": "POST", "remote": "203.0.113.5", '
        '"data": "attr=\'{\\"action\\":\\"release\\"}\', items=\'[\\"33\\"]\'"}',
        1722852290,
        "notice",
        None,
        """POST /api/v1/edit/qitem from 203.0.113.5 data: attr='{"action":"release"}', items='["33"]'""",
    ),
]

RSPAMD_ROW = """{
    "is_skipped": false,
    "score": -2.7,
    "required_score": 15,
    "action": "no action",
    "thresholds": {"reject": 15, "add header": 8, "greylist": 7},
    "symbols": {
        "DMARC_POLICY_ALLOW": {"name": "DMARC_POLICY_ALLOW", "score": -0.5, "metric_score": -0.5, "description": "DMARC permit policy", "options": ["example.com", "none"]},
        "R_SPF_ALLOW": {"name": "R_SPF_ALLOW", "score": -0.2, "metric_score": -0.2, "description": "SPF verification allows sending", "options": ["+ip4:198.51.100.0\\/24"]},
        "R_DKIM_ALLOW": {"name": "R_DKIM_ALLOW", "score": -0.2, "metric_score": -0.2, "description": "DKIM verification succeed", "options": ["example.com:s=sel1"]},
        "BAYES_HAM": {"name": "BAYES_HAM", "score": -1.8, "metric_score": -3, "description": "Message probably ham, probability: ", "options": ["97.52%"]},
        "RCPT_MAILCOW_DOMAIN": {"name": "RCPT_MAILCOW_DOMAIN", "score": 0, "metric_score": 0, "options": ["example.org"]},
        "MIME_GOOD": {"name": "MIME_GOOD", "score": -0.1, "metric_score": -0.1, "description": "Known content-type", "options": ["text\\/plain"]},
        "ASN": {"name": "ASN", "score": 0, "metric_score": 0, "options": ["asn:64500, ipnet:198.51.100.0\\/24, country:DE"]}
    },
    "message-id": "CAF3nQ1xYz@mail.example.com",
    "time_real": 0.489551,
    "sender_smtp": "alice@example.com",
    "sender_mime": "alice@example.com",
    "rcpt_smtp": ["bob@example.org"],
    "rcpt_mime": ["bob@example.org"],
    "user": "unknown",
    "unix_time": 1722852500,
    "subject": "Re: meeting tomorrow",
    "size": 5432,
    "ip": "198.51.100.25"
}"""  # noqa: E501 (verbatim from the reference)


@pytest.mark.parametrize(("service", "raw", "epoch", "level", "program", "message"), SECTION_1)
def test_every_item_of_the_reference_reads(service, raw, epoch, level, program, message):
    line = _one(service, raw)
    assert (line.at, line.level, line.program, line.message) == (_at(epoch), level, program, message)


def test_the_reference_rspamd_history_row_reads_as_a_line():
    line = _one("rspamd-history", RSPAMD_ROW)
    assert (line.at, line.level, line.program) == (_at(1722852500), "info", None)
    assert line.message == (
        "no action: score -2.7/15 from=<alice@example.com> rcpt=<bob@example.org> ip=198.51.100.25 user=unknown"
        ' message-id=<CAF3nQ1xYz@mail.example.com> subject="Re: meeting tomorrow"'
    )


@pytest.mark.parametrize(
    ("action", "level"),
    [
        ("no action", "info"),
        ("greylist", "notice"),
        ("add header", "notice"),
        ("soft reject", "notice"),
        ("reject", "warning"),
    ],
)
def test_rspamd_actions_map_to_levels(action, level):
    item = {**json.loads(RSPAMD_ROW), "action": action}
    assert parse("rspamd-history", item).level == level


def test_an_early_reject_rspamd_row_with_nulls_reads():
    item = {
        **json.loads(RSPAMD_ROW),
        "action": "reject",
        "sender_mime": None,
        "rcpt_mime": None,
        "required_score": None,
    }
    item["rcpt_smtp"] = []
    line = parse("rspamd-history", item)
    assert line.message.startswith("reject: score -2.7/- from=<alice@example.com> rcpt=<->")


# (service, program, priority as mailcow sends it, message): real lines of mailcow-api.md §3.
SECTION_3 = [
    ("postfix", "postfix/postscreen", "info", "CONNECT from [213.79.118.83]:56283 to [172.22.1.11]:25", "info"),
    (
        "postfix",
        "postfix/smtpd",
        "warning",
        "warning: hostname ip-38-52.ZervDNS does not resolve to address 92.118.38.52: Name or service not known",
        "warning",
    ),
    ("postfix", "whitelist_forwardinghosts", "info", "Look up 213.79.118.83 on whitelist, result 200 DUNNO", "info"),
    (
        "dovecot",
        "dovecot",
        "warning",
        "imap-login: Warning: Auth process not responding, delayed sending initial response (greeting): user=<>, "
        "rip=..., lip=..., TLS, TLSv1.2 with cipher ECDHE-RSA-AES256-GCM-SHA384 (256/256 bits)",
        "warning",
    ),
    (
        "dovecot",
        "dovecot",
        "crit",
        "auth: Fatal: passdb-lua: initialization failed: lua_load(/var/lib/dovecot/app-passdb.lua) failed: "
        "error loading file",
        "critical",
    ),
    (
        "dovecot",
        "dovecot",
        "info",
        "lmtp(bob@example.org)<28231><CUeLOy0xv1xHbgAASDkM0A>: sieve: msgid=<CAF3nQ1xYz@mail.example.com>: "
        "stored mail into mailbox 'INBOX'",
        "info",
    ),
    (
        "sogo",
        "sogod",
        "notice",
        "[81]: SOGoRootPage successful login from '77.23.xxx.xxx' for user 'here-is-my@email.de' - expire = -1  "
        "grace = -1",
        "notice",
    ),
    (
        "sogo",
        "sogod",
        "notice",
        "[71]: [ERROR] <0x0x561fc00a9920[NGImap4ConnectionManager]> IMAP4 login failed:",
        "notice",
    ),
]


@pytest.mark.parametrize(("service", "program", "priority", "message", "level"), SECTION_3)
def test_real_syslog_lines_keep_program_and_message(service, program, priority, message, level):
    item = {"time": "1722850212", "program": program, "priority": priority, "message": message}
    line = parse(service, item)
    assert (line.at, line.level, line.program, line.message) == (_at(1722850212), level, program, message)


@pytest.mark.parametrize(
    ("priority", "level"),
    [
        ("emerg", "critical"),
        ("alert", "critical"),
        ("crit", "critical"),
        ("err", "error"),
        ("warning", "warning"),
        ("warn", "warning"),
        ("notice", "notice"),
        ("info", "info"),
        ("debug", "debug"),
        ("bogus", "info"),
        (None, "info"),
    ],
)
def test_every_syslog_priority_maps_into_one_vocabulary(priority, level):
    assert parse("dovecot", {"time": "1", "program": "dovecot", "priority": priority, "message": "x"}).level == level


@pytest.mark.parametrize(
    ("message", "level"),
    [
        ("Unbanning 193.46.255.40/32", "info"),
        ("Added host/network 81.30.107.0/24 to denylist", "critical"),
        ("Error reading log line from pubsub: '0' does not appear to be an IPv4 or IPv6 address", "warning"),
    ],
)
def test_netfilter_catalogue_lines(message, level):
    priority = {"info": "info", "critical": "crit", "warning": "warn"}[level]
    line = parse("netfilter", {"time": 1722850400, "priority": priority, "message": message})
    assert (line.level, line.program, line.message) == (level, None, message)


@pytest.mark.parametrize(
    ("message", "level"),
    [
        ("Your mailcow is an open relay!", "error"),
        ("acme mailcow did not complete successfully", "error"),
        ("Mail queue status is critical", "error"),
        ("Banned 193.46.255.40/32", "notice"),
        ("At least one ratelimit was applied", "notice"),
        ("Cannot find dockerapi mailcow, waiting to recover...", "info"),
    ],
)
def test_watchdog_message_entries(message, level):
    assert parse("watchdog", {"time": "1722851270", "message": message}).level == level


def test_a_watchdog_check_at_zero_health_is_critical():
    item = {"time": "1722851290", "service": "Clamd", "lvl": "0", "hpnow": "0", "hptotal": "15", "hpdiff": "-1"}
    line = parse("watchdog", item)
    assert (line.level, line.message) == ("critical", "Clamd: health 0/15 (0%), trend -1")


def test_acme_base64_messages_are_decoded():
    text = 'mail.example.org - {\n  "status": "valid"\n}'
    whole = base64.b64encode(text.encode()).decode()
    assert parse("acme", {"time": "1722852001", "message": f"base64,{whole}"}).message == text
    tail = base64.b64encode(b'{"status": "valid"}\n').decode()  # acme.sh: echo "${ACME_RESPONSE}" | base64
    line = parse("acme", {"time": "1722852001", "message": f"base64,mail.example.org - {tail}"})
    assert line.message == 'mail.example.org - {"status": "valid"}'
    broken = parse("acme", {"time": "1722852001", "message": "base64,not base64!"})
    assert broken.message == "base64,not base64!"


def test_acme_errors_are_warnings():
    line = parse(
        "acme",
        {"time": "1722852001", "message": "mail.example.org - No A or AAAA record found for hostname imap.xxx.de"},
    )
    assert line.level == "warning"


def test_integer_and_string_times_read_alike():
    for service, field in (("ratelimited", "time"), ("autodiscover", "time"), ("api", "time"), ("watchdog", "time")):
        as_int = parse(service, {field: 1722851003, "message": "m", "service": "s"})
        as_str = parse(service, {field: "1722851003", "message": "m", "service": "s"})
        assert as_int.at == as_str.at == _at(1722851003)


def test_null_fields_of_built_lines_read_as_a_dash():
    line = parse(
        "autodiscover", {"time": 1722852050, "ua": None, "user": "none", "ip": "198.51.100.9", "service": "imap"}
    )
    assert line.message == "imap for none from 198.51.100.9 (user agent: -)"
    line = parse("ratelimited", {"time": 1722851003, "user": None, "rl_name": "err", "rl_hash": "err"})
    assert "hit by user - from -" in line.message


def test_long_fields_are_capped_in_built_lines_and_programs():
    line = parse("api", {"time": 1, "uri": "/" + "a" * 5000, "method": "GET", "remote": "x", "data": ""})
    assert len(line.message) < MAX_FIELD + 40
    line = parse("postfix", {"time": "1", "program": "p" * 5000, "priority": "info", "message": "m"})
    assert len(line.program) == MAX_FIELD


@pytest.mark.parametrize(
    ("service", "item"),
    [
        ("postfix", {"program": "postfix/qmgr", "priority": "info", "message": "x"}),  # no time
        ("postfix", {"time": "", "program": "postfix/qmgr", "priority": "info", "message": "x"}),
        ("postfix", {"time": "yesterday", "program": "postfix/qmgr", "priority": "info", "message": "x"}),
        ("postfix", {"time": "1_722_850_212", "program": "p", "priority": "info", "message": "x"}),
        ("postfix", {"time": True, "program": "p", "priority": "info", "message": "x"}),
        ("postfix", {"time": -5, "program": "p", "priority": "info", "message": "x"}),
        ("postfix", {"time": 10**30, "program": "p", "priority": "info", "message": "x"}),
        ("postfix", {"time": float("nan"), "program": "p", "priority": "info", "message": "x"}),
        ("postfix", {"time": "1722850212", "program": "p", "priority": "info", "message": 42}),  # wrong type
        ("postfix", {"time": "1722850212", "program": ["p"], "priority": "info", "message": "x"}),
        ("netfilter", {"time": 1722850400, "priority": "crit"}),  # no message
        ("watchdog", {"time": "1722851290", "lvl": "100"}),  # neither shape
        ("acme", {"time": "1722852001", "message": None}),
        ("rspamd-history", {"time": 1722852500, "action": "reject"}),  # rspamd's time is unix_time
        ("rspamd-history", {"unix_time": 1722852500}),  # no action
        ("api", ["not", "an", "object"]),
        ("api", "text"),
        ("api", None),
        ("nosuchservice", {"time": 1, "message": "x"}),
    ],
)
def test_unreadable_items_are_none(service, item):
    assert parse(service, item) is None


def test_the_ten_services():
    """The parser reads exactly the lists the configuration offers, and the reference's items cover each."""
    assert SERVICES == RAW_LOG_SERVICES and len(set(SERVICES)) == 10
    assert {service for service, *_ in SECTION_1} | {"rspamd-history"} == set(SERVICES)  # its row: RSPAMD_ROW


@pytest.mark.parametrize("service", SERVICES)
def test_overlapping_fetches_number_lines_the_same_for_every_service(service):
    """Identity is lines.number_window with the service's name: the same items fetched twice, the
    second window one newer line on top, keep their (key, occurrence); duplicates stay apart."""
    field = "unix_time" if service == "rspamd-history" else "time"
    old = [{field: 1722851003, "message": "same", "action": "reject"} for _ in range(2)]
    old.append({field: "1722851002", "message": "other", "action": "reject"})
    first = number_window(service, old)
    second = number_window(service, [{field: 1722851004, "message": "new", "action": "reject"}, *old])
    assert [(k, o) for _, k, o in first] == [(k, o) for _, k, o in second[:3]]
    assert len({(k, o) for _, k, o in second}) == 4
    # the same line with its time as an int or a string is one line
    as_str = number_window(service, [{field: "1722851003", "message": "same", "action": "reject"}])
    assert as_str[0][1] == first[1][1]


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=30),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4),
    max_leaves=20,
)
_FIELDS = st.sampled_from(
    [
        "time",
        "unix_time",
        "message",
        "program",
        "priority",
        "service",
        "hpnow",
        "hptotal",
        "lvl",
        "hpdiff",
        "action",
        "uri",
        "method",
        "data",
        "ua",
        "user",
        "ip",
        "rcpt",
        "rcpt_smtp",
        "score",
    ]
)
_TIMES = st.integers(-10, 2**40) | st.text(alphabet="0123456789.-e ", max_size=14) | st.floats()


@settings(max_examples=400, deadline=None)
@given(
    service=st.sampled_from([*SERVICES, "cron"]),
    item=_JSON | st.dictionaries(_FIELDS, _JSON | _TIMES, max_size=8),
)
def test_arbitrary_json_items_never_raise(service, item):
    line = parse(service, item)
    if line is not None:
        assert line.level in LEVELS and isinstance(line.message, str) and line.item is item
        assert line.program is None or isinstance(line.program, str)
